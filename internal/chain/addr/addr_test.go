package addr

import (
	"bytes"
	"encoding/hex"
	"math/rand/v2"

	"errors"
	"strings"
	"testing"

	"github.com/btcsuite/btcd/btcutil/bech32"
)

func TestBech32Vectors(t *testing.T) {
	// Valid checksums from BIP-173.
	for _, s := range []string{
		"A12UEL5L",
		"abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
		"split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
	} {
		if _, _, err := decode(s); err != nil {
			t.Errorf("decode(%q): %v", s, err)
		}
	}
	for _, s := range []string{
		"pzry9x0s0muk",  // no separator
		"1pzry9x0s0muk", // empty hrp
		"x1b4n0q5v",     // bad character
		"li1dgmt3",      // too short checksum
		"A1G7SGD8",      // checksum computed with uppercase hrp
		"abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxX", // mixed case
	} {
		if _, _, err := decode(s); err == nil {
			t.Errorf("decode(%q) accepted an invalid string", s)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	a := FromPubKey([]byte("0123456789abcdef0123456789abcdef"))
	s := a.String()
	if !strings.HasPrefix(s, "agora1") {
		t.Fatalf("got %q, want agora1 prefix", s)
	}
	got, err := Parse(s)
	if err != nil || got != a {
		t.Fatalf("Parse(%q) = %v, %v; want %v", s, got, err, a)
	}
	if _, err := Parse(strings.ToUpper(s)); err != nil {
		t.Errorf("upper-case address refused: %v", err)
	}
	bad := s[:len(s)-1] + string(charset[(strings.IndexByte(charset, s[len(s)-1])+1)%32])
	if _, err := Parse(bad); err == nil {
		t.Errorf("Parse accepted a corrupted checksum %q", bad)
	}
	if _, err := Parse(encode("cosmos", a[:])); err == nil {
		t.Error("Parse accepted a foreign prefix")
	}
	if _, err := Parse(encode(Prefix, a[:10])); err == nil {
		t.Error("Parse accepted a short payload")
	}
}

func FuzzParse(f *testing.F) {
	f.Add(Module("bank").String())
	f.Add("agora1")
	f.Fuzz(func(t *testing.T, s string) {
		a, err := Parse(s)
		if err != nil {
			return
		}
		if b, err := Parse(a.String()); err != nil || b != a {
			t.Fatalf("re-parse of %q: %v %v", a, b, err)
		}
	})
}

// TestKnownAddresses pins the encoding with vectors computed outside this
// code (BIP-173's reference algorithm), so a change of library that altered
// addresses would fail here rather than move accounts.
func TestKnownAddresses(t *testing.T) {
	var seq Address
	for i := range seq {
		seq[i] = byte(i)
	}
	for _, tc := range []struct {
		name string
		a    Address
		want string
	}{
		{"bytes 0 to 19", seq, "agora1qqqsyqcyq5rqwzqfpg9scrgwpugpzysnxdt30j"},
		{"bank module", Module("bank"), "agora1asa0arkdu2ndpgpwlhaklkh5qexyvs4dlacq5j"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.a.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
			got, err := Parse(tc.want)
			if err != nil || got != tc.a {
				t.Errorf("Parse(%q) = %x, %v; want %x", tc.want, got, err, tc.a)
			}
		})
	}
	// BIP-173's all-symbols vector carries a 20-byte payload.
	hrp, got, err := decode("abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw")
	if want := "00443214c74254b635cf84653a56d7c675be77df"; err != nil || hrp != "abcdef" || hex.EncodeToString(got) != want {
		t.Errorf("decode = %q, %x, %v; want \"abcdef\", %s", hrp, got, err, want)
	}
}

// TestParseErrors checks what a user who mistypes an address is told: the
// sentinel, the reason, and what to do.
func TestParseErrors(t *testing.T) {
	good := "agora1qqqsyqcyq5rqwzqfpg9scrgwpugpzysnxdt30j"
	for _, tc := range []struct {
		name, in, want string
	}{
		{"checksum", good[:len(good)-1] + "k",
			`addr: invalid address "agora1qqqsyqcyq5rqwzqfpg9scrgwpugpzysnxdt30k": bad checksum, a character is wrong, missing or swapped; copy the whole agora1… address again`},
		{"truncated", good[:len(good)-3],
			`addr: invalid address "agora1qqqsyqcyq5rqwzqfpg9scrgwpugpzysnxdt": bad checksum, a character is wrong, missing or swapped; copy the whole agora1… address again`},
		{"not in the alphabet", "agora1bqqsyqcyq5rqwzqfpg9scrgwpugpzysnxdt30j",
			`addr: invalid address "agora1bqqsyqcyq5rqwzqfpg9scrgwpugpzysnxdt30j": bad character 'b', bech32 has no b, i, o or 1 after the separator; copy the whole agora1… address again`},
		{"mixed case", "Agora1qqqsyqcyq5rqwzqfpg9scrgwpugpzysnxdt30j",
			`addr: invalid address "Agora1qqqsyqcyq5rqwzqfpg9scrgwpugpzysnxdt30j": mixed case; copy the whole agora1… address again`},
		{"space", "agora1 qqsyqcyq5rqwzqfpg9scrgwpugpzysnxdt30j",
			`addr: invalid address "agora1 qqsyqcyq5rqwzqfpg9scrgwpugpzysnxdt30j": bad character ' '; copy the whole agora1… address again`},
		{"empty", "",
			`addr: invalid address "": bad length 0, bech32 is 8 to 90 characters; copy the whole agora1… address again`},
		{"no separator", "agoraqqqsyqcyq5rqwzqfpg9scrgwpugpzysnxdt30j",
			`addr: invalid address "agoraqqqsyqcyq5rqwzqfpg9scrgwpugpzysnxdt30j": missing separator "1" before the 6-character checksum; copy the whole agora1… address again`},
		// The same payload under a bech32m (BIP-350) checksum.
		{"bech32m", "agora1qqqsyqcyq5rqwzqfpg9scrgwpugpzysnn3ma2s",
			`addr: invalid address "agora1qqqsyqcyq5rqwzqfpg9scrgwpugpzysnn3ma2s": bech32m checksum, addresses use bech32; copy the whole agora1… address again`},
		{"other chain", encode("cosmos", make([]byte, Len)),
			`addr: invalid address "cosmos1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqnrql8a": prefix "cosmos", want "agora"; this is another chain's address`},
		{"short payload", encode(Prefix, make([]byte, 10)),
			`addr: invalid address "agora1qqqqqqqqqqqqqqqq5c7hm9": 10 bytes, want 20`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.in)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse(%q) = %v, want ErrInvalid", tc.in, err)
			}
			if got := err.Error(); got != tc.want {
				t.Errorf("Parse(%q):\n got %s\nwant %s", tc.in, got, tc.want)
			}
		})
	}
}

