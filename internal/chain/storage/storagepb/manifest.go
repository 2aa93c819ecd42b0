package storagepb

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"
)

// What a manifest is, checked the same way by the chain (a deal carries
// its manifest) and by readers (internal/storage/object), with nothing
// but the standard library and protobuf, so the chain's check cannot
// drift from the reader's.

// Version is the manifest format this build writes and reads.
const Version = 1

// Codec is the multicodec of a manifest's CID: "protobuf", the manifest
// being a deterministic protobuf message.
const Codec = 0x50

// Bounds on what a manifest may say, so that one cannot make a reader or
// the chain allocate without limit.
const (
	MaxShards      = 256     // Reed-Solomon over GF(2^8)
	MaxSegmentSize = 1 << 28 // 256 MiB
	MaxPieceSize   = 64 << 20
	MaxCodedSize   = 1 << 30 // n pieces of a segment: what coding or reading one holds in memory
	MinLeafSize    = 64
	MaxLeafSize    = 1 << 16
	MaxSegments    = 1 << 20
	// MaxManifestBytes bounds a manifest's encoding: about 65,000
	// segments of 4-of-6 pieces (256 GiB at the default 4 MiB segments).
	MaxManifestBytes = 16 << 20
)

// ErrManifest is the error of a manifest that is not one.
var ErrManifest = errors.New("object: not a valid manifest")

// PieceSize is the size of each piece of a segment of size bytes: its
// share of k, rounded up to whole leaves.
func PieceSize(size uint64, k, leafSize int) uint64 {
	share := (size + uint64(k) - 1) / uint64(k)
	l := uint64(leafSize)
	return max(l, (share+l-1)/l*l)
}

// CheckCoding says what is wrong with a coding, in terms a user can act on.
func CheckCoding(k, n, segmentSize, leafSize int) error {
	switch {
	case k < 1 || n < k || n > MaxShards:
		return fmt.Errorf("object: %d-of-%d coding: want 1 <= k <= n <= %d (--k, --n)", k, n, MaxShards)
	case leafSize < MinLeafSize || leafSize > MaxLeafSize || leafSize&(leafSize-1) != 0:
		return fmt.Errorf("object: leaf size %d: want a power of two from %d to %d", leafSize, MinLeafSize, MaxLeafSize)
	case segmentSize < k*leafSize || segmentSize > MaxSegmentSize:
		// Below k leaves, every piece is padded to a whole leaf.
		return fmt.Errorf("object: segment size %d: want %d (k leaves) to %d bytes (--segment-size)", segmentSize, k*leafSize, MaxSegmentSize)
	}
	if piece := PieceSize(uint64(segmentSize), k, leafSize); piece > MaxPieceSize || uint64(n)*piece > MaxCodedSize {
		return fmt.Errorf("object: %d-of-%d coding of %d-byte segments makes %d-byte pieces, %d bytes a segment; the most is %d-byte pieces and %d bytes: use smaller segments or fewer pieces", k, n, segmentSize, piece, uint64(n)*piece, MaxPieceSize, MaxCodedSize)
	}
	return nil
}

// Check says whether m is consistent: its coding within bounds, its
// segments adding up to its size, each piece size and root where it
// belongs.
func Check(m *Manifest) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrManifest, fmt.Sprintf(format, a...))
	}
	if m.Version != Version {
		return bad("version %d; this build reads version %d", m.Version, Version)
	}
	k, n := int(m.K), int(m.N)
	leaf := int(min(m.LeafSize, MaxLeafSize+1))
	if err := CheckCoding(k, n, int(min(m.SegmentSize, MaxSegmentSize+1)), leaf); err != nil {
		return bad("%v", err)
	}
	if len(m.Segments) > MaxSegments {
		return bad("%d segments, over %d", len(m.Segments), MaxSegments)
	}
	var total uint64
	for i, s := range m.Segments {
		last := i == len(m.Segments)-1
		switch {
		case s.Size == 0 || s.Size > m.SegmentSize || (!last && s.Size != m.SegmentSize):
			return bad("segment %d is %d bytes; every segment but the last is %d, the last 1 to %d", i, s.Size, m.SegmentSize, m.SegmentSize)
		case s.PieceSize != PieceSize(s.Size, k, leaf):
			return bad("segment %d has %d-byte pieces; %d bytes coded %d-of-%d make %d", i, s.PieceSize, s.Size, k, n, PieceSize(s.Size, k, leaf))
		case len(s.PieceRoots) != n:
			return bad("segment %d lists %d piece roots, not %d", i, len(s.PieceRoots), n)
		case len(s.Hash) != sha256.Size:
			return bad("segment %d has a %d-byte hash, not %d", i, len(s.Hash), sha256.Size)
		}
		for j, r := range s.PieceRoots {
			if len(r) != sha256.Size {
				return bad("segment %d piece %d has a %d-byte root, not %d", i, j, len(r), sha256.Size)
			}
		}
		total += s.Size
	}
	if total != m.Size {
		return bad("its segments hold %d bytes, it says %d", total, m.Size)
	}
	return nil
}

