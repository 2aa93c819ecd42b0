package gateway_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/devnet"
	"github.com/agoranet/agora/internal/e2e"
	"github.com/agoranet/agora/internal/receipt"
	"github.com/agoranet/agora/sdk"
	"github.com/agoranet/agora/x402"
)

const chat = `{"model":"agora/tiny-lm","messages":[{"role":"user","content":"ROMEO:"}],"max_tokens":20}`

func TestGateway(t *testing.T) {
	d := e2e.Devnet(t, nil)
	gw := d.Gateway.URL()
	post := func(c *http.Client, key, body string) (*http.Response, []byte) {
		req, _ := http.NewRequest(http.MethodPost, gw+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}

	// With the API key: an answer, the provider's receipt and the
	// gateway's, and a request id.
	resp, body := post(http.DefaultClient, devnet.APIKey, chat)
	if resp.StatusCode != 200 || resp.Header.Get("X-Request-Id") == "" {
		t.Fatalf("status %d, request id %q: %s", resp.StatusCode, resp.Header.Get("X-Request-Id"), body)
	}
	for _, h := range []string{receipt.Header, "Agora-Gateway-Receipt"} {
		if _, err := receipt.Decode(resp.Header.Get(h)); err != nil {
			t.Errorf("%s: %v", h, err)
		}
	}

	// With x402 instead of a key: the client pays the gateway, which pays
	// the provider.
	alice, _ := d.Keyring.Get("alice")
	w, err := sdk.NewWallet(alice.Private, d.Node.RPC())
	if err != nil {
		t.Fatal(err)
	}
	payer := sdk.NewPayer(w, sdk.Budget{Denom: coin.Stable, Max: 100_000})
	resp, body = post(&http.Client{Transport: payer}, "", chat)
	if resp.StatusCode != 200 || resp.Header.Get(x402.HeaderResponse) == "" || payer.Spent() != 120 {
		t.Fatalf("x402 through the gateway: status %d, PAYMENT-RESPONSE %q, spent %d: %s", resp.StatusCode, resp.Header.Get(x402.HeaderResponse), payer.Spent(), body)
	}

	for _, tc := range []struct {
		name, key, body string
		status          int
		code            string
	}{
		{"unknown key", "agk_nope", chat, 401, "invalid_api_key"},
		{"bad json", devnet.APIKey, `{"model":`, 400, "invalid_json"},
		{"unknown model", devnet.APIKey, strings.Replace(chat, "agora/tiny-lm", "gpt-9", 1), 503, "no_provider"},
		{"bad field", devnet.APIKey, strings.Replace(chat, `"max_tokens":20`, `"max_tokens":0`, 1), 400, "invalid_max_tokens"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := post(http.DefaultClient, tc.key, tc.body)
			var e struct {
				Error struct{ Code, Message string }
			}
			json.Unmarshal(body, &e)
			if resp.StatusCode != tc.status || e.Error.Code != tc.code || e.Error.Message == "" {
				t.Errorf("got %d %+v, want %d %s", resp.StatusCode, e.Error, tc.status, tc.code)
			}
		})
	}
	// A key's balance is exactly its credit less its answers' prices,
	// however requests with unknown keys come between. (The old ledger
	// re-applied this process's debits each time an unknown key made it
	// reload its file: after 3 answers of 120, 1000 read 280.)
	home := filepath.Dir(d.Keyring.Dir())
	var created struct{ Key string }
	if err := json.Unmarshal([]byte(e2e.Run(t, "gateway", "key", "create", "--credit", "1000uusdc", "--home", home, "-o", "json")), &created); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if resp, body := post(http.DefaultClient, created.Key, chat); resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		post(http.DefaultClient, "agk_unknown", chat)
	}
	// (A charge is written just after its answer goes out.)
	e2e.Eventually(t, 10*time.Second, "the balance shows the three answers", func() error {
		req, _ := http.NewRequest(http.MethodGet, gw+"/v1/key", nil)
		req.Header.Set("Authorization", "Bearer "+created.Key)
		kresp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		var bal struct{ Balance string }
		json.NewDecoder(kresp.Body).Decode(&bal)
		kresp.Body.Close()
		if bal.Balance != "640" {
			return fmt.Errorf("after 3 answers of 120 on a credit of 1000, the balance reads %s, want 640", bal.Balance)
		}
		return nil
	})
	// A key without credit enough: OpenAI's 429 insufficient_quota, which
	// says how to top up.
	if err := json.Unmarshal([]byte(e2e.Run(t, "gateway", "key", "create", "--credit", "100uusdc", "--home", home, "-o", "json")), &created); err != nil {
		t.Fatal(err)
	}
	resp, body = post(http.DefaultClient, created.Key, chat)
	var quota struct {
		Error struct{ Type, Code, Message string }
	}
	json.Unmarshal(body, &quota)
	if resp.StatusCode != http.StatusTooManyRequests || quota.Error.Code != "insufficient_quota" || !strings.Contains(quota.Error.Message, "topup") {
		t.Errorf("out of credit: %d %+v; want 429 insufficient_quota saying how to top up", resp.StatusCode, quota.Error)
	}

	// No provider of the model: OpenAI's 503, with when to retry.
	if resp, _ := post(http.DefaultClient, devnet.APIKey, strings.Replace(chat, "agora/tiny-lm", "gpt-9", 1)); resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("no provider: %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}

	// Without a key or a payment: a 402 the client can pay.
	resp, _ = post(http.DefaultClient, "", chat)
	var pr x402.PaymentRequired
	if resp.StatusCode != 402 || x402.Decode(resp.Header.Get(x402.HeaderRequired), &pr) != nil || pr.Validate() != nil {
		t.Errorf("no key, no payment: status %d", resp.StatusCode)
	}
}
