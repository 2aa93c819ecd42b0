// Package piecestore is a storage node's disk: the manifests of the
// objects it holds pieces of, and the pieces, each checked against its
// manifest's root before it is kept, written whole and synced before a
// put returns, within a quota. It answers a challenge for a leaf of a
// piece with the leaf and its Merkle path.
package piecestore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/ipfs/go-cid"

	"github.com/agoranet/agora/internal/chain/storage/storagepb"
	"github.com/agoranet/agora/internal/durable"
	"github.com/agoranet/agora/internal/storage/object"
)

// Errors a caller acts on.
var (
	ErrNoManifest = errors.New("piecestore: no manifest for this object here; put its manifest first")
	ErrNotFound   = errors.New("piecestore: no such piece here")
	ErrQuota      = errors.New("piecestore: over the disk quota")
)

// Store keeps pieces under a directory.
type Store struct {
	dir   string
	quota int64

	mu        sync.Mutex
	used      int64 // bytes of manifests and pieces kept or being written
	manifests map[string]*storagepb.Manifest
	writing   map[string]bool // files being written
}

// Open opens (or creates) the store in dir, holding at most quota bytes.
func Open(dir string, quota int64) (*Store, error) {
	if quota <= 0 {
		return nil, fmt.Errorf("piecestore: quota %d bytes: want a positive size", quota)
	}
	objects := filepath.Join(dir, "objects")
	if err := os.MkdirAll(objects, 0o700); err != nil {
		return nil, fmt.Errorf("piecestore: %w", err)
	}
	s := &Store{dir: objects, quota: quota, manifests: map[string]*storagepb.Manifest{}, writing: map[string]bool{}}
	err := filepath.WalkDir(objects, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.HasSuffix(path, ".tmp") { // a write a crash cut short
			return os.Remove(path)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		s.used += info.Size()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("piecestore: %w", err)
	}
	return s, nil
}

// Used is the bytes the store holds.
func (s *Store) Used() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used
}

func (s *Store) objectDir(id cid.Cid) string { return filepath.Join(s.dir, id.String()) }

func pieceName(segment, index int) string {
	return strconv.Itoa(segment) + "." + strconv.Itoa(index)
}

// reserve claims n bytes of the quota for a new file at path, once: a
// second put of a file already kept or being written is told so.
func (s *Store) reserve(path string, n int64) (fresh bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.writing[path] {
		return false, fmt.Errorf("piecestore: %s is being written by another put; retry", filepath.Base(path))
	}
	if _, err := os.Stat(path); err == nil {
		return false, nil
	}
	if s.used+n > s.quota {
		return false, fmt.Errorf("%w: %d bytes more would make %d of %d", ErrQuota, n, s.used+n, s.quota)
	}
	s.used += n
	s.writing[path] = true
	return true, nil
}

func (s *Store) done(path string, n int64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.writing, path)
	if err != nil {
		s.used -= n
	}
}

// write puts b at path durably, within the quota; a file already there
// is left as it is (its bytes were checked when it was written).
func (s *Store) write(path string, b []byte) error {
	fresh, err := s.reserve(path, int64(len(b)))
	if err != nil || !fresh {
		return err
	}
	err = s.mkdir(filepath.Dir(path))
	if err == nil {
		err = durable.Replace(path, b)
	}
	if err != nil {
		os.Remove(path)
	}
	s.done(path, int64(len(b)), err)
	return err
}

// mkdir makes an object's directory and syncs its parent, so that the new
// entry survives a power loss with the files in it.
func (s *Store) mkdir(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	d, err := os.Open(filepath.Dir(dir))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// PutManifest keeps the manifest b of object id, if b is one: it must
// hash to id and describe a readable object.
func (s *Store) PutManifest(id cid.Cid, b []byte) error {
	m, err := object.Parse(b, id)
	if err != nil {
		return err
	}
	if err := s.write(filepath.Join(s.objectDir(id), "manifest"), b); err != nil {
		return err
	}
	s.mu.Lock()
	s.manifests[id.KeyString()] = m
	s.mu.Unlock()
	return nil
}

// Manifest is object id's manifest, if it is here.
func (s *Store) Manifest(id cid.Cid) (*storagepb.Manifest, []byte, error) {
	b, err := os.ReadFile(filepath.Join(s.objectDir(id), "manifest"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("%w: %s", ErrNoManifest, id)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("piecestore: %w", err)
	}
	s.mu.Lock()
	m := s.manifests[id.KeyString()]
	s.mu.Unlock()
	if m == nil {
		if m, err = object.Parse(b, id); err != nil { // the disk changed under us
			return nil, nil, fmt.Errorf("piecestore: the manifest of %s on disk: %w", id, err)
		}
		s.mu.Lock()
		s.manifests[id.KeyString()] = m
		s.mu.Unlock()
	}
	return m, b, nil
}

// PutPiece keeps piece index of segment of object id, once it matches
// its root in the object's manifest (put first).
func (s *Store) PutPiece(id cid.Cid, segment, index int, data []byte) error {
	m, _, err := s.Manifest(id)
	if err != nil {
		return err
	}
	if err := object.CheckPiece(m, segment, index, data); err != nil {
		return err
	}
	return s.write(filepath.Join(s.objectDir(id), pieceName(segment, index)), data)
}

// Piece is the bytes of a piece kept here.
func (s *Store) Piece(id cid.Cid, segment, index int) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(s.objectDir(id), pieceName(segment, index)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: piece %d of segment %d of %s", ErrNotFound, index, segment, id)
	}
	if err != nil {
		return nil, fmt.Errorf("piecestore: %w", err)
	}
	return b, nil
}

// Prove answers a challenge for leaf of a piece kept here: the leaf's
// bytes and its path to the piece's root.
func (s *Store) Prove(id cid.Cid, segment, index, leaf int) ([]byte, [][]byte, error) {
	m, _, err := s.Manifest(id)
	if err != nil {
		return nil, nil, err
	}
	b, err := s.Piece(id, segment, index)
	if err != nil {
		return nil, nil, err
	}
	l, path := object.Prove(b, int(m.LeafSize), leaf)
	if l == nil {
		return nil, nil, fmt.Errorf("piecestore: no leaf %d in a piece of %d bytes", leaf, len(b))
	}
	return l, path, nil
}

// Delete removes object id and everything of it kept here.
func (s *Store) Delete(id cid.Cid) error {
	dir := s.objectDir(id)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("piecestore: %w", err)
	}
	var freed int64
	for _, e := range entries {
		if info, err := e.Info(); err == nil {
			freed += info.Size()
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("piecestore: %w", err)
	}
	s.mu.Lock()
	s.used -= freed
	delete(s.manifests, id.KeyString())
	s.mu.Unlock()
	return nil
}
