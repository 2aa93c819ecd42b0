package h1

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// server is a loopback test server that counts the connections it was
// dialed on.
func server(t *testing.T, h http.HandlerFunc, idle ...time.Duration) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var dials atomic.Int64
	s := httptest.NewUnstartedServer(h)
	if len(idle) > 0 {
		s.Config.IdleTimeout = idle[0]
	}
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			dials.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s, &dials
}

func echo(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	fmt.Fprintf(w, "%s %s", r.Method, b)
}

func post(t *testing.T, c *http.Client, url, body string) string {
	t.Helper()
	resp, err := c.Post(url, "text/plain", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRequestsShareAConnection(t *testing.T) {
	s, dials := server(t, echo)
	c := &http.Client{Transport: &Transport{}}
	for i := range 20 {
		if got, want := post(t, c, s.URL, fmt.Sprint(i)), fmt.Sprintf("POST %d", i); got != want {
			t.Fatalf("answer %q, want %q", got, want)
		}
	}
	if n := dials.Load(); n != 1 {
		t.Fatalf("20 requests one after another dialed %d connections, want 1", n)
	}
}

func TestConcurrentRequests(t *testing.T) {
	s, dials := server(t, echo)
	c := &http.Client{Transport: &Transport{}}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				body := fmt.Sprintf("%d-%d", g, i)
				resp, err := c.Post(s.URL, "text/plain", strings.NewReader(body))
				if err != nil {
					t.Error(err)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(b) != "POST "+body {
					t.Errorf("answer %q to %q", b, body)
				}
			}
		})
	}
	wg.Wait()
	if n := dials.Load(); n > 8 {
		t.Fatalf("8 clients dialed %d connections, want at most 8", n)
	}
}

// A connection the server closed while it was idle (its idle timeout, a
// restart) is not used: the next request goes on a new one and succeeds.
func TestAConnectionTheServerClosedIsNotReused(t *testing.T) {
	s, dials := server(t, echo, 20*time.Millisecond)
	c := &http.Client{Transport: &Transport{}}
	post(t, c, s.URL, "a")
	time.Sleep(200 * time.Millisecond) // the server has closed it
	if got := post(t, c, s.URL, "b"); got != "POST b" {
		t.Fatalf("answer %q", got)
	}
	if n := dials.Load(); n != 2 {
		t.Fatalf("dialed %d connections, want 2", n)
	}
}

func TestCancelWhileWaitingForTheAnswer(t *testing.T) {
	release := make(chan struct{})
	s, _ := server(t, func(w http.ResponseWriter, r *http.Request) { <-release })
	defer close(release)
	c := &http.Client{Transport: &Transport{}}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, strings.NewReader("x"))
	t0 := time.Now()
	_, err := c.Do(req)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want the context's deadline", err)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Fatalf("returned after %v", d)
	}
}

// Closing a stream's body while a read is blocked on it ends the read at
// once, and the connection, mid-answer, is not reused.
func TestCloseEndsABlockedRead(t *testing.T) {
	release := make(chan struct{})
	s, dials := server(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hang" {
			w.Write([]byte("first\n"))
			w.(http.Flusher).Flush()
			<-release
			return
		}
		echo(w, r)
	})
	defer close(release)
	c := &http.Client{Transport: &Transport{}}
	resp, err := c.Post(s.URL+"/hang", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 6)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	read := make(chan error, 1)
	go func() {
		_, err := resp.Body.Read(buf)
		read <- err
	}()
	time.Sleep(50 * time.Millisecond)
	closed := make(chan struct{})
	go func() { resp.Body.Close(); close(closed) }()
	for _, ch := range []<-chan struct{}{closed} {
		select {
		case <-ch:
		case <-time.After(2 * time.Second):
			t.Fatal("Close blocked behind the read")
		}
	}
	select {
	case err := <-read:
		if err == nil {
			t.Fatal("the blocked read returned no error")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the read stayed blocked after Close")
	}
	post(t, c, s.URL, "next")
	if n := dials.Load(); n != 2 {
		t.Fatalf("dialed %d connections, want 2 (the cut one is not reused)", n)
	}
}

