package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agoranet/agora/internal/chain/channel/channelpb"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/devnet"
	"github.com/agoranet/agora/internal/e2e"
	"github.com/agoranet/agora/internal/receipt"
	"github.com/agoranet/agora/sdk"
	"github.com/agoranet/agora/x402"
)

// TestPaidRequests: an agent pays 100 chat requests over a channel; the
// provider claims; provider and royalty owner together receive exactly
// what was charged; closing refunds the payer exactly the rest.
func TestPaidRequests(t *testing.T) {
	d := e2e.Devnet(t, func(c *devnet.Config) { c.Paid = true })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, _ := client.New(d.Node.RPC())
	get := func(name string) uint64 {
		k, _ := d.Keyring.Get(name)
		n, err := c.Balance(ctx, k.Address(), coin.Stable)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	alice, _ := d.Keyring.Get("alice")
	prov := d.Providers[0]
	a0, p0, o0 := get("alice"), get("provider1"), get("modelowner")

	// Without payment: a 402 with x402 requirements.
	body := `{"model":"agora/tiny-lm","messages":[{"role":"user","content":"ROMEO:"}],"max_tokens":20,"seed":%d}`
	resp, err := http.Post(prov.URL()+"/v1/chat/completions", "application/json", strings.NewReader(fmt.Sprintf(body, 0)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var pr x402.PaymentRequired
	if resp.StatusCode != 402 || x402.Decode(resp.Header.Get(x402.HeaderRequired), &pr) != nil || pr.Validate() != nil {
		t.Fatalf("unpaid request: status %d, PAYMENT-REQUIRED %q", resp.StatusCode, resp.Header.Get(x402.HeaderRequired))
	}

	w, err := sdk.NewWallet(alice.Private, d.Node.RPC())
	if err != nil {
		t.Fatal(err)
	}
	payer := sdk.NewPayer(w, sdk.Budget{Denom: coin.Stable, Max: 1_000_000, Deposit: 50_000})
	hc := &http.Client{Transport: payer}
	for i := 0; i < 100; i++ {
		resp, err := hc.Post(prov.URL()+"/v1/chat/completions", "application/json", strings.NewReader(fmt.Sprintf(body, i)))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, b)
		}
		r, err := receipt.Decode(resp.Header.Get(receipt.Header))
		if err != nil || !strings.HasPrefix(r.PaymentRef, "channel:") {
			t.Fatalf("request %d: receipt %v %v", i, r, err)
		}
	}
	spent := payer.Spent()
	// 100 requests of 20 tokens: 100 + ceil(20*1000/1000) = 120 each.
	if spent != 100*120 {
		t.Errorf("spent %d, want %d", spent, 100*120)
	}
	e2e.Eventually(t, 30*time.Second, "the provider claims", func() error {
		if got := get("provider1") - p0 + get("modelowner") - o0; got != spent {
			return fmt.Errorf("provider and owner received %d of %d", got, spent)
		}
		return nil
	})
	royalty := get("modelowner") - o0
	if royalty < spent*5/100-10 || royalty > spent*5/100 {
		t.Errorf("royalty %d, want about 5%% of %d", royalty, spent)
	}
	ids := payer.Channels()
	if len(ids) != 1 {
		t.Fatalf("payer opened %d channels", len(ids))
	}
	ch, err := client.Ask(ctx, c, channelpb.QueryChannel, &channelpb.QueryChannelRequest{Id: ids[0]})
	if err != nil {
		t.Fatal(err)
	}
	if ch.Claimed != spent || ch.Receipts != 100 {
		t.Errorf("channel claimed %d with %d receipts; want %d and 100", ch.Claimed, ch.Receipts, spent)
	}
	pk, _ := d.Keyring.Get("provider1")
	if _, err := c.Submit(ctx, pk, "", &channelpb.MsgCloseChannel{Payee: pk.Address().String(), ChannelId: ids[0]}); err != nil {
		t.Fatal(err)
	}
	if got := a0 - get("alice"); got != spent {
		t.Errorf("alice paid %d after the close, want exactly %d", got, spent)
	}

	// The exact scheme: a one-off transfer of the maximum price, settled
	// on chain before the answer comes back.
	a1, p1 := get("alice"), get("provider1")
	exact := sdk.NewPayer(w, sdk.Budget{Denom: coin.Stable, Max: 1000, Schemes: []string{x402.SchemeExact}})
	resp, err = (&http.Client{Transport: exact}).Post(prov.URL()+"/v1/chat/completions", "application/json", strings.NewReader(fmt.Sprintf(body, 5)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var sr x402.SettlementResponse
	if resp.StatusCode != 200 || x402.Decode(resp.Header.Get(x402.HeaderResponse), &sr) != nil || !sr.Success || len(sr.Transaction) != 64 {
		t.Fatalf("exact payment: status %d, response %+v", resp.StatusCode, sr)
	}
	if paid, got := a1-get("alice"), get("provider1")-p1; paid != 120 || got < 120*95/100 || exact.Spent() != 120 {
		t.Errorf("exact: alice paid %d, provider got %d, payer counted %d; want 120 (less royalties for the provider)", paid, got, exact.Spent())
	}

	// The budget holds before anything is paid. The provider's 402 comes
	// back as a response, not an error (the http.RoundTripper contract),
	// with the payer's reason attached.
	small := sdk.NewPayer(w, sdk.Budget{Denom: coin.Stable, Max: 50})
	resp, err = (&http.Client{Transport: small}).Post(prov.URL()+"/v1/chat/completions", "application/json", strings.NewReader(fmt.Sprintf(body, 1)))
	if err != nil {
		t.Fatalf("over-budget request: err %v, want the 402 response", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPaymentRequired || len(b) == 0 {
		t.Errorf("over-budget request: status %d, body %q; want the provider's 402 with its body", resp.StatusCode, b)
	}
	if perr := sdk.Refused(resp, err); !errors.Is(perr, sdk.ErrBudget) {
		t.Errorf("Refused = %v, want ErrBudget", perr)
	}
	// Once the price is known the payer refuses up front, before sending.
	_, err = (&http.Client{Transport: small}).Post(prov.URL()+"/v1/chat/completions", "application/json", strings.NewReader(fmt.Sprintf(body, 2)))
	if !errors.Is(err, sdk.ErrBudget) {
		t.Errorf("second over-budget request: err %v, want ErrBudget", err)
	}
}
