package x402

import (
	"encoding/json"
	"testing"
)

// BenchmarkDecodePaymentPayload: a PAYMENT-SIGNATURE as the SDK sends it,
// read by Decode and, for comparison, by encoding/json.
func BenchmarkDecodePaymentPayload(b *testing.B) {
	payload, _ := MarshalPayload(BatchPayload{Type: "voucher", Voucher: Voucher{ChannelID: "12", MaxClaimableAmount: "123456789", Signature: "MEUCIQDx2Yb6o0y3lJX8m1z9o1o2Kz2R3q4S5T6U7V8W9X0Y1Z2a3b4c5d6e7f8g9h0i1j2k3l4m5n6o7p8q9r=="}})
	pp := PaymentPayload{X402Version: 2, Resource: &ResourceInfo{URL: "http://127.0.0.1:17700/v1/chat/completions", Description: "agora/tiny-lm", MimeType: "application/json"},
		Accepted: PaymentRequirements{Scheme: SchemeBatch, Network: "cosmos:agora-devnet-1", Amount: "1016", Asset: "uusdc", PayTo: "agora1q0f0knlvjhes2v6668xwzn8cqxkvkht3uve34u", MaxTimeoutSeconds: 60,
			Extra: map[string]any{"channelId": "12", "minDeposit": "100000", "modelId": "678950efeb15da9b79e1af4ab4a96bdddcec91eaf7093087e99707497d10f436"}},
		Payload: payload}
	s, _ := Encode(pp)
	raw, _ := json.Marshal(pp)
	b.Run("Decode", func(b *testing.B) {
		for b.Loop() {
			var got PaymentPayload
			if err := Decode(s, &got); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			var got PaymentPayload
			if err := json.Unmarshal(raw, &got); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkEncode: the headers a paid answer encodes, PAYMENT-SIGNATURE
// (the SDK) and PAYMENT-RESPONSE (the provider).
func BenchmarkEncode(b *testing.B) {
	payload, _ := MarshalPayload(BatchPayload{Type: "voucher", Voucher: Voucher{ChannelID: "12", MaxClaimableAmount: "123456789", Signature: "MEUCIQDx2Yb6o0y3lJX8m1z9o1o2Kz2R3q4S5T6U7V8W9X0Y1Z2a3b4c5d6e7f8g9h0i1j2k3l4m5n6o7p8q9r=="}})
	pp := PaymentPayload{X402Version: 2, Resource: &ResourceInfo{URL: "http://127.0.0.1:17700/v1/chat/completions", Description: "agora/tiny-lm", MimeType: "application/json"},
		Accepted: PaymentRequirements{Scheme: SchemeBatch, Network: "cosmos:agora-devnet-1", Amount: "1016", Asset: "uusdc", PayTo: "agora1q0f0knlvjhes2v6668xwzn8cqxkvkht3uve34u", MaxTimeoutSeconds: 60,
			Extra: map[string]any{"channelId": "12", "minDeposit": "100000", "modelId": "678950efeb15da9b79e1af4ab4a96bdddcec91eaf7093087e99707497d10f436"}},
		Payload: payload}
	sr := SettlementResponse{Success: true, Payer: "agora1q0f0knlvjhes2v6668xwzn8cqxkvkht3uve34u", Network: "cosmos:agora-devnet-1", Amount: "1016",
		Extra: map[string]any{"chargedAmount": "1016", "channelState": ChannelState{ChannelID: "12", Balance: "1000000", TotalClaimed: "0", ChargedCumulativeAmount: "123456"}}}
	b.Run("PaymentPayload", func(b *testing.B) {
		for b.Loop() {
			if _, err := Encode(pp); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("SettlementResponse", func(b *testing.B) {
		for b.Loop() {
			if _, err := Encode(sr); err != nil {
				b.Fatal(err)
			}
		}
	})
}
