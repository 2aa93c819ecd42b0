// Package httpserve serves an HTTP handler in the background the way every
// Agora daemon does: header and body reads bounded in time and size, idle
// connections reaped, requests in flight capped (429 with Retry-After
// beyond the cap), and a Shutdown that drains the requests in flight and
// returns only once the serving goroutine has.
package httpserve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/agoranet/agora/internal/tlspin"
)

// Options bound what a server accepts. Streams are not cut: there is no
// write timeout, only limits on reading the request.
type Options struct {
	// HeaderTimeout bounds reading a request's headers, BodyTimeout its
	// body, IdleTimeout a kept-alive connection's wait for the next one.
	HeaderTimeout, BodyTimeout, IdleTimeout time.Duration
	// MaxBody is the largest request body; BodyLimits raise (or lower) it
	// for paths under a prefix, like blob uploads.
	MaxBody    int64
	BodyLimits map[string]int64
	// MaxInFlight requests are served at once; more get 429 with
	// Retry-After, which routers take as "try another provider". Health
	// and metrics are exempt, so probes see a busy server as alive.
	MaxInFlight int
	// TLS, when set, serves HTTPS with it (tlspin.ServerConfig).
	TLS *tls.Config
}

// WithTLS makes o serve HTTPS with the PEM certificate and key in
// certFile and keyFile (both empty: plain HTTP) and returns the
// certificate key's pin (tlspin.KeyHash), nil for plain HTTP.
func (o *Options) WithTLS(certFile, keyFile string) ([]byte, error) {
	if certFile == "" && keyFile == "" {
		return nil, nil
	}
	if certFile == "" || keyFile == "" {
		return nil, errors.New("serve HTTPS with both --tls-cert and --tls-key (PEM files), or neither for plain HTTP")
	}
	cert, pin, err := tlspin.Load(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	o.TLS = tlspin.ServerConfig(cert)
	return pin, nil
}

// DefaultOptions suit the daemons' APIs: JSON bodies of a few MiB,
// answers streamed for as long as they take.
func DefaultOptions() Options {
	return Options{HeaderTimeout: 10 * time.Second, BodyTimeout: 30 * time.Second, IdleTimeout: 90 * time.Second,
		MaxBody: 8 << 20, MaxInFlight: 1024}
}

// Server is a handler being served on a listener.
type Server struct {
	ln     net.Listener
	scheme string // http or https
	srv    *http.Server
	done   chan struct{}
}

// Listen binds addr ("127.0.0.1:0" picks a free port) and serves h on it
// with the default options until Shutdown. Serve errors other than a
// shutdown go to log.
func Listen(addr string, h http.Handler, log *slog.Logger) (*Server, error) {
	return ListenWith(addr, h, log, DefaultOptions())
}

// ListenWith is Listen with options; zero fields take the defaults.
func ListenWith(addr string, h http.Handler, log *slog.Logger, o Options) (*Server, error) {
	o = o.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	h = withProfiles(h, ln.Addr())
	scheme := "http"
	if o.TLS != nil {
		ln, scheme = tls.NewListener(ln, o.TLS), "https"
	}
	s := &Server{ln: ln, scheme: scheme, done: make(chan struct{}),
		// A slow client may not hold a connection open by dribbling
		// headers (ReadHeaderTimeout) or a body (limit, below).
		srv: &http.Server{Handler: limit(h, o), ReadHeaderTimeout: o.HeaderTimeout, IdleTimeout: o.IdleTimeout, MaxHeaderBytes: 64 << 10,
			// Failed handshakes (a client that does not trust the
			// certificate) are the client's business: debug, not stderr.
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("serve", "addr", ln.Addr().String(), "err", err)
		}
	}()
	return s, nil
}

func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.HeaderTimeout <= 0 {
		o.HeaderTimeout = d.HeaderTimeout
	}
	if o.BodyTimeout <= 0 {
		o.BodyTimeout = d.BodyTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = d.IdleTimeout
	}
	if o.MaxBody <= 0 {
		o.MaxBody = d.MaxBody
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = d.MaxInFlight
	}
	return o
}

// limit applies the body limits and the in-flight cap.
func limit(h http.Handler, o Options) http.Handler {
	slots := make(chan struct{}, o.MaxInFlight)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; p != "/healthz" && p != "/metrics" {
			select {
			case slots <- struct{}{}:
				defer func() { <-slots }()
			default:
				w.Header().Set("Retry-After", "1")
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusTooManyRequests)
				fmt.Fprintf(w, `{"error":{"message":"this server is serving %d requests, its limit; retry in a second or use another","type":"rate_limit_error","code":"server_busy"}}`+"\n", o.MaxInFlight)
				return
			}
		}
		max := o.MaxBody
		for prefix, n := range o.BodyLimits { // a handful of prefixes
			if strings.HasPrefix(r.URL.Path, prefix) {
				max = n
			}
		}
		if r.ContentLength > max {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			fmt.Fprintf(w, `{"error":{"message":"the request body is %d bytes; the limit here is %d","type":"invalid_request_error","code":"request_too_large"}}`+"\n", r.ContentLength, max)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, max)
		if r.ContentLength != 0 && r.Body != http.NoBody {
			// The body must arrive within BodyTimeout (a large one gets
			// time in proportion, at 1 MiB/s). Once it has, the deadline
			// is lifted: the server's read that watches for the client
			// leaving must not time out while an answer streams.
			rc := http.NewResponseController(w)
			_ = rc.SetReadDeadline(time.Now().Add(o.BodyTimeout + time.Duration(max>>20)*time.Second))
			r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
		}
		h.ServeHTTP(w, r)
	})
}

// deadlineBody lifts the connection's read deadline when the body ends.
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// URL is the http:// address being served.
func (s *Server) URL() string { return s.scheme + "://" + s.ln.Addr().String() }

// Shutdown stops taking connections and waits for the requests in flight
// (streams included) to finish, until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	<-s.done
	return err
}
