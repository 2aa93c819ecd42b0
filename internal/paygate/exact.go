package paygate

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/agoranet/agora/internal/chain/auth/authpb"
	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/channel/channelpb"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/x402"
)

// ExactAuthorization turns an x402 exact payload into a chain
// authorization for the asset of req.
func ExactAuthorization(req *x402.PaymentRequirements, payload json.RawMessage) (*bankpb.Authorization, *PaymentError) {
	var ep x402.ExactPayload
	if err := x402.UnmarshalPayload(payload, &ep); err != nil {
		return nil, refuse(http.StatusBadRequest, x402.ReasonInvalidPayload, "the exact payload must be {\"authorization\":{…},\"signature\":…}")
	}
	a := ep.Authorization
	value, err1 := x402.Amount(a.Value)
	after, err2 := strconv.ParseInt(a.ValidAfter, 10, 64)
	before, err3 := strconv.ParseInt(a.ValidBefore, 10, 64)
	nonce, err4 := hex.DecodeString(a.Nonce)
	pub, err5 := base64.StdEncoding.DecodeString(a.PublicKey)
	sig, err6 := base64.StdEncoding.DecodeString(ep.Signature)
	for _, err := range []error{err1, err2, err3, err4, err5, err6} {
		if err != nil {
			return nil, refuse(http.StatusBadRequest, x402.ReasonInvalidPayload, "exact authorization: value and times are decimal strings, nonce hex, publicKey and signature base64")
		}
	}
	return &bankpb.Authorization{From: a.From, To: a.To, Amount: coin.New(req.Asset, value), ValidAfter: after, ValidBefore: before, Nonce: nonce, PublicKey: pub, Signature: sig}, nil
}

// VerifyExact checks an exact payment against requirements and chain
// state: signature, recipient, amount, time window, unused nonce and the
// payer's balance.
func VerifyExact(ctx context.Context, c *client.Client, chainID string, req *x402.PaymentRequirements, payload json.RawMessage, now time.Time) (*bankpb.Authorization, *PaymentError) {
	auth, perr := ExactAuthorization(req, payload)
	if perr != nil {
		return nil, perr
	}
	from, to, err := bankpb.CheckAuthorization(chainID, auth)
	if err != nil {
		return nil, refuse(http.StatusPaymentRequired, x402.ReasonInvalidSignature, "%v", err)
	}
	// Only the chain knows the key an account signs with now: after a
	// rotation the old key still derives the address but pays nothing.
	k, err := client.Ask(ctx, c, authpb.QueryKey, &authpb.QueryKeyRequest{Account: from.String(), PublicKey: auth.PublicKey})
	if err != nil {
		return nil, refuse(http.StatusServiceUnavailable, x402.ReasonUnexpectedVerifyError, "cannot check the authorization's key: %v", err)
	}
	if !k.Current {
		return nil, refuse(http.StatusPaymentRequired, x402.ReasonInvalidSignature, "the authorization is signed by a key %s does not sign with (rotated away, or someone else's)", from)
	}
	if to.String() != req.PayTo {
		return nil, refuse(http.StatusPaymentRequired, x402.ReasonRecipientMismatch, "the authorization pays %s, not %s", to, req.PayTo)
	}
	if strconv.FormatUint(auth.Amount.Amount, 10) != req.Amount {
		return nil, refuse(http.StatusPaymentRequired, x402.ReasonValueMismatch, "the authorization is for %d, the price is %s", auth.Amount.Amount, req.Amount)
	}
	sec := now.Unix()
	if auth.ValidAfter >= sec {
		return nil, refuse(http.StatusPaymentRequired, x402.ReasonAuthorizationValidAfter, "the authorization is not valid before %d (now %d)", auth.ValidAfter, sec)
	}
	if auth.ValidBefore <= sec+int64(req.MaxTimeoutSeconds/10)+5 {
		return nil, refuse(http.StatusPaymentRequired, x402.ReasonAuthorizationValidBefore, "the authorization expires at %d, too soon to settle (now %d)", auth.ValidBefore, sec)
	}
	used, err := client.Ask(ctx, c, bankpb.QueryNonce, &bankpb.QueryNonceRequest{Address: from.String(), Nonce: auth.Nonce})
	if err != nil {
		return nil, refuse(http.StatusServiceUnavailable, x402.ReasonUnexpectedVerifyError, "cannot check the nonce: %v", err)
	}
	if used.Used {
		return nil, refuse(http.StatusPaymentRequired, x402.ReasonNonceUsed, "the authorization's nonce has been used; sign a new one")
	}
	bal, err := c.Balance(ctx, from, req.Asset)
	if err != nil {
		return nil, refuse(http.StatusServiceUnavailable, x402.ReasonUnexpectedVerifyError, "cannot check the balance: %v", err)
	}
	if bal < auth.Amount.Amount {
		return nil, refuse(http.StatusPaymentRequired, x402.ReasonInsufficientFunds, "%s holds %d%s, the price is %d", from, bal, req.Asset, auth.Amount.Amount)
	}
	return auth, nil
}

