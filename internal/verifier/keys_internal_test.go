package verifier

import (
	"bytes"
	"context"
	"crypto/sha256"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agoranet/agora/internal/chain/audit/auditpb"
	"github.com/agoranet/agora/internal/jobrun"
	"github.com/agoranet/agora/internal/model"
	"github.com/agoranet/agora/internal/zk"
)

// testServer is a server with what checkKey needs and no chain.
func testServer(cfg Config) *Server {
	s := &Server{cfg: cfg, log: slog.New(slog.DiscardHandler)}
	s.initKeys()
	return s
}

// countingCheck is a transcript check that counts its calls and yields
// the key "vk".
func countingCheck(n *atomic.Int32) CheckTranscriptFunc {
	return func(ctx context.Context, m *model.Model, b []byte, contributors [][]byte) ([]byte, error) {
		n.Add(1)
		return []byte("vk"), nil
	}
}

func review(t *testing.T, url string, body []byte) *auditpb.KeyReview {
	m, err := model.Lookup(model.DigitsName)
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256(body)
	return &auditpb.KeyReview{Id: 1, ModelId: m.Manifest.ID, VerifyingKey: []byte("vk"), TranscriptDigest: d[:], TranscriptUrl: url,
		Contributors: [][]byte{make([]byte, 32), append(make([]byte, 31), 1)}, CommitUntil: 1 << 40}
}

func TestCheckKeyFetchRules(t *testing.T) {
	small := []byte("a transcript")
	big := make([]byte, 3<<20)
	var hits, finalHits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.URL.Path {
		case "/redirect":
			http.Redirect(w, r, "/final", http.StatusFound)
		case "/final":
			finalHits.Add(1)
			w.Write(small)
		case "/big":
			w.Write(big)
		}
	}))
	defer srv.Close()
	tests := []struct {
		name  string
		local bool
		path  string
		body  []byte
	}{
		{"a loopback URL, LocalTranscripts off", false, "/final", small},
		{"a redirect", true, "/redirect", small},
		{"a body over the exact size for the proposal's contributors", true, "/big", big},
		{"a loopback URL, LocalTranscripts on", true, "/final", small},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hits.Store(0)
			finalHits.Store(0)
			var checks atomic.Int32
			s := testServer(Config{LocalTranscripts: tt.local, CheckTranscript: countingCheck(&checks), KeyCheckTimeout: time.Minute})
			r := review(t, srv.URL+tt.path, tt.body)
			v := s.checkKey(context.Background(), r)
			if tt.local && tt.path == "/final" { // the control
				if want := auditpb.KeyVerdict(r.ModelId, r.VerifyingKey, r.Contributors); !bytes.Equal(v, want) || checks.Load() != 1 {
					t.Errorf("verdict %x after %d checks, want %x after one", v, checks.Load(), want)
				}
				return
			}
			if !bytes.Equal(v, rejectVerdict) {
				t.Errorf("verdict %x, want the rejection", v)
			}
			if got := checks.Load(); got != 0 {
				t.Errorf("the transcript was checked %d times; it should be refused before", got)
			}
			if !tt.local && hits.Load() != 0 {
				t.Errorf("%d requests reached the loopback server", hits.Load())
			}
			if tt.path == "/redirect" && finalHits.Load() != 0 {
				t.Errorf("the redirect was followed")
			}
		})
	}
}

// TestPublicAddr: the dialler's test of a transcript host's address.
func TestPublicAddr(t *testing.T) {
	for _, tt := range []struct {
		addr string
		want bool
	}{
		{"127.0.0.1", false}, {"127.8.9.10", false}, {"::1", false}, {"::ffff:127.0.0.1", false},
		{"10.1.2.3", false}, {"172.16.0.1", false}, {"192.168.1.1", false}, {"fd00::1", false},
		{"169.254.169.254", false}, {"fe80::1", false}, {"0.0.0.0", false}, {"0.1.2.3", false}, {"::", false},
		{"224.0.0.1", false}, {"ff02::1", false}, {"100.64.0.1", false}, {"255.255.255.255", false},
		{"64:ff9b::7f00:1", false}, {"64:ff9b::808:808", true},
		{"8.8.8.8", true}, {"2606:4700::1111", true}, {"::ffff:1.1.1.1", true},
	} {
		if got := publicAddr(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("publicAddr(%s) = %v, want %v", tt.addr, got, tt.want)
		}
	}
	if err := dialPublic("tcp", "[::1]:443", nil); err == nil || !strings.Contains(err.Error(), "not a public address") {
		t.Errorf("dialPublic of ::1: %v", err)
	}
}

