// Package object is what Agora stores: a file cut into segments, each
// segment erasure-coded k-of-n with Reed-Solomon into n pieces of equal
// size (any k rebuild it), each piece committed by the Merkle root of its
// fixed-size leaves (merkle.go), and a manifest listing them whose CID
// (CIDv1, sha2-256, multicodec "protobuf") names the object. A storage
// node holds pieces and answers challenges for leaves with their paths; a
// reader fetches any k good pieces of a segment, checks each against its
// root, rebuilds the segment and checks it against the segment's hash.
package object

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/ipfs/go-cid"
	"github.com/klauspost/reedsolomon"
	mh "github.com/multiformats/go-multihash"
	"google.golang.org/protobuf/proto"

	"github.com/agoranet/agora/internal/chain/storage/storagepb"
)

// Version is the manifest format this package writes and reads.
const Version = storagepb.Version

// Codec is the multicodec of a manifest's CID: "protobuf", the manifest
// being a deterministic protobuf message.
const Codec = storagepb.Codec

// Defaults: 4-of-6 coding (any two pieces may be lost), 4 MiB segments
// (1 MiB pieces) and 1 KiB leaves (a challenge's answer is a leaf and a
// ten-hash path for a 1 MiB piece).
const (
	DefaultK           = 4
	DefaultN           = 6
	DefaultSegmentSize = 4 << 20
	DefaultLeafSize    = 1 << 10
)

// Bounds on what a manifest may say (storagepb keeps them, so the chain
// checks a deal's manifest as a reader does).
const (
	MaxShards        = storagepb.MaxShards
	MaxSegmentSize   = storagepb.MaxSegmentSize
	MaxPieceSize     = storagepb.MaxPieceSize
	MaxCodedSize     = storagepb.MaxCodedSize
	MinLeafSize      = storagepb.MinLeafSize
	MaxLeafSize      = storagepb.MaxLeafSize
	MaxSegments      = storagepb.MaxSegments
	MaxManifestBytes = storagepb.MaxManifestBytes
)

// Params say how an object is cut and coded.
type Params struct {
	K, N        int // any K of a segment's N pieces rebuild it
	SegmentSize int // bytes of each segment but the last
	LeafSize    int // bytes of a Merkle leaf, a power of two
}

// DefaultParams are 4-of-6, 4 MiB segments, 1 KiB leaves.
func DefaultParams() Params {
	return Params{K: DefaultK, N: DefaultN, SegmentSize: DefaultSegmentSize, LeafSize: DefaultLeafSize}
}

// Validate says what is wrong with p, in terms a user can act on.
func (p Params) Validate() error {
	return storagepb.CheckCoding(p.K, p.N, p.SegmentSize, p.LeafSize)
}

// PieceSize is the size of each piece of a segment of size bytes: its
// share of k, rounded up to whole leaves.
func PieceSize(size uint64, k, leafSize int) uint64 { return storagepb.PieceSize(size, k, leafSize) }

// Piece is one of a segment's n pieces.
type Piece struct {
	Segment, Index int
	Data           []byte
	Root           []byte // of Data's leaves, as the manifest lists it
}

// Encode reads r to its end and cuts it into pieces, which it passes to
// put as each segment is coded (so an object of any size is encoded in
// one segment's memory); it returns the manifest and its CID. put may
// keep a piece's Data.
func Encode(r io.Reader, p Params, put func(Piece) error) (*storagepb.Manifest, cid.Cid, error) {
	if err := p.Validate(); err != nil {
		return nil, cid.Undef, err
	}
	enc, err := reedsolomon.New(p.K, p.N-p.K)
	if err != nil {
		return nil, cid.Undef, fmt.Errorf("object: %w", err)
	}
	m := &storagepb.Manifest{Version: Version, SegmentSize: uint64(p.SegmentSize), K: uint32(p.K), N: uint32(p.N), LeafSize: uint32(p.LeafSize)}
	buf := make([]byte, p.SegmentSize)
	manifestBytes := 64
	for s := 0; ; s++ {
		n, err := io.ReadFull(r, buf)
		if err == io.EOF {
			break
		}
		if err != nil && err != io.ErrUnexpectedEOF {
			return nil, cid.Undef, fmt.Errorf("object: read: %w", err)
		}
		if s >= MaxSegments {
			return nil, cid.Undef, fmt.Errorf("object: more than %d segments; use larger segments", MaxSegments)
		}
		seg, pieces, err := code(enc, buf[:n], p)
		if err != nil {
			return nil, cid.Undef, err
		}
		for i, d := range pieces {
			if err := put(Piece{Segment: s, Index: i, Data: d, Root: seg.PieceRoots[i]}); err != nil {
				return nil, cid.Undef, err
			}
		}
		m.Segments = append(m.Segments, seg)
		m.Size += uint64(n)
		// Said before the whole object is sent, not after.
		if manifestBytes += proto.Size(seg) + 4; manifestBytes > MaxManifestBytes {
			return nil, cid.Undef, fmt.Errorf("object: the manifest would be over %d bytes at segment %d; use larger segments (--segment-size) or fewer pieces (--n)", MaxManifestBytes, s)
		}
		if n < p.SegmentSize {
			break
		}
	}
	id, err := CID(m)
	return m, id, err
}

