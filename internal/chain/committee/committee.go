// Package committee draws committees by stake from randomness no single
// party controls: the beacon's value (or, on a chain without one, the
// block's hash), mixed with what the committee is for.
// Audit disputes and job disputes draw theirs here, and so will every
// later module that needs impartial judges (storage challenges, data
// key holders, training step checks).
package committee

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"sort"
	"strconv"

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

// Candidate is one member of a pool with its weight (its bonded stake).
type Candidate struct {
	Addr   addr.Address
	Weight uint64
}

// Weigh freezes candidates' weights as they are now. A draw asked for now
// and made later, from a beacon that becomes public before the draw, must
// draw from this frozen pool: were the pool or the weights read at the
// draw, whoever saw the beacon first could bond a little more, or leave,
// and so choose the committee.
func Weigh(candidates []addr.Address, weight func(addr.Address) uint64) []Candidate {
	pool := make([]Candidate, 0, len(candidates))
	for _, a := range candidates {
		pool = append(pool, Candidate{a, weight(a)})
	}
	return pool
}

// candidateSize is one encoded candidate: an address and a weight.
const candidateSize = addr.Len + 8

// Encode packs a frozen pool for the store.
func Encode(pool []Candidate) []byte {
	out := make([]byte, 0, len(pool)*candidateSize)
	for _, c := range pool {
		out = append(out, c.Addr[:]...)
		out = binary.BigEndian.AppendUint64(out, c.Weight)
	}
	return out
}

// Decode unpacks what Encode packed; it panics on bytes Encode did not
// make, since only the chain writes them.
func Decode(b []byte) []Candidate {
	if len(b)%candidateSize != 0 {
		panic("committee: a stored pool of " + strconv.Itoa(len(b)) + " bytes is corrupt")
	}
	pool := make([]Candidate, 0, len(b)/candidateSize)
	for ; len(b) > 0; b = b[candidateSize:] {
		var c Candidate
		copy(c.Addr[:], b)
		c.Weight = binary.BigEndian.Uint64(b[addr.Len:])
		pool = append(pool, c)
	}
	return pool
}

// Draw picks n members from candidates, each with probability in
// proportion to its weight (its bonded stake), without replacement. It is
// a deterministic function of its arguments: every node draws the same
// committee. Members come back sorted by address. Candidates of weight 0
// are drawn only once every weighted one has been.
func Draw(candidates []addr.Address, weight func(addr.Address) uint64, n int, seed []byte) []addr.Address {
	return DrawFrom(Weigh(candidates, weight), n, seed)
}

// DrawFrom is Draw from a frozen pool; it does not change pool.
func DrawFrom(frozen []Candidate, n int, seed []byte) []addr.Address {
	pool := append([]Candidate(nil), frozen...)
	var out []addr.Address
	for i := 0; i < n && len(pool) > 0; i++ {
		var total uint64
		for _, c := range pool {
			total += c.Weight
		}
		h := sha256.Sum256(append(append([]byte(nil), seed...), binary.BigEndian.AppendUint64(nil, uint64(i))...))
		r := binary.BigEndian.Uint64(h[:8]) % max(total, 1)
		pick := 0
		for j, c := range pool {
			if r < c.Weight {
				pick = j
				break
			}
			r -= c.Weight
		}
		out = append(out, pool[pick].Addr)
		pool = append(pool[:pick], pool[pick+1:]...)
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i][:], out[j][:]) < 0 })
	return out
}
