package piecestore

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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

func TestPiecesRoundTripAndSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	o := newObject(t, bytes.Repeat([]byte("piece "), 2000))
	if err := s.PutPiece(o.id, 0, 0, o.pieces[[2]int{0, 0}]); !errors.Is(err, ErrNoManifest) {
		t.Fatalf("a piece before its manifest: err %v, want %v", err, ErrNoManifest)
	}
	if err := s.PutManifest(o.id, o.raw); err != nil {
		t.Fatal(err)
	}
	for key, p := range o.pieces {
		if err := s.PutPiece(o.id, key[0], key[1], p); err != nil {
			t.Fatal(err)
		}
	}
	want := int64(len(o.raw))
	for _, p := range o.pieces {
		want += int64(len(p))
	}
	if s.Used() != want {
		t.Fatalf("used %d, want %d", s.Used(), want)
	}
	// Putting a piece again costs nothing more.
	if err := s.PutPiece(o.id, 1, 2, o.pieces[[2]int{1, 2}]); err != nil || s.Used() != want {
		t.Fatalf("a second put: %v, used %d", err, s.Used())
	}
	s2, err := Open(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if s2.Used() != want {
		t.Fatalf("reopened: used %d, want %d", s2.Used(), want)
	}
	for key, p := range o.pieces {
		got, err := s2.Piece(o.id, key[0], key[1])
		if err != nil || !bytes.Equal(got, p) {
			t.Fatalf("piece %v after reopening: %v", key, err)
		}
	}
	if _, err := s2.Piece(o.id, 9, 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a piece not here: err %v, want %v", err, ErrNotFound)
	}
}

func TestRefused(t *testing.T) {
	s, err := Open(t.TempDir(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	o := newObject(t, []byte("some bytes to store"))
	other := newObject(t, []byte("other bytes"))
	if err := s.PutManifest(o.id, other.raw); !errors.Is(err, object.ErrCID) {
		t.Fatalf("another object's manifest: err %v, want %v", err, object.ErrCID)
	}
	if err := s.PutManifest(o.id, o.raw); err != nil {
		t.Fatal(err)
	}
	used := s.Used()
	bad := bytes.Clone(o.pieces[[2]int{0, 1}])
	bad[3] ^= 1
	if err := s.PutPiece(o.id, 0, 1, bad); !errors.Is(err, object.ErrPiece) {
		t.Fatalf("a corrupt piece: err %v, want %v", err, object.ErrPiece)
	}
	// (Pieces 1 to 3 of so short an object are all padding, and alike.)
	if err := s.PutPiece(o.id, 0, 2, o.pieces[[2]int{0, 0}]); !errors.Is(err, object.ErrPiece) {
		t.Fatalf("a piece at another index: err %v, want %v", err, object.ErrPiece)
	}
	if err := s.PutPiece(o.id, 0, 6, o.pieces[[2]int{0, 1}]); !errors.Is(err, object.ErrPiece) {
		t.Fatalf("a piece index past n: err %v, want %v", err, object.ErrPiece)
	}
	if s.Used() != used {
		t.Fatalf("refused puts changed the used bytes: %d, was %d", s.Used(), used)
	}
}

func TestQuota(t *testing.T) {
	o := newObject(t, bytes.Repeat([]byte{1}, 4096)) // six 1 KiB pieces
	s, err := Open(t.TempDir(), int64(len(o.raw))+3*1024)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutManifest(o.id, o.raw); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := s.PutPiece(o.id, 0, i, o.pieces[[2]int{0, i}]); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutPiece(o.id, 0, 3, o.pieces[[2]int{0, 3}]); !errors.Is(err, ErrQuota) {
		t.Fatalf("over the quota: err %v, want %v", err, ErrQuota)
	}
	if _, err := s.Piece(o.id, 0, 3); !errors.Is(err, ErrNotFound) {
		t.Fatal("a piece over the quota was kept")
	}
	if err := s.Delete(o.id); err != nil {
		t.Fatal(err)
	}
	if s.Used() != 0 {
		t.Fatalf("used %d after deleting everything", s.Used())
	}
}

// A challenge's answer verifies against the root in the manifest.
func TestProve(t *testing.T) {
	s, err := Open(t.TempDir(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	o := newObject(t, bytes.Repeat([]byte("prove me "), 1000))
	s.PutManifest(o.id, o.raw)
	p := o.pieces[[2]int{1, 4}]
	s.PutPiece(o.id, 1, 4, p)
	count := len(p) / 64
	for leaf := range count {
		l, path, err := s.Prove(o.id, 1, 4, leaf)
		if err != nil {
			t.Fatal(err)
		}
		if !object.VerifyLeaf(o.m.Segments[1].PieceRoots[4], l, leaf, count, path) {
			t.Fatalf("leaf %d's proof does not verify", leaf)
		}
	}
	if _, _, err := s.Prove(o.id, 1, 4, count); err == nil {
		t.Fatal("proved a leaf past the piece's end")
	}
	if _, _, err := s.Prove(o.id, 1, 5, 0); !errors.Is(err, ErrNotFound) {
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
		o := newObject(t, bytes.Repeat(fmt.Appendf(nil, "object %d ", i), 700))
		if err := s.PutManifest(o.id, o.raw); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, o)
	}
	var wg sync.WaitGroup
	for _, o := range objs {
		for key, p := range o.pieces {
			for range 2 { // the same piece twice at once, too
				wg.Go(func() {
					err := s.PutPiece(o.id, key[0], key[1], p)
					if err != nil && !bytes.Contains([]byte(err.Error()), []byte("being written")) {
						t.Error(err)
					}
				})
			}
		}
	}
	wg.Wait()
	var want int64
	for _, o := range objs {
		want += int64(len(o.raw))
		for key, p := range o.pieces {
			want += int64(len(p))
			if got, err := s.Piece(o.id, key[0], key[1]); err != nil || !bytes.Equal(got, p) {
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
	tmp := filepath.Join(s.objectDir(o.id), pieceName(0, 0)+".tmp")
	if err := os.WriteFile(tmp, make([]byte, 500), 0o600); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if s2.Used() != int64(len(o.raw)) {
		t.Fatalf("used %d, want the manifest's %d", s2.Used(), len(o.raw))
	}
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("the half-written file is still there")
	}
}
