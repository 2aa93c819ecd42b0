package object

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/cometbft/cometbft/crypto/merkle"
	"github.com/ipfs/go-cid"
	"google.golang.org/protobuf/proto"

	"github.com/agoranet/agora/internal/chain/storage/storagepb"
)

// The piece tree is CometBFT's RFC 6962 tree: same roots, same paths.
func TestMerkleIsCometBFTs(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 1; n <= 70; n++ {
		const leafSize = 64
		data := make([]byte, n*leafSize)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		ls := leaves(data, leafSize)
		root, proofs := merkle.ProofsFromByteSlices(ls)
		if got := Root(data, leafSize); !bytes.Equal(got, root) {
			t.Fatalf("%d leaves: root %x, CometBFT's %x", n, got, root)
		}
		for i := range n {
			leaf, path := Prove(data, leafSize, i)
			if !bytes.Equal(leaf, ls[i]) || fmt.Sprint(path) != fmt.Sprint(proofs[i].Aunts) {
				t.Fatalf("%d leaves, leaf %d: path %x, CometBFT's aunts %x", n, i, path, proofs[i].Aunts)
			}
			if !VerifyLeaf(root, leaf, i, n, path) {
				t.Fatalf("%d leaves: leaf %d does not verify", n, i)
			}
			if err := proofs[i].Verify(root, leaf); err != nil {
				t.Fatalf("%d leaves: CometBFT rejects our leaf %d: %v", n, i, err)
			}
			bad := append([]byte{}, leaf...)
			bad[0] ^= 1
			if VerifyLeaf(root, bad, i, n, path) {
				t.Fatalf("%d leaves: a changed leaf %d verifies", n, i)
			}
			if n > 1 && VerifyLeaf(root, leaf, (i+1)%n, n, path) {
				t.Fatalf("%d leaves: leaf %d verifies at index %d", n, i, (i+1)%n)
			}
			if len(path) > 0 {
				short := path[:len(path)-1]
				if VerifyLeaf(root, leaf, i, n, short) {
					t.Fatalf("%d leaves: leaf %d verifies with a short path", n, i)
				}
			}
			if VerifyLeaf(root, leaf, i, n, append(path, root)) {
				t.Fatalf("%d leaves: leaf %d verifies with a long path", n, i)
			}
		}
	}
}

var small = Params{K: 4, N: 6, SegmentSize: 4096, LeafSize: 64}

func encode(t *testing.T, data []byte, p Params) (*storagepb.Manifest, cid.Cid, map[[2]int][]byte) {
	t.Helper()
	pieces := map[[2]int][]byte{}
	m, id, err := Encode(bytes.NewReader(data), p, func(pc Piece) error {
		pieces[[2]int{pc.Segment, pc.Index}] = pc.Data
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m, id, pieces
}

func TestRoundTripLosingPieces(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, size := range []int{0, 1, 63, 64, 65, 4095, 4096, 4097, 3*4096 + 1000} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		m, id, pieces := encode(t, data, small)
		if want := (size + 4095) / 4096; len(m.Segments) != want || m.Size != uint64(size) {
			t.Fatalf("%d bytes: %d segments of %d bytes, want %d", size, len(m.Segments), m.Size, want)
		}
		b, _ := Marshal(m)
		if _, err := Parse(b, id); err != nil {
			t.Fatalf("%d bytes: the manifest written does not parse: %v", size, err)
		}
		for lost := 0; lost <= 3; lost++ {
			// lost pieces of every segment gone, different ones each time
			gone := map[[2]int]bool{}
			for s := range m.Segments {
				for _, i := range rng.Perm(6)[:lost] {
					gone[[2]int{s, i}] = true
				}
			}
			var out bytes.Buffer
			err := Decode(m, &out, func(s, i int) ([]byte, error) {
				if gone[[2]int{s, i}] {
					return nil, errors.New("node down")
				}
				return pieces[[2]int{s, i}], nil
			})
			switch {
			case lost <= 2 && (err != nil || !bytes.Equal(out.Bytes(), data)):
				t.Fatalf("%d bytes, %d pieces lost a segment: %v (%d bytes back)", size, lost, err, out.Len())
			case lost == 3 && size > 0 && !errors.Is(err, ErrTooFew):
				t.Fatalf("%d bytes, 3 of 6 pieces lost: err %v, want %v", size, err, ErrTooFew)
			}
		}
	}
}

// A piece that does not match its root is not used: the segment is rebuilt
// from the others, and so is the bad piece, for repair.
func TestABadPieceIsSkippedAndRebuilt(t *testing.T) {
	data := bytes.Repeat([]byte("agora storage "), 1000)
	m, _, pieces := encode(t, data, small)
	set := make([][]byte, 6)
	for i := range set {
		set[i] = append([]byte{}, pieces[[2]int{1, i}]...)
	}
	set[0][10] ^= 0xff // corrupt a data piece
	set[4] = nil       // and lose a parity one
	got, bad, err := Rebuild(m, 1, set)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data[4096:8192]) || fmt.Sprint(bad) != "[0]" {
		t.Fatalf("rebuilt %d bytes, bad %v", len(got), bad)
	}
	for i := range set {
		if !bytes.Equal(set[i], pieces[[2]int{1, i}]) {
			t.Fatalf("piece %d was not rebuilt", i)
		}
	}
}