// TestCheckTranscriptContributorsFirst: the real check compares the
// transcript's contributors with the proposal's before it verifies
// anything (an open transcript would be refused as unsealed later).
func TestCheckTranscriptContributorsFirst(t *testing.T) {
	m, err := model.Lookup(model.DigitsName)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := zk.NewTranscript(m)
	if err != nil {
		t.Fatal(err)
	}
	b, err := tr.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	_, err = CheckTranscript(context.Background(), m, b, [][]byte{make([]byte, 32)})
	if err == nil || !strings.Contains(err.Error(), "contributors, in order, are not the proposal's") {
		t.Fatalf("error %v, want the contributors refused", err)
	}
}

// TestCommittedVerdict: a member that committed reveals what it committed
// to, found from its commitment alone (after a restart, no check runs).
func TestCommittedVerdict(t *testing.T) {
	r := review(t, "https://example.com/t", []byte("t"))
	salt := jobrun.CommitSalt(make([]byte, 64), "", "agora/audit/key-salt/v2", r.Id)
	approve := auditpb.KeyVerdict(r.ModelId, r.VerifyingKey, r.Contributors)
	for _, v := range [][]byte{approve, rejectVerdict} {
		if got := committedVerdict(r, auditpb.KeyCommitment(v, salt, "me"), salt, "me"); !bytes.Equal(got, v) {
			t.Errorf("committed to %x, found %x", v, got)
		}
	}
	if got := committedVerdict(r, auditpb.KeyCommitment(approve, salt, "someone else"), salt, "me"); got != nil {
		t.Errorf("another member's commitment gave %x", got)
	}
}

// TestDeadlineSlot: the check slot goes to the waiting review with the
// earliest commit deadline, whatever order they came in; a waiter whose
// context ends leaves the queue.
func TestDeadlineSlot(t *testing.T) {
	var d deadlineSlot
	if err := d.acquire(context.Background(), 100, 0); err != nil {
		t.Fatal(err)
	}
	var order []uint64
	var mu sync.Mutex
	var wg sync.WaitGroup
	gone, cancel := context.WithCancel(context.Background())
	waiters := []struct {
		id, deadline uint64
		ctx          context.Context
	}{{1, 30, context.Background()}, {2, 10, context.Background()}, {3, 5, gone}, {4, 20, context.Background()}, {5, 10, context.Background()}}
	for _, w := range waiters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.acquire(w.ctx, int64(w.deadline), w.id); err != nil {
				return
			}
			mu.Lock()
			order = append(order, w.id)
			mu.Unlock()
			d.release()
		}()
		for { // wait until it is queued, so the order they came in is known
			d.mu.Lock()
			n := len(d.waiting)
			d.mu.Unlock()
			if n == int(w.id) {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	cancel()
	for { // 3 leaves the queue
		d.mu.Lock()
		n := len(d.waiting)
		d.mu.Unlock()
		if n == 4 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	d.release()
	wg.Wait()
	if want := []uint64{2, 5, 4, 1}; !slices.Equal(order, want) {
		t.Errorf("the slot went to %v, want %v (earliest deadline, then lowest id)", order, want)
	}
	if d.busy {
		t.Error("the slot is still taken after every holder released it")
	}
}

// TestReviewOrderAndBudget: reviews are visited earliest commit deadline
// first, and a check's budget ends keyCommitMargin blocks before the
// commit window does at the chain's pace.
func TestReviewOrderAndBudget(t *testing.T) {
	rs := []*auditpb.KeyReview{{Id: 1, CommitUntil: 50}, {Id: 2, CommitUntil: 20}, {Id: 3, CommitUntil: 20}, {Id: 4, CommitUntil: 10}}
	slices.SortFunc(rs, reviewOrder)
	var ids []uint64
	for _, r := range rs {
		ids = append(ids, r.Id)
	}
	if want := []uint64{4, 2, 3, 1}; !slices.Equal(ids, want) {
		t.Errorf("order %v, want %v", ids, want)
	}
	s := testServer(Config{KeyCheckTimeout: 10 * time.Minute})
	r := &auditpb.KeyReview{Id: 1, CommitUntil: 700}
	if got := s.checkBudget(r, 100); got != 10*time.Minute {
		t.Errorf("budget %s before the pace is known, want KeyCheckTimeout", got)
	}
	t0 := time.Unix(1000, 0)
	s.blocks.observe(100, t0)
	s.blocks.observe(110, t0.Add(time.Second)) // 100 ms blocks
	if got, want := s.checkBudget(r, 110), time.Duration(700-110-keyCommitMargin)*100*time.Millisecond; got != want {
		t.Errorf("budget %s, want %s", got, want)
	}
	if got := s.checkBudget(r, 698); got > 0 {
		t.Errorf("budget %s with fewer blocks left than the margin", got)
	}
}
