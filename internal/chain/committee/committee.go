// Package committee draws committees by stake from randomness no single
// party controls: the block's hash, mixed with what the committee is for.
// Audit disputes and job disputes draw theirs here, and so will every
// later module that needs impartial judges (storage challenges, data
// key holders, training step checks).
package committee

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"sort"

	"github.com/agoranet/agora/internal/chain/addr"
)

// Seed derives the seed of one draw from the block's seed, a purpose
// (like "job") and an id, so draws in one block for different purposes
// or ids are independent.
func Seed(blockSeed []byte, purpose string, id uint64) []byte {
	h := sha256.New()
	h.Write(blockSeed)
	h.Write([]byte{0})
	h.Write([]byte(purpose))
	h.Write(binary.BigEndian.AppendUint64(nil, id))
	return h.Sum(nil)
}

// Draw picks n members from candidates, each with probability in
// proportion to its weight (its bonded stake), without replacement. It is
// a deterministic function of its arguments: every node draws the same
// committee. Members come back sorted by address. Candidates of weight 0
// are drawn only once every weighted one has been.
func Draw(candidates []addr.Address, weight func(addr.Address) uint64, n int, seed []byte) []addr.Address {
	type cand struct {
		a addr.Address
		w uint64
	}
	pool := make([]cand, 0, len(candidates))
	for _, a := range candidates {
		pool = append(pool, cand{a, weight(a)})
	}
	var out []addr.Address
	for i := 0; i < n && len(pool) > 0; i++ {
		var total uint64
		for _, c := range pool {
			total += c.w
		}
		h := sha256.Sum256(append(append([]byte(nil), seed...), binary.BigEndian.AppendUint64(nil, uint64(i))...))
		r := binary.BigEndian.Uint64(h[:8]) % max(total, 1)
		pick := 0
		for j, c := range pool {
			if r < c.w {
				pick = j
				break
			}
			r -= c.w
		}
		out = append(out, pool[pick].a)
		pool = append(pool[:pick], pool[pick+1:]...)
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i][:], out[j][:]) < 0 })
	return out
}
