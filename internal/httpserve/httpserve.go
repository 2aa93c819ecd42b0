// Package httpserve serves an HTTP handler in the background the way every
// Agora daemon does: header reads bounded, idle connections reaped, and a
// Shutdown that returns only once the serving goroutine has.
package httpserve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Server is a handler being served on a listener.
type Server struct {
	ln   net.Listener
	srv  *http.Server
	done chan struct{}
}

// Listen binds addr ("127.0.0.1:0" picks a free port) and serves h on it
// until Shutdown. Serve errors other than a shutdown go to log.
func Listen(addr string, h http.Handler, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	s := &Server{ln: ln, done: make(chan struct{}),
		// A slow client may not hold a connection open by dribbling headers.
		srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("serve", "addr", ln.Addr().String(), "err", err)
		}
	}()
	return s, nil
}

// URL is the http:// address being served.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Shutdown stops taking connections and waits for those in flight until
// ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	<-s.done
	return err
}
