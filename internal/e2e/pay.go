package e2e

import (
	"crypto/ed25519"
	"encoding/base64"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/agoranet/agora/internal/chain/channel/channelpb"
	"github.com/agoranet/agora/x402"
)

// Voucher is a PAYMENT-SIGNATURE paying with a batch-settlement voucher
// for cumulative on channel id, signed by key, with accepted as the
// requirements it answers (only scheme and network matter to a gate).
func Voucher(key ed25519.PrivateKey, chainID string, id, cumulative uint64, accepted x402.PaymentRequirements) string {
	v := channelpb.SignVoucher(key, chainID, id, cumulative)
	payload, _ := x402.MarshalPayload(x402.BatchPayload{Type: "voucher", Voucher: x402.Voucher{ChannelID: strconv.FormatUint(id, 10),
		MaxClaimableAmount: strconv.FormatUint(cumulative, 10), Signature: base64.StdEncoding.EncodeToString(v.Signature)}})
	h, _ := x402.Encode(x402.PaymentPayload{X402Version: x402.Version, Accepted: accepted, Payload: payload})
	return h
}

// PostPaid posts body to url with payment as its PAYMENT-SIGNATURE (none
// if ""), and returns the status, the x402 reason of a refusal and the
// response body.
func PostPaid(t testing.TB, url, body, payment string) (status int, reason, answer string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if payment != "" {
		req.Header.Set(x402.HeaderSignature, payment)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var pr x402.PaymentRequired
	x402.Decode(resp.Header.Get(x402.HeaderRequired), &pr)
	return resp.StatusCode, pr.Error, string(b)
}