var deterministic = proto.MarshalOptions{Deterministic: true}

// ParseManifest decodes a manifest and checks it, refusing any encoding
// but the canonical one: another encoding of the same fields would be a
// second name for one object.
func ParseManifest(b []byte) (*Manifest, error) {
	if len(b) > MaxManifestBytes {
		return nil, fmt.Errorf("%w: %d bytes, over %d", ErrManifest, len(b), MaxManifestBytes)
	}
	m := &Manifest{}
	// Unknown fields are dropped, so that the canonical check below
	// refuses them: else junk appended to a manifest would be kept and
	// name the same object a second time.
	if err := (proto.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrManifest, err)
	}
	if err := Check(m); err != nil {
		return nil, err
	}
	if again, _ := deterministic.Marshal(m); !bytes.Equal(again, b) {
		return nil, fmt.Errorf("%w: not in its canonical encoding", ErrManifest)
	}
	return m, nil
}

// CIDOf is the binary CIDv1 of a manifest's encoding b: version 1, codec
// protobuf, multihash sha2-256 (each varint one byte).
func CIDOf(b []byte) []byte {
	h := sha256.Sum256(b)
	return append([]byte{1, Codec, 0x12, sha256.Size}, h[:]...)
}

// A piece is committed by the RFC 6962 Merkle tree over its leaves
// (sha256; a leaf hashed with a 0x00 prefix, an inner node with 0x01; a
// tree of n leaves split at the largest power of two below n), the tree
// CometBFT's crypto/merkle and the receipts' roots use. Paths list the
// siblings from the leaf's up to the root's child (CometBFT's aunts).

// LeafHash is the hash of a leaf in a piece's tree.
func LeafHash(leaf []byte) []byte {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(leaf)
	return h.Sum(nil)
}

// NodeHash is the hash of an inner node.
func NodeHash(l, r []byte) []byte {
	h := sha256.New()
	h.Write([]byte{1})
	h.Write(l)
	h.Write(r)
	return h.Sum(nil)
}

// Split is the size of the left subtree of n > 1 leaves: the largest
// power of two below n.
func Split(n int) int {
	k := 1
	for k*2 < n {
		k *= 2
	}
	return k
}

// VerifyLeaf reports whether leaf is leaf index of count under root, by
// path.
func VerifyLeaf(root, leaf []byte, index, count int, path [][]byte) bool {
	if index < 0 || index >= count || len(root) != sha256.Size {
		return false
	}
	h, ok := climb(LeafHash(leaf), index, count, path)
	return ok && bytes.Equal(h, root)
}

// climb hashes up from a leaf's hash at index of count by path (siblings
// bottom up), as RFC 6962 section 2.1.1 does.
func climb(h []byte, index, count int, path [][]byte) ([]byte, bool) {
	if count == 1 {
		return h, len(path) == 0
	}
	if len(path) == 0 {
		return nil, false
	}
	top, rest := path[len(path)-1], path[:len(path)-1]
	if len(top) != sha256.Size {
		return nil, false
	}
	k := Split(count)
	if index < k {
		sub, ok := climb(h, index, k, rest)
		return NodeHash(sub, top), ok
	}
	sub, ok := climb(h, index-k, count-k, rest)
	return NodeHash(top, sub), ok
}

// ChallengeDomain separates storage challenges from every other hash.
const ChallengeDomain = "agora/storage/challenge/v1"

// Challenge is the leaf that piece index of segment of deal must answer
// with in the epoch whose seed is seed, of a piece of leaves leaves: no
// node can know it before the epoch's first block, so a node must hold
// every leaf to answer.
func Challenge(seed []byte, deal uint64, segment, index uint32, leaves uint64) uint64 {
	h := sha256.New()
	h.Write([]byte(ChallengeDomain))
	h.Write(seed)
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], deal)
	binary.BigEndian.PutUint32(b[8:12], segment)
	binary.BigEndian.PutUint32(b[12:], index)
	h.Write(b[:])
	if leaves == 0 {
		return 0
	}
	return binary.BigEndian.Uint64(h.Sum(nil)[:8]) % leaves
}
