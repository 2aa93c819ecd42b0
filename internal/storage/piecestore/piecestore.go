// Package piecestore is a storage node's disk: the manifests of the
// objects it holds pieces of, and the pieces, kept by their Merkle roots
// and each checked against its root before it is kept, written whole and
// synced before a put returns, within a quota. It answers a challenge for
// a leaf of a piece with the leaf and its Merkle path.
package piecestore

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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
	ErrBusy       = errors.New("piecestore: another put is writing this; retry")
	ErrNoLeaf     = errors.New("piecestore: no such leaf")
)

// Store keeps pieces under a directory.
type Store struct {
	dir    string // objects/<cid>/manifest
	pieces string // pieces/<root, hex>
	quota  int64

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
	objects, pieces := filepath.Join(dir, "objects"), filepath.Join(dir, "pieces")
	for _, d := range []string{objects, pieces} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("piecestore: %w", err)
		}
	}
	s := &Store{dir: objects, pieces: pieces, quota: quota, manifests: map[string]*storagepb.Manifest{}, writing: map[string]bool{}}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
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

// reserve claims n bytes of the quota for a new file at path, once: a
// second put of a file already kept or being written is told so.
func (s *Store) reserve(path string, n int64) (fresh bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.writing[path] {
		return false, fmt.Errorf("%w: %s", ErrBusy, filepath.Base(path))
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

// A piece is kept by its Merkle root (hex, under pieces/), whatever
// objects list it: an uploader sends each piece as it is coded, before
// the object's manifest (which lists every root) exists, and the node
// checks the piece against the root it is sent under.

func (s *Store) piecePath(root []byte) string {
	return filepath.Join(s.pieces, hex.EncodeToString(root))
}

// PutPiece keeps data as the piece whose root, over leafSize-byte
// leaves, is root; it is refused unless it is.
func (s *Store) PutPiece(root []byte, leafSize int, data []byte) error {
	if len(root) != sha256.Size {
		return fmt.Errorf("%w: a root is %d bytes, not %d", object.ErrPiece, len(root), sha256.Size)
	}
	if leafSize < object.MinLeafSize || leafSize > object.MaxLeafSize || leafSize&(leafSize-1) != 0 || len(data) == 0 || len(data)%leafSize != 0 {
		return fmt.Errorf("%w: %d bytes in %d-byte leaves", object.ErrPiece, len(data), leafSize)
	}
	if !bytes.Equal(object.Root(data, leafSize), root) {
		return fmt.Errorf("%w: %x", object.ErrPiece, root)
	}
	return s.write(s.piecePath(root), data)
}

// Piece is the bytes of the piece with root kept here.
func (s *Store) Piece(root []byte) ([]byte, error) {
	if len(root) != sha256.Size {
		return nil, fmt.Errorf("%w: a root is %d bytes", ErrNotFound, len(root))
	}
	b, err := os.ReadFile(s.piecePath(root))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %x", ErrNotFound, root)
	}
	if err != nil {
		return nil, fmt.Errorf("piecestore: %w", err)
	}
	return b, nil
}

// Open opens the piece with root for reading, to serve it without a
// copy in memory; the caller closes it.
func (s *Store) Open(root []byte) (*os.File, error) {
	if len(root) != sha256.Size {
		return nil, fmt.Errorf("%w: a root is %d bytes", ErrNotFound, len(root))
	}
	f, err := os.Open(s.piecePath(root))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %x", ErrNotFound, root)
	}
	if err != nil {
		return nil, fmt.Errorf("piecestore: %w", err)
	}
	return f, nil
}

// Prove answers a challenge for leaf of the piece with root: the leaf's
// bytes and its path to the root.
func (s *Store) Prove(root []byte, leafSize, leaf int) ([]byte, [][]byte, error) {
	b, err := s.Piece(root)
	if err != nil {
		return nil, nil, err
	}
	if leafSize < object.MinLeafSize || leafSize > object.MaxLeafSize || len(b)%leafSize != 0 {
		return nil, nil, fmt.Errorf("%w: a %d-byte piece has no %d-byte leaves", ErrNoLeaf, len(b), leafSize)
	}
	l, path := object.Prove(b, leafSize, leaf)
	if l == nil {
		return nil, nil, fmt.Errorf("%w: no leaf %d in a piece of %d bytes", ErrNoLeaf, leaf, len(b))
	}
	return l, path, nil
}

// DeletePiece removes the piece with root.
func (s *Store) DeletePiece(root []byte) error {
	if len(root) != sha256.Size {
		return nil
	}
	path := s.piecePath(root)
	info, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("piecestore: %w", err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("piecestore: %w", err)
	}
	s.mu.Lock()
	s.used -= info.Size()
	s.mu.Unlock()
	return nil
}

// DeleteManifest removes object id's manifest (its pieces stay until
// deleted by root: other objects may list them).
func (s *Store) DeleteManifest(id cid.Cid) error {
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
