// Package agenda keeps a module's deadlines in the store: which of its
// objects (orders, disputes, and later storage deals and training rounds)
// is due at which height, so that EndBlock visits exactly the ones due,
// in a deterministic order, without scanning every object.
//
// An entry is the key prefix | height | id (big-endian) with no value, so
// the store's order is (height, id) and the entries due by a height are
// one range.
package agenda

import (
	"encoding/binary"

	"github.com/agoranet/agora/internal/chain/gas"
	"github.com/agoranet/agora/internal/chain/store"
)

// Agenda is one module's list of deadlines under a key prefix of its own
// (like "job/due/").
type Agenda struct{ prefix []byte }

// New is the agenda kept under prefix.
func New(prefix string) Agenda { return Agenda{prefix: []byte(prefix)} }

func (a Agenda) key(height int64, id uint64) []byte {
	k := make([]byte, 0, len(a.prefix)+16)
	k = append(k, a.prefix...)
	k = binary.BigEndian.AppendUint64(k, uint64(height))
	return binary.BigEndian.AppendUint64(k, id)
}

// Add puts id on the agenda at height. An id may be due at several heights;
// each is its own entry.
func (a Agenda) Add(kv store.KV, height int64, id uint64) { kv.Set(a.key(height, id), []byte{}) }

// Remove takes id's entry at height off the agenda; removing what is not
// there does nothing.
func (a Agenda) Remove(kv store.KV, height int64, id uint64) { kv.Delete(a.key(height, id)) }

// Move reschedules id from one height to another; a height of 0 means
// none, so Move(kv, 0, h, id) adds and Move(kv, h, 0, id) removes.
func (a Agenda) Move(kv store.KV, from, to int64, id uint64) {
	if from == to {
		return
	}
	if from != 0 {
		a.Remove(kv, from, id)
	}
	if to != 0 {
		a.Add(kv, to, id)
	}
}

// PerBlock is how many entries an EndBlock should take from an agenda:
// as many as one block's txs can schedule, each paying gas.EndBlockStep,
// so that no backlog can build up however the agenda is filled, and a
// block's deferred work is at most a block's worth of gas.
func PerBlock(blockGasLimit uint64) int { return int(blockGasLimit / gas.EndBlockStep) }

// Due takes off the agenda the entries due at or before height, at most
// max of them, and returns their ids, earliest height first and by id
// within a height. Entries are removed before the caller acts on them, so
// whatever the caller schedules while acting stays on the agenda.
//
// The bound keeps a block's EndBlock work bounded whatever txs scheduled
// it: deadlines that users choose (an order's bid window) can pile up on
// one height, and the entries past max are simply due in the next block,
// still in order. Callers compare heights with >=, never ==.
func (a Agenda) Due(kv store.KV, height int64, max int) []uint64 {
	if height < 0 || max <= 0 {
		return nil
	}
	it := kv.Iterator(a.prefix, a.key(height, ^uint64(0)))
	var ids []uint64
	var keys [][]byte
	for ; it.Valid() && len(ids) < max; it.Next() {
		k := it.Key()
		ids = append(ids, binary.BigEndian.Uint64(k[len(k)-8:]))
		keys = append(keys, append([]byte(nil), k...))
	}
	it.Close()
	for _, k := range keys {
		kv.Delete(k)
	}
	return ids
}
