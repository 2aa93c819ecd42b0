package durable

import (
	"os"
	"path/filepath"
	"testing"
)

// TestReplace: the new content takes the old one's place, a stale temp
// file left by a crash is no obstacle, and none is left behind.
func TestReplace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "values.json")
	if err := os.WriteFile(path+".tmp", []byte("half-written"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"one", "two"} {
		if err := Replace(path, []byte(want)); err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(path); err != nil || string(got) != want {
			t.Fatalf("after Replace(%q): %q %v", want, got, err)
		}
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("a temp file is left: %v", err)
	}
	if err := WriteNew(path, []byte("x")); err == nil {
		t.Error("WriteNew over an existing file succeeded")
	}
}