func TestStreamWithTrailer(t *testing.T) {
	s, dials := server(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Settled")
		for i := range 3 {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
		}
		w.Header().Set("X-Settled", "42")
	})
	c := &http.Client{Transport: &Transport{}}
	for range 2 {
		resp, err := c.Get(s.URL)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(b) != "data: 0\n\ndata: 1\n\ndata: 2\n\n" {
			t.Fatalf("stream %q, %v", b, err)
		}
		if got := resp.Trailer.Get("X-Settled"); got != "42" {
			t.Fatalf("trailer %q, want 42", got)
		}
	}
	if n := dials.Load(); n != 1 {
		t.Fatalf("dialed %d connections, want 1", n)
	}
}

// A body read to its length is done even if no read returned its end of
// file; one left unread closes its connection.
func TestReuseNeedsTheWholeBody(t *testing.T) {
	s, dials := server(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "5")
		w.Write([]byte("hello"))
	})
	c := &http.Client{Transport: &Transport{}}
	resp, err := c.Get(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = c.Get(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close() // unread
	if n := dials.Load(); n != 1 {
		t.Fatalf("dialed %d connections after the whole body, want 1", n)
	}
	resp, err = c.Get(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	if n := dials.Load(); n != 2 {
		t.Fatalf("dialed %d connections after an unread body, want 2", n)
	}
}

func TestHTTPSThroughDialTLS(t *testing.T) {
	var dials atomic.Int64
	s := httptest.NewUnstartedServer(http.HandlerFunc(echo))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			dials.Add(1)
		}
	}
	s.StartTLS()
	defer s.Close()
	var tlsDials atomic.Int64
	tr := &Transport{DialTLS: func(ctx context.Context, network, addr string) (net.Conn, error) {
		tlsDials.Add(1)
		d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true}}
		return d.DialContext(ctx, network, addr)
	}}
	c := &http.Client{Transport: tr}
	for i := range 5 {
		if got := post(t, c, s.URL, fmt.Sprint(i)); got != fmt.Sprintf("POST %d", i) {
			t.Fatalf("answer %q", got)
		}
	}
	if dials.Load() != 1 || tlsDials.Load() != 1 {
		t.Fatalf("dialed %d connections (%d through DialTLS), want 1", dials.Load(), tlsDials.Load())
	}
	tr.CloseIdleConnections()
	post(t, c, s.URL, "after")
	if n := dials.Load(); n != 2 {
		t.Fatalf("dialed %d connections after CloseIdleConnections, want 2", n)
	}
}

func TestARefusedDialIsECONNREFUSED(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String()
	l.Close()
	_, err = (&http.Client{Transport: &Transport{}}).Get(url)
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		t.Fatalf("err %v, want the dial's", err)
	}
}

// A server that sends an endless head is cut off at maxHeaderBytes, not
// buffered without end.
func TestAnEndlessHeadIsRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Write([]byte("HTTP/1.1 200 OK\r\n"))
		line := []byte("X-Junk: " + strings.Repeat("a", 4000) + "\r\n")
		for {
			if _, err := c.Write(line); err != nil {
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+l.Addr().String(), nil)
	_, err = (&http.Client{Transport: &Transport{}}).Do(req)
	if !errors.Is(err, errHeadTooLarge) {
		t.Fatalf("err %v, want %v", err, errHeadTooLarge)
	}
}

// Idle connections past the timeout are closed even if no request comes
// for their host again.
func TestIdleConnectionsExpire(t *testing.T) {
	s, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond) // the three overlap: three connections
		echo(w, r)
	})
	tr := &Transport{IdleTimeout: 50 * time.Millisecond}
	c := &http.Client{Transport: tr}
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { post(t, c, s.URL, "x") })
	}
	wg.Wait()
	idle := func() int {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		n := 0
		for _, l := range tr.idle {
			n += len(l)
		}
		return n
	}
	if n := idle(); n < 2 {
		t.Fatalf("%d idle connections after three overlapping requests", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for idle() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d idle connections left past their timeout", idle())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A connection in use when the idle ones are closed (the pins changed) is
// not kept when its answer ends.
func TestCloseIdleConnectionsReachesThoseInUse(t *testing.T) {
	s, dials := server(t, echo)
	tr := &Transport{}
	c := &http.Client{Transport: tr}
	resp, err := c.Post(s.URL, "text/plain", strings.NewReader("a"))
	if err != nil {
		t.Fatal(err)
	}
	tr.CloseIdleConnections()
	io.ReadAll(resp.Body)
	resp.Body.Close()
	post(t, c, s.URL, "b")
	if n := dials.Load(); n != 2 {
		t.Fatalf("dialed %d connections, want 2: the one from before CloseIdleConnections was kept", n)
	}
}
