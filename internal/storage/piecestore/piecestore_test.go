package piecestore

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/agoranet/agora/internal/chain/storage/storagepb"
	"github.com/agoranet/agora/internal/storage/object"
)

var small = object.Params{K: 4, N: 6, SegmentSize: 4096, LeafSize: 64}

type obj struct {
	m      *storagepb.Manifest
	id     cid.Cid
	raw    []byte
	pieces map[[2]int][]byte
}

func newObject(t *testing.T, data []byte) obj {
	t.Helper()
	o := obj{pieces: map[[2]int][]byte{}}
	var err error
	o.m, o.id, err = object.Encode(bytes.NewReader(data), small, func(p object.Piece) error {
		o.pieces[[2]int{p.Segment, p.Index}] = p.Data
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	o.raw, _ = object.Marshal(o.m)
	return o
}

// distinctBytes is what o's pieces take on a node: alike ones (the same
// root) are kept once.
func (o obj) distinctBytes() int64 {
	seen := map[string]bool{}
	var n int64
	for key, p := range o.pieces {
		if r := string(o.root(key)); !seen[r] {
			seen[r] = true
			n += int64(len(p))
		}
	}
	return n
}

// root of piece key of o, as its manifest lists it.
func (o obj) root(key [2]int) []byte { return o.m.Segments[key[0]].PieceRoots[key[1]] }

func TestPiecesRoundTripAndSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	o := newObject(t, bytes.Repeat([]byte("piece "), 2000))
	// Pieces first, as an uploader sends them while it codes; then the
	// manifest that lists them.
	for key, p := range o.pieces {
		if err := s.PutPiece(o.root(key), 64, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutManifest(o.id, o.raw); err != nil {
		t.Fatal(err)
	}
	want := int64(len(o.raw)) + o.distinctBytes()
	if s.Used() != want {
		t.Fatalf("used %d, want %d", s.Used(), want)
	}
	// Putting a piece again costs nothing more.
	if err := s.PutPiece(o.root([2]int{1, 2}), 64, o.pieces[[2]int{1, 2}]); err != nil || s.Used() != want {
		t.Fatalf("a second put: %v, used %d", err, s.Used())
	}
	if _, err := Open(dir, 1<<20); err == nil || !strings.Contains(err.Error(), "in use by another storage node") {
		t.Fatalf("a second store on the same directory: err %v", err)
	}
	s.Close()
	s2, err := Open(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.Used() != want {
		t.Fatalf("reopened: used %d, want %d", s2.Used(), want)
	}
	m, raw, err := s2.Manifest(o.id)
	if err != nil || !bytes.Equal(raw, o.raw) || m.Size != o.m.Size {
		t.Fatalf("the manifest after reopening: %v", err)
	}
	for key, p := range o.pieces {
		got, err := s2.Piece(o.root(key))
		if err != nil || !bytes.Equal(got, p) {
			t.Fatalf("piece %v after reopening: %v", key, err)
		}
	}
	if _, err := s2.Piece(make([]byte, 32)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a piece not here: err %v, want %v", err, ErrNotFound)
	}
	if _, _, err := s2.Manifest(newObject(t, []byte("not here")).id); !errors.Is(err, ErrNoManifest) {
		t.Fatalf("a manifest not here: err %v, want %v", err, ErrNoManifest)
	}
}

func TestRefused(t *testing.T) {
	s, err := Open(t.TempDir(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	o := newObject(t, bytes.Repeat([]byte("some bytes to store "), 20))
	other := newObject(t, []byte("other bytes"))
	if err := s.PutManifest(o.id, other.raw); !errors.Is(err, object.ErrCID) {
		t.Fatalf("another object's manifest: err %v, want %v", err, object.ErrCID)
	}
	used := s.Used()
	p := o.pieces[[2]int{0, 1}]
	bad := bytes.Clone(p)
	bad[3] ^= 1
	for name, c := range map[string]struct {
		root []byte
		leaf int
		data []byte
	}{
		"a corrupt piece":          {o.root([2]int{0, 1}), 64, bad},
		"another piece's root":     {o.root([2]int{0, 0}), 64, p},
		"another leaf size":        {o.root([2]int{0, 1}), 128, p},
		"a leaf size of 100":       {o.root([2]int{0, 1}), 100, p},
		"a short root":             {o.root([2]int{0, 1})[:31], 64, p},
		"no bytes":                 {o.root([2]int{0, 1}), 64, nil},
		"bytes not in whole leafs": {o.root([2]int{0, 1}), 64, p[:63]},
	} {
		if err := s.PutPiece(c.root, c.leaf, c.data); !errors.Is(err, object.ErrPiece) {
			t.Errorf("%s: err %v, want %v", name, err, object.ErrPiece)
		}
	}
	if s.Used() != used {
		t.Fatalf("refused puts changed the used bytes: %d, was %d", s.Used(), used)
	}
}

func TestQuota(t *testing.T) {
	data := make([]byte, 4096) // 1 KiB pieces, none alike
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	o := newObject(t, data)
	s, err := Open(t.TempDir(), 3*1024)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := s.PutPiece(o.root([2]int{0, i}), 64, o.pieces[[2]int{0, i}]); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutPiece(o.root([2]int{0, 3}), 64, o.pieces[[2]int{0, 3}]); !errors.Is(err, ErrQuota) {
		t.Fatalf("over the quota: err %v, want %v", err, ErrQuota)
	}
	if _, err := s.Piece(o.root([2]int{0, 3})); !errors.Is(err, ErrNotFound) {
		t.Fatal("a piece over the quota was kept")
	}
	for i := range 3 {
		if err := s.DeletePiece(o.root([2]int{0, i})); err != nil {
			t.Fatal(err)
		}
	}
	if s.Used() != 0 {
		t.Fatalf("used %d after deleting everything", s.Used())
	}
	if err := s.PutPiece(o.root([2]int{0, 3}), 64, o.pieces[[2]int{0, 3}]); err != nil {
		t.Fatalf("after deleting, the quota still refuses: %v", err)
	}
}

// A challenge's answer verifies against the root in the manifest.
func TestProve(t *testing.T) {
	s, err := Open(t.TempDir(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	o := newObject(t, bytes.Repeat([]byte("prove me "), 1000))
	key := [2]int{1, 4}
	p := o.pieces[key]
	s.PutPiece(o.root(key), 64, p)
	count := len(p) / 64
	for leaf := range count {
		l, path, err := s.Prove(o.root(key), 64, leaf)
		if err != nil {
			t.Fatal(err)
		}
		if !object.VerifyLeaf(o.root(key), l, leaf, count, path) {
			t.Fatalf("leaf %d's proof does not verify", leaf)
		}
	}
	if _, _, err := s.Prove(o.root(key), 64, count); err == nil {
		t.Fatal("proved a leaf past the piece's end")
	}
	if _, _, err := s.Prove(o.root([2]int{1, 5}), 64, 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("proved a piece not here: %v", err)
	}
}

func TestConcurrentPuts(t *testing.T) {
	s, err := Open(t.TempDir(), 1<<22)
	if err != nil {
		t.Fatal(err)
	}
	var objs []obj
	for i := range 4 {
		objs = append(objs, newObject(t, bytes.Repeat(fmt.Appendf(nil, "object %d ", i), 700)))
	}
	var wg sync.WaitGroup
	for _, o := range objs {
		wg.Go(func() {
			if err := s.PutManifest(o.id, o.raw); err != nil {
				t.Error(err)
			}
		})
		for key, p := range o.pieces {
			for range 2 { // the same piece twice at once, too
				wg.Go(func() {
					err := s.PutPiece(o.root(key), 64, p)
					if err != nil {
						t.Error(err)
					}
				})
			}
		}
	}
	wg.Wait()
	var want int64
	for _, o := range objs {
		want += int64(len(o.raw)) + o.distinctBytes()
		for key, p := range o.pieces {
			if got, err := s.Piece(o.root(key)); err != nil || !bytes.Equal(got, p) {
				t.Fatalf("piece %v: %v", key, err)
			}
		}
	}
	if s.Used() != want {
		t.Fatalf("used %d, want %d", s.Used(), want)
	}
}

// A write a crash cut short (its temporary file) is not counted or kept.
func TestOpenDropsAHalfWrite(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	o := newObject(t, []byte("half"))
	s.PutManifest(o.id, o.raw)
	tmp := s.piecePath(o.root([2]int{0, 0})) + ".tmp"
	if err := os.WriteFile(tmp, make([]byte, 500), 0o600); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s2, err := Open(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.Used() != int64(len(o.raw)) {
		t.Fatalf("used %d, want the manifest's %d", s2.Used(), len(o.raw))
	}
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("the half-written file is still there")
	}
}

// Puts and deletes of one manifest racing each other leave the used bytes
// equal to what is on disk.
func TestPutsAndDeletesKeepTheQuotaTrue(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, 1<<22)
	if err != nil {
		t.Fatal(err)
	}
	o := newObject(t, []byte("raced"))
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() { s.PutManifest(o.id, o.raw) })
		wg.Go(func() { s.DeleteManifest(o.id) })
	}
	wg.Wait()
	var onDisk int64
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			info, _ := d.Info()
			onDisk += info.Size()
		}
		return nil
	})
	if s.Used() != onDisk {
		t.Fatalf("used %d, on disk %d", s.Used(), onDisk)
	}
}
