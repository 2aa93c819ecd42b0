package gateway_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/agoranet/agora/internal/devnet"
	"github.com/agoranet/agora/internal/e2e"
)

// TestTLS: with TLS the devnet's providers and gateway serve HTTPS with a
// self-signed certificate; each provider registered the certificate's key
// on chain and the gateway reaches it by that key alone (no CA involved).
// A client that trusts the certificate is answered, by the gateway and by
// a provider; one that does not is refused.
func TestTLS(t *testing.T) {
	d := e2e.Devnet(t, func(c *devnet.Config) { c.TLS = true; c.Paid = false })
	if !strings.HasPrefix(d.Gateway.URL(), "https://") || !strings.HasPrefix(d.Providers[0].URL(), "https://") {
		t.Fatalf("gateway %s, provider %s: want https", d.Gateway.URL(), d.Providers[0].URL())
	}
	pemCert, err := os.ReadFile(d.TLSCert)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pemCert)
	trusting := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	post := func(c *http.Client, url string, auth bool) (*http.Response, string, error) {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(chat))
		req.Header.Set("Content-Type", "application/json")
		if auth {
			req.Header.Set("Authorization", "Bearer "+devnet.APIKey)
		}
		resp, err := c.Do(req)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b), nil
	}
	e2e.Eventually(t, 20*time.Second, "the gateway answers over TLS from a TLS provider", func() error {
		resp, body, err := post(trusting, d.Gateway.URL()+"/v1/chat/completions", true)
		if err == nil && resp.StatusCode != http.StatusOK {
			return &statusError{resp.StatusCode, body}
		}
		return err
	})
	if resp, body, err := post(trusting, d.Providers[0].URL()+"/v1/chat/completions", false); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("a provider over TLS: %v %v", err, body)
	}
	untrusting := &http.Client{Timeout: 10 * time.Second}
	for _, url := range []string{d.Gateway.URL(), d.Providers[0].URL()} {
		if _, _, err := post(untrusting, url+"/v1/chat/completions", true); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("%s: a client that does not trust the certificate: %v; want a certificate error", url, err)
		}
	}
}

type statusError struct {
	status int
	body   string
}

func (e *statusError) Error() string { return http.StatusText(e.status) + ": " + e.body }
