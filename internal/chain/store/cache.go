package store

import (
	"bytes"

	"github.com/google/btree"
)

// Cache buffers writes over a parent. Reads see the buffered writes first.
// Write applies them to the parent in key order, so the parent (an IAVL
// tree whose shape depends on insertion order) ends the same on every node.
//
// The buffered keys are also kept in order, so that an iterator costs what
// its range holds: a block's cache holds every write of the block, and a
// message that iterates a small prefix late in a busy block must not pay
// (unmetered) for sorting all of them.
type Cache struct {
	parent KV
	dirty  map[string]entry
	order  *btree.BTreeG[string] // the keys of dirty, ascending
}

type entry struct {
	value   []byte
	deleted bool
}

// NewCache returns an empty cache over parent.
func NewCache(parent KV) *Cache {
	return &Cache{parent: parent, dirty: make(map[string]entry), order: btree.NewOrderedG[string](32)}
}

// Get implements Reader.
func (c *Cache) Get(key []byte) []byte {
	if e, ok := c.dirty[string(key)]; ok {
		if e.deleted {
			return nil
		}
		return e.value
	}
	return c.parent.Get(key)
}

// Set implements KV. It keeps its own copy of key and value.
func (c *Cache) Set(key, value []byte) {
	if value == nil {
		value = []byte{}
	}
	c.put(string(key), entry{value: bytes.Clone(value)})
}

// Delete implements KV.
func (c *Cache) Delete(key []byte) {
	c.put(string(key), entry{deleted: true})
}

func (c *Cache) put(k string, e entry) {
	if _, ok := c.dirty[k]; !ok {
		c.order.ReplaceOrInsert(k)
	}
	c.dirty[k] = e
}

// Write applies the buffered writes to the parent and empties the cache.
func (c *Cache) Write() {
	for _, k := range c.sortedKeys(nil, nil) {
		e := c.dirty[k]
		if e.deleted {
			c.parent.Delete([]byte(k))
		} else {
			c.parent.Set([]byte(k), e.value)
		}
	}
	clear(c.dirty)
	c.order.Clear(false)
}

// sortedKeys returns the buffered keys in [start, end), ascending; a nil
// end is no bound.
func (c *Cache) sortedKeys(start, end []byte) []string {
	var keys []string
	collect := func(k string) bool { keys = append(keys, k); return true }
	if end == nil {
		c.order.AscendGreaterOrEqual(string(start), collect)
	} else {
		c.order.AscendRange(string(start), string(end), collect)
	}
	return keys
}

// Iterator implements Reader: the parent's keys merged with the cache's,
// the cache winning on equal keys and hiding deleted ones.
func (c *Cache) Iterator(start, end []byte) Iterator {
	keys := c.sortedKeys(start, end)
	it := &mergeIter{cache: c, keys: keys, parent: c.parent.Iterator(start, end)}
	it.settle()
	return it
}

type mergeIter struct {
	cache  *Cache
	keys   []string // cached keys in range, ascending
	parent Iterator
	key    []byte
	value  []byte
	valid  bool
}

// settle positions the iterator on the next visible key.
func (it *mergeIter) settle() {
	for {
		pv := it.parent.Valid()
		cv := len(it.keys) > 0
		if !pv && !cv {
			it.valid = false
			return
		}
		var fromCache bool
		switch {
		case !pv:
			fromCache = true
		case !cv:
			fromCache = false
		default:
			cmp := bytes.Compare([]byte(it.keys[0]), it.parent.Key())
			if cmp == 0 {
				it.parent.Next() // the cache shadows the parent
			}
			fromCache = cmp <= 0
		}
		if !fromCache {
			it.key, it.value, it.valid = it.parent.Key(), it.parent.Value(), true
			return
		}
		k := it.keys[0]
		it.keys = it.keys[1:]
		e := it.cache.dirty[k]
		if e.deleted {
			continue
		}
		it.key, it.value, it.valid = []byte(k), e.value, true
		return
	}
}

func (it *mergeIter) Valid() bool   { return it.valid }
func (it *mergeIter) Key() []byte   { return it.key }
func (it *mergeIter) Value() []byte { return it.value }
func (it *mergeIter) Close()        { it.parent.Close() }

// Next advances past the current key. A key that came from the parent is
// consumed here; one from the cache was consumed by settle.
func (it *mergeIter) Next() {
	if !it.valid {
		return
	}
	if it.parent.Valid() && bytes.Equal(it.parent.Key(), it.key) {
		it.parent.Next()
	}
	it.settle()
}

// Changes calls fn, in key order, for each key under prefix that the
// cache would change in its parent: its value in the parent and the new
// one (nil when deleted). End-of-block invariants read a block's writes
// this way, at a cost that grows with the block, not with the state.
func (c *Cache) Changes(prefix []byte, fn func(key, old, new []byte)) {
	for _, k := range c.sortedKeys(prefix, PrefixEnd(prefix)) {
		e := c.dirty[k]
		var v []byte
		if !e.deleted {
			v = e.value
		}
		fn([]byte(k), c.parent.Get([]byte(k)), v)
	}
}
