package store_test

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/agoranet/agora/internal/chain/store"
	"github.com/agoranet/agora/internal/chain/store/storetest"
	"github.com/google/go-cmp/cmp"
)

// TestCacheMatchesModel applies random writes to a Cache over a Mem and to a
// plain Mem, and checks that reads, iteration and Write agree.
func TestCacheMatchesModel(t *testing.T) {
	for seed := uint64(0); seed < 50; seed++ {
		r := rand.New(rand.NewPCG(seed, 1))
		base, model := storetest.NewMem(), storetest.NewMem()
		for i := 0; i < 20; i++ {
			k, v := fmt.Appendf(nil, "k%02d", r.IntN(30)), fmt.Appendf(nil, "v%d", i)
			base.Set(k, v)
			model.Set(k, v)
		}
		c := store.NewCache(base)
		for i := 0; i < 40; i++ {
			k := fmt.Appendf(nil, "k%02d", r.IntN(30))
			if r.IntN(3) == 0 {
				c.Delete(k)
				model.Delete(k)
			} else {
				v := fmt.Appendf(nil, "w%d", i)
				c.Set(k, v)
				model.Set(k, v)
			}
		}
		start, end := fmt.Appendf(nil, "k%02d", r.IntN(10)), fmt.Appendf(nil, "k%02d", 10+r.IntN(25))
		if diff := cmp.Diff(dump(model, start, end), dump(c, start, end)); diff != "" {
			t.Fatalf("seed %d: cache iteration differs from model (-want +got):\n%s", seed, diff)
		}
		if diff := cmp.Diff(dump(model, nil, nil), dump(c, nil, nil)); diff != "" {
			t.Fatalf("seed %d: full iteration differs (-want +got):\n%s", seed, diff)
		}
		c.Write()
		if diff := cmp.Diff(dump(model, nil, nil), dump(base, nil, nil)); diff != "" {
			t.Fatalf("seed %d: parent after Write differs (-want +got):\n%s", seed, diff)
		}
	}
}

func TestPrefixEnd(t *testing.T) {
	for _, tc := range []struct{ in, want []byte }{
		{[]byte("ab"), []byte("ac")},
		{[]byte{1, 0xff}, []byte{2}},
		{[]byte{0xff, 0xff}, nil},
	} {
		if got := store.PrefixEnd(tc.in); string(got) != string(tc.want) {
			t.Errorf("store.PrefixEnd(%x) = %x, want %x", tc.in, got, tc.want)
		}
	}
}

func dump(r store.Reader, start, end []byte) []string {
	var out []string
	it := r.Iterator(start, end)
	defer it.Close()
	for ; it.Valid(); it.Next() {
		out = append(out, string(it.Key())+"="+string(it.Value()))
	}
	return out
}

// TestAnIteratorCostsWhatItsRangeHolds: a block's cache holds every write
// of the block, and gas charges an iterator for what it visits. Opening one
// sorted every buffered key (found by review: 640 small iterators late in
// a busy block took 1.6 s for 8M gas). Now it visits only its range; the
// bytes it allocates show it, where a timing would be noise.
func TestAnIteratorCostsWhatItsRangeHolds(t *testing.T) {
	c := store.NewCache(storetest.NewMem())
	for i := range 100_000 {
		c.Set(fmt.Appendf(nil, "busy/%08d", i), []byte{1})
	}
	for i := range 10 {
		c.Set(fmt.Appendf(nil, "small/%d", i), []byte{1})
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 100 {
		it := c.Iterator([]byte("small/"), store.PrefixEnd([]byte("small/")))
		n := 0
		for ; it.Valid(); it.Next() {
			n++
		}
		it.Close()
		if n != 10 {
			t.Fatalf("the iterator saw %d keys, want 10", n)
		}
	}
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Errorf("100 iterators over 10 keys allocated %d bytes beside 100,000 other buffered keys; they scan more than their range", got)
	}
}