// A writer that codes a segment's pieces from different bytes (each piece
// matching its root) is caught when they are decoded together.
func TestInconsistentCodingIsCaught(t *testing.T) {
	data := bytes.Repeat([]byte{7}, 4096)
	m, _, pieces := encode(t, data, small)
	other := bytes.Repeat([]byte{8}, 4096)
	_, _, otherPieces := encode(t, other, small)
	// Piece 5 of segment 0 comes from the other segment, and the manifest
	// (as its writer made it) lists its root.
	m = proto.Clone(m).(*storagepb.Manifest)
	m.Segments[0].PieceRoots[5] = Root(otherPieces[[2]int{0, 5}], 64)
	set := [][]byte{nil, nil, pieces[[2]int{0, 2}], pieces[[2]int{0, 3}], pieces[[2]int{0, 4}], otherPieces[[2]int{0, 5}]}
	if _, _, err := Rebuild(m, 0, set); !errors.Is(err, ErrCorrupted) {
		t.Fatalf("err %v, want %v", err, ErrCorrupted)
	}
	// Decoded from its data pieces alone the segment is right, but a
	// repair of piece 5 from them would not match its root.
	set = [][]byte{pieces[[2]int{0, 0}], pieces[[2]int{0, 1}], pieces[[2]int{0, 2}], pieces[[2]int{0, 3}], nil, nil}
	if _, _, err := Rebuild(m, 0, set); !errors.Is(err, ErrCorrupted) {
		t.Fatalf("repairing from consistent data pieces: err %v, want %v", err, ErrCorrupted)
	}
}

