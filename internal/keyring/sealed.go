package keyring

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/scrypt"
)

// Backend is where a keyring keeps its secrets, as Cosmos tools name
// them.
type Backend string

const (
	// Test keeps seeds in plain files (mode 0600): for devnets and tests.
	Test Backend = "test"
	// File encrypts each seed with a passphrase: scrypt derives the key,
	// XChaCha20-Poly1305 seals the seed, bound to the key's name and
	// address so a sealed seed cannot be passed off as another key's.
	File Backend = "file"
	// OS would keep seeds in the system keychain; this build has none.
	OS Backend = "os"
)

// ParseBackend checks a --keyring-backend value.
func ParseBackend(s string) (Backend, error) {
	switch b := Backend(s); b {
	case Test, File:
		return b, nil
	case OS:
		return "", errors.New("keyring: the os backend needs a system keychain (Secret Service, macOS Keychain), which this build does not support; use --keyring-backend file, which encrypts each key with a passphrase")
	}
	return "", fmt.Errorf("keyring: unknown backend %q: use test (plain files, for devnets) or file (encrypted with a passphrase)", s)
}

// ErrPassphrase is a passphrase that does not open a key.
var ErrPassphrase = errors.New("keyring: wrong passphrase")

// The scrypt cost: about 100 ms and 32 MiB per key opened, so a stolen
// file costs a guesser as much per guess.
const (
	scryptN = 1 << 15
	scryptR = 8
	scryptP = 1
)

// sealed is an encrypted seed as a key file holds it.
type sealed struct {
	KDF        string `json:"kdf"` // "scrypt"
	N          int    `json:"n"`
	R          int    `json:"r"`
	P          int    `json:"p"`
	Salt       string `json:"salt"`
	Cipher     string `json:"cipher"` // "xchacha20-poly1305"
	Nonce      string `json:"nonce"`
	Ciphertext string `json:"ciphertext"`
}

func sealAAD(name, address string) []byte {
	return []byte("agora/keyring/v1\x00" + name + "\x00" + address)
}

func seal(pass, seed []byte, name, address string) (*sealed, error) {
	salt := make([]byte, 16)
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	key, err := scrypt.Key(pass, salt, scryptN, scryptR, scryptP, chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	return &sealed{KDF: "scrypt", N: scryptN, R: scryptR, P: scryptP, Salt: hex.EncodeToString(salt), Cipher: "xchacha20-poly1305",
		Nonce: hex.EncodeToString(nonce), Ciphertext: hex.EncodeToString(aead.Seal(nil, nonce, seed, sealAAD(name, address)))}, nil
}

func (s *sealed) open(pass []byte, name, address string) ([]byte, error) {
	// Bounds on what a file may ask of the machine that opens it: at most
	// 128·N·r = 1 GiB of memory, and r·p ≤ 16.
	if s.KDF != "scrypt" || s.Cipher != "xchacha20-poly1305" || s.N < 1<<14 || s.N > 1<<20 || s.R < 1 || s.P < 1 || s.R*s.P > 16 || s.N*s.R > 1<<23 {
		return nil, fmt.Errorf("keyring: key %s is sealed with %s/%s (n=%d r=%d p=%d), which this build does not open", name, s.KDF, s.Cipher, s.N, s.R, s.P)
	}
	salt, err1 := hex.DecodeString(s.Salt)
	nonce, err2 := hex.DecodeString(s.Nonce)
	ct, err3 := hex.DecodeString(s.Ciphertext)
	if err := errors.Join(err1, err2, err3); err != nil || len(nonce) != chacha20poly1305.NonceSizeX {
		return nil, fmt.Errorf("keyring: key %s's sealed seed is corrupt", name)
	}
	key, err := scrypt.Key(pass, salt, s.N, s.R, s.P, chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	seed, err := aead.Open(nil, nonce, ct, sealAAD(name, address))
	if err != nil {
		return nil, fmt.Errorf("%w for key %s (or its file was altered)", ErrPassphrase, name)
	}
	return seed, nil
}
