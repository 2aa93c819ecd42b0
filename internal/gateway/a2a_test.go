package gateway_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/devnet"
	"github.com/agoranet/agora/internal/e2e"
	"github.com/agoranet/agora/x402"
)

// TestA2APayment: A2A through the gateway is paid by API key like any
// request; straight to a priced provider, an unpaid message gets a task in
// input-required carrying the x402 requirements (the A2A x402 extension),
// and the same message with an x402 payment in its metadata gets the
// answer, its receipt and the settlement.
func TestA2APayment(t *testing.T) {
	d := e2e.Devnet(t, nil)
	rpc := func(url, apiKey string, msg map[string]any) map[string]any {
		t.Helper()
		b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": map[string]any{"message": msg}})
		req, _ := http.NewRequest(http.MethodPost, url+"/a2a", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		if apiKey != "" {
			req.Header.Set("Authorization", "Bearer "+apiKey)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	text := func(m map[string]any) string {
		parts, _ := m["parts"].([]any)
		if len(parts) == 0 {
			return ""
		}
		s, _ := parts[0].(map[string]any)["text"].(string)
		return s
	}
	msg := func(id string, meta map[string]any) map[string]any {
		return map[string]any{"messageId": id, "role": "ROLE_USER", "parts": []any{map[string]any{"text": "ROMEO:"}}, "metadata": meta}
	}

	got := rpc(d.Gateway.URL(), devnet.APIKey, msg("g1", nil))
	reply, _ := got["result"].(map[string]any)["message"].(map[string]any)
	if reply == nil || text(reply) == "" || reply["metadata"].(map[string]any)["agora.receipt"] == "" {
		t.Fatalf("through the gateway with an API key: %v", got)
	}

	prov := d.Providers[0].URL()
	got = rpc(prov, "", msg("p1", nil))
	task, _ := got["result"].(map[string]any)["task"].(map[string]any)
	if task == nil {
		t.Fatalf("an unpaid message to a priced provider: %v; want a task", got)
	}
	st := task["status"].(map[string]any)
	meta := st["message"].(map[string]any)["metadata"].(map[string]any)
	if st["state"] != "TASK_STATE_INPUT_REQUIRED" || meta["x402.payment.status"] != "payment-required" {
		t.Fatalf("an unpaid message: %v", task)
	}
	var pr x402.PaymentRequired
	raw, _ := json.Marshal(meta["x402.payment.required"])
	if err := json.Unmarshal(raw, &pr); err != nil || len(pr.Accepts) == 0 {
		t.Fatalf("the requirements: %s (%v)", raw, err)
	}
	var batch x402.PaymentRequirements
	for _, a := range pr.Accepts {
		if a.Scheme == "batch-settlement" {
			batch = a
		}
	}
	max, _ := x402.Amount(batch.Amount)

	// Pay as any x402 client would: a channel to the provider, a voucher.
	c, _ := client.New(d.Node.RPC())
	defer c.Close()
	alice, _ := d.Keyring.Get("alice")
	id := e2e.OpenChannel(t, c, alice, batch.PayTo, 100*max, 10_000)
	pp := e2e.VoucherPayload(alice.Private, devnet.ChainID, id, max, batch)
	got = rpc(prov, "", msg("p1", map[string]any{"x402.payment.payload": pp}))
	reply, _ = got["result"].(map[string]any)["message"].(map[string]any)
	if reply == nil || text(reply) == "" {
		t.Fatalf("the paid message: %v", got)
	}
	if m := reply["metadata"].(map[string]any); m["x402.payment.status"] != "payment-completed" || m["agora.receipt"] == "" {
		t.Errorf("the paid answer's metadata: %v", m)
	}
}
