package store

import (
	"bytes"
	"sort"
)

// Mem is a sorted in-memory KV for tests and for reading a genesis before
// there is a database.
type Mem struct {
	m map[string][]byte
}

// NewMem returns an empty Mem.
func NewMem() *Mem { return &Mem{m: make(map[string][]byte)} }

func (s *Mem) Get(key []byte) []byte { return s.m[string(key)] }
func (s *Mem) Set(key, value []byte) { s.m[string(key)] = bytes.Clone(value) }
func (s *Mem) Delete(key []byte)     { delete(s.m, string(key)) }
func (s *Mem) Len() int              { return len(s.m) }

// Iterator implements Reader over a snapshot of the keys in range.
func (s *Mem) Iterator(start, end []byte) Iterator {
	var keys []string
	for k := range s.m { //agora:sorted
		if inRange([]byte(k), start, end) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return &sliceIter{s: s, keys: keys}
}

type sliceIter struct {
	s    *Mem
	keys []string
}

func (it *sliceIter) Valid() bool   { return len(it.keys) > 0 }
func (it *sliceIter) Next()         { it.keys = it.keys[1:] }
func (it *sliceIter) Key() []byte   { return []byte(it.keys[0]) }
func (it *sliceIter) Value() []byte { return it.s.m[it.keys[0]] }
func (it *sliceIter) Close()        {}
