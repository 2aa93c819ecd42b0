// Package keyring stores named ed25519 account keys as files in a
// directory, one file per key, readable only by their owner (0600).
//
// With the test backend a file holds its seed in plain, like a development
// keyring; with the file backend the seed is sealed with a passphrase
// (sealed.go). Either backend reads both kinds of file, so a keyring
// migrates key by key (Migrate).
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
	"sync"

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
	// Account is the account the key signs for when that is not the
	// key's own address: after `agora keys rotate`. Zero otherwise.
	Account addr.Address
	pub     ed25519.PublicKey // for a sealed key List did not open: Private is nil
}

// Address is the key's account address: Account after a rotation, else
// the key's own.
func (k *Key) Address() addr.Address {
	if k.Account != (addr.Address{}) {
		return k.Account
	}
	return addr.FromPubKey(k.Public())
}

// Rotated reports whether the key signs for an account it does not derive.
func (k *Key) Rotated() bool { return k.Address() != addr.FromPubKey(k.Public()) }

// AccountOf is the account key signs for: account if set, else the key's
// own address. Daemons configured with a bare key and an optional account
// use it.
func AccountOf(key ed25519.PrivateKey, account addr.Address) addr.Address {
	if account != (addr.Address{}) || len(key) != ed25519.PrivateKeySize {
		return account
	}
	return addr.FromPubKey(key.Public().(ed25519.PublicKey))
}

// Public is the key's public key.
func (k *Key) Public() ed25519.PublicKey {
	if k.Private == nil {
		return k.pub // a sealed key List did not open
	}
	return k.Private.Public().(ed25519.PublicKey)
}

// file is a key on disk: the 32-byte ed25519 seed as hex (test backend),
// or sealed (file backend), and its public key, so that a sealed key's
// address and key are known without the passphrase.
type file struct {
	Name    string  `json:"name"`
	Address string  `json:"address"`
	PubKey  string  `json:"pubkey,omitempty"`
	Seed    string  `json:"seed,omitempty"`
	Sealed  *sealed `json:"sealed,omitempty"`
}

// Keyring is a directory of keys.
type Keyring struct {
	dir     string
	backend Backend
	ask     func() ([]byte, error)
	mu      sync.Mutex
	pass    []byte // the passphrase, once asked
}

// Open returns the keyring in dir with the test backend; the directory is
// created on first Add.
func Open(dir string) *Keyring { return &Keyring{dir: dir, backend: Test} }

// OpenWith returns the keyring in dir with a backend; passphrase is asked
// (once, then kept) when a sealed key is read or a key is sealed.
func OpenWith(dir string, backend Backend, passphrase func() ([]byte, error)) *Keyring {
	return &Keyring{dir: dir, backend: backend, ask: passphrase}
}

// Backend is the backend new keys are written with.
func (k *Keyring) Backend() Backend { return k.backend }

func (k *Keyring) passphrase(name string) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.pass != nil {
		return k.pass, nil
	}
	if k.ask == nil {
		return nil, fmt.Errorf("keyring: key %s is encrypted (the file backend); give its passphrase (--keyring-backend file asks for it, or reads $AGORA_KEYRING_PASSPHRASE)", name)
	}
	p, err := k.ask()
	if err != nil {
		return nil, err
	}
	if len(p) == 0 {
		return nil, fmt.Errorf("keyring: an empty passphrase; the file backend needs one")
	}
	k.pass = p
	return p, nil
}

func (k *Keyring) forget() {
	k.mu.Lock()
	k.pass = nil
	k.mu.Unlock()
}

// marshal encodes key as the file named name, sealed or plain.
func (k *Keyring) marshal(name string, key *Key, sealIt bool) ([]byte, error) {
	f := file{Name: name, Address: key.Address().String(), PubKey: hex.EncodeToString(key.Public())}
	if sealIt {
		pass, err := k.passphrase(name)
		if err != nil {
			return nil, err
		}
		if f.Sealed, err = seal(pass, key.Private.Seed(), name, f.Address); err != nil {
			return nil, fmt.Errorf("keyring: seal %s: %w", name, err)
		}
	} else {
		f.Seed = hex.EncodeToString(key.Private.Seed())
	}
	b, _ := json.MarshalIndent(f, "", "  ")
	return append(b, '\n'), nil
}

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
	return k.putFor(name, seed, addr.Address{}, k.backend == File)
}

