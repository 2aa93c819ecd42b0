package x402

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
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

// FuzzDecodeJSON feeds arbitrary JSON to Decode's fast readers
// (valyala/fastjson): they must never panic, and must read what
// encoding/json reads, refusing what it refuses.
func FuzzDecodeJSON(f *testing.F) {
	f.Add([]byte(`{"x402Version":2,"resource":{"url":"u"},"accepted":{"scheme":"batch-settlement","network":"cosmos:x","amount":"1","asset":"uusdc","payTo":"a","maxTimeoutSeconds":1,"extra":{"modelId":"m","n":[1,2.5,null,true]}},"payload":{"type":"voucher","voucher":{"channelId":"1","maxClaimableAmount":"5","signature":"AA=="}}}`))
	f.Add([]byte(`{"success":true,"payer":"p","extra":{"chargedAmount":"3","channelState":{"channelId":"1"}}}`))
	f.Add([]byte(`{"X402VERSION":2,"accepted":{"scheme":"\u00e9\ud800","extra":{"a":{"b":{}}}},"payload":[1,{"x":"y"}],"accepted":null}`))
	f.Add([]byte(`{"type":"voucher","voucher":{"channelId":"1","Signature":"\u0041"},"voucher":{"maxClaimableAmount":"9"}}`))
	f.Add([]byte(`{"resource":{"url":"a"},"resource":null,"resource":{"description":"d"},"extensions":{"a":1},"extensions":null,"accepted":{"extra":{"x":1},"extra":null}}`))
	f.Add([]byte(`{"success":true,"extra":{"chargedAmount":"3","channelState":{"chargedCumulativeAmount":"7"}},"extra":null,"EXTRA":{"CHARGEDAMOUNT":"4"}}`))
	f.Add([]byte(`{"payload":` + strings.Repeat("[", 301) + strings.Repeat("]", 301) + `}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := base64.StdEncoding.EncodeToString(b)
		same := func(what string, fast, std any, ferr, serr error) {
			t.Helper()
			if (ferr == nil) != (serr == nil) {
				t.Fatalf("%s of %q: fast reader %v, encoding/json %v", what, b, ferr, serr)
			}
			if serr == nil && !reflect.DeepEqual(fast, std) {
				t.Fatalf("%s of %q: fast reader read %#v, encoding/json %#v", what, b, fast, std)
			}
		}
		var fp, sp PaymentPayload
		ferr, serr := Decode(s, &fp), json.Unmarshal(b, &sp)
		if serr == nil { // the payload's raw text may differ; what it says may not
			var fb, sb BatchPayload
			ferr, serr := UnmarshalPayload(fp.Payload, &fb), json.Unmarshal(sp.Payload, &sb)
			same("its payload", fb, sb, ferr, serr)
			fp.Payload, sp.Payload = nil, nil
		}
		same("a PaymentPayload", fp, sp, ferr, serr)
		var fs, ss SettlementResponse
		same("a SettlementResponse", fs, ss, Decode(s, &fs), json.Unmarshal(b, &ss))
		var fb, sb BatchPayload
		same("a BatchPayload", fb, sb, UnmarshalPayload(b, &fb), json.Unmarshal(b, &sb))
		var fz, sz BatchSettlement
		same("a BatchSettlement", fz, sz, Decode(s, &fz), json.Unmarshal(b, &sz))
	})
}
