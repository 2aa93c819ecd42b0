package channelpb

import (
	"crypto/ed25519"
	"testing"
)

// TestARevokedSessionKey: a session key whose revocation takes effect at
// height 100 signs claims the chain takes until then, and nothing a payee
// takes off chain (height 0) once the revocation is announced; the payer's
// key always signs.
func TestARevokedSessionKey(t *testing.T) {
	payerPub, payer, _ := ed25519.GenerateKey(nil)
	sessionPub, session, _ := ed25519.GenerateKey(nil)
	c := &Channel{Id: 1, PayerKey: payerPub, SessionKey: sessionPub}
	byPayer, bySession := SignVoucher(payer, "c", 1, 10), SignVoucher(session, "c", 1, 10)
	if VerifyVoucher("c", c, bySession, 0) != nil || VerifyVoucher("c", c, bySession, 99) != nil {
		t.Fatal("a live session key's voucher was refused")
	}
	c.SessionRevokedAt = 100
	for _, h := range []int64{0, 100, 101} {
		if VerifyVoucher("c", c, bySession, h) == nil {
			t.Errorf("a revoked session key's voucher verified at height %d", h)
		}
		if VerifyVoucher("c", c, byPayer, h) != nil {
			t.Errorf("the payer's voucher was refused at height %d", h)
		}
	}
	if VerifyVoucher("c", c, bySession, 99) != nil {
		t.Error("a voucher the chain should still take before the revocation's height was refused")
	}
}
