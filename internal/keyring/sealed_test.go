package keyring

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"
)

func passphrase(p string) func() ([]byte, error) {
	return func() ([]byte, error) { return []byte(p), nil }
}

// TestFileBackend: a file-backend key is sealed on disk, cannot be read
// without its passphrase, nor with a wrong one (a clear error), nor passed
// off as another key; it lists without the passphrase, and a keyring
// migrates both ways with every key intact.
func TestFileBackend(t *testing.T) {
	dir := t.TempDir()
	kr := OpenWith(dir, File, passphrase("correct horse"))
	k, err := kr.Add("alice")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(kr.path("alice"))
	if bytes.Contains(raw, []byte(hex.EncodeToString(k.Private.Seed()))) || bytes.Contains(raw, []byte(`"seed"`)) {
		t.Fatalf("the seed is on disk in plain:\n%s", raw)
	}
	if _, err := Open(dir).Get("alice"); err == nil || !strings.Contains(err.Error(), "encrypted") {
		t.Errorf("read without a passphrase: %v", err)
	}
	if _, err := OpenWith(dir, File, passphrase("wrong horse")).Get("alice"); !errors.Is(err, ErrPassphrase) || !strings.Contains(err.Error(), "wrong passphrase for key alice") {
		t.Errorf("read with a wrong passphrase: %v", err)
	}
	// A wrong passphrase is not kept: the next read asks again.
	tries := []string{"wrong horse", "correct horse"}
	retry := OpenWith(dir, File, func() ([]byte, error) { p := tries[0]; tries = tries[1:]; return []byte(p), nil })
	if _, err := retry.Get("alice"); !errors.Is(err, ErrPassphrase) {
		t.Fatalf("first try, wrong: %v", err)
	}
	if _, err := retry.Get("alice"); err != nil {
		t.Errorf("second try, right: %v", err)
	}
	got, err := OpenWith(dir, File, passphrase("correct horse")).Get("alice")
	if err != nil || !got.Private.Equal(k.Private) {
		t.Fatalf("read with the passphrase: %v", err)
	}
	// The sealed seed is bound to its key's name and address.
	if _, err := kr.Add("bob"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kr.path("bob"), bytes.ReplaceAll(raw, []byte(`"name": "alice"`), []byte(`"name": "bob"`)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Get("bob"); !errors.Is(err, ErrPassphrase) {
		t.Errorf("alice's sealed seed read as bob's: %v", err)
	}
	// Listing needs no passphrase.
	list, err := Open(dir).List()
	if err != nil || len(list) != 2 || list[0].Address() != k.Address() || !bytes.Equal(list[0].Public(), k.Public()) {
		t.Fatalf("list without the passphrase: %v, %v", list, err)
	}

	// Migrate a plain keyring to the file backend and back.
	plainDir := t.TempDir()
	plain := Open(plainDir)
	carol, _ := plain.Add("carol")
	if n, err := OpenWith(plainDir, File, passphrase("pw")).Migrate(); err != nil || n != 1 {
		t.Fatalf("migrate to file: %d, %v", n, err)
	}
	if b, _ := os.ReadFile(plain.path("carol")); !bytes.Contains(b, []byte(`"sealed"`)) {
		t.Errorf("after migrating to file, carol's key is not sealed:\n%s", b)
	}
	if n, err := OpenWith(plainDir, Test, passphrase("pw")).Migrate(); err != nil || n != 1 {
		t.Fatalf("migrate back to test: %d, %v", n, err)
	}
	if back, err := Open(plainDir).Get("carol"); err != nil || !back.Private.Equal(carol.Private) {
		t.Errorf("after migrating back, carol's key: %v", err)
	}
	if _, err := ParseBackend("os"); err == nil || !strings.Contains(err.Error(), "file") {
		t.Errorf("the os backend: %v; want an error pointing to the file backend", err)
	}
}

// TestASealedKeyStaysSealed: rotating a sealed key, or giving it an
// account, with the default (test) backend keeps it sealed, the new key
// and the retired one too; before, they were written back in plain.
func TestASealedKeyStaysSealed(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenWith(dir, File, passphrase("pw")).Add("op"); err != nil {
		t.Fatal(err)
	}
	kr := OpenWith(dir, Test, passphrase("pw")) // as agora keys rotate runs by default
	if _, err := kr.AddPending("op"); err != nil {
		t.Fatal(err)
	}
	if err := kr.FinishRotation("op"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"op", Retired("op")} {
		if b, _ := os.ReadFile(kr.path(name)); bytes.Contains(b, []byte(`"seed"`)) || !bytes.Contains(b, []byte(`"sealed"`)) {
			t.Errorf("%s after a rotation with the test backend:\n%s", name, b)
		}
	}
}