// code erasure-codes one segment into its pieces and describes it.
func code(enc reedsolomon.Encoder, data []byte, p Params) (*storagepb.Segment, [][]byte, error) {
	size := PieceSize(uint64(len(data)), p.K, p.LeafSize)
	// Fresh shards, zero-padded: put may keep them, and the next
	// segment's bytes are read into buf meanwhile.
	shards := make([][]byte, p.N)
	all := make([]byte, uint64(p.N)*size)
	for i := range shards {
		shards[i] = all[uint64(i)*size : uint64(i+1)*size : uint64(i+1)*size]
	}
	for i := 0; i < p.K; i++ {
		lo := min(uint64(len(data)), uint64(i)*size)
		copy(shards[i], data[lo:min(uint64(len(data)), lo+size)])
	}
	if err := enc.Encode(shards); err != nil {
		return nil, nil, fmt.Errorf("object: encode: %w", err)
	}
	h := sha256.Sum256(data)
	seg := &storagepb.Segment{Size: uint64(len(data)), PieceSize: size, Hash: h[:], PieceRoots: make([][]byte, p.N)}
	// The pieces' trees, hashing one and a half times the segment's bytes
	// at 4-of-6, are most of the work: one piece per core at a time.
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range min(p.N, runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < p.N; i = int(next.Add(1) - 1) {
				seg.PieceRoots[i] = Root(shards[i], p.LeafSize)
			}
		})
	}
	wg.Wait()
	return seg, shards, nil
}

var deterministic = proto.MarshalOptions{Deterministic: true}

// Marshal is the manifest's encoding, the bytes its CID hashes.
func Marshal(m *storagepb.Manifest) ([]byte, error) { return deterministic.Marshal(m) }

// CID names the object m describes.
func CID(m *storagepb.Manifest) (cid.Cid, error) {
	b, err := Marshal(m)
	if err != nil {
		return cid.Undef, err
	}
	return cidOf(b), nil
}

func cidOf(b []byte) cid.Cid {
	h, _ := mh.Sum(b, mh.SHA2_256, -1) // sha2-256 of any bytes cannot fail
	return cid.NewCidV1(Codec, h)
}

// Errors a reader acts on.
var (
	ErrManifest  = storagepb.ErrManifest
	ErrCID       = errors.New("object: the manifest does not hash to its CID")
	ErrPiece     = errors.New("object: the piece does not match its root")
	ErrTooFew    = errors.New("object: too few good pieces to rebuild the segment")
	ErrCorrupted = errors.New("object: the rebuilt segment does not match its hash")
)

// Parse decodes a manifest fetched for id, checking that it hashes to id
// and that it describes an object this package can read.
func Parse(b []byte, id cid.Cid) (*storagepb.Manifest, error) {
	if id.Prefix().Codec != Codec {
		return nil, fmt.Errorf("%w: %s names codec %#x, not a manifest (%#x)", ErrManifest, id, id.Prefix().Codec, Codec)
	}
	if len(b) <= MaxManifestBytes && !cidOf(b).Equals(id) {
		return nil, fmt.Errorf("%w: %s", ErrCID, id)
	}
	return storagepb.ParseManifest(b)
}

// Check says whether m is consistent: its coding within bounds, its
// segments adding up to its size, each piece size and root where it
// belongs.
func Check(m *storagepb.Manifest) error { return storagepb.Check(m) }

// CheckPiece says whether data is piece index of segment s.
func CheckPiece(m *storagepb.Manifest, s, index int, data []byte) error {
	if s < 0 || s >= len(m.Segments) || index < 0 || index >= int(m.N) {
		return fmt.Errorf("%w: no piece %d of segment %d", ErrPiece, index, s)
	}
	seg := m.Segments[s]
	if uint64(len(data)) != seg.PieceSize {
		return fmt.Errorf("%w: piece %d of segment %d is %d bytes, not %d", ErrPiece, index, s, len(data), seg.PieceSize)
	}
	if !bytes.Equal(Root(data, int(m.LeafSize)), seg.PieceRoots[index]) {
		return fmt.Errorf("%w: piece %d of segment %d", ErrPiece, index, s)
	}
	return nil
}

// Rebuild returns segment s from its pieces (pieces[i] is piece i, nil
// if missing), each checked against its root first; it needs k good ones.
// It fills in every missing and bad piece, each checked against its root
// (what a repair stores), and returns which it found bad.
func Rebuild(m *storagepb.Manifest, s int, pieces [][]byte) (data []byte, bad []int, err error) {
	if s < 0 || s >= len(m.Segments) || len(pieces) != int(m.N) {
		return nil, nil, fmt.Errorf("object: segment %d of %d, %d pieces of %d", s, len(m.Segments), len(pieces), m.N)
	}
	for i, d := range pieces {
		if d != nil && CheckPiece(m, s, i, d) != nil {
			pieces[i] = nil
			bad = append(bad, i)
		}
	}
	missing := make([]bool, len(pieces))
	for i, d := range pieces {
		missing[i] = d == nil
	}
	data, err = assemble(m, s, pieces, true)
	if err != nil {
		return nil, bad, err
	}
	// A rebuilt piece must match its root too, or the pieces, each good,
	// were not coded from one segment (its writer's fault): a repair would
	// otherwise store a piece that fails every challenge.
	for i, was := range missing {
		if was && CheckPiece(m, s, i, pieces[i]) != nil {
			return nil, bad, fmt.Errorf("%w: segment %d: its pieces do not code one segment (piece %d rebuilt does not match its root)", ErrCorrupted, s, i)
		}
	}
	return data, bad, nil
}

