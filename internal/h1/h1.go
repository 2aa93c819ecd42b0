// Package h1 is an HTTP/1.1 client transport that does its work in the
// caller's goroutine: it writes the request and reads the response
// itself, where net/http's Transport hands every request to a
// connection's write loop and every response back from its read loop.
// On a gateway's hop to a provider, both cores busy, those hand-offs were
// most of what the hop's client side cost (docs/benchmarks.md,
// bench/gateway). It keeps idle connections per host, checks one is
// still open before reusing it, and leaves to a fallback transport what
// it does not do: proxies, HTTP/2, and https without a dialer.
package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Transport is an http.RoundTripper for http and (with DialTLS) https
// URLs. Its zero value is usable; a Transport must not be copied after
// first use.
type Transport struct {
	// DialTLS dials an https host:port and returns the connection after
	// its handshake (tlspin.Pins.DialTLSContext, say). Nil sends https
	// requests to Fallback.
	DialTLS func(ctx context.Context, network, addr string) (net.Conn, error)
	// Proxy, as http.Transport's, names the proxy for a request; nil is
	// none. A proxied request goes to Fallback.
	Proxy func(*http.Request) (*url.URL, error)
	// Fallback serves what this transport does not: a proxied request,
	// https without DialTLS, other schemes. Nil is http.DefaultTransport.
	Fallback http.RoundTripper
	// MaxIdlePerHost connections are kept open between requests (0: 256).
	MaxIdlePerHost int
	// IdleTimeout closes a connection idle that long instead of reusing
	// it (0: 50 s, under the 90 s our servers keep one open).
	IdleTimeout time.Duration

	mu    sync.Mutex
	idle  map[string][]*conn // oldest first
	gen   int                // CloseIdleConnections calls: older connections are not kept
	sweep *time.Timer        // closes expired idle connections, while there are any
}

var dialer = &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}

// maxHeaderBytes bounds a response's head, informational ones included,
// as net/http's Transport does: a provider is not trusted with the
// gateway's memory.
const maxHeaderBytes = 10 << 20

type conn struct {
	nc    net.Conn
	lr    limitedReader // nc, within a budget while a head is read
	br    *bufio.Reader // reads lr
	bw    *bufio.Writer // writes to cw
	cw    countingWriter
	gen   int       // the transport's gen when it was dialed
	since time.Time // idle since
}

// limitedReader fails once n bytes have been read.
type limitedReader struct {
	r io.Reader
	n int64
}

var errHeadTooLarge = fmt.Errorf("h1: the server's response head is over %d bytes", maxHeaderBytes)

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errHeadTooLarge
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// RoundTrip sends req on an idle connection to its host, or a new one.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	u := req.URL
	if !peekable || (u.Scheme != "http" && (u.Scheme != "https" || t.DialTLS == nil)) || t.proxied(req) {
		return t.fallback().RoundTrip(req)
	}
	if u.Host == "" {
		closeBody(req)
		return nil, errors.New("h1: request has no host")
	}
	addr := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		addr = net.JoinHostPort(u.Hostname(), port)
	}
	key := u.Scheme + "://" + addr
	ctx := req.Context()
	for {
		if err := ctx.Err(); err != nil { // a hedge's loser, say: no connection spent on it
			closeBody(req)
			return nil, err
		}
		c, reused, err := t.get(ctx, key, u.Scheme, addr)
		if err != nil {
			closeBody(req)
			return nil, err
		}
		resp, err := t.exchange(ctx, key, c, req)
		var nw nothingWritten
		if err != nil && reused && errors.As(err, &nw) && ctx.Err() == nil {
			// The connection had died idle and took none of the request:
			// it may go again, on another, if its body can.
			again, rerr := rewind(req)
			if rerr == nil {
				req = again
				continue
			}
			err = fmt.Errorf("%w; %v", err, rerr)
		}
		return resp, err
	}
}

func (t *Transport) fallback() http.RoundTripper {
	if t.Fallback != nil {
		return t.Fallback
	}
	return http.DefaultTransport
}

