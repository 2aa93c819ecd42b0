package node

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/agoranet/agora/internal/storage/object"
	"github.com/agoranet/agora/internal/storage/piecestore"
)

var small = object.Params{K: 4, N: 6, SegmentSize: 4096, LeafSize: 64}

func start(t *testing.T, quota int64) *httptest.Server {
	t.Helper()
	store, err := piecestore.Open(t.TempDir(), quota)
	if err != nil {
		t.Fatal(err)
	}
	s := httptest.NewServer(Handler(store, Options{}))
	t.Cleanup(s.Close)
	return s
}

func do(t *testing.T, method, url string, body []byte) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// An object's pieces and manifest put over HTTP come back whole, and a
// challenge's answer verifies against the manifest's root.
func TestPutGetProve(t *testing.T) {
	s := start(t, 1<<20)
	data := make([]byte, 10000)
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	pieces := map[string][]byte{}
	m, id, err := object.Encode(bytes.NewReader(data), small, func(p object.Piece) error {
		root := object.Root(p.Data, small.LeafSize)
		pieces[hex.EncodeToString(root)] = p.Data
		if code, b := do(t, "PUT", fmt.Sprintf("%s/storage/v1/pieces/%x?leaf_size=64", s.URL, root), p.Data); code != http.StatusCreated {
			return fmt.Errorf("put piece: %d %s", code, b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := object.Marshal(m)
	if code, b := do(t, "PUT", s.URL+"/storage/v1/manifests/"+id.String(), raw); code != http.StatusCreated {
		t.Fatalf("put manifest: %d %s", code, b)
	}
	if code, b := do(t, "GET", s.URL+"/storage/v1/manifests/"+id.String(), nil); code != 200 || !bytes.Equal(b, raw) {
		t.Fatalf("get manifest: %d", code)
	}
	var out bytes.Buffer
	err = object.Decode(m, &out, func(seg, i int) ([]byte, error) {
		code, b := do(t, "GET", fmt.Sprintf("%s/storage/v1/pieces/%x", s.URL, m.Segments[seg].PieceRoots[i]), nil)
		if code != 200 {
			return nil, fmt.Errorf("get piece: %d", code)
		}
		return b, nil
	})
	if err != nil || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("decode: %v, %d of %d bytes", err, out.Len(), len(data))
	}
	root := m.Segments[1].PieceRoots[5]
	count := int(m.Segments[1].PieceSize) / 64
	code, b := do(t, "GET", fmt.Sprintf("%s/storage/v1/proofs/%x?leaf_size=64&leaf=%d", s.URL, root, count-1), nil)
	var p Proof
	if code != 200 || json.Unmarshal(b, &p) != nil || !object.VerifyLeaf(root, p.Leaf, count-1, count, p.Path) {
		t.Fatalf("proof: %d %s", code, b)
	}
	// A range of a piece, as a reader resuming one asks.
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/storage/v1/pieces/%x", s.URL, root), nil)
	req.Header.Set("Range", "bytes=10-19")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(part, pieces[hex.EncodeToString(root)][10:20]) {
		t.Fatalf("range: %d %q", resp.StatusCode, part)
	}
}

func TestRefusedWithClearErrors(t *testing.T) {
	s := start(t, 2048)
	piece := bytes.Repeat([]byte{9}, 1024)
	root := object.Root(piece, 64)
	other := object.Root(bytes.Repeat([]byte{8}, 1024), 64)
	_, id, _ := object.Encode(strings.NewReader("x"), small, func(object.Piece) error { return nil })
	// A body of unknown length is refused before it is read.
	req, _ := http.NewRequest("PUT", fmt.Sprintf("%s/storage/v1/pieces/%x?leaf_size=64", s.URL, root), io.NopCloser(bytes.NewReader(piece)))
	req.ContentLength = -1
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("a chunked piece: %v %v, want 413", err, resp.Status)
	} else {
		resp.Body.Close()
	}
	for _, c := range []struct {
		name, method, path string
		body               []byte
		status             int
		says               string
	}{
		{"not a root", "PUT", "/storage/v1/pieces/xyz?leaf_size=64", piece, 400, "64 hex digits"},
		{"no leaf size", "PUT", fmt.Sprintf("/storage/v1/pieces/%x", root), piece, 400, "leaf_size"},
		{"bytes of another root", "PUT", fmt.Sprintf("/storage/v1/pieces/%x?leaf_size=64", other), piece, 400, "does not match its root"},
		{"a piece not here", "GET", fmt.Sprintf("/storage/v1/pieces/%x", root), nil, 404, "no such piece"},
		{"a proof of a piece not here", "GET", fmt.Sprintf("/storage/v1/proofs/%x?leaf_size=64&leaf=0", root), nil, 404, "no such piece"},
		{"not a CID", "GET", "/storage/v1/manifests/nope", nil, 400, "not a CID"},
		{"a manifest not here", "GET", "/storage/v1/manifests/" + id.String(), nil, 404, "put its manifest first"},
		{"a manifest that is not its CID's", "PUT", "/storage/v1/manifests/" + id.String(), []byte("junk"), 400, "does not hash to its CID"},
		{"a bad leaf size", "PUT", fmt.Sprintf("/storage/v1/pieces/%x?leaf_size=100", root), piece, 400, "power of two"},
		{"the first piece", "PUT", fmt.Sprintf("/storage/v1/pieces/%x?leaf_size=64", root), piece, 201, ""},
		{"a leaf past the end", "GET", fmt.Sprintf("/storage/v1/proofs/%x?leaf_size=64&leaf=16", root), nil, 400, "no leaf 16"},
		{"over the quota", "PUT", fmt.Sprintf("/storage/v1/pieces/%x?leaf_size=64", object.Root(bytes.Repeat([]byte{7}, 2048), 64)), bytes.Repeat([]byte{7}, 2048), 507, "quota"},
	} {
		code, b := do(t, c.method, s.URL+c.path, c.body)
		if code != c.status || !strings.Contains(string(b), c.says) {
			t.Errorf("%s: %d %s, want %d saying %q", c.name, code, b, c.status, c.says)
		}
	}
}
