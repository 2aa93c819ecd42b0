package provider_test

import (
	"crypto/ed25519"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/devnet"
	"github.com/agoranet/agora/internal/e2e"
	"github.com/agoranet/agora/x402"
)

// TestAForgedVoucherGetsNoAnswer: a provider checks a voucher's signature
// while its model runs; a forged one gets a 402 naming the bad signature
// and not a byte of the answer, streamed or not, and the payer's own
// voucher for the same room is then taken.
func TestAForgedVoucherGetsNoAnswer(t *testing.T) {
	d := e2e.Devnet(t, func(c *devnet.Config) { c.Providers = 1 })
	c, err := client.New(d.Node.RPC())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	alice, _ := d.Keyring.Get("alice")
	p := d.Providers[0]
	id := e2e.OpenChannel(t, c, alice, p.Address().String(), 1_000_000, 10_000)
	accepted := x402.PaymentRequirements{Scheme: x402.SchemeBatch, Network: x402.Network(devnet.ChainID)}
	voucher := func(key ed25519.PrivateKey, cum uint64) string {
		return e2e.Voucher(key, devnet.ChainID, id, cum, accepted)
	}
	post := func(payment string, stream bool) (int, string, string) {
		body := `{"model":"agora/tiny-lm","messages":[{"role":"user","content":"ROMEO:"}],"max_tokens":16,"stream":` + strconv.FormatBool(stream) + `}`
		return e2e.PostPaid(t, p.URL()+"/v1/chat/completions", body, payment)
	}
	_, forger, _ := ed25519.GenerateKey(nil)
	for _, stream := range []bool{false, true} {
		status, reason, body := post(voucher(forger, 1_000), stream)
		if status != http.StatusPaymentRequired || reason != x402.ReasonVoucherSignature {
			t.Errorf("stream %v, a forged voucher: %d %q; want 402 %s", stream, status, reason, x402.ReasonVoucherSignature)
		}
		if strings.Contains(body, "choices") || strings.Contains(body, "data:") {
			t.Errorf("stream %v, a forged voucher got an answer: %.200s", stream, body)
		}
	}
	for i, stream := range []bool{false, true} {
		if status, reason, body := post(voucher(alice.Private, uint64(i+1)*1_000), stream); status != http.StatusOK {
			t.Errorf("stream %v, the payer's voucher: %d %q %.200s", stream, status, reason, body)
		}
	}

	// The model stops once the signature fails: a forgery with a long
	// prompt costs a small part of what the honest answer to it costs
	// (the model reads the prompt a byte a step; it used to read all of
	// it, and 64 tokens, before looking at its context).
	long := `{"model":"agora/tiny-lm","messages":[{"role":"user","content":"` + strings.Repeat("To be, or not to be. ", 150) + `"}],"max_tokens":64}`
	timed := func(payment string) (time.Duration, int) {
		began := time.Now()
		status, _, _ := e2e.PostPaid(t, p.URL()+"/v1/chat/completions", long, payment)
		return time.Since(began), status
	}
	honest, status := timed(voucher(alice.Private, 100_000))
	if status != http.StatusOK {
		t.Fatalf("the long honest request: %d", status)
	}
	forged, status := timed(voucher(forger, 200_000))
	if status != http.StatusPaymentRequired {
		t.Fatalf("the long forged request: %d", status)
	}
	if forged > honest/4 {
		t.Errorf("a forged voucher took %v, the honest answer %v: the model ran on", forged, honest)
	}
}