// proxied: a proxy is named for req, which only net/http's Transport
// speaks to.
func (t *Transport) proxied(req *http.Request) bool {
	if t.Proxy == nil {
		return false
	}
	p, err := t.Proxy(req)
	return err != nil || p != nil
}

// get takes the newest idle connection to key that is still open, or dials.
func (t *Transport) get(ctx context.Context, key, scheme, addr string) (*conn, bool, error) {
	limit := t.idleTimeout()
	for {
		t.mu.Lock()
		l := t.idle[key]
		var c *conn
		if n := len(l); n > 0 {
			c, l[n-1] = l[n-1], nil
			t.idle[key] = l[:n-1]
		}
		t.mu.Unlock()
		if c == nil {
			break
		}
		if time.Since(c.since) < limit && open(c) {
			return c, true, nil
		}
		c.nc.Close()
	}
	var nc net.Conn
	var err error
	if scheme == "https" {
		nc, err = t.DialTLS(ctx, "tcp", addr)
	} else {
		nc, err = dialer.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, false, err
	}
	t.mu.Lock()
	gen := t.gen
	t.mu.Unlock()
	c := &conn{nc: nc, lr: limitedReader{r: nc, n: math.MaxInt64}, cw: countingWriter{w: nc}, gen: gen}
	c.br, c.bw = bufio.NewReader(&c.lr), bufio.NewWriter(&c.cw)
	return c, false, nil
}

// open reports whether an idle connection can take a request: the server
// has neither closed it nor sent anything unasked.
func open(c *conn) bool {
	if c.br.Buffered() > 0 {
		return false
	}
	return peerOpen(c.nc)
}

func (t *Transport) idleTimeout() time.Duration {
	if t.IdleTimeout > 0 {
		return t.IdleTimeout
	}
	return 50 * time.Second
}

// put keeps c for the next request to key, or closes it: a connection
// from before the last CloseIdleConnections is not kept.
func (t *Transport) put(key string, c *conn) {
	most := t.MaxIdlePerHost
	if most <= 0 {
		most = 256
	}
	c.since = time.Now()
	t.mu.Lock()
	if t.idle == nil {
		t.idle = map[string][]*conn{}
	}
	if c.gen == t.gen && len(t.idle[key]) < most {
		t.idle[key] = append(t.idle[key], c)
		c = nil
		if t.sweep == nil {
			t.sweep = time.AfterFunc(t.idleTimeout(), t.expire)
		}
	}
	t.mu.Unlock()
	if c != nil {
		c.nc.Close()
	}
}

// expire closes the connections idle past the timeout (a host no longer
// asked keeps none open) and runs again while any are left.
func (t *Transport) expire() {
	limit := t.idleTimeout()
	var old []*conn
	t.mu.Lock()
	for key, l := range t.idle {
		n := 0
		for n < len(l) && time.Since(l[n].since) >= limit {
			n++
		}
		old = append(old, l[:n]...)
		if n == len(l) {
			delete(t.idle, key)
		} else {
			t.idle[key] = append(l[:0], l[n:]...)
		}
	}
	if len(t.idle) > 0 {
		t.sweep.Reset(limit / 2)
	} else {
		t.sweep = nil
	}
	t.mu.Unlock()
	for _, c := range old {
		c.nc.Close()
	}
}

// CloseIdleConnections closes the connections kept between requests (a
// router's pins changed, say); those in use are closed, not kept, when
// their answers end.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.gen++
	t.mu.Unlock()
	for _, l := range idle {
		for _, c := range l {
			c.nc.Close()
		}
	}
	if f, ok := t.fallback().(interface{ CloseIdleConnections() }); ok {
		f.CloseIdleConnections()
	}
}

// nothingWritten is a request that failed before any of it reached the
// connection.
type nothingWritten struct{ error }

func (e nothingWritten) Unwrap() error { return e.error }

// aLongTimeAgo is a deadline that has passed: setting it stops a blocked
// read or write at once.
var aLongTimeAgo = time.Unix(1, 0)

