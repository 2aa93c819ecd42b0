package receipt

import (
	"errors"
	"testing"
)

// TestFreshAndSeqs: a receipt of another chain, or dated out of reach of
// a challenge, is refused; a receipt number is taken once, and one far
// below the provider's highest not at all.
func TestFreshAndSeqs(t *testing.T) {
	for _, c := range []struct {
		r    *Receipt
		want bool
	}{
		{&Receipt{ChainId: "c", Height: 5000}, true},
		{&Receipt{ChainId: "c", Height: 5000 - MaxLag}, true},
		{&Receipt{ChainId: "c", Height: 5000 - MaxLag - 1}, false},
		{&Receipt{ChainId: "c", Height: 5000 + MaxLead + 1}, false},
		{&Receipt{ChainId: "other", Height: 5000}, false},
	} {
		if err := Fresh(c.r, "c", 5000); (err == nil) != c.want || err != nil && !errors.Is(err, ErrMismatch) {
			t.Errorf("Fresh(%v) = %v, want ok %v", c.r, err, c.want)
		}
	}
	var s Seqs
	for _, n := range []uint64{10, 12, 11, SeqWindow + 20} {
		if err := s.Take("p", n); err != nil {
			t.Fatal(err)
		}
	}
	if s.Take("p", 12) == nil {
		t.Error("a receipt number was taken twice")
	}
	if s.Take("p", 13) == nil {
		t.Error("a number far below the highest was taken")
	}
	if s.Take("q", 12) != nil {
		t.Error("another provider's number was refused")
	}
}