// Assemble returns segment s from pieces (nil ones missing), rebuilding
// only missing data pieces, and checks the result against the segment's
// hash. The pieces need not have been checked against their roots: the
// hash covers exactly the bytes returned (padding reaches them only
// through a rebuild, which the hash then catches), so a reader may check
// roots only when Assemble fails, to find the bad pieces.
func Assemble(m *storagepb.Manifest, s int, pieces [][]byte) ([]byte, error) {
	if s < 0 || s >= len(m.Segments) || len(pieces) != int(m.N) {
		return nil, fmt.Errorf("object: segment %d of %d, %d pieces of %d", s, len(m.Segments), len(pieces), m.N)
	}
	return assemble(m, s, pieces, false)
}

// assemble rebuilds the missing pieces (all of them, or the data ones),
// joins the data and checks it against the segment's hash.
func assemble(m *storagepb.Manifest, s int, pieces [][]byte, all bool) ([]byte, error) {
	good := 0
	for _, d := range pieces {
		if d != nil {
			good++
		}
	}
	if good < int(m.K) {
		return nil, fmt.Errorf("%w: segment %d has %d of the %d needed", ErrTooFew, s, good, m.K)
	}
	enc, err := reedsolomon.New(int(m.K), int(m.N-m.K))
	if err != nil {
		return nil, fmt.Errorf("object: %w", err)
	}
	if all {
		err = enc.Reconstruct(pieces)
	} else {
		err = enc.ReconstructData(pieces)
	}
	if err != nil {
		return nil, fmt.Errorf("object: rebuild segment %d: %w", s, err)
	}
	seg := m.Segments[s]
	var out bytes.Buffer
	out.Grow(int(seg.Size))
	if err := enc.Join(&out, pieces, int(seg.Size)); err != nil {
		return nil, fmt.Errorf("object: join segment %d: %w", s, err)
	}
	data := out.Bytes()
	if h := sha256.Sum256(data); !bytes.Equal(h[:], seg.Hash) {
		// Pieces that each match their roots but do not decode to the
		// segment: its writer coded it inconsistently.
		return nil, fmt.Errorf("%w: segment %d", ErrCorrupted, s)
	}
	return data, nil
}

// Decode writes the object m describes to w, segment by segment, asking
// fetch for pieces: the k data pieces first (when all are good nothing
// is decoded), then the others, one at a time, for each that is missing
// or bad. It returns at the first segment it cannot rebuild.
func Decode(m *storagepb.Manifest, w io.Writer, fetch func(segment, index int) ([]byte, error)) error {
	for s := range m.Segments {
		pieces := make([][]byte, m.N)
		good, next := 0, 0
		var last error
		for good < int(m.K) && next < int(m.N) {
			d, err := fetch(s, next)
			switch {
			case err != nil:
				last = err
			case CheckPiece(m, s, next, d) != nil:
				last = CheckPiece(m, s, next, d)
			default:
				pieces[next] = d
				good++
			}
			next++
		}
		if good < int(m.K) {
			return fmt.Errorf("%w: segment %d: %d of the %d needed (last: %v)", ErrTooFew, s, good, m.K, last)
		}
		data, err := Assemble(m, s, pieces)
		if err != nil {
			return err
		}
		if _, err := w.Write(data); err != nil {
			return err
		}
	}
	return nil
}

// Recode codes segment s of m again from its bytes and returns its piece
// index, checked against its root: what a repairing node stores after
// rebuilding the segment from any k pieces.
func Recode(m *storagepb.Manifest, s, index int, data []byte) ([]byte, error) {
	if s < 0 || s >= len(m.Segments) || index < 0 || index >= int(m.N) {
		return nil, fmt.Errorf("%w: no piece %d of segment %d", ErrPiece, index, s)
	}
	if h := sha256.Sum256(data); !bytes.Equal(h[:], m.Segments[s].Hash) {
		return nil, fmt.Errorf("%w: segment %d", ErrCorrupted, s)
	}
	enc, err := reedsolomon.New(int(m.K), int(m.N-m.K))
	if err != nil {
		return nil, fmt.Errorf("object: %w", err)
	}
	_, pieces, err := code(enc, data, Params{K: int(m.K), N: int(m.N), SegmentSize: int(m.SegmentSize), LeafSize: int(m.LeafSize)})
	if err != nil {
		return nil, err
	}
	if err := CheckPiece(m, s, index, pieces[index]); err != nil {
		return nil, err
	}
	return pieces[index], nil
}