// TestBech32AgreesWithBtcutil: the hand-written encoder and fast decoder
// give what btcutil gives, for payloads of every length up to what fits,
// and the fast decoder refuses every one-character corruption (btcutil
// then says why).
func TestBech32AgreesWithBtcutil(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for n := 0; n <= 50; n++ {
		for range 20 {
			payload := make([]byte, n)
			for i := range payload {
				payload[i] = byte(r.Uint32())
			}
			for _, hrp := range []string{"agora", "a", "abcdef"} {
				want, err := bech32.EncodeFromBase256(hrp, payload)
				if err != nil || len(want) > 90 {
					continue // too long to decode
				}
				got := encode(hrp, payload)
				if got != want {
					t.Fatalf("encode(%s, %x) = %s, want %s", hrp, payload, got, want)
				}
				h, p, ok := decodeFast(got)
				if !ok || h != hrp || !bytes.Equal(p, payload) {
					t.Fatalf("decodeFast(%s) = %s, %x, %v", got, h, p, ok)
				}
				if _, _, ok := decodeFast(strings.ToUpper(got)); ok {
					t.Fatalf("decodeFast took upper case %s", strings.ToUpper(got))
				}
				i := len(hrp) + 1 + r.IntN(len(got)-len(hrp)-1)
				bad := got[:i] + string(charset[(strings.IndexByte(charset, got[i])+1+r.IntN(31))%32]) + got[i+1:]
				if _, _, ok := decodeFast(bad); ok {
					t.Fatalf("decodeFast took corrupted %s (of %s)", bad, got)
				}
			}
		}
	}
}
