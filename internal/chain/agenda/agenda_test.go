package agenda

import (
	"slices"
	"testing"

	"github.com/agoranet/agora/internal/chain/store/storetest"
)

func TestDueInOrderAndOnce(t *testing.T) {
	kv := storetest.NewMem()
	a, other := New("a/due/"), New("b/due/")
	a.Add(kv, 10, 3)
	a.Add(kv, 5, 9)
	a.Add(kv, 10, 1)
	a.Add(kv, 300, 2) // 300 > 255: heights compare as numbers, not bytes
	a.Add(kv, 11, 4)
	other.Add(kv, 1, 7)
	if got := a.Due(kv, 4, 100); got != nil {
		t.Fatalf("due by 4: %v, want none", got)
	}
	if got := a.Due(kv, 10, 100); !slices.Equal(got, []uint64{9, 1, 3}) {
		t.Fatalf("due by 10: %v, want [9 1 3] (height, then id)", got)
	}
	if got := a.Due(kv, 10, 100); got != nil {
		t.Fatalf("due by 10 again: %v; entries must be taken off once", got)
	}
	a.Move(kv, 11, 12, 4)
	a.Move(kv, 0, 12, 5)
	a.Move(kv, 300, 0, 2)
	if got := a.Due(kv, 1000, 100); !slices.Equal(got, []uint64{4, 5}) {
		t.Fatalf("due by 1000: %v, want [4 5]", got)
	}
	if got := other.Due(kv, 1000, 100); !slices.Equal(got, []uint64{7}) {
		t.Fatalf("the other agenda: %v, want [7]; agendas must not see each other", got)
	}
	if kv.Len() != 0 {
		t.Fatalf("%d entries left", kv.Len())
	}
}

func TestDueWhileRescheduling(t *testing.T) {
	kv := storetest.NewMem()
	a := New("a/due/")
	a.Add(kv, 5, 1)
	for _, id := range a.Due(kv, 5, 100) {
		a.Add(kv, 5, id+1) // an object rescheduled for the same height waits for the next call
	}
	if got := a.Due(kv, 5, 100); !slices.Equal(got, []uint64{2}) {
		t.Fatalf("got %v, want [2]", got)
	}
}

// TestDueIsBounded: entries past the bound stay on the agenda, in order,
// for the next call.
func TestDueIsBounded(t *testing.T) {
	kv := storetest.NewMem()
	a := New("a/due/")
	for id := uint64(1); id <= 5; id++ {
		a.Add(kv, int64(6-id), id) // heights 5, 4, 3, 2, 1
	}
	if got := a.Due(kv, 10, 2); !slices.Equal(got, []uint64{5, 4}) {
		t.Fatalf("first two due: %v, want [5 4]", got)
	}
	if got := a.Due(kv, 10, 2); !slices.Equal(got, []uint64{3, 2}) {
		t.Fatalf("next two due: %v, want [3 2]", got)
	}
	if got := a.Due(kv, 10, 2); !slices.Equal(got, []uint64{1}) {
		t.Fatalf("last due: %v, want [1]", got)
	}
}