// sealedOnDisk reports whether name's file holds a sealed seed: a key
// rewritten (rotated, given an account) stays in the form it was in, so a
// sealed keyring is never unsealed by a command run with the default
// backend.
func (k *Keyring) sealedOnDisk(name string) bool {
	b, err := os.ReadFile(k.path(name))
	if err != nil {
		return false
	}
	var f file
	return json.Unmarshal(b, &f) == nil && f.Sealed != nil
}

// putFor stores a new key file that signs for account (zero: its own
// address).
func (k *Keyring) putFor(name string, seed []byte, account addr.Address, sealIt bool) (*Key, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(k.dir, 0o700); err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	key := &Key{Name: name, Private: ed25519.NewKeyFromSeed(seed), Account: account}
	b, err := k.marshal(name, key, sealIt)
	if err != nil {
		return nil, err
	}
	// O_EXCL: never overwrite a key, which could destroy the only copy.
	f, err := os.OpenFile(k.path(name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("%w: %s (in %s)", ErrExists, name, k.dir)
	}
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, fmt.Errorf("keyring: write %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("keyring: write %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("keyring: write %s: %w", name, err)
	}
	// The entry, not just the bytes: a rotation's new key must survive a
	// power cut once the chain may have it.
	return key, syncDir(k.dir)
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
	plain := f.Seed
	if f.Sealed != nil {
		pass, err := k.passphrase(name)
		if err != nil {
			return nil, err
		}
		s, err := f.Sealed.open(pass, name, f.Address)
		if err != nil {
			if errors.Is(err, ErrPassphrase) {
				k.forget() // a mistyped passphrase is asked again, not kept
			}
			return nil, err
		}
		plain = hex.EncodeToString(s)
	}
	seed, err := hex.DecodeString(plain)
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("keyring: %s has a bad seed", k.path(name))
	}
	key := &Key{Name: name, Private: ed25519.NewKeyFromSeed(seed)}
	// The address field is the account; before rotation existed it was
	// always the key's own, and a file without one is too.
	if f.Address != "" && f.Address != key.Address().String() {
		a, err := addr.Parse(f.Address)
		if err != nil {
			return nil, fmt.Errorf("keyring: %s has a bad address %q: %v", k.path(name), f.Address, err)
		}
		key.Account = a
	}
	return key, nil
}

// SetAccount records that name's key signs for account (after a rotation
// made elsewhere).
func (k *Keyring) SetAccount(name string, account addr.Address) error {
	key, err := k.Get(name)
	if err != nil {
		return err
	}
	key.Account = account
	return k.write(name, key, k.backend == File || k.sealedOnDisk(name))
}

// Pending is the name of the key a rotation of name is binding, kept
// beside it until the chain has the new key.
func Pending(name string) string { return name + ".next" }

// Retired is the name the key name held before its last rotation keeps.
func Retired(name string) string { return name + ".retired" }

// AddPending creates the new key for rotating name's account: a file of
// its own (Pending(name)), written before the rotation is sent, so a
// crash after the chain takes the new key never loses it. If one exists
// already (an earlier rotation that did not finish), it is returned.
func (k *Keyring) AddPending(name string) (*Key, error) {
	cur, err := k.Get(name)
	if err != nil {
		return nil, err
	}
	if next, err := k.Get(Pending(name)); err == nil {
		if next.Address() != cur.Address() {
			return nil, fmt.Errorf("keyring: %s signs for %s, not %s's account %s; remove it or rename it", Pending(name), next.Address(), name, cur.Address())
		}
		return next, nil
	} else if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, err
	}
	return k.putFor(Pending(name), seed, cur.Address(), k.backend == File || k.sealedOnDisk(name))
}

