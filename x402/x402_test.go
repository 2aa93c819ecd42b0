package x402

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestRoundTripAndValidate(t *testing.T) {
	pr := PaymentRequired{X402Version: Version, Resource: ResourceInfo{URL: "http://p/v1/chat/completions"},
		Accepts: []PaymentRequirements{{Scheme: SchemeBatch, Network: Network("agora-devnet-1"), Amount: "120", Asset: "uusdc", PayTo: "agora1x", MaxTimeoutSeconds: 300}}}
	h, err := Encode(pr)
	if err != nil {
		t.Fatal(err)
	}
	var got PaymentRequired
	if err := Decode(h, &got); err != nil || got.Validate() != nil || got.Accepts[0].Amount != "120" {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	// The wire names are the spec's.
	raw, _ := json.Marshal(pr)
	for _, field := range []string{`"x402Version":2`, `"resource":{"url"`, `"accepts":[`, `"payTo"`, `"maxTimeoutSeconds"`, `"asset"`, `"network":"cosmos:agora-devnet-1"`} {
		if !strings.Contains(string(raw), field) {
			t.Errorf("encoding lacks %s: %s", field, raw)
		}
	}
	for name, mutate := range map[string]func(*PaymentRequired){
		"version": func(p *PaymentRequired) { p.X402Version = 1 },
		"no url":  func(p *PaymentRequired) { p.Resource.URL = "" },
		"accepts": func(p *PaymentRequired) { p.Accepts = nil },
		"amount":  func(p *PaymentRequired) { p.Accepts[0].Amount = "-1" },
		"network": func(p *PaymentRequired) { p.Accepts[0].Network = "cosmos" },
		"timeout": func(p *PaymentRequired) { p.Accepts[0].MaxTimeoutSeconds = 0 },
		"payTo":   func(p *PaymentRequired) { p.Accepts[0].PayTo = "" },
	} {
		p := pr
		p.Accepts = append([]PaymentRequirements(nil), pr.Accepts...)
		mutate(&p)
		if p.Validate() == nil {
			t.Errorf("%s: invalid PaymentRequired accepted", name)
		}
	}
	if _, err := ChainID("eip155:1"); err == nil {
		t.Error("ChainID accepted a non-cosmos network")
	}
	if err := Decode("%%%", &got); !errors.Is(err, ErrMalformed) {
		t.Errorf("bad base64: %v", err)
	}
}

func FuzzDecodePayload(f *testing.F) {
	h, _ := Encode(PaymentPayload{X402Version: 2, Accepted: PaymentRequirements{Scheme: SchemeBatch, Network: "cosmos:x", Amount: "1", Asset: "uusdc", PayTo: "a", MaxTimeoutSeconds: 1}, Payload: json.RawMessage(`{"type":"voucher","voucher":{"channelId":"1","maxClaimableAmount":"5","signature":"AA=="}}`)})
	f.Add(h)
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		var p PaymentPayload
		if Decode(s, &p) != nil || p.Validate() != nil {
			return
		}
		var bp BatchPayload
		_ = json.Unmarshal(p.Payload, &bp)
		_, _ = Amount(bp.Voucher.MaxClaimableAmount)
	})
}
