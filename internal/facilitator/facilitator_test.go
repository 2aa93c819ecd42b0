package facilitator_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/devnet"
	"github.com/agoranet/agora/internal/e2e"
	"github.com/agoranet/agora/x402"
)

func TestFacilitator(t *testing.T) {
	d := e2e.Devnet(t, func(c *devnet.Config) { c.Providers = 0 })
	base := d.Facilitator.URL()

	resp, err := http.Get(base + "/supported")
	if err != nil {
		t.Fatal(err)
	}
	var sup x402.SupportedResponse
	json.NewDecoder(resp.Body).Decode(&sup)
	resp.Body.Close()
	if len(sup.Kinds) != 2 || sup.Kinds[0].Network != "cosmos:"+devnet.ChainID || len(sup.Signers["cosmos:*"]) != 1 {
		t.Fatalf("/supported: %+v", sup)
	}

	alice, _ := d.Keyring.Get("alice")
	bob, _ := d.Keyring.Get("bob")
	reqs := x402.PaymentRequirements{Scheme: x402.SchemeExact, Network: x402.Network(devnet.ChainID), Amount: "777", Asset: coin.Stable, PayTo: bob.Address().String(), MaxTimeoutSeconds: 60}
	nonce := make([]byte, 32)
	rand.Read(nonce)
	now := time.Now().Unix()
	a := &bankpb.Authorization{From: alice.Address().String(), To: bob.Address().String(), Amount: coin.New(coin.Stable, 777), ValidAfter: now - 10, ValidBefore: now + 600, Nonce: nonce}
	bankpb.SignAuthorization(alice.Private, devnet.ChainID, a)
	payload, _ := json.Marshal(x402.ExactPayload{Signature: base64.StdEncoding.EncodeToString(a.Signature), Authorization: x402.ExactAuthorization{
		From: a.From, To: a.To, Value: "777", ValidAfter: strconv.FormatInt(a.ValidAfter, 10), ValidBefore: strconv.FormatInt(a.ValidBefore, 10),
		Nonce: hex.EncodeToString(nonce), PublicKey: base64.StdEncoding.EncodeToString(a.PublicKey)}})
	call := func(path string, rq x402.PaymentRequirements, out any) {
		body, _ := json.Marshal(x402.VerifyRequest{X402Version: 2, PaymentRequirements: rq,
			PaymentPayload: x402.PaymentPayload{X402Version: 2, Accepted: rq, Payload: payload}})
		resp, err := http.Post(base+path, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
	var v x402.VerifyResponse
	call("/verify", reqs, &v)
	if !v.IsValid || v.Payer != alice.Address().String() {
		t.Fatalf("/verify of a good payment: %+v", v)
	}
	wrong := reqs
	wrong.Amount = "778"
	call("/verify", wrong, &v)
	if v.IsValid || v.InvalidReason != x402.ReasonValueMismatch {
		t.Errorf("/verify of a wrong amount: %+v", v)
	}
	c, _ := client.New(d.Node.RPC())
	ctx := context.Background()
	before, _ := c.Balance(ctx, bob.Address(), coin.Stable)
	var s x402.SettlementResponse
	call("/settle", reqs, &s)
	if !s.Success || len(s.Transaction) != 64 || s.Amount != "777" {
		t.Fatalf("/settle: %+v", s)
	}
	if after, _ := c.Balance(ctx, bob.Address(), coin.Stable); after != before+777 {
		t.Errorf("bob got %d, want 777", after-before)
	}
	first := s
	call("/settle", reqs, &s)
	if !s.Success || s.Transaction != first.Transaction {
		t.Errorf("a second /settle of the same authorization: %+v; want the first result %+v", s, first)
	}
	if after, _ := c.Balance(ctx, bob.Address(), coin.Stable); after != before+777 {
		t.Errorf("after two settles bob got %d, want 777 once", after-before)
	}
	// Nobody's fees are paid but registered providers' and its payees'.
	carol := reqs
	carol.PayTo = alice.Address().String()
	call("/verify", carol, &v)
	if v.IsValid || v.InvalidReason != x402.ReasonRecipientMismatch {
		t.Errorf("/verify of a payment to a stranger: %+v", v)
	}
}

// TestFacilitatorHoldsVouchersToThePrice is finding 5 of the buyer-and-
// seller review: /verify of a voucher ignored the price (a voucher of 1
// verified against 5,000), /settle of one voucher succeeded any number of
// times, so one voucher could pay for many answers, and a channel
// expiring in the next block was accepted. Now a voucher must rise by
// the price above what its channel has claimed or settled, a settlement
// happens once (again: the first result), and the expiry margin applies.
func TestFacilitatorHoldsVouchersToThePrice(t *testing.T) {
	d := e2e.Devnet(t, func(c *devnet.Config) { c.Providers = 0 })
	base := d.Facilitator.URL()
	alice, _ := d.Keyring.Get("alice")
	bob, _ := d.Keyring.Get("bob")
	c, _ := client.New(d.Node.RPC())
	defer c.Close()
	open := func(blocks int64) uint64 {
		return e2e.OpenChannel(t, c, alice, bob.Address().String(), 100_000, blocks)
	}
	reqs := x402.PaymentRequirements{Scheme: x402.SchemeBatch, Network: x402.Network(devnet.ChainID), Amount: "5000", Asset: coin.Stable, PayTo: bob.Address().String(), MaxTimeoutSeconds: 60}
	call := func(path string, id, cum uint64, out any) {
		body, _ := json.Marshal(x402.VerifyRequest{X402Version: 2, PaymentRequirements: reqs, PaymentPayload: e2e.VoucherPayload(alice.Private, devnet.ChainID, id, cum, reqs)})
		resp, err := http.Post(base+path, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		json.NewDecoder(resp.Body).Decode(out)
	}
	id := open(10_000)
	var v x402.VerifyResponse
	if call("/verify", id, 1, &v); v.IsValid || v.InvalidReason != x402.ReasonCumulativeMismatch {
		t.Errorf("/verify of a voucher of 1 for a price of 5000: %+v", v)
	}
	if call("/verify", id, 5000, &v); !v.IsValid {
		t.Fatalf("/verify of a voucher of 5000: %+v", v)
	}
	var s1, s2 x402.SettlementResponse
	call("/settle", id, 5000, &s1)
	call("/settle", id, 5000, &s2)
	if !s1.Success || fmt.Sprint(s1) != fmt.Sprint(s2) {
		t.Errorf("two settles of one voucher: %+v then %+v; want one result twice", s1, s2)
	}
	if call("/verify", id, 5000, &v); v.IsValid {
		t.Errorf("a settled voucher verifies again: %+v", v)
	}
	// Settled for one price, the voucher is no settled payment for another.
	reqs.Amount = "4000"
	if call("/settle", id, 5000, &s2); s2.Success {
		t.Errorf("a voucher settled for 5000 settles again for 4000: %+v", s2)
	}
	reqs.Amount = "5000"
	if call("/verify", id, 9999, &v); v.IsValid {
		t.Errorf("a voucher rising by less than the price over a settled one verifies: %+v", v)
	}
	if call("/verify", id, 10_000, &v); !v.IsValid {
		t.Errorf("the next voucher: %+v", v)
	}
	soon := open(5) // the margin is 20 blocks
	if call("/verify", soon, 5000, &v); v.IsValid || v.InvalidReason != x402.ReasonChannelExpiring {
		t.Errorf("/verify on a channel about to expire: %+v", v)
	}
}
