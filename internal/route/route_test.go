package route

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestFailoverAndBreaker: a request skips a dead and a failing provider
// and is answered by the healthy one; after two failures each is cut off;
// a cut-off provider that recovers is let back in by the health probe.
func TestFailoverAndBreaker(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer flaky.Close()
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }))
	defer good.Close()
	dead := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	deadURL := dead.URL
	dead.Close()

	cfg := DefaultConfig()
	cfg.Probe = 20 * time.Millisecond
	cfg.Static = []Candidate{
		{Operator: "dead", Endpoint: deadURL, Model: "m"},
		{Operator: "flaky", Endpoint: flaky.URL, Model: "m"},
		{Operator: "good", Endpoint: good.URL, Model: "m", PricePerRequest: 5000}, // dearest: tried last
	}
	r, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	hc := &http.Client{Timeout: time.Second}
	call := func() (string, int, error) {
		c, tries, err := r.Do(context.Background(), "m", func(ctx context.Context, c Candidate) (Outcome, error) {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.Endpoint, nil)
			resp, err := hc.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			return Retryable(resp, err), err
		})
		return c.Operator, tries, err
	}
	for i := 0; i < 3; i++ {
		who, tries, err := call()
		if err != nil || who != "good" {
			t.Fatalf("call %d: answered by %q after %d tries: %v", i, who, tries, err)
		}
	}
	if got := len(r.Pick("m")); got != 1 {
		t.Errorf("after repeated failures %d providers are routable, want only the good one", got)
	}
	who, tries, _ := call()
	if who != "good" || tries != 1 {
		t.Errorf("with the circuits open: %q after %d tries, want good at once", who, tries)
	}
	failing.Store(false)
	deadline := time.Now().Add(2 * time.Second)
	for len(r.Pick("m")) != 2 {
		if time.Now().After(deadline) {
			t.Fatal("the recovered provider was not let back in by the health probe")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, _, err := r.Do(context.Background(), "none", nil); !errors.Is(err, ErrNoProvider) {
		t.Errorf("unknown model: %v", err)
	}
}

// TestRefusedIsNotRetried: a 4xx is the request's own fault: no failover,
// and it does not count against the provider.
func TestRefusedIsNotRetried(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Static = []Candidate{{Operator: "a", Model: "m"}, {Operator: "b", Model: "m"}}
	r, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	calls := 0
	for i := 0; i < 5; i++ {
		_, tries, _ := r.Do(context.Background(), "m", func(ctx context.Context, c Candidate) (Outcome, error) {
			calls++
			return Refused, errors.New("bad request")
		})
		if tries != 1 {
			t.Fatalf("a refused request was tried %d times", tries)
		}
	}
	if calls != 5 || len(r.Pick("m")) != 2 {
		t.Errorf("calls %d, routable %d; want 5 and 2", calls, len(r.Pick("m")))
	}
}

// TestCircuitOpenedSincePickIsSkipped: a request whose first provider fails
// does not then try providers whose circuits other requests opened while it
// waited; before, it walked its stale list into providers known dead.
func TestCircuitOpenedSincePickIsSkipped(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Probe = time.Hour // no probe lets anyone back in during the test
	cfg.Static = []Candidate{{Operator: "a", Model: "m"}, {Operator: "b", Model: "m"}, {Operator: "c", Model: "m"}}
	r, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var calls []string
	_, tries, err := r.Do(context.Background(), "m", func(ctx context.Context, c Candidate) (Outcome, error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.healthLocked(c.Operator).open {
			t.Errorf("attempt at %s, whose circuit is open", c.Operator)
		}
		if len(calls) == 0 { // meanwhile, other requests found the rest dead
			for _, o := range []string{"a", "b", "c"} {
				if o != c.Operator {
					r.healthLocked(o).open = true
				}
			}
		}
		calls = append(calls, c.Operator)
		return Failed, errors.New("down")
	})
	if len(calls) != 1 || tries != 1 || err == nil {
		t.Errorf("attempts %v (%d tries, err %v); want only the first", calls, tries, err)
	}
}
