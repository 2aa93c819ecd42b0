package transfer

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agoranet/agora/internal/chain/storage/storagepb"
	"github.com/agoranet/agora/internal/storage/node"
	"github.com/agoranet/agora/internal/storage/object"
	"github.com/agoranet/agora/internal/storage/piecestore"
)

var small = object.Params{K: 4, N: 6, SegmentSize: 16 << 10, LeafSize: 256}

// fault is what a test node does wrong.
type fault struct {
	corrupt atomic.Bool // flips a byte of every piece it serves
	hang    atomic.Bool // answers no GET until the client gives up
}

func nodes(t *testing.T, count int, quota int64) ([]*httptest.Server, []*fault) {
	t.Helper()
	var ss []*httptest.Server
	var fs []*fault
	for range count {
		store, err := piecestore.Open(t.TempDir(), quota)
		if err != nil {
			t.Fatal(err)
		}
		f := &fault{}
		h := node.Handler(store, node.Options{})
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && f.hang.Load() {
				<-r.Context().Done()
				return
			}
			if r.Method == http.MethodGet && f.corrupt.Load() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, r)
				b := rec.Body.Bytes()
				if len(b) > 0 {
					b[len(b)/2] ^= 0xff
				}
				w.WriteHeader(rec.Code)
				w.Write(b)
				return
			}
			h.ServeHTTP(w, r)
		}))
		t.Cleanup(s.Close)
		ss, fs = append(ss, s), append(fs, f)
	}
	return ss, fs
}

func urls(ss []*httptest.Server) []string {
	var us []string
	for _, s := range ss {
		us = append(us, s.URL)
	}
	return us
}

func random(n int, seed uint64) []byte {
	b := make([]byte, n)
	rng := rand.New(rand.NewPCG(seed, seed))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// An object put on eight nodes comes back byte for byte, with two of
// them dead, one serving corrupt pieces, or one hung.
func TestPutGetThroughFaults(t *testing.T) {
	ss, faults := nodes(t, 8, 1<<30)
	place, locate := Spread(urls(ss))
	data := random(300<<10+123, 1) // 19 segments
	c := &Client{}
	ctx := context.Background()
	m, id, err := c.Put(ctx, bytes.NewReader(data), small, place)
	if err != nil {
		t.Fatal(err)
	}
	if m.Size != uint64(len(data)) || !id.Defined() {
		t.Fatalf("manifest of %d bytes", m.Size)
	}
	get := func(what string) {
		t.Helper()
		var out bytes.Buffer
		t0 := time.Now()
		if err := c.Get(ctx, m, &out, locate); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if !bytes.Equal(out.Bytes(), data) {
			t.Fatalf("%s: %d bytes back, not the object", what, out.Len())
		}
		t.Logf("%s: %v", what, time.Since(t0))
	}
	get("all nodes up")
	faults[3].corrupt.Store(true)
	get("one node corrupting every piece")
	faults[3].corrupt.Store(false)
	faults[5].hang.Store(true)
	get("one node hung")
	faults[5].hang.Store(false)
	ss[1].Close()
	ss[6].Close()
	get("two nodes dead")
	ss[2].Close()
	var out bytes.Buffer
	if err := c.Get(ctx, m, &out, locate); !errors.Is(err, object.ErrTooFew) {
		t.Fatalf("three nodes dead, a segment's pieces on them: err %v, want %v", err, object.ErrTooFew)
	}
}

func TestPutRefusedByANodeSaysWhich(t *testing.T) {
	ss, _ := nodes(t, 6, 1<<30)
	full, _ := nodes(t, 1, 1024) // takes nothing of 4 KiB pieces
	us := urls(ss)
	us[2] = full[0].URL
	place, _ := Spread(us)
	_, _, err := (&Client{}).Put(context.Background(), bytes.NewReader(random(64<<10, 2)), small, place)
	if err == nil || !strings.Contains(err.Error(), full[0].URL) || !strings.Contains(err.Error(), "507") {
		t.Fatalf("err %v, want the full node named and its 507", err)
	}
}

func TestProgress(t *testing.T) {
	ss, _ := nodes(t, 6, 1<<30)
	place, locate := Spread(urls(ss))
	data := random(100<<10, 3)
	var put, got []uint64
	c := &Client{Progress: func(n uint64) { put = append(put, n) }}
	m, _, err := c.Put(context.Background(), bytes.NewReader(data), small, place)
	if err != nil {
		t.Fatal(err)
	}
	c.Progress = func(n uint64) { got = append(got, n) }
	if err := c.Get(context.Background(), m, &bytes.Buffer{}, locate); err != nil {
		t.Fatal(err)
	}
	if len(put) == 0 || len(got) != len(m.Segments) || got[len(got)-1] != uint64(len(data)) {
		t.Fatalf("progress: put %v, get %v", put, got)
	}
}

// An empty object has no pieces; its manifest still goes to the nodes a
// first segment's pieces would, so it can be got back.
func TestEmptyObject(t *testing.T) {
	ss, _ := nodes(t, 6, 1<<30)
	place, locate := Spread(urls(ss))
	c := &Client{}
	m, _, err := c.Put(context.Background(), bytes.NewReader(nil), small, place)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := object.Marshal(m)
	resp, err := http.Get(ss[0].URL + "/storage/v1/manifests/" + mustCID(t, m))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("the empty object's manifest is not on the first node: %v %v", err, resp.Status)
	}
	resp.Body.Close()
	var out bytes.Buffer
	if err := c.Get(context.Background(), m, &out, locate); err != nil || out.Len() != 0 || len(raw) == 0 {
		t.Fatalf("get: %v, %d bytes", err, out.Len())
	}
}

func mustCID(t *testing.T, m *storagepb.Manifest) string {
	t.Helper()
	id, err := object.CID(m)
	if err != nil {
		t.Fatal(err)
	}
	return id.String()
}
