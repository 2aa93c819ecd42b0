package chain

import (
	dbm "github.com/cosmos/cosmos-db"
	"github.com/cosmos/iavl"
	idb "github.com/cosmos/iavl/db"

	"github.com/agoranet/agora/internal/chain/store"
)

// treeKV adapts IAVL's working tree to store.KV. IAVL reports disk errors
// as errors; here they become IOError panics, which the app never turns
// into a transaction result (see App.deliverTx).
type treeKV struct{ t *iavl.MutableTree }

func (s treeKV) Get(key []byte) []byte {
	v, err := s.t.Get(key)
	if err != nil {
		panic(store.IOError{Err: err})
	}
	return v
}

func (s treeKV) Set(key, value []byte) {
	if _, err := s.t.Set(key, value); err != nil {
		panic(store.IOError{Err: err})
	}
}

func (s treeKV) Delete(key []byte) {
	if _, _, err := s.t.Remove(key); err != nil {
		panic(store.IOError{Err: err})
	}
}

func (s treeKV) Iterator(start, end []byte) store.Iterator {
	it, err := s.t.Iterator(start, end, true)
	if err != nil {
		panic(store.IOError{Err: err})
	}
	return iter{it}
}

// snapshotKV is a read-only view of one committed version. Writes go to a
// store.Cache on top of it, never here.
type snapshotKV struct{ t *iavl.ImmutableTree }

func (s snapshotKV) Get(key []byte) []byte {
	v, err := s.t.Get(key)
	if err != nil {
		panic(store.IOError{Err: err})
	}
	return v
}

func (s snapshotKV) Set(key, value []byte) { panic("chain: write to a committed snapshot") }
func (s snapshotKV) Delete(key []byte)     { panic("chain: write to a committed snapshot") }

func (s snapshotKV) Iterator(start, end []byte) store.Iterator {
	it, err := s.t.Iterator(start, end, true)
	if err != nil {
		panic(store.IOError{Err: err})
	}
	return iter{it}
}

type iter struct{ idb.Iterator }

func (i iter) Close() { _ = i.Iterator.Close() }

// openTree opens (or creates) the state tree in db and loads its latest
// version.
func openTree(db dbm.DB, cacheSize int) (*iavl.MutableTree, error) {
	t := iavl.NewMutableTree(idb.NewWrapper(db), cacheSize, false, iavl.NewNopLogger())
	if _, err := t.Load(); err != nil {
		return nil, err
	}
	return t, nil
}
