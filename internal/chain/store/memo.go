package store

// Memo remembers what its parent returned for every key read, absent keys
// included, so that a key read again costs a map lookup instead of a walk
// of the state tree (an absent key meant a database read every time: an
// agent's record, looked up for every account that pays). Writes go
// through to the parent and update what it remembers; iterators read the
// parent, which is current.
//
// It is correct only while nothing but the Memo writes to its parent: the
// committed snapshot under the mempool's view, or the tree under one
// block's writes. It changes no gas: the meter sits above it and charges
// every read as before.
type Memo struct {
	parent KV
	seen   map[string][]byte // nil: absent in the parent
}

// memoMax bounds what a Memo remembers; past it, it starts again empty.
const memoMax = 1 << 18

// NewMemo returns a Memo over parent.
func NewMemo(parent KV) *Memo { return &Memo{parent: parent, seen: map[string][]byte{}} }

func (m *Memo) Get(key []byte) []byte {
	if v, ok := m.seen[string(key)]; ok {
		return v
	}
	v := m.parent.Get(key)
	m.keep(string(key), v)
	return v
}

func (m *Memo) keep(k string, v []byte) {
	if len(m.seen) >= memoMax {
		clear(m.seen)
	}
	m.seen[k] = v
}

// Set keeps value as the parent does (IAVL keeps the slice): the caller
// must not change it afterwards, and a Cache's Write never does.
func (m *Memo) Set(key, value []byte) {
	m.parent.Set(key, value)
	if value == nil {
		value = []byte{}
	}
	m.keep(string(key), value)
}

func (m *Memo) Delete(key []byte) {
	m.parent.Delete(key)
	m.keep(string(key), nil)
}

func (m *Memo) Iterator(start, end []byte) Iterator { return m.parent.Iterator(start, end) }
