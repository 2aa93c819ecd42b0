package committee

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/agoranet/agora/internal/chain/addr"
)

func members(n int) []addr.Address {
	out := make([]addr.Address, n)
	for i := range out {
		out[i][0] = byte(i + 1)
	}
	return out
}

func TestDraw(t *testing.T) {
	cands := members(5)
	weights := map[addr.Address]uint64{cands[0]: 100, cands[1]: 300, cands[2]: 0, cands[3]: 100, cands[4]: 500}
	w := func(a addr.Address) uint64 { return weights[a] }

	a := Draw(cands, w, 3, Seed([]byte("block"), "job", 7))
	if b := Draw(cands, w, 3, Seed([]byte("block"), "job", 7)); !cmp.Equal(a, b) {
		t.Errorf("same seed, different committees: %v and %v", a, b)
	}
	if len(a) != 3 {
		t.Fatalf("drew %d members, want 3", len(a))
	}
	seen := map[addr.Address]bool{}
	for i, m := range a {
		if seen[m] {
			t.Errorf("%x drawn twice", m[:1])
		}
		seen[m] = true
		if i > 0 && string(a[i-1][:]) > string(m[:]) {
			t.Error("members not sorted by address")
		}
	}
	if got := Draw(cands, w, 10, []byte("s")); len(got) != 5 {
		t.Errorf("asked for more than there are: drew %d, want all 5", len(got))
	}
	if got := Draw(nil, w, 3, []byte("s")); len(got) != 0 {
		t.Errorf("drew %d from no candidates", len(got))
	}
	if Seed([]byte("block"), "job", 7)[0] == Seed([]byte("block"), "audit", 7)[0] && cmp.Equal(Seed([]byte("block"), "job", 7), Seed([]byte("block"), "audit", 7)) {
		t.Error("seeds for different purposes are equal")
	}

	// Over many draws of one member, each is drawn in proportion to its
	// stake; the zero-stake candidate never is while others remain.
	counts := map[addr.Address]int{}
	const draws = 20000
	for i := uint64(0); i < draws; i++ {
		counts[Draw(cands, w, 1, Seed([]byte("block"), "test", i))[0]]++
	}
	if counts[cands[2]] != 0 {
		t.Errorf("zero-stake candidate drawn %d times", counts[cands[2]])
	}
	for a, wt := range weights {
		want := draws * int(wt) / 1000
		if d := counts[a] - want; d < -want/10-50 || d > want/10+50 {
			t.Errorf("%x drawn %d times, want about %d (stake %d of 1000)", a[:1], counts[a], want, wt)
		}
	}
}
