package facilitator_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
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
	call("/settle", reqs, &s)
	if s.Success || s.ErrorReason != x402.ReasonNonceUsed {
		t.Errorf("a second /settle of the same authorization: %+v", s)
	}
}