// VerifyBatch checks a batch-settlement voucher against requirements and
// the channel's state on chain, without any server-side charging state:
// what a facilitator can check for a payee.
func VerifyBatch(ctx context.Context, c *client.Client, chainID string, req *x402.PaymentRequirements, payload json.RawMessage) (*channelpb.Channel, *channelpb.Voucher, *PaymentError) {
	v, perr := ParseVoucher(payload)
	if perr != nil {
		return nil, nil, perr
	}
	id, cum := v.ChannelId, v.Cumulative
	ch, err := client.Ask(ctx, c, channelpb.QueryChannel, &channelpb.QueryChannelRequest{Id: id})
	if err != nil {
		return nil, nil, refuse(http.StatusPaymentRequired, x402.ReasonChannelNotFound, "channel %d: %v", id, err)
	}
	st, err := c.Status(ctx)
	if err != nil {
		return nil, nil, refuse(http.StatusServiceUnavailable, x402.ReasonUnexpectedVerifyError, "%v", err)
	}
	switch {
	case ch.Payee != req.PayTo:
		return nil, nil, refuse(http.StatusPaymentRequired, x402.ReasonChannelPayee, "channel %d pays %s, not %s", id, ch.Payee, req.PayTo)
	case ch.Denom != req.Asset:
		return nil, nil, refuse(http.StatusPaymentRequired, x402.ReasonChannelPayee, "channel %d is in %s, not %s", id, ch.Denom, req.Asset)
	case ch.Closed:
		return nil, nil, refuse(http.StatusPaymentRequired, x402.ReasonChannelClosed, "channel %d is closed", id)
	case ch.ExpiresAt <= st.Height:
		return nil, nil, refuse(http.StatusPaymentRequired, x402.ReasonChannelExpiring, "channel %d expired at %d", id, ch.ExpiresAt)
	case cum > ch.Deposit:
		return nil, nil, refuse(http.StatusPaymentRequired, x402.ReasonInsufficientFunds, "voucher for %d is above the deposit of %d", cum, ch.Deposit)
	case cum <= ch.Claimed:
		return nil, nil, refuse(http.StatusPaymentRequired, x402.ReasonCumulativeMismatch, "voucher for %d does not exceed the %d already claimed", cum, ch.Claimed)
	}
	if err := channelpb.VerifyVoucher(chainID, ch, v, 0); err != nil {
		return nil, nil, refuse(http.StatusPaymentRequired, x402.ReasonVoucherSignature, "%v", err)
	}
	return ch, v, nil
}

// ParseVoucher reads a batch-settlement payload's voucher.
func ParseVoucher(payload json.RawMessage) (*channelpb.Voucher, *PaymentError) {
	var bp x402.BatchPayload
	if err := x402.UnmarshalPayload(payload, &bp); err != nil || bp.Type != "voucher" {
		return nil, refuse(http.StatusBadRequest, x402.ReasonInvalidPayload, "the batch-settlement payload must be {\"type\":\"voucher\",\"voucher\":{…}}")
	}
	id, err1 := strconv.ParseUint(bp.Voucher.ChannelID, 10, 64)
	cum, err2 := x402.Amount(bp.Voucher.MaxClaimableAmount)
	sig, err3 := base64.StdEncoding.DecodeString(bp.Voucher.Signature)
	if err1 != nil || err2 != nil || err3 != nil {
		return nil, refuse(http.StatusBadRequest, x402.ReasonInvalidPayload, "voucher fields: channelId and maxClaimableAmount are decimal strings, signature base64")
	}
	return &channelpb.Voucher{ChannelId: id, Cumulative: cum, Signature: sig}, nil
}
