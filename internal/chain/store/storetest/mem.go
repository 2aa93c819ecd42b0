// Package storetest has an in-memory store.KV for tests of modules and of
// the store itself, as net/http/httptest has servers for tests.
package storetest

import (
	"bytes"
	"sort"

	"github.com/agoranet/agora/internal/chain/store"
)

// Mem is a sorted in-memory KV.
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
func (s *Mem) Iterator(start, end []byte) store.Iterator {
	var keys []string
	for k := range s.m { //agora:sorted
		if (start == nil || k >= string(start)) && (end == nil || k < string(end)) {
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
