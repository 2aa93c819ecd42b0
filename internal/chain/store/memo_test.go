package store_test

import (
	"math/rand/v2"
	"testing"

	"github.com/agoranet/agora/internal/chain/store"
	"github.com/agoranet/agora/internal/chain/store/storetest"
)

// countingKV counts the reads that reach it.
type countingKV struct {
	*storetest.Mem
	gets int
}

func (c *countingKV) Get(key []byte) []byte { c.gets++; return c.Mem.Get(key) }

// TestMemoReadsOnce: a key read twice, present or absent, reaches the
// parent once; and what the Memo returns is always what the parent holds,
// through any mix of writes, deletes, reads and iterations (against a
// plain map as the model).
func TestMemoReadsOnce(t *testing.T) {
	parent := &countingKV{Mem: storetest.NewMem()}
	parent.Mem.Set([]byte("a"), []byte("1"))
	m := store.NewMemo(parent)
	for range 3 {
		if string(m.Get([]byte("a"))) != "1" || m.Get([]byte("absent")) != nil {
			t.Fatal("wrong value")
		}
	}
	if parent.gets != 2 {
		t.Fatalf("%d reads reached the parent, want 2", parent.gets)
	}

	r := rand.New(rand.NewPCG(1, 2))
	model := map[string]string{"a": "1"}
	for i := range 20_000 {
		k := []byte{byte('a' + r.IntN(12))}
		switch r.IntN(4) {
		case 0:
			v := []byte{byte(i), byte(i >> 8)}
			m.Set(k, v)
			model[string(k)] = string(v)
		case 1:
			m.Delete(k)
			delete(model, string(k))
		case 2:
			got, want := m.Get(k), model[string(k)]
			if string(got) != want || (got == nil) != (want == "" && !has(model, k)) {
				t.Fatalf("step %d: Get(%s) = %q, want %q", i, k, got, want)
			}
		case 3:
			n := 0
			it := m.Iterator(nil, nil)
			for ; it.Valid(); it.Next() {
				if model[string(it.Key())] != string(it.Value()) {
					t.Fatalf("step %d: iterator has %s=%q, want %q", i, it.Key(), it.Value(), model[string(it.Key())])
				}
				n++
			}
			it.Close()
			if n != len(model) {
				t.Fatalf("step %d: iterator saw %d keys, want %d", i, n, len(model))
			}
		}
	}
}

func has(m map[string]string, k []byte) bool { _, ok := m[string(k)]; return ok }
