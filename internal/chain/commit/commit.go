// Package commit implements the commit half of commit-reveal, which every
// module uses where parties must not copy one another: job lessees commit
// to results, committee members to votes, before anyone reveals. A
// commitment binds a domain and an ordered list of parts; each part is
// length-prefixed, so no two lists hash alike, and a domain per use keeps
// a commitment made for one purpose from passing for another.
package commit

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
)

// Hash is the commitment to parts under domain (like
// "agora/job/result/v1"). The secret salt is one of the parts, so the
// commitment reveals nothing of a value with few possibilities.
func Hash(domain string, parts ...[]byte) []byte {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(domain)))
	h.Write(n[:])
	h.Write([]byte(domain))
	for _, p := range parts {
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write(p)
	}
	return h.Sum(nil)
}

// Opens reports whether parts, revealed, match commitment.
func Opens(commitment []byte, domain string, parts ...[]byte) bool {
	return len(commitment) == sha256.Size && subtle.ConstantTimeCompare(commitment, Hash(domain, parts...)) == 1
}

// U64 encodes an id or a number as a part.
func U64(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }
