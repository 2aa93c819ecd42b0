package keyring

import (
	"errors"
	"os"
	"testing"
)

func TestKeyring(t *testing.T) {
	kr := Open(t.TempDir() + "/keys")
	a, err := kr.Add("alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Add("alice"); !errors.Is(err, ErrExists) {
		t.Errorf("second Add: err = %v, want ErrExists", err)
	}
	st, err := os.Stat(kr.path("alice"))
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != 0o600 {
		t.Errorf("key file mode %o, want 600", got)
	}
	seed, err := kr.Export("alice")
	if err != nil {
		t.Fatal(err)
	}
	other := Open(t.TempDir())
	b, err := other.Import("copy", seed)
	if err != nil {
		t.Fatal(err)
	}
	if a.Address() != b.Address() {
		t.Errorf("imported key has address %s, want %s", b.Address(), a.Address())
	}
	if _, err := other.Import("bad", "zz"); err == nil {
		t.Error("Import of non-hex seed succeeded")
	}
	if _, err := kr.Get("nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(nobody): err = %v, want ErrNotFound", err)
	}
	if _, err := kr.Add("../evil"); err == nil {
		t.Error("Add accepted a path in the name")
	}
	keys, err := kr.List()
	if err != nil || len(keys) != 1 || keys[0].Name != "alice" {
		t.Errorf("List = %v, %v; want [alice]", keys, err)
	}
}
