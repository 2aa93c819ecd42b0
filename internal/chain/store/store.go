// Package store defines the key-value view that chain modules read and
// write, and a cache layer that buffers writes until they are known good.
//
// Modules never see the database: the app hands them a KV, and a failed
// transaction's writes are dropped by discarding its Cache.
package store

// Reader reads state. A nil value means the key is absent.
type Reader interface {
	Get(key []byte) []byte
	// Iterator walks keys in [start, end) in ascending order; a nil end
	// means no upper bound. The caller must Close it.
	Iterator(start, end []byte) Iterator
}

// KV reads and writes state.
type KV interface {
	Reader
	Set(key, value []byte)
	Delete(key []byte)
}

// Iterator is a cursor over a key range.
type Iterator interface {
	Valid() bool
	Next()
	Key() []byte
	Value() []byte
	Close()
}

// PrefixEnd returns the smallest key above every key that starts with p,
// for iterating over a prefix. It is nil when there is none.
func PrefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// IOError is what a backing store panics with when the disk fails. The app
// lets it crash the node instead of turning it into a failed transaction,
// because a node that cannot read its state must not vote on it.
type IOError struct{ Err error }

func (e IOError) Error() string { return "store: " + e.Err.Error() }
