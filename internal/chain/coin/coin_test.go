package coin

import (
	"errors"
	"math"
	"testing"

	"github.com/agoranet/agora/internal/chain/codes"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"5000uagr", "5000uagr", true},
		{" 1uusdc ", "1uusdc", true},
		{"0uagr", "0uagr", true},
		{"-5uagr", "", false},
		{"uagr", "", false},
		{"5", "", false},
		{"5UAGR", "", false},
		{"18446744073709551616uagr", "", false}, // 2^64
		{"5u", "", false},
	} {
		c, err := Parse(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("Parse(%q) err = %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if err != nil && !errors.Is(err, codes.ErrInvalidAmount) {
			t.Errorf("Parse(%q) err = %v, want ErrInvalidAmount", tc.in, err)
		}
		if tc.ok && String(c) != tc.want {
			t.Errorf("Parse(%q) = %s, want %s", tc.in, String(c), tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	if err := Validate([]*Coin{New("uagr", 1), New("uusdc", 2)}); err != nil {
		t.Errorf("valid list refused: %v", err)
	}
	for name, cs := range map[string][]*Coin{
		"empty":     nil,
		"zero":      {New("uagr", 0)},
		"duplicate": {New("uagr", 1), New("uagr", 2)},
		"bad denom": {New("U", 1)},
		"nil":       {nil},
	} {
		if err := Validate(cs); !errors.Is(err, codes.ErrInvalidAmount) {
			t.Errorf("%s: Validate = %v, want ErrInvalidAmount", name, err)
		}
	}
}

func TestArithmetic(t *testing.T) {
	if _, err := Add(math.MaxUint64, 1); !IsOverflow(err) {
		t.Errorf("Add overflow: err = %v", err)
	}
	if s, err := Add(2, 3); err != nil || s != 5 {
		t.Errorf("Add(2,3) = %d, %v", s, err)
	}
	if _, err := Mul(1<<32, 1<<32); !IsOverflow(err) {
		t.Errorf("Mul overflow: err = %v", err)
	}
}
