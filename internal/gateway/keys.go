package gateway

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// Keys is the gateway's ledger of API keys and their prepaid balances: an
// append-only file of JSON lines, so a key created by `agora gateway key
// create` while the gateway runs is found on its first use.
type Keys struct {
	path string

	mu       sync.Mutex          // guards the fields below
	accounts map[string]*account // by the key's sha256, hex
	read     int64               // bytes of the file applied
}

type account struct {
	ID      string
	Denom   string
	Balance uint64
}

type ledgerRecord struct {
	ID     string `json:"id"`
	Hash   string `json:"hash,omitempty"`   // on creation
	Denom  string `json:"denom,omitempty"`  // on creation
	Credit uint64 `json:"credit,omitempty"` // creation or top-up
	Debit  uint64 `json:"debit,omitempty"`  // a paid answer
}

// OpenKeys opens (creating if need be) the ledger at path.
func OpenKeys(path string) (*Keys, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	k := &Keys{path: path, accounts: map[string]*account{}}
	return k, k.load()
}

func hashKey(key string) string {
	s := sha256.Sum256([]byte(key))
	return hex.EncodeToString(s[:])
}

// load applies the records added to the file since the last load.
func (k *Keys) load() error {
	f, err := os.OpenFile(k.path, os.O_CREATE|os.O_RDONLY, 0o600)
	if err != nil {
		return fmt.Errorf("gateway: keys: %w", err)
	}
	defer f.Close()
	if _, err := f.Seek(k.read, 0); err != nil {
		return err
	}
	sc := bufio.NewScanner(f)
	byID := map[string]*account{}
	for _, a := range k.accounts {
		byID[a.ID] = a
	}
	for sc.Scan() {
		var r ledgerRecord
		if json.Unmarshal(sc.Bytes(), &r) != nil {
			break // a torn last line
		}
		k.read += int64(len(sc.Bytes())) + 1
		a := byID[r.ID]
		if r.Hash != "" {
			a = &account{ID: r.ID, Denom: r.Denom}
			k.accounts[r.Hash] = a
			byID[r.ID] = a
		}
		if a == nil {
			continue
		}
		a.Balance += r.Credit
		a.Balance -= min(a.Balance, r.Debit)
	}
	return nil
}

// Create makes a new API key with a prepaid credit and returns it. Only
// its hash is stored.
func Create(path, denom string, credit uint64) (key, id string, err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", "", err
	}
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	key = "agk_" + hex.EncodeToString(b)
	id = hashKey(key)[:8] // names the key in the ledger without revealing it
	return key, id, appendRecord(path, ledgerRecord{ID: id, Hash: hashKey(key), Denom: denom, Credit: credit}, true)
}

// CreateWithKey registers a given key (the devnet's well-known one).
func CreateWithKey(path, key, denom string, credit uint64) error {
	k, err := OpenKeys(path)
	if err != nil {
		return err
	}
	if _, ok := k.accounts[hashKey(key)]; ok {
		return nil
	}
	return appendRecord(path, ledgerRecord{ID: hashKey(key)[:8], Hash: hashKey(key), Denom: denom, Credit: credit}, true)
}

func appendRecord(path string, r ledgerRecord, sync bool) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(r)
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if sync {
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// Errors of key lookups.
var (
	ErrUnknownKey = errors.New("gateway: unknown API key")
	ErrBalance    = errors.New("gateway: insufficient balance")
)

// Reserve checks that key exists and holds at least max, and takes max
// from its balance until Settle says what the answer cost.
func (k *Keys) Reserve(key string, max uint64) (*account, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	h := hashKey(key)
	a := k.accounts[h]
	if a == nil {
		if err := k.load(); err != nil {
			return nil, err
		}
		if a = k.accounts[h]; a == nil {
			return nil, ErrUnknownKey
		}
	}
	if a.Balance < max {
		return a, fmt.Errorf("%w: the key holds %d%s, this request may cost %d", ErrBalance, a.Balance, a.Denom, max)
	}
	a.Balance -= max
	return a, nil
}

// Settle charges actual (at most the reserved max) and returns the rest.
func (k *Keys) Settle(a *account, max, actual uint64) error {
	actual = min(actual, max)
	k.mu.Lock()
	a.Balance += max - actual
	k.mu.Unlock()
	if actual == 0 {
		return nil
	}
	// Without an fsync: a debit survives the process, and should the
	// machine fail the key is charged less, never more.
	return appendRecord(k.path, ledgerRecord{ID: a.ID, Debit: actual}, false)
}

// Balance returns a key's balance.
func (k *Keys) Balance(key string) (uint64, string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	a := k.accounts[hashKey(key)]
	if a == nil {
		return 0, "", ErrUnknownKey
	}
	return a.Balance, a.Denom, nil
}
