package codes

import (
	"fmt"
	"testing"
)

func TestCodesUnique(t *testing.T) {
	seen := map[uint32]string{}
	for _, e := range All {
		if e.Code == 0 {
			t.Errorf("%q has code 0, which ABCI reads as success", e.Desc)
		}
		if prev, ok := seen[e.Code]; ok {
			t.Errorf("code %d used by %q and %q", e.Code, prev, e.Desc)
		}
		seen[e.Code] = e.Desc
	}
}

func TestOf(t *testing.T) {
	wrapped := fmt.Errorf("bank: send: %w", ErrInsufficientFunds)
	if got, want := Of(wrapped), ErrInsufficientFunds.Code; got != want {
		t.Errorf("Of(wrapped) = %d, want %d", got, want)
	}
	if got := Of(fmt.Errorf("plain")); got != ErrInternal.Code {
		t.Errorf("Of(plain) = %d, want internal", got)
	}
	if Of(nil) != 0 {
		t.Error("Of(nil) != 0")
	}
}
