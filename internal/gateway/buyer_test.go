package gateway_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/devnet"
	"github.com/agoranet/agora/internal/e2e"
	"github.com/agoranet/agora/x402"
)

// TestAMaliciousBuyerGetsNothingUnpaid: a buyer that pays the gateway
// with x402 and cheats: replays a voucher for a second answer, reuses an
// exact authorization, pays on a channel about to expire (the gateway's
// gate used to believe the height was 0, finding 3), gets no answer for
// any of it.
func TestAMaliciousBuyerGetsNothingUnpaid(t *testing.T) {
	d := e2e.Devnet(t, nil)
	c, err := client.New(d.Node.RPC())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	alice, _ := d.Keyring.Get("alice")
	gw := d.Gateway.URL() + "/v1/chat/completions"
	post := func(payment string) (int, string) {
		status, reason, body := e2e.PostPaid(t, gw, chat, payment)
		if status == http.StatusOK {
			return status, body
		}
		return status, reason
	}
	// The gateway's price and address, from its 402.
	resp, err := http.Post(gw, "application/json", strings.NewReader(chat))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var pr x402.PaymentRequired
	if err := x402.Decode(resp.Header.Get(x402.HeaderRequired), &pr); err != nil {
		t.Fatal(err)
	}
	batch, exact := pr.Accepts[0], pr.Accepts[1]
	price, _ := x402.Amount(batch.Amount)
	open := func(blocks int64) uint64 { return e2e.OpenChannel(t, c, alice, batch.PayTo, 100*price, blocks) }
	voucher := func(id, cum uint64) string { return e2e.Voucher(alice.Private, devnet.ChainID, id, cum, batch) }

	// A voucher pays for one answer; the same voucher again pays nothing.
	id := open(10_000)
	v := voucher(id, price)
	if status, body := post(v); status != 200 {
		t.Fatalf("a good voucher: %d %s", status, body)
	}
	if status, reason := post(v); status != http.StatusPaymentRequired || reason != x402.ReasonCumulativeMismatch {
		t.Errorf("a replayed voucher: %d %q; want 402 %s", status, reason, x402.ReasonCumulativeMismatch)
	}

	// An exact authorization pays for one answer.
	nonce := make([]byte, 32)
	rand.Read(nonce)
	now := time.Now().Unix()
	a := &bankpb.Authorization{From: alice.Address().String(), To: exact.PayTo, Amount: coin.New(coin.Stable, price), ValidAfter: now - 10, ValidBefore: now + 600, Nonce: nonce}
	bankpb.SignAuthorization(alice.Private, devnet.ChainID, a)
	payload, _ := json.Marshal(x402.ExactPayload{Signature: base64.StdEncoding.EncodeToString(a.Signature), Authorization: x402.ExactAuthorization{
		From: a.From, To: a.To, Value: strconv.FormatUint(price, 10), ValidAfter: strconv.FormatInt(a.ValidAfter, 10), ValidBefore: strconv.FormatInt(a.ValidBefore, 10),
		Nonce: hex.EncodeToString(nonce), PublicKey: base64.StdEncoding.EncodeToString(a.PublicKey)}})
	auth, _ := x402.Encode(x402.PaymentPayload{X402Version: x402.Version, Accepted: exact, Payload: payload})
	if status, body := post(auth); status != 200 {
		t.Fatalf("an exact payment: %d %s", status, body)
	}
	if status, reason := post(auth); status != http.StatusPaymentRequired || reason != x402.ReasonNonceUsed {
		t.Errorf("a reused authorization: %d %q; want 402 %s", status, reason, x402.ReasonNonceUsed)
	}

	// A channel within the gate's expiry margin (20 blocks) pays nothing:
	// its payer could take the deposit back before the gateway claims.
	soon := open(22)
	n := uint64(0)
	e2e.Eventually(t, 20*time.Second, "a voucher on an expiring channel is refused", func() error {
		n++
		status, reason := post(voucher(soon, n*price))
		if status == 200 {
			return fmt.Errorf("the gateway answered on channel %d, about to expire", soon)
		}
		if reason != x402.ReasonChannelExpiring {
			t.Fatalf("refused with %d %q, want %s", status, reason, x402.ReasonChannelExpiring)
		}
		return nil
	})
}
