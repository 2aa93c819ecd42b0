package receipt

import (
	"errors"
	"math/rand/v2"
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

// TestSeqsAgreeWithASet: the bit window refuses exactly what a set of
// every number taken, with the same window, refuses, over numbers that
// mostly climb, sometimes repeat, and sometimes fall back or leap ahead.
func TestSeqsAgreeWithASet(t *testing.T) {
	var s Seqs
	taken := map[uint64]bool{}
	var top uint64
	rng := rand.New(rand.NewPCG(1, 2))
	n := uint64(1000)
	for i := range 300_000 {
		switch r := rng.IntN(100); {
		case r < 80:
			n += uint64(rng.IntN(3))
		case r < 95:
			n -= min(n, uint64(rng.IntN(SeqWindow+10)))
		case r < 99:
			n += uint64(rng.IntN(3 * SeqWindow))
		default:
			n += 2 * SeqWindow
		}
		want := !taken[n] && (i == 0 || n+SeqWindow > top)
		if got := s.Take("p", n) == nil; got != want {
			t.Fatalf("step %d: Take(%d) with top %d: taken %v, want %v", i, n, top, got, want)
		}
		if want {
			taken[n] = true
			top = max(top, n)
		}
	}
}
