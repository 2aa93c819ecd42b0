package blob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUploadFetchAndMismatch(t *testing.T) {
	s, err := Open(t.TempDir(), 1024)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	ctx := context.Background()
	data := []byte("the job's input")
	url, err := Upload(ctx, srv.Client(), srv.URL, data)
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(data)
	got, err := Fetch(ctx, srv.Client(), url, want[:], 1024)
	if err != nil || string(got) != string(data) {
		t.Fatalf("fetch: %q, %v", got, err)
	}
	other := sha256.Sum256([]byte("something else"))
	if _, err := Fetch(ctx, srv.Client(), url, other[:], 1024); !errors.Is(err, ErrMismatch) {
		t.Fatalf("fetch with the wrong hash: %v, want ErrMismatch", err)
	}
	if _, err := Fetch(ctx, srv.Client(), srv.URL+Path+Name([]byte("absent")), other[:], 1024); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("fetch of an absent blob: %v, want ErrUnavailable", err)
	}
	// A PUT whose body does not match its name stores nothing.
	req, _ := http.NewRequest(http.MethodPut, srv.URL+Path+Name([]byte("x")), nil)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || s.Has(Name([]byte("x"))) {
		t.Fatalf("mismatched PUT: %s, stored %v", resp.Status, s.Has(Name([]byte("x"))))
	}
	entries, _ := os.ReadDir(filepath.Dir(s.path(Name(data))))
	if len(entries) != 1 {
		t.Fatalf("%d files in the store, want 1 (no temporary files left)", len(entries))
	}
	if _, err := Upload(ctx, srv.Client(), srv.URL, make([]byte, 2048)); err == nil {
		t.Fatal("a blob over the limit was taken")
	}
}

// TestPostIsBounded: a POST is read into memory to be named, so it is
// bounded well below the store's limit (it used to take up to 256 MB per
// request, unauthenticated); a PUT of the same size streams to disk.
func TestPostIsBounded(t *testing.T) {
	s, err := Open(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	big := bytes.Repeat([]byte("x"), MaxPost+1)
	resp, err := http.Post(srv.URL+strings.TrimSuffix(Path, "/"), "application/octet-stream", bytes.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("a POST of %d bytes: %d, want 413", len(big), resp.StatusCode)
	}
	if _, err := Upload(context.Background(), srv.Client(), srv.URL, big); err != nil {
		t.Errorf("a PUT of the same blob: %v", err)
	}
}
