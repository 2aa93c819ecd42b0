package sig

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"
)

// TestAgreesWithTheStandardLibrary: valid, tampered and malformed
// signatures get the same verdict as from crypto/ed25519.
func TestAgreesWithTheStandardLibrary(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	msg := []byte("a receipt")
	good := ed25519.Sign(priv, msg)
	bad := append([]byte(nil), good...)
	bad[3] ^= 1
	for _, c := range []struct {
		name     string
		pub, sig []byte
	}{{"valid", pub, good}, {"tampered", pub, bad}, {"short signature", pub, good[:63]}, {"short key", pub[:31], good}} {
		want := len(c.pub) == ed25519.PublicKeySize && len(c.sig) == ed25519.SignatureSize && ed25519.Verify(c.pub, msg, c.sig)
		if got := Verify(c.pub, msg, c.sig); got != want {
			t.Errorf("%s: Verify = %v, crypto/ed25519 says %v", c.name, got, want)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	msg := make([]byte, 200)
	s := ed25519.Sign(priv, msg)
	for b.Loop() {
		Verify(pub, msg, s)
	}
}
