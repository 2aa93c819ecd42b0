// Package keyring stores named ed25519 account keys as files in a
// directory, one file per key, readable only by their owner (0600).
//
// Keys are kept unencrypted, like a development keyring: protect the
// directory, or keep real funds in keys managed elsewhere and import them
// only where they are needed.
package keyring

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/agoranet/agora/internal/chain/addr"
)

// Sentinel errors callers test with errors.Is.
var (
	ErrNotFound = errors.New("keyring: no such key")
	ErrExists   = errors.New("keyring: key already exists")
)

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// Key is a named account key.
type Key struct {
	Name    string
	Private ed25519.PrivateKey
}

// Address is the key's account address.
func (k *Key) Address() addr.Address { return addr.FromPubKey(k.Public()) }

// Public is the key's public key.
func (k *Key) Public() ed25519.PublicKey { return k.Private.Public().(ed25519.PublicKey) }

// file is a key on disk. The seed is the 32-byte ed25519 seed, hex.
type file struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Seed    string `json:"seed"`
}

// Keyring is a directory of keys.
type Keyring struct{ dir string }

// Open returns the keyring in dir; the directory is created on first Add.
func Open(dir string) *Keyring { return &Keyring{dir: dir} }

// Dir is where the keys live.
func (k *Keyring) Dir() string { return k.dir }

func (k *Keyring) path(name string) string { return filepath.Join(k.dir, name+".json") }

func checkName(name string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("keyring: bad key name %q: use letters, digits, '-', '_' or '.', up to 64", name)
	}
	return nil
}

// Add creates a new random key.
func (k *Keyring) Add(name string) (*Key, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, err
	}
	return k.put(name, seed)
}

// Import stores a key from its hex seed, as Export prints it.
func (k *Keyring) Import(name, seedHex string) (*Key, error) {
	seed, err := hex.DecodeString(strings.TrimSpace(seedHex))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("keyring: import %s: want the %d-byte seed as hex, as `agora keys export` prints it", name, ed25519.SeedSize)
	}
	return k.put(name, seed)
}

// ImportSeed stores a key from a raw seed (for generated devnet keys).
func (k *Keyring) ImportSeed(name string, seed []byte) (*Key, error) { return k.put(name, seed) }

func (k *Keyring) put(name string, seed []byte) (*Key, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(k.dir, 0o700); err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	key := &Key{Name: name, Private: ed25519.NewKeyFromSeed(seed)}
	b, _ := json.MarshalIndent(file{Name: name, Address: key.Address().String(), Seed: hex.EncodeToString(seed)}, "", "  ")
	// O_EXCL: never overwrite a key, which could destroy the only copy.
	f, err := os.OpenFile(k.path(name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("%w: %s (in %s)", ErrExists, name, k.dir)
	}
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return nil, fmt.Errorf("keyring: write %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("keyring: write %s: %w", name, err)
	}
	return key, f.Close()
}

// Get loads a key by name.
func (k *Keyring) Get(name string) (*Key, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(k.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %q in %s (see `agora keys list`)", ErrNotFound, name, k.dir)
	}
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	var f file
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("keyring: %s is corrupt: %w", k.path(name), err)
	}
	seed, err := hex.DecodeString(f.Seed)
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("keyring: %s has a bad seed", k.path(name))
	}
	return &Key{Name: name, Private: ed25519.NewKeyFromSeed(seed)}, nil
}

// Export returns the key's seed as hex, for Import elsewhere.
func (k *Keyring) Export(name string) (string, error) {
	key, err := k.Get(name)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(key.Private.Seed()), nil
}

// List returns all keys, ordered by name.
func (k *Keyring) List() ([]*Key, error) {
	entries, err := os.ReadDir(k.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	var out []*Key
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || e.IsDir() {
			continue
		}
		key, err := k.Get(name)
		if err != nil {
			return nil, err
		}
		out = append(out, key)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