// FinishRotation makes the pending key name's, once the chain has it:
// the old key is kept as Retired(name) (it signs for nothing now, but it
// is the only record of what it was), the pending one becomes name. Each
// step is a durable write or an atomic rename, and a crash between them
// leaves a state that calling it again finishes.
func (k *Keyring) FinishRotation(name string) error {
	next, err := k.Get(Pending(name))
	if err != nil {
		return err
	}
	cur, err := k.Get(name)
	if err != nil {
		return err
	}
	if !cur.Private.Equal(next.Private) {
		retired := Retired(name)
		if _, err := os.Stat(k.path(retired)); err == nil {
			// An older retired key: keep it too, numbered.
			for i := 2; ; i++ {
				retired = fmt.Sprintf("%s.%d", Retired(name), i)
				if _, err := os.Stat(k.path(retired)); errors.Is(err, fs.ErrNotExist) {
					break
				}
			}
		}
		sealCur := k.backend == File || k.sealedOnDisk(name)
		if err := k.write(retired, cur, sealCur); err != nil {
			return err
		}
		if err := k.write(name, next, sealCur || k.sealedOnDisk(Pending(name))); err != nil {
			return err
		}
	}
	if err := os.Remove(k.path(Pending(name))); err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	return syncDir(k.dir)
}

// write stores key under name, replacing any file of that name
// atomically: written and synced beside it, then renamed over it.
func (k *Keyring) write(name string, key *Key, sealIt bool) error {
	b, err := k.marshal(name, key, sealIt)
	if err != nil {
		return err
	}
	to := k.path(name)
	tmp := to + ".tmp"
	w, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	if _, err := w.Write(b); err != nil {
		w.Close()
		return fmt.Errorf("keyring: write %s: %w", name, err)
	}
	if err := w.Sync(); err != nil {
		w.Close()
		return fmt.Errorf("keyring: write %s: %w", name, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	if err := os.Rename(tmp, to); err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	return syncDir(k.dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("keyring: sync %s: %w", dir, err)
	}
	return nil
}

// Migrate rewrites every key in the keyring's backend: sealing plain keys
// with the file backend, opening sealed ones with the test backend. Each
// file is replaced atomically, so an interrupted migration leaves every
// key readable, in one form or the other; it returns how many it rewrote.
func (k *Keyring) Migrate() (int, error) {
	keys, err := k.List()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, listed := range keys {
		key, err := k.Get(listed.Name)
		if err != nil {
			return n, err
		}
		b, err := os.ReadFile(k.path(key.Name))
		if err != nil {
			return n, fmt.Errorf("keyring: %w", err)
		}
		var f file
		if err := json.Unmarshal(b, &f); err != nil {
			return n, fmt.Errorf("keyring: %s is corrupt: %w", k.path(key.Name), err)
		}
		if (f.Sealed != nil) == (k.backend == File) {
			continue
		}
		if err := k.write(key.Name, key, k.backend == File); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// Export returns the key's seed as hex, for Import elsewhere.
func (k *Keyring) Export(name string) (string, error) {
	key, err := k.Get(name)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(key.Private.Seed()), nil
}

// List returns all keys, ordered by name. A sealed key is not opened: its
// Private is nil (Get opens it).
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
		key, err := k.listed(name)
		if err != nil {
			return nil, err
		}
		out = append(out, key)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Peek is name's key as List shows it: opened if plain; a sealed one
// from its public key and address alone (Private nil), so showing it
// needs no passphrase.
func (k *Keyring) Peek(name string) (*Key, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	return k.listed(name)
}

func (k *Keyring) listed(name string) (*Key, error) {
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
	if f.Sealed == nil {
		return k.Get(name)
	}
	pub, err := hex.DecodeString(f.PubKey)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("keyring: %s has a bad public key", k.path(name))
	}
	key := &Key{Name: name, pub: pub}
	if a, err := addr.Parse(f.Address); err == nil && a != key.Address() {
		key.Account = a
	}
	return key, nil
}
