// Package blob is content-addressed storage for batch jobs: modules,
// inputs and outputs are named by their sha256, kept on disk, served over
// HTTP at /v1/blobs/<hex>, and checked against their name when fetched.
// (The storage market later moves them onto storage nodes; the names stay.)
package blob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// Path is where a store is served: Path + hex(sha256).
const Path = "/v1/blobs/"

// DefaultMax is the largest blob a store takes by default.
const DefaultMax = 256 << 20

// MaxPost is the largest blob a POST (read into memory to be named) takes.
const MaxPost = 16 << 20

var (
	// ErrNotFound is returned for a blob the store does not hold.
	ErrNotFound = errors.New("blob: not found")
	// ErrMismatch is returned when bytes do not hash to their name.
	ErrMismatch = errors.New("blob: content does not match its sha256")
	// ErrTooLarge is returned for a blob over the size limit.
	ErrTooLarge = errors.New("blob: too large")
	// ErrUnavailable is returned when a blob cannot be fetched.
	ErrUnavailable = errors.New("blob: unavailable")
)

// Store is a directory of blobs named by their hex sha256.
type Store struct {
	dir string
	max int64
}

// Open opens (creating) a store in dir that takes blobs of up to max bytes
// (0: DefaultMax).
func Open(dir string, max int64) (*Store, error) {
	if max <= 0 {
		max = DefaultMax
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	return &Store{dir: dir, max: max}, nil
}

// Name is the hex sha256 of data.
func Name(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

func validName(name string) bool {
	if len(name) != 64 {
		return false
	}
	_, err := hex.DecodeString(name)
	return err == nil && strings.ToLower(name) == name
}

func (s *Store) path(name string) string { return filepath.Join(s.dir, name) }

// Put stores data and returns its name.
func (s *Store) Put(data []byte) (string, error) {
	if int64(len(data)) > s.max {
		return "", fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, len(data), s.max)
	}
	name := Name(data)
	if s.Has(name) {
		return name, nil
	}
	return name, s.write(name, func(f *os.File) error { _, err := f.Write(data); return err })
}

// write creates a blob atomically: a temporary file, synced, then renamed.
func (s *Store) write(name string, fill func(*os.File) error) error {
	f, err := os.CreateTemp(s.dir, ".put-*")
	if err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	defer os.Remove(f.Name())
	err = fill(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), s.path(name))
	}
	if err != nil {
		return fmt.Errorf("blob: store %s: %w", name, err)
	}
	return nil
}

// putStream stores what r yields if it hashes to name.
func (s *Store) putStream(name string, r io.Reader) error {
	h := sha256.New()
	return s.write(name, func(f *os.File) error {
		n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, s.max+1))
		if err != nil {
			return err
		}
		if n > s.max {
			return fmt.Errorf("%w: the limit is %d bytes", ErrTooLarge, s.max)
		}
		if hex.EncodeToString(h.Sum(nil)) != name {
			return ErrMismatch
		}
		return nil
	})
}

// Has reports whether the store holds name.
func (s *Store) Has(name string) bool {
	if !validName(name) {
		return false
	}
	_, err := os.Stat(s.path(name))
	return err == nil
}

// Get returns a blob's bytes.
func (s *Store) Get(name string) ([]byte, error) {
	if !validName(name) {
		return nil, fmt.Errorf("%w: %q is not a hex sha256", ErrNotFound, name)
	}
	b, err := os.ReadFile(s.path(name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return b, err
}

// Handler serves the store: GET and HEAD /v1/blobs/<hex>, PUT
// /v1/blobs/<hex> (the body must hash to the name) and POST /v1/blobs
// (stores the body; answers {"sha256": ...}).
func (s *Store) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+Path+"{name}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if !s.Has(name) {
			http.Error(w, "blob: no blob "+name+" here", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		http.ServeFile(w, r, s.path(name))
	})
	mux.HandleFunc("PUT "+Path+"{name}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if !validName(name) {
			http.Error(w, "blob: the name must be the 64 lower-case hex digits of the body's sha256", http.StatusBadRequest)
			return
		}
		if s.Has(name) {
			w.WriteHeader(http.StatusOK)
			return
		}
		if err := s.putStream(name, r.Body); err != nil {
			code := http.StatusInternalServerError
			switch {
			case errors.Is(err, ErrMismatch):
				code = http.StatusBadRequest
			case errors.Is(err, ErrTooLarge):
				code = http.StatusRequestEntityTooLarge
			}
			http.Error(w, err.Error(), code)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
	mux.HandleFunc("POST "+strings.TrimSuffix(Path, "/"), func(w http.ResponseWriter, r *http.Request) {
		// A POST is named after it is read, so it is read into memory:
		// bounded well below the store's limit. PUT streams to disk.
		limit := min(s.max, MaxPost)
		data, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
		if err != nil {
			http.Error(w, "blob: "+err.Error(), http.StatusBadRequest)
			return
		}
		if int64(len(data)) > limit {
			http.Error(w, fmt.Sprintf("blob: a POST takes up to %d bytes; PUT larger blobs to %s<sha256>", limit, Path), http.StatusRequestEntityTooLarge)
			return
		}
		name, err := s.Put(data)
		if err != nil {
			code := http.StatusInternalServerError
			if errors.Is(err, ErrTooLarge) {
				code = http.StatusRequestEntityTooLarge
			}
			http.Error(w, err.Error(), code)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]any{"sha256": name, "size": len(data)})
	})
	return mux
}

// Upload stores data on the store served at base (like
// http://127.0.0.1:26690) and returns the blob's URL.
func Upload(ctx context.Context, c *http.Client, base string, data []byte) (string, error) {
	url := strings.TrimSuffix(base, "/") + Path + Name(data)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, bytes.NewReader(data))
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", fmt.Errorf("%w: upload to %s: %v", ErrUnavailable, base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return "", fmt.Errorf("blob: upload to %s: %s: %s", base, resp.Status, strings.TrimSpace(string(msg)))
	}
	return url, nil
}

// Fetch downloads the blob at url, of at most max bytes, and checks that
// it hashes to want.
func Fetch(ctx context.Context, c *http.Client, url string, want []byte, max int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: GET %s: %s", ErrUnavailable, url, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("%w: GET %s: %v", ErrUnavailable, url, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%w: %s is over %d bytes", ErrTooLarge, url, max)
	}
	if got := sha256.Sum256(data); string(got[:]) != string(want) {
		return nil, fmt.Errorf("%w: %s has sha256 %x, want %x", ErrMismatch, url, got, want)
	}
	return data, nil
}

// Max is the largest blob the store takes.
func (s *Store) Max() int64 { return s.max }
