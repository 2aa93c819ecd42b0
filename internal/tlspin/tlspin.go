// Package tlspin is TLS with an identity the chain vouches for. A
// certificate proves a domain name, not that the server behind it is the
// provider the chain registered, so a provider registers the SHA-256 of
// its certificate's public key (SubjectPublicKeyInfo) with its endpoint,
// and routers connect to an https endpoint only if the server presents
// that key. A self-signed certificate is as good as any: the chain is the
// authority, not a CA.
package tlspin

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"
)

// KeyHash is the pin of a certificate: sha256 of its SubjectPublicKeyInfo.
// It survives renewing the certificate with the same key.
func KeyHash(cert *x509.Certificate) []byte {
	h := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return h[:]
}

// Load reads a PEM certificate and key and returns them with the pin.
func Load(certFile, keyFile string) (tls.Certificate, []byte, error) {
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return c, nil, fmt.Errorf("tls: load %s and %s: %w", certFile, keyFile, err)
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return c, nil, fmt.Errorf("tls: %s: %w", certFile, err)
	}
	c.Leaf = leaf
	return c, KeyHash(leaf), nil
}

// SelfSigned makes a certificate for hosts (names or IPs), valid for a
// year: for tests, and for operators who rely on the chain's pin alone.
func SelfSigned(hosts ...string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "agora"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// ServerConfig serves cert, TLS 1.2 and up.
func ServerConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
}

// ErrNoPin is an https endpoint the chain registered no key for.
var ErrNoPin = errors.New("tls: no certificate key is registered on chain for this endpoint")

// Pins are the registered keys of https endpoints, by host:port; a router
// sets them from the chain's provider listing. Two providers may register
// one endpoint (one of them falsely): a server presenting either's key is
// reached, so a false registration cannot cut the true provider off, and
// the receipt it signs says which provider answered.
type Pins struct {
	mu sync.RWMutex
	m  map[string][][]byte
	// transports built from the pins, whose idle connections (checked
	// against the pins of their day) are closed when the pins change.
	transports []idler
}

type idler interface{ CloseIdleConnections() }

// NewPins returns an empty set.
func NewPins() *Pins { return &Pins{m: map[string][][]byte{}} }

// Replace sets the pins to pins, endpoint URL to the key hashes
// registered for it; http endpoints are left out.
func (p *Pins) Replace(pins map[string][][]byte) {
	m := make(map[string][][]byte, len(pins))
	for endpoint, keys := range pins {
		if hp, ok := hostPort(endpoint); ok {
			m[hp] = append(m[hp], keys...)
		}
	}
	p.mu.Lock()
	changed := !samePins(p.m, m)
	p.m = m
	ts := p.transports
	p.mu.Unlock()
	if changed {
		for _, t := range ts {
			t.CloseIdleConnections()
		}
	}
}

func samePins(a, b map[string][][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, x := range a {
		y, ok := b[k]
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !bytes.Equal(x[i], y[i]) {
				return false
			}
		}
	}
	return true
}

func hostPort(endpoint string) (string, bool) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return "", false
	}
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), "443"), true
	}
	return u.Host, true
}

func (p *Pins) get(hostport string) [][]byte {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.m[hostport]
}

// Transport is base (http.DefaultTransport's settings if nil) with TLS
// connections checked against the pins: the server must present the key
// the chain registered for the host:port dialed, whatever CA signed it,
// or the connection is refused.
func (p *Pins) Transport(base *http.Transport) *http.Transport {
	if base == nil {
		base = http.DefaultTransport.(*http.Transport)
	}
	t := base.Clone()
	// A proxy would tunnel TLS past DialTLSContext, and so past the pin:
	// providers are dialed directly.
	t.Proxy = nil
	t.DialTLSContext = p.DialTLSContext
	t.ForceAttemptHTTP2 = false // DialTLSContext's connections are HTTP/1.1 here
	p.Track(t)
	return t
}

var dialer = &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}

// DialTLSContext dials addr (host:port) and completes a TLS handshake in
// which the server presents a key pinned for addr, or fails.
func (p *Pins) DialTLSContext(ctx context.Context, network, addr string) (net.Conn, error) {
	pin := p.get(addr)
	if len(pin) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNoPin, addr)
	}
	raw, err := dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	host, _, _ := net.SplitHostPort(addr)
	c := tls.Client(raw, p.ClientConfig(host, pin))
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return c, nil
}

// Track closes t's idle connections whenever the pins change, so that no
// connection checked against a pin since replaced is used again.
func (p *Pins) Track(t interface{ CloseIdleConnections() }) {
	p.mu.Lock()
	p.transports = append(p.transports, t)
	p.mu.Unlock()
}

// ClientConfig verifies the server by pin alone: its key must be one of
// pins.
func (p *Pins) ClientConfig(serverName string, pins [][]byte) *tls.Config {
	return &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12,
		// The chain's pin is the authority, not a CA: the chain of trust
		// is checked below, by key.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("tls: the server sent no certificate")
			}
			got := KeyHash(cs.PeerCertificates[0])
			for _, pin := range pins {
				if bytes.Equal(got, pin) {
					return nil
				}
			}
			return fmt.Errorf("tls: %s presented key %x, which the chain did not register for it: not the registered provider", serverName, got)
		}}
}

// WritePEM saves cert and its key as PEM files (the key readable only by
// its owner), for Load.
func WritePEM(cert tls.Certificate, certFile, keyFile string) error {
	der, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	var out []byte
	for _, c := range cert.Certificate {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c})...)
	}
	return os.WriteFile(certFile, out, 0o644)
}
