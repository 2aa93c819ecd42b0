// Package x402 is the x402 protocol, version 2, as Agora speaks it: the
// wire types of the HTTP transport (PAYMENT-REQUIRED, PAYMENT-SIGNATURE,
// PAYMENT-RESPONSE), the facilitator API (/verify, /settle, /supported),
// their encoding and validation, and Agora's two schemes on CAIP-2
// networks "cosmos:<chain-id>":
//
//   - "exact": the payload is a signed transfer authorization, the
//     analogue of EIP-3009's transferWithAuthorization, settled on chain by
//     anyone;
//   - "batch-settlement": the payload is a payment-channel voucher for the
//     channel's charged total so far plus this request's maximum; the
//     server reports the actual charge in PAYMENT-RESPONSE, and the next
//     voucher continues from it.
//
// The package has no dependencies on the rest of Agora, so clients in any
// program can use it.
package x402

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Version is the protocol version this package speaks.
const Version = 2

// HTTP headers of the transport.
const (
	HeaderRequired  = "PAYMENT-REQUIRED"
	HeaderSignature = "PAYMENT-SIGNATURE"
	HeaderResponse  = "PAYMENT-RESPONSE"
)

// Schemes.
const (
	SchemeExact = "exact"
	SchemeBatch = "batch-settlement"
)

// MaxHeaderBytes bounds a header a decoder accepts.
const MaxHeaderBytes = 16 << 10

// Error reasons. The first group is the spec's list; the rest name
// failures of Agora's schemes the spec has no word for.
const (
	ReasonInsufficientFunds          = "insufficient_funds"
	ReasonInvalidNetwork             = "invalid_network"
	ReasonInvalidPayload             = "invalid_payload"
	ReasonInvalidPaymentRequirements = "invalid_payment_requirements"
	ReasonInvalidScheme              = "invalid_scheme"
	ReasonUnsupportedScheme          = "unsupported_scheme"
	ReasonInvalidX402Version         = "invalid_x402_version"
	ReasonInvalidTransactionState    = "invalid_transaction_state"
	ReasonUnexpectedVerifyError      = "unexpected_verify_error"
	ReasonUnexpectedSettleError      = "unexpected_settle_error"

	ReasonInvalidSignature         = "invalid_cosmos_payload_signature"
	ReasonAuthorizationValidAfter  = "invalid_cosmos_payload_authorization_valid_after"
	ReasonAuthorizationValidBefore = "invalid_cosmos_payload_authorization_valid_before"
	ReasonValueMismatch            = "invalid_cosmos_payload_authorization_value_mismatch"
	ReasonRecipientMismatch        = "invalid_cosmos_payload_recipient_mismatch"
	ReasonNonceUsed                = "invalid_cosmos_payload_nonce_used"
	ReasonChannelNotFound          = "invalid_batch_settlement_cosmos_channel_not_found"
	ReasonChannelClosed            = "invalid_batch_settlement_cosmos_channel_closed"
	ReasonChannelExpiring          = "invalid_batch_settlement_cosmos_channel_expiring"
	ReasonChannelPayee             = "invalid_batch_settlement_cosmos_channel_payee_mismatch"
	ReasonCumulativeMismatch       = "invalid_batch_settlement_cosmos_cumulative_amount_mismatch"
	ReasonVoucherSignature         = "invalid_batch_settlement_cosmos_voucher_signature"
	ReasonAgentStopped             = "invalid_cosmos_payer_agent_frozen_or_revoked"
)

// ResourceInfo names what is paid for.
type ResourceInfo struct {
	URL         string `json:"url"`
	Description string `json:"description,omitempty"`
	MimeType    string `json:"mimeType,omitempty"`
}

// PaymentRequirements is one way the server accepts payment.
type PaymentRequirements struct {
	Scheme            string         `json:"scheme"`
	Network           string         `json:"network"`
	Amount            string         `json:"amount"` // atomic units, decimal
	Asset             string         `json:"asset"`  // the denom, like uusdc
	PayTo             string         `json:"payTo"`
	MaxTimeoutSeconds int            `json:"maxTimeoutSeconds"`
	Extra             map[string]any `json:"extra,omitempty"`
}

