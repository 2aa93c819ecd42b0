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
	ErrNoLeaf     = errors.New("piecestore: no such leaf")
)

// Store keeps pieces under a directory.
type Store struct {
	dir    string // objects/<cid>/manifest
	pieces string // pieces/<root, hex>
	quota  int64

	mu      sync.Mutex
	lock    *os.File                 // held while the store is open
	used    int64                    // bytes of manifests and pieces kept or being written
	writing map[string]chan struct{} // files being written or deleted, closed when done
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
	lf, err := lock(dir)
	if err != nil {
		return nil, err
	}
	s := &Store{dir: objects, pieces: pieces, quota: quota, writing: map[string]chan struct{}{}, lock: lf}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
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
		lf.Close()
		return nil, fmt.Errorf("piecestore: %w", err)
	}
	return s, nil
}

// Close releases the store's directory for another process.
func (s *Store) Close() error { return s.lock.Close() }

// Room says whether n bytes more fit in the quota now (a put checks
// again as it writes).
func (s *Store) Room(n int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.used+n > s.quota {
		return fmt.Errorf("%w: %d bytes more would make %d of %d", ErrQuota, n, s.used+n, s.quota)
	}
	return nil
}

// Used is the bytes the store holds.
func (s *Store) Used() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used
}

func (s *Store) objectDir(id cid.Cid) string { return filepath.Join(s.dir, id.String()) }

// claim waits until no put or delete is at path, then marks it as
// being changed; release (done, or the delete's) ends that.
func (s *Store) claimLocked(path string) {
	for {
		ch, busy := s.writing[path]
		if !busy {
			s.writing[path] = make(chan struct{})
			return
		}
		s.mu.Unlock()
		<-ch
		s.mu.Lock()
	}
}

func (s *Store) releaseLocked(path string) {
	close(s.writing[path])
	delete(s.writing, path)
}

// reserve claims n bytes of the quota for a new file at path, once: a put
// of a file already kept is told so (fresh false), and one racing another
// put of the same file waits for it.
func (s *Store) reserve(path string, n int64) (fresh bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.claimLocked(path)
	if _, err := os.Stat(path); err == nil {
		s.releaseLocked(path)
		return false, nil
	}
	if s.used+n > s.quota {
		s.releaseLocked(path)
		return false, fmt.Errorf("%w: %d bytes more would make %d of %d", ErrQuota, n, s.used+n, s.quota)
	}
	s.used += n
	return true, nil
}

func (s *Store) done(path string, n int64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseLocked(path)
	if err != nil {
		s.used -= n
	}
}

// remove deletes the file at path, if there, once no put is writing it,
// and gives its bytes back to the quota.
func (s *Store) remove(path string) error {
	s.mu.Lock()
	s.claimLocked(path)
	s.mu.Unlock()
	info, err := os.Stat(path)
	if err == nil {
		err = os.Remove(path)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseLocked(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("piecestore: %w", err)
	}
	s.used -= info.Size()
	return nil
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
	if _, err := object.Parse(b, id); err != nil {
		return err
	}
	return s.write(filepath.Join(s.objectDir(id), "manifest"), b)
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
	// Parsed on each read, not cached: a node may hold any number.
	m, err := object.Parse(b, id)
	if err != nil { // the disk changed under us
		return nil, nil, fmt.Errorf("piecestore: the manifest of %s on disk: %w", id, err)
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
	return s.remove(s.piecePath(root))
}

// DeleteManifest removes object id's manifest (its pieces stay until
// deleted by root: other objects may list them).
func (s *Store) DeleteManifest(id cid.Cid) error {
	if err := s.remove(filepath.Join(s.objectDir(id), "manifest")); err != nil {
		return err
	}
	os.Remove(s.objectDir(id)) // only if empty: a put may be making it anew
	return nil
}