// exchange writes req on c and reads the response's head; the body is
// read by the caller, and c goes back to the idle ones when it has been
// read to its end and closed.
func (t *Transport) exchange(ctx context.Context, key string, c *conn, req *http.Request) (*http.Response, error) {
	if err := ctx.Err(); err != nil {
		c.nc.Close()
		closeBody(req)
		return nil, err
	}
	// Cancelling stops a blocked read or write at once and frees the
	// socket (beneath TLS: its close would try to write an alert) even
	// if the body is never closed; the connection is not reused.
	cancelled := context.AfterFunc(ctx, func() {
		c.nc.SetDeadline(aLongTimeAgo)
		raw := c.nc
		if u, ok := raw.(interface{ NetConn() net.Conn }); ok {
			raw = u.NetConn()
		}
		raw.Close()
	})
	fail := func(err error) (*http.Response, error) {
		cancelled()
		c.nc.Close()
		if cerr := ctx.Err(); cerr != nil {
			return nil, fmt.Errorf("h1: %w (%v)", cerr, err)
		}
		return nil, err
	}
	c.cw.n = 0
	if err := req.Write(c.bw); err != nil {
		if c.cw.n == 0 {
			err = nothingWritten{err}
		}
		return fail(err)
	}
	if err := c.bw.Flush(); err != nil {
		if c.cw.n == 0 {
			err = nothingWritten{err}
		}
		return fail(err)
	}
	c.lr.n = maxHeaderBytes
	resp, err := http.ReadResponse(c.br, req)
	// An informational answer (100 Continue, 103 Early Hints) precedes
	// the real one, as net/http's Transport reads it.
	for err == nil && resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
		resp, err = http.ReadResponse(c.br, req)
	}
	c.lr.n = math.MaxInt64
	if err != nil {
		return fail(err)
	}
	b := &body{rc: resp.Body, c: c, t: t, key: key, ctx: ctx, cancelled: cancelled, left: resp.ContentLength,
		reuse: !resp.Close && !req.Close && resp.StatusCode != http.StatusSwitchingProtocols}
	resp.Body = b
	if b.left == 0 || resp.Body == http.NoBody { // no body (HEAD, 204, 304): no read need see its end
		b.eof.Store(true)
	}
	return resp, nil
}

// body is a response's body; it gives its connection back on Close, if
// it was read to its end.
type body struct {
	rc        io.ReadCloser
	c         *conn
	t         *Transport
	key       string
	ctx       context.Context
	cancelled func() bool
	reuse     bool
	left      int64       // of a body of known length, bytes not yet read (-1: unknown)
	eof       atomic.Bool // read to its end
	closed    atomic.Bool
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if b.left > 0 {
		b.left -= int64(n)
	}
	switch {
	case err == io.EOF || (b.left == 0 && err == nil):
		b.eof.Store(true)
	case err != nil && b.ctx.Err() != nil:
		err = fmt.Errorf("h1: %w (%v)", b.ctx.Err(), err)
	}
	return n, err
}

// Close may run while a Read is blocked (a hedge's loser, a stream cut
// off): a body not read to its end closes its connection first, which
// ends that Read, rather than reading the rest.
func (b *body) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	if !b.eof.Load() {
		b.cancelled()
		b.c.nc.Close()
		b.rc.Close()
		return nil
	}
	b.rc.Close()
	if b.cancelled() && b.reuse { // no deadline was set: the connection is as good as new
		b.t.put(b.key, b.c)
		return nil
	}
	b.c.nc.Close()
	return nil
}

type countingWriter struct {
	w io.Writer
	n int
}

func (cw *countingWriter) Write(p []byte) (int, error) {
	n, err := cw.w.Write(p)
	cw.n += n
	return n, err
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// rewind is req with its body from the start, for a second attempt.
func rewind(req *http.Request) (*http.Request, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return req, nil
	}
	if req.GetBody == nil {
		return nil, errors.New("h1: the connection closed before the request was sent, and its body cannot be sent again")
	}
	b, err := req.GetBody()
	if err != nil {
		return nil, err
	}
	r := *req
	r.Body = b
	return &r, nil
}