// PaymentRequired is the body of PAYMENT-REQUIRED on a 402.
type PaymentRequired struct {
	X402Version int                   `json:"x402Version"`
	Error       string                `json:"error,omitempty"`
	Resource    ResourceInfo          `json:"resource"`
	Accepts     []PaymentRequirements `json:"accepts"`
	Extensions  map[string]any        `json:"extensions,omitempty"`
}

// PaymentPayload is the body of PAYMENT-SIGNATURE.
type PaymentPayload struct {
	X402Version int                 `json:"x402Version"`
	Resource    *ResourceInfo       `json:"resource,omitempty"`
	Accepted    PaymentRequirements `json:"accepted"`
	Payload     json.RawMessage     `json:"payload"`
	Extensions  map[string]any      `json:"extensions,omitempty"`
}

// SettlementResponse is the body of PAYMENT-RESPONSE, and of /settle.
type SettlementResponse struct {
	Success      bool           `json:"success"`
	ErrorReason  string         `json:"errorReason,omitempty"`
	ErrorMessage string         `json:"errorMessage,omitempty"`
	Payer        string         `json:"payer,omitempty"`
	Transaction  string         `json:"transaction"`
	Network      string         `json:"network"`
	Amount       string         `json:"amount,omitempty"`
	Extra        map[string]any `json:"extra,omitempty"`
}

// VerifyRequest is the body of POST /verify and POST /settle.
type VerifyRequest struct {
	X402Version         int                 `json:"x402Version"`
	PaymentPayload      PaymentPayload      `json:"paymentPayload"`
	PaymentRequirements PaymentRequirements `json:"paymentRequirements"`
}

// VerifyResponse is the answer of POST /verify.
type VerifyResponse struct {
	IsValid        bool           `json:"isValid"`
	InvalidReason  string         `json:"invalidReason,omitempty"`
	InvalidMessage string         `json:"invalidMessage,omitempty"`
	Payer          string         `json:"payer,omitempty"`
	Extra          map[string]any `json:"extra,omitempty"`
}

// SupportedKind is one scheme on one network a facilitator handles.
type SupportedKind struct {
	X402Version int            `json:"x402Version"`
	Scheme      string         `json:"scheme"`
	Network     string         `json:"network"`
	Extra       map[string]any `json:"extra,omitempty"`
}

// SupportedResponse is the answer of GET /supported.
type SupportedResponse struct {
	Kinds      []SupportedKind     `json:"kinds"`
	Extensions []string            `json:"extensions"`
	Signers    map[string][]string `json:"signers"`
}

// ExactPayload is the "exact" scheme's payload: a transfer authorization
// signed by From. Amounts and times are decimal strings, as in EIP-3009.
type ExactPayload struct {
	Authorization ExactAuthorization `json:"authorization"`
	Signature     string             `json:"signature"` // base64 ed25519
}

// ExactAuthorization is what the payer authorizes.
type ExactAuthorization struct {
	From        string `json:"from"`
	To          string `json:"to"`
	Value       string `json:"value"`
	ValidAfter  string `json:"validAfter"`  // unix seconds
	ValidBefore string `json:"validBefore"` // unix seconds
	Nonce       string `json:"nonce"`       // 32 bytes, hex
	PublicKey   string `json:"publicKey"`   // base64 ed25519 key of From
}

// BatchPayload is the "batch-settlement" scheme's payload.
type BatchPayload struct {
	Type    string  `json:"type"` // "voucher"
	Voucher Voucher `json:"voucher"`
}

// Voucher is a channel voucher: the payee may take up to
// MaxClaimableAmount from the channel in total.
type Voucher struct {
	ChannelID          string `json:"channelId"` // decimal
	MaxClaimableAmount string `json:"maxClaimableAmount"`
	Signature          string `json:"signature"` // base64 ed25519
}

// BatchSettlement is what a payer reads of a batch-settlement
// PAYMENT-RESPONSE (a SettlementResponse): the charge, and the channel's
// charged total to continue from.
type BatchSettlement struct {
	Success bool `json:"success"`
	Extra   struct {
		ChargedAmount string       `json:"chargedAmount"`
		ChannelState  ChannelState `json:"channelState"`
	} `json:"extra"`
}

