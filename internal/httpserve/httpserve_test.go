package httpserve

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestServeAndShutdown(t *testing.T) {
	release := make(chan struct{})
	s, err := Listen("127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		io.WriteString(w, "done")
	}), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get(s.URL())
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	time.Sleep(50 * time.Millisecond) // let the request arrive
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	// A request in flight finishes before Shutdown returns.
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned with a request in flight: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if b := <-got; b != "done" {
		t.Fatalf("in-flight request: %q", b)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(s.URL()); err == nil {
		t.Fatal("still serving after Shutdown")
	}
	if _, err := Listen(s.ln.Addr().String()+"x", http.NotFoundHandler(), nil); err == nil {
		t.Fatal("a bad address was accepted")
	}
}

// TestLimits: the bounds the daemons used to lack (they set only a header
// timeout): a body over the limit is refused, a body that stalls is cut
// off, requests beyond the in-flight cap get 429 with Retry-After (health
// probes excepted), and a stream outlives the body's deadline.
func TestLimits(t *testing.T) {
	block := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.Write(b)
	})
	mux.HandleFunc("/block", func(w http.ResponseWriter, r *http.Request) { <-block })
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		for range 6 {
			select {
			case <-r.Context().Done():
				return // cut: the test sees a short body
			case <-time.After(100 * time.Millisecond):
			}
			io.WriteString(w, "x")
			w.(http.Flusher).Flush()
		}
	})
	s, err := ListenWith("127.0.0.1:0", mux, nil, Options{BodyTimeout: 300 * time.Millisecond, MaxBody: 1000, MaxInFlight: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { close(block); s.Shutdown(context.Background()) }()

	post := func(path string, body io.Reader) (*http.Response, string) {
		resp, err := http.Post(s.URL()+path, "text/plain", body)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	if resp, _ := post("/echo", strings.NewReader(strings.Repeat("a", 1001))); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("a body over the limit: %d, want 413", resp.StatusCode)
	}
	if resp, b := post("/echo", strings.NewReader("hello")); resp.StatusCode != 200 || b != "hello" {
		t.Errorf("a small body: %d %q", resp.StatusCode, b)
	}
	// A body that starts and then stalls is cut off at its deadline.
	pr, pw := io.Pipe()
	go func() { pw.Write([]byte("start")); time.Sleep(2 * time.Second); pw.Close() }()
	start := time.Now()
	if resp, err := http.Post(s.URL()+"/echo", "text/plain", pr); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Errorf("a stalled body was read whole")
		}
	}
	if took := time.Since(start); took > 1500*time.Millisecond {
		t.Errorf("a stalled body held its request %v; the limit is 300 ms", took)
	}
	// A stream is not cut by the body's deadline once the body is in.
	if resp, b := post("/stream", strings.NewReader("go")); resp.StatusCode != 200 || b != "xxxxxx" {
		t.Errorf("a 600 ms stream after a 300 ms body deadline: %d %q, want it whole", resp.StatusCode, b)
	}
	// Two requests block; the third is turned away; a probe still passes.
	for range 2 {
		go http.Get(s.URL() + "/block")
	}
	time.Sleep(100 * time.Millisecond)
	resp, err := http.Get(s.URL() + "/block")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("beyond the cap: %d, Retry-After %q; want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if resp, err := http.Get(s.URL() + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("a health probe at the cap: %v %v", resp, err)
	}
}
