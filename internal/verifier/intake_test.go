package verifier_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/devnet"
	"github.com/agoranet/agora/internal/e2e"
	"github.com/agoranet/agora/internal/openai"
	"github.com/agoranet/agora/internal/provider"
	"github.com/agoranet/agora/internal/receipt"
	"github.com/agoranet/agora/internal/sample"
	"github.com/agoranet/agora/sdk"
	"github.com/agoranet/agora/x402"
)

// TestAuditsSampleWhatBuyersBuy is finding 8 of the buyer-and-seller
// review: only the gateway's whole answers were audited, so a provider
// that lied only in streams, only to buyers who pay it directly or only
// for answers paid with exact was never caught; and /v1/audit took
// samples from anyone. Here a provider lies in every answer it sells
// outside the gateway; a buyer paying it directly samples what it buys
// (streams over a channel, whole answers with exact), and the verifier,
// which takes samples only from the buyer who paid, catches it by the
// receipts alone, unanchored, and the chain slashes it.
func TestAuditsSampleWhatBuyersBuy(t *testing.T) {
	if testing.Short() {
		t.Skip("a devnet and four verifiers; skipped with -short")
	}
	d := e2e.Devnet(t, nil)
	d.Providers[2].SetHooks(provider.Hooks{Corrupt: func([]byte) bool { return true }})
	c, err := client.New(d.Node.RPC())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	vs := startVerifiers(t, ctx, d, c)

	alice, _ := d.Keyring.Get("alice")
	w, err := sdk.NewWallet(alice.Private, d.Node.RPC())
	if err != nil {
		t.Fatal(err)
	}
	url := d.Providers[2].URL() + "/v1/chat/completions"
	var receipts []string
	for i, schemes := range [][]string{{x402.SchemeBatch}, {x402.SchemeExact}} {
		payer := sdk.NewPayer(w, sdk.Budget{Denom: coin.Stable, Max: 100_000, Schemes: schemes})
		payer.SetAuditFeed(vs[0].URL(), 1)
		defer payer.Close()
		for j := range 2 {
			stream := i == 0
			body := fmt.Sprintf(`{"model":"agora/tiny-lm","messages":[{"role":"user","content":"KING:"}],"max_tokens":8,"seed":%d,"stream":%t}`, 10*i+j, stream)
			resp, err := (&http.Client{Transport: payer}).Post(url, "application/json", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
			enc := resp.Header.Get(receipt.Header)
			if stream {
				_, enc = openai.SplitStream(b)
			}
			receipts = append(receipts, enc)
		}
	}
	e2e.Eventually(t, 90*time.Second, "the lying provider is slashed", func() error {
		if s, lost := stakeOf(t, ctx, d, c, "provider3"); s >= devnet.ProviderStake || lost == 0 {
			return fmt.Errorf("provider3: stake %d, disputes lost %d; the auditor: %+v", s, lost, vs[0].Stats())
		}
		return nil
	})

	// The intake takes a receipt only from the buyer who paid for it.
	post := func(smp sample.Sample) int {
		b, _ := json.Marshal(smp)
		resp, err := http.Post(vs[1].URL()+sample.Path, "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	bob, _ := d.Keyring.Get("bob")
	smp := sample.Sample{Endpoint: "chat.completions", Request: "{}", Response: "{}", Receipt: receipts[2]}
	if got := post(smp); got != http.StatusUnauthorized {
		t.Errorf("an unsigned sample: %d, want 401", got)
	}
	smp.Sign(bob.Private)
	if got := post(smp); got != http.StatusForbidden {
		t.Errorf("a sample of alice's answer signed by bob: %d, want 403", got)
	}
	smp.Sign(alice.Private)
	if got := post(smp); got != http.StatusAccepted {
		t.Errorf("alice's sample: %d, want 202", got)
	}
	if got := post(smp); got != http.StatusConflict {
		t.Errorf("the same receipt again: %d, want 409", got)
	}
}
