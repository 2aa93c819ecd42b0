package tlspin

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestPins: a pinned transport reaches a server only if it presents the
// key registered for its host:port, whatever CA signed it; a client that
// does not know the self-signed certificate is refused.
func TestPins(t *testing.T) {
	cert, err := SelfSigned("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	other, _ := SelfSigned("127.0.0.1")
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	srv.TLS = ServerConfig(cert)
	srv.StartTLS()
	defer srv.Close()

	get := func(tr http.RoundTripper) error {
		resp, err := (&http.Client{Transport: tr}).Get(srv.URL)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	pins := NewPins()
	if err := get(pins.Transport(nil)); !errors.Is(err, ErrNoPin) {
		t.Errorf("no pin registered: %v", err)
	}
	pins.Replace(map[string][][]byte{srv.URL: {KeyHash(other.Leaf)}})
	if err := get(pins.Transport(nil)); err == nil || !strings.Contains(err.Error(), "not the registered provider") {
		t.Errorf("another key registered: %v", err)
	}
	pins.Replace(map[string][][]byte{srv.URL: {KeyHash(other.Leaf), KeyHash(cert.Leaf)}})
	if err := get(pins.Transport(nil)); err != nil {
		t.Errorf("the registered key: %v", err)
	}
	// A client that trusts only the system's CAs refuses the self-signed
	// certificate.
	if err := get(http.DefaultTransport); err == nil {
		t.Error("a client that does not trust the certificate reached the server")
	}
	// A proxy in the environment does not tunnel past the pin (before,
	// net/http's CONNECT path did TLS with no pin check at all).
	t.Setenv("HTTPS_PROXY", "http://127.0.0.1:1")
	t.Setenv("HTTP_PROXY", "http://127.0.0.1:1")
	pins.Replace(map[string][][]byte{srv.URL: {KeyHash(other.Leaf)}})
	if err := get(pins.Transport(nil)); err == nil || !strings.Contains(err.Error(), "not the registered provider") {
		t.Errorf("with a proxy in the environment, another key registered: %v", err)
	}
	// A connection made under a pin is not reused once the pin changes.
	pins.Replace(map[string][][]byte{srv.URL: {KeyHash(cert.Leaf)}})
	tr := pins.Transport(nil)
	if err := get(tr); err != nil {
		t.Fatal(err)
	}
	pins.Replace(map[string][][]byte{srv.URL: {KeyHash(other.Leaf)}})
	if err := get(tr); err == nil {
		t.Error("a pooled connection outlived the change of its pin")
	}
}