// ChannelState is what the server reports about a channel in extra.
type ChannelState struct {
	ChannelID               string `json:"channelId"`
	Balance                 string `json:"balance"` // the deposit
	TotalClaimed            string `json:"totalClaimed"`
	ChargedCumulativeAmount string `json:"chargedCumulativeAmount"`
}

// Network returns the CAIP-2 id of an Agora chain.
func Network(chainID string) string { return "cosmos:" + chainID }

// ChainID returns the chain-id of a "cosmos:" network.
func ChainID(network string) (string, error) {
	id, ok := strings.CutPrefix(network, "cosmos:")
	if !ok || id == "" {
		return "", fmt.Errorf("x402: network %q is not cosmos:<chain-id>", network)
	}
	return id, nil
}

// Encode renders v as a header value: base64 (standard, padded) of JSON.
func Encode(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// MarshalPayload renders a scheme's payload (a BatchPayload, an
// ExactPayload) for PaymentPayload.Payload.
func MarshalPayload(v any) (json.RawMessage, error) { return json.Marshal(v) }

// UnmarshalPayload parses PaymentPayload.Payload into a scheme's payload.
func UnmarshalPayload(raw json.RawMessage, v any) error {
	if ok, err := decodeFast(raw, v); ok {
		return err
	}
	return json.Unmarshal(raw, v)
}

// ErrMalformed is returned for header values that do not decode.
var ErrMalformed = errors.New("x402: malformed header")

// Decode parses a header value into v.
func Decode(s string, v any) error {
	if len(s) > MaxHeaderBytes {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrMalformed, len(s), MaxHeaderBytes)
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%w: not base64: %v", ErrMalformed, err)
	}
	ok, err := decodeFast(b, v)
	if !ok {
		err = json.Unmarshal(b, v)
	}
	if err != nil {
		return fmt.Errorf("%w: not JSON: %v", ErrMalformed, err)
	}
	return nil
}

// Amount parses a decimal amount string.
func Amount(s string) (uint64, error) {
	if s == "" || len(s) > 20 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("x402: amount %q is not a decimal integer", s)
	}
	return strconv.ParseUint(s, 10, 64)
}

// Validate checks requirements as the spec's schema does.
func (r *PaymentRequirements) Validate() error {
	switch {
	case r.Scheme == "":
		return errors.New("x402: requirements: scheme is empty")
	case !strings.Contains(r.Network, ":") || len(r.Network) < 3:
		return fmt.Errorf("x402: requirements: network %q is not CAIP-2", r.Network)
	case r.Asset == "":
		return errors.New("x402: requirements: asset is empty")
	case r.PayTo == "":
		return errors.New("x402: requirements: payTo is empty")
	case r.MaxTimeoutSeconds <= 0:
		return errors.New("x402: requirements: maxTimeoutSeconds must be positive")
	}
	if _, err := Amount(r.Amount); err != nil {
		return fmt.Errorf("x402: requirements: %w", err)
	}
	return nil
}

// Validate checks a PaymentRequired.
func (p *PaymentRequired) Validate() error {
	if p.X402Version != Version {
		return fmt.Errorf("x402: version %d, want %d", p.X402Version, Version)
	}
	if p.Resource.URL == "" {
		return errors.New("x402: payment required: resource.url is empty")
	}
	if len(p.Accepts) == 0 {
		return errors.New("x402: payment required: accepts is empty")
	}
	for i := range p.Accepts {
		if err := p.Accepts[i].Validate(); err != nil {
			return fmt.Errorf("accepts[%d]: %w", i, err)
		}
	}
	return nil
}

// Validate checks a PaymentPayload's envelope (not its scheme payload).
func (p *PaymentPayload) Validate() error {
	if p.X402Version != Version {
		return fmt.Errorf("x402: version %d, want %d", p.X402Version, Version)
	}
	if len(p.Payload) == 0 || p.Payload[0] != '{' {
		return errors.New("x402: payload must be a JSON object")
	}
	return p.Accepted.Validate()
}