func TestParseRefuses(t *testing.T) {
	m, id, _ := encode(t, bytes.Repeat([]byte("x"), 5000), small)
	good, _ := Marshal(m)
	mutate := func(f func(*storagepb.Manifest)) []byte {
		c := proto.Clone(m).(*storagepb.Manifest)
		f(c)
		b, _ := Marshal(c)
		return b
	}
	raw := cid.NewCidV1(cid.Raw, id.Hash())
	cases := []struct {
		name string
		b    []byte
		id   cid.Cid
		want error
	}{
		{"another object's CID", good, func() cid.Cid { _, o, _ := encode(t, []byte("other"), small); return o }(), ErrCID},
		{"a raw CID", good, raw, ErrManifest},
		{"not protobuf", []byte{0xff, 0xff}, cidOf([]byte{0xff, 0xff}), ErrManifest},
	}
	for name, f := range map[string]func(*storagepb.Manifest){
		"version 2":          func(c *storagepb.Manifest) { c.Version = 2 },
		"size off by one":    func(c *storagepb.Manifest) { c.Size++ },
		"k over n":           func(c *storagepb.Manifest) { c.K = 7 },
		"n over 256":         func(c *storagepb.Manifest) { c.N = 300 },
		"leaf of 100 bytes":  func(c *storagepb.Manifest) { c.LeafSize = 100 },
		"a short first":      func(c *storagepb.Manifest) { c.Segments[0].Size--; c.Size-- },
		"wrong piece size":   func(c *storagepb.Manifest) { c.Segments[1].PieceSize += 64 },
		"five roots":         func(c *storagepb.Manifest) { c.Segments[0].PieceRoots = c.Segments[0].PieceRoots[:5] },
		"a short root":       func(c *storagepb.Manifest) { c.Segments[0].PieceRoots[2] = []byte{1} },
		"no segment hash":    func(c *storagepb.Manifest) { c.Segments[1].Hash = nil },
		"an empty segment":   func(c *storagepb.Manifest) { c.Segments = append(c.Segments, &storagepb.Segment{}) },
		"huge segment size":  func(c *storagepb.Manifest) { c.SegmentSize = 1 << 40 },
		"zero segment size":  func(c *storagepb.Manifest) { c.SegmentSize = 0 },
		"segment over limit": func(c *storagepb.Manifest) { c.Segments[0].Size = 1 << 40 },
	} {
		b := mutate(f)
		cases = append(cases, struct {
			name string
			b    []byte
			id   cid.Cid
			want error
		}{name, b, cidOf(b), ErrManifest})
	}
	// A field this version does not know, appended, would keep the object
	// and give it a second name.
	unknown := append(append([]byte{}, good...), 0x98, 0x06, 0x01) // field 99, varint 1
	cases = append(cases, struct {
		name string
		b    []byte
		id   cid.Cid
		want error
	}{"an unknown field", unknown, cidOf(unknown), ErrManifest})
	// The same fields in another encoding (a field repeated) name nothing.
	dup := append(append([]byte{}, good...), 0x08, 0x01) // version = 1 again
	cases = append(cases, struct {
		name string
		b    []byte
		id   cid.Cid
		want error
	}{"non-canonical", dup, cidOf(dup), ErrManifest})
	for _, c := range cases {
		if _, err := Parse(c.b, c.id); !errors.Is(err, c.want) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
		}
	}
}

func TestParamsRefused(t *testing.T) {
	for _, p := range []Params{
		{K: 0, N: 6, SegmentSize: 4096, LeafSize: 64},
		{K: 7, N: 6, SegmentSize: 4096, LeafSize: 64},
		{K: 4, N: 257, SegmentSize: 4096, LeafSize: 64},
		{K: 4, N: 6, SegmentSize: 4096, LeafSize: 100},
		{K: 4, N: 6, SegmentSize: 32, LeafSize: 64},
		{K: 4, N: 6, SegmentSize: 1 << 29, LeafSize: 64},
		{K: 4, N: 6, SegmentSize: 128, LeafSize: 64},         // under k leaves: every piece mostly padding
		{K: 1, N: 256, SegmentSize: 1 << 28, LeafSize: 1024}, // 64 GiB a segment
		{K: 2, N: 6, SegmentSize: 1 << 28, LeafSize: 1024},   // 128 MiB pieces
	} {
		if _, _, err := Encode(bytes.NewReader([]byte("x")), p, func(Piece) error { return nil }); err == nil {
			t.Errorf("%+v: encoded", p)
		}
	}
}

// Encode holds one segment at a time: pieces reach put as each segment is
// read, before the reader has been read to its end.
func TestEncodeStreams(t *testing.T) {
	pr, pw := io.Pipe()
	got := make(chan Piece, 64)
	go func() {
		Encode(pr, small, func(p Piece) error { got <- p; return nil })
		close(got)
	}()
	pw.Write(make([]byte, 4096)) // one whole segment, the reader still open
	for range 6 {
		if p := <-got; p.Segment != 0 {
			t.Fatalf("piece of segment %d first", p.Segment)
		}
	}
	pw.Close()
	for range got {
	}
}

func TestPieceSize(t *testing.T) {
	for _, c := range []struct {
		size     uint64
		k, leaf  int
		wantSize uint64
	}{{1, 4, 64, 64}, {256, 4, 64, 64}, {257, 4, 64, 128}, {4 << 20, 4, 1024, 1 << 20}, {1, 1, 1024, 1024}} {
		if got := PieceSize(c.size, c.k, c.leaf); got != c.wantSize {
			t.Errorf("PieceSize(%d, %d, %d) = %d, want %d", c.size, c.k, c.leaf, got, c.wantSize)
		}
	}
}
