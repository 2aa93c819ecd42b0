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
		for range 2 { // the second time with the key's expanded form kept
			if got := Verify(c.pub, msg, c.sig); got != want {
				t.Errorf("%s: Verify = %v, crypto/ed25519 says %v", c.name, got, want)
			}
		}
	}
}

// TestSignIsTheStandardSignature: ed25519 is deterministic, so Sign must
// give crypto/ed25519's bytes for every key and message.
func TestSignIsTheStandardSignature(t *testing.T) {
	for i := range 50 {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		msg := make([]byte, i*7)
		rand.Read(msg)
		if got, want := Sign(priv, msg), ed25519.Sign(priv, msg); string(got) != string(want) {
			t.Fatalf("Sign = %x, crypto/ed25519 gives %x", got, want)
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
