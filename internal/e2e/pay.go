package e2e

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/agoranet/agora/internal/chain/channel/channelpb"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/keyring"
	"github.com/agoranet/agora/x402"
)

// VoucherPayload is a batch-settlement payment of a voucher for
// cumulative on channel id, signed by key, with accepted as the
// requirements it answers (only scheme and network matter to a gate).
func VoucherPayload(key ed25519.PrivateKey, chainID string, id, cumulative uint64, accepted x402.PaymentRequirements) x402.PaymentPayload {
	v := channelpb.SignVoucher(key, chainID, id, cumulative)
	payload, _ := x402.MarshalPayload(x402.BatchPayload{Type: "voucher", Voucher: x402.Voucher{ChannelID: strconv.FormatUint(id, 10),
		MaxClaimableAmount: strconv.FormatUint(cumulative, 10), Signature: base64.StdEncoding.EncodeToString(v.Signature)}})
	return x402.PaymentPayload{X402Version: x402.Version, Accepted: accepted, Payload: payload}
}

// Voucher is VoucherPayload as a PAYMENT-SIGNATURE header value.
func Voucher(key ed25519.PrivateKey, chainID string, id, cumulative uint64, accepted x402.PaymentRequirements) string {
	h, _ := x402.Encode(VoucherPayload(key, chainID, id, cumulative, accepted))
	return h
}

// OpenChannel opens a channel from payer to payee with a deposit of the
// stable denom, expiring blocks from now, and returns its id.
func OpenChannel(t testing.TB, c *client.Client, payer *keyring.Key, payee string, deposit uint64, blocks int64) uint64 {
	t.Helper()
	ctx := context.Background()
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Submit(ctx, payer, "", &channelpb.MsgOpenChannel{Payer: payer.Address().String(), Payee: payee,
		Deposit: coin.New(coin.Stable, deposit), ExpiresAt: st.Height + blocks, PayerKey: payer.Public()})
	if err != nil {
		t.Fatal(err)
	}
	var opened channelpb.MsgOpenChannelResponse
	if err := res.Response(0, &opened); err != nil {
		t.Fatal(err)
	}
	return opened.ChannelId
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
