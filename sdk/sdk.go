// Package sdk is the agent SDK: a wallet that pays for HTTP answers with
// x402 over Agora payment channels, within a budget the agent sets itself
// and the spending policy the chain enforces on it.
//
//	w, _ := sdk.NewWallet(key, "http://127.0.0.1:26657")
//	payer := sdk.NewPayer(w, sdk.Budget{Denom: "uusdc", Max: 1_000_000})
//	client := &http.Client{Transport: payer}
//	// any request through client that gets a 402 is paid and retried
//
// The Payer opens a channel to each provider (and model) it pays, signs a
// voucher per request for the channel's charged total plus the request's
// maximum, and follows the actual charges the provider reports. It refuses
// before sending anything that its budget or the agent's on-chain policy
// would not allow.
package sdk

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/agent/agentpb"
	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/channel/channelpb"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/keyring"
	"github.com/agoranet/agora/x402"
)

// Wallet is an account key and a connection to the chain.
type Wallet struct {
	key     ed25519.PrivateKey
	chain   *client.Client
	chainID string
}

// NewWallet connects key to the node at nodeURL.
func NewWallet(key ed25519.PrivateKey, nodeURL string) (*Wallet, error) {
	c, err := client.New(nodeURL)
	if err != nil {
		return nil, err
	}
	id, err := c.ChainID(context.Background())
	if err != nil {
		return nil, err
	}
	return &Wallet{key: key, chain: c, chainID: id}, nil
}

// Address is the wallet's account address.
func (w *Wallet) Address() string {
	return addr.FromPubKey(w.key.Public().(ed25519.PublicKey)).String()
}

// Budget is the agent's own limit, checked before anything is sent.
type Budget struct {
	Denom string
	// Max is the most the Payer will commit in vouchers, in total.
	Max uint64
	// Deposit is how much a new channel locks (default 100 times the first
	// request's price), and ExpiryBlocks how long it lives (default 10000).
	Deposit      uint64
	ExpiryBlocks int64
	// Schemes are the x402 schemes to pay with, in order of preference
	// (default: batch-settlement, then exact).
	Schemes []string
}

// ErrBudget is returned when a payment would exceed the budget or the
// agent's on-chain policy.
var ErrBudget = errors.New("sdk: over budget")

type chanInfo struct {
	id      uint64
	deposit uint64
	charged uint64 // what the provider says it charged so far
}

// Payer is an http.RoundTripper that pays 402s.
type Payer struct {
	w      *Wallet
	budget Budget
	base   http.RoundTripper

	mu       sync.Mutex           // guards the fields below
	channels map[string]*chanInfo // by payTo and model id
	spent    uint64               // actual charges so far
	chanMu   map[string]*sync.Mutex
	known    map[string]*x402.PaymentRequired // the last requirements, by URL
}

// NewPayer returns a Payer over http.DefaultTransport.
func NewPayer(w *Wallet, b Budget) *Payer {
	if b.ExpiryBlocks == 0 {
		b.ExpiryBlocks = 10_000
	}
	if len(b.Schemes) == 0 {
		b.Schemes = []string{x402.SchemeBatch, x402.SchemeExact}
	}
	return &Payer{w: w, budget: b, base: http.DefaultTransport, channels: map[string]*chanInfo{}, chanMu: map[string]*sync.Mutex{}, known: map[string]*x402.PaymentRequired{}}
}

// Spent is what the providers have charged so far.
func (p *Payer) Spent() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.spent
}

// SetTransport makes the payer send its requests through base instead of
// http.DefaultTransport (to log or trace them, say). Call it before the
// first request.
func (p *Payer) SetTransport(base http.RoundTripper) { p.base = base }

// Channels lists the channel ids the payer has opened.
func (p *Payer) Channels() []uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []uint64
	for _, c := range p.channels {
		out = append(out, c.id)
	}
	return out
}

// RefusedHeader is set by the payer, never by a server (the payer drops a
// server's), on a 402 it hands back unpaid: the reason, "budget: …" when
// the budget or the agent's policy was it. A header survives the body
// wrappers of http.Client and middleware.
const RefusedHeader = "Agora-Payer-Refused"

// Refused returns why the payer did not pay for a request, or nil: err
// when the payer refused before sending (a known price over budget), or
// the reason it put on the 402 it handed back. The budget's and the
// policy's refusals wrap ErrBudget; any other (no payment option the
// budget can meet, the chain unreachable) is the request's failure.
func Refused(resp *http.Response, err error) error {
	if err != nil {
		return err
	}
	if resp == nil || resp.StatusCode != http.StatusPaymentRequired {
		return nil
	}
	why := resp.Header.Get(RefusedHeader)
	if why == "" {
		return nil
	}
	if rest, ok := strings.CutPrefix(why, "budget: "); ok {
		return fmt.Errorf("%w: %s", ErrBudget, rest)
	}
	return errors.New("sdk: " + why)
}

// RoundTrip sends req; on a 402 it pays with a voucher and sends it again.
// Like every http.RoundTripper, once it has a response it returns it, not
// an error: a 402 it will not pay comes back as is (see Refused).
func (p *Payer) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		body = b
	}
	send := func(payment string) (*http.Response, error) {
		r := req.Clone(req.Context())
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		if payment != "" {
			r.Header.Set(x402.HeaderSignature, payment)
		}
		return p.base.RoundTrip(r)
	}
	// A URL that asked for payment before is paid up front, saving the
	// round trip of a 402; if the price has changed, the server's new 402
	// is answered as usual.
	url := req.URL.Scheme + "://" + req.URL.Host + req.URL.Path
	p.mu.Lock()
	known := p.known[url]
	p.mu.Unlock()
	var resp *http.Response
	var err error
	if known != nil {
		payment, key, unlock, perr := p.pay(req.Context(), known)
		if perr != nil {
			return nil, perr
		}
		resp, err = send(payment)
		p.follow(key, resp)
		unlock()
	} else {
		resp, err = send("")
	}
	if err != nil {
		return nil, err
	}
	resp.Header.Del(RefusedHeader) // only we may say we refused
	if resp.StatusCode != http.StatusPaymentRequired {
		return resp, nil
	}
	for attempt := 0; attempt < 2 && resp.StatusCode == http.StatusPaymentRequired; attempt++ {
		var pr x402.PaymentRequired
		if err := x402.Decode(resp.Header.Get(x402.HeaderRequired), &pr); err != nil {
			return resp, nil // not x402: hand the 402 to the caller
		}
		// Keep the 402's body: if we will not pay, the caller gets the
		// response as it came (the RoundTripper contract), with our reason
		// attached for Refused.
		b, rerr := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if rerr != nil {
			return nil, rerr
		}
		resp.Body = io.NopCloser(bytes.NewReader(b))
		p.mu.Lock()
		p.known[url] = &pr
		p.mu.Unlock()
		payment, key, unlock, err := p.pay(req.Context(), &pr)
		if err != nil {
			why := err.Error()
			if errors.Is(err, ErrBudget) {
				why = "budget: " + strings.TrimPrefix(why, ErrBudget.Error()+": ")
			}
			resp.Header.Set(RefusedHeader, why)
			return resp, nil
		}
		resp, err = send(payment)
		p.follow(key, resp)
		unlock()
		if err != nil {
			return nil, err
		}
		resp.Header.Del(RefusedHeader)
	}
	return resp, nil
}

// pay picks a requirement it can meet, makes sure a channel can carry it
// and signs the voucher. The channel stays locked until unlock, so one
// channel's vouchers go out one at a time.
func (p *Payer) pay(ctx context.Context, pr *x402.PaymentRequired) (string, string, func(), error) {
	var req *x402.PaymentRequirements
	for _, scheme := range p.budget.Schemes {
		for i := range pr.Accepts {
			a := &pr.Accepts[i]
			if req == nil && a.Scheme == scheme && a.Network == x402.Network(p.w.chainID) && a.Asset == p.budget.Denom {
				req = a
			}
		}
	}
	if req == nil {
		return "", "", nil, fmt.Errorf("sdk: no payment option in %s on %s among %d offered", p.budget.Denom, x402.Network(p.w.chainID), len(pr.Accepts))
	}
	amount, err := x402.Amount(req.Amount)
	if err != nil {
		return "", "", nil, err
	}
	if req.Scheme == x402.SchemeExact {
		return p.payExact(pr, req, amount)
	}
	model, _ := req.Extra["modelId"].(string)
	key := req.PayTo + "/" + model
	p.mu.Lock()
	mu := p.chanMu[key]
	if mu == nil {
		mu = &sync.Mutex{}
		p.chanMu[key] = mu
	}
	p.mu.Unlock()
	mu.Lock()
	unlock := mu.Unlock
	// A server that reports a different charged total (after our crash, or
	// a request that failed after it was charged) is followed, never below
	// what we already agreed.
	if st, ok := req.Extra["channelState"].(map[string]any); ok {
		if cs, err := x402.Amount(fmt.Sprint(st["chargedCumulativeAmount"])); err == nil {
			p.mu.Lock()
			if c := p.channels[key]; c != nil && fmt.Sprint(st["channelId"]) == strconv.FormatUint(c.id, 10) && cs > c.charged {
				c.charged = cs
			}
			p.mu.Unlock()
		}
	}
	p.mu.Lock()
	c := p.channels[key]
	committed := p.spent
	p.mu.Unlock()
	if committed+amount > p.budget.Max {
		unlock()
		return "", "", nil, fmt.Errorf("%w: %d spent, this answer may cost %d, budget %d", ErrBudget, committed, amount, p.budget.Max)
	}
	if c == nil || c.charged+amount > c.deposit {
		if c, err = p.openChannel(ctx, req.PayTo, model, amount); err != nil {
			unlock()
			return "", "", nil, err
		}
		p.mu.Lock()
		p.channels[key] = c
		p.mu.Unlock()
	}
	v := channelpb.SignVoucher(p.w.key, p.w.chainID, c.id, c.charged+amount)
	payload, _ := json.Marshal(x402.BatchPayload{Type: "voucher", Voucher: x402.Voucher{
		ChannelID: strconv.FormatUint(c.id, 10), MaxClaimableAmount: strconv.FormatUint(v.Cumulative, 10), Signature: base64.StdEncoding.EncodeToString(v.Signature)}})
	h, err := x402.Encode(x402.PaymentPayload{X402Version: x402.Version, Resource: &pr.Resource, Accepted: *req, Payload: payload})
	return h, key, unlock, err
}

// payExact signs a one-off transfer authorization for the exact price.
func (p *Payer) payExact(pr *x402.PaymentRequired, req *x402.PaymentRequirements, amount uint64) (string, string, func(), error) {
	p.mu.Lock()
	over := p.spent+amount > p.budget.Max
	p.mu.Unlock()
	if over {
		return "", "", nil, fmt.Errorf("%w: this answer costs %d, budget %d", ErrBudget, amount, p.budget.Max)
	}
	if err := p.checkPolicy(context.Background(), req.PayTo, amount); err != nil {
		return "", "", nil, err
	}
	nonce := make([]byte, 32)
	if _, err := rand.Read(nonce); err != nil {
		return "", "", nil, err
	}
	now := time.Now().Unix()
	a := &bankpb.Authorization{From: p.w.Address(), To: req.PayTo, Amount: coin.New(req.Asset, amount), ValidAfter: now - 60, ValidBefore: now + int64(req.MaxTimeoutSeconds) + 60, Nonce: nonce}
	bankpb.SignAuthorization(p.w.key, p.w.chainID, a)
	payload, _ := json.Marshal(x402.ExactPayload{Signature: base64.StdEncoding.EncodeToString(a.Signature), Authorization: x402.ExactAuthorization{
		From: a.From, To: a.To, Value: strconv.FormatUint(amount, 10), ValidAfter: strconv.FormatInt(a.ValidAfter, 10), ValidBefore: strconv.FormatInt(a.ValidBefore, 10),
		Nonce: hex.EncodeToString(nonce), PublicKey: base64.StdEncoding.EncodeToString(a.PublicKey)}})
	h, err := x402.Encode(x402.PaymentPayload{X402Version: x402.Version, Resource: &pr.Resource, Accepted: *req, Payload: payload})
	return h, exactKey, func() {}, err
}

// exactKey marks an exact payment for follow.
const exactKey = "\x00exact"

// follow reads PAYMENT-RESPONSE and adopts the charge it reports.
func (p *Payer) follow(key string, resp *http.Response) {
	if resp == nil {
		return
	}
	h := resp.Header.Get(x402.HeaderResponse)
	if h == "" {
		return
	}
	if key == exactKey {
		var sr x402.SettlementResponse
		if x402.Decode(h, &sr) == nil && sr.Success {
			if n, err := x402.Amount(sr.Amount); err == nil {
				p.mu.Lock()
				p.spent += n
				p.mu.Unlock()
			}
		}
		return
	}
	var sr struct {
		Success bool `json:"success"`
		Extra   struct {
			ChargedAmount string            `json:"chargedAmount"`
			ChannelState  x402.ChannelState `json:"channelState"`
		} `json:"extra"`
	}
	if x402.Decode(h, &sr) != nil || !sr.Success {
		return
	}
	charged, err1 := x402.Amount(sr.Extra.ChannelState.ChargedCumulativeAmount)
	amount, err2 := x402.Amount(sr.Extra.ChargedAmount)
	if err1 != nil || err2 != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.channels[key]; c != nil && charged > c.charged {
		c.charged = charged
		p.spent += amount
	}
}

// openChannel opens a channel for payTo's model after checking the budget
// and the agent's policy.
func (p *Payer) openChannel(ctx context.Context, payTo, model string, amount uint64) (*chanInfo, error) {
	deposit := p.budget.Deposit
	if deposit == 0 {
		deposit = 100 * amount
	}
	p.mu.Lock()
	left := p.budget.Max - min(p.spent, p.budget.Max)
	p.mu.Unlock()
	deposit = min(deposit, left)
	if deposit < amount {
		return nil, fmt.Errorf("%w: %d left, a channel for this answer needs %d", ErrBudget, left, amount)
	}
	if err := p.checkPolicy(ctx, payTo, deposit); err != nil {
		return nil, err
	}
	st, err := p.w.chain.Status(ctx)
	if err != nil {
		return nil, err
	}
	k := &keyring.Key{Name: "agent", Private: p.w.key}
	msg := &channelpb.MsgOpenChannel{Payer: p.w.Address(), Payee: payTo, ModelId: model, Deposit: coin.New(p.budget.Denom, deposit),
		ExpiresAt: st.Height + p.budget.ExpiryBlocks, PayerKey: p.w.key.Public().(ed25519.PublicKey)}
	res, err := p.w.chain.Submit(ctx, k, "x402 channel", msg)
	if err != nil {
		return nil, fmt.Errorf("sdk: open a channel to %s: %w", payTo, err)
	}
	var opened channelpb.MsgOpenChannelResponse
	if err := res.Response(0, &opened); err != nil {
		return nil, fmt.Errorf("sdk: opened a channel to %s: %w", payTo, err)
	}
	return &chanInfo{id: opened.ChannelId, deposit: deposit}, nil
}

// checkPolicy refuses, before anything is sent, a deposit the chain would
// refuse under the agent's policy.
func (p *Payer) checkPolicy(ctx context.Context, payTo string, amount uint64) error {
	r, err := client.Ask(ctx, p.w.chain, agentpb.QueryAgent, &agentpb.QueryAgentRequest{Address: p.w.Address()})
	if err != nil {
		var ce *client.ChainError
		if errors.As(err, &ce) && ce.Code == 14 { // not an agent: no policy
			return nil
		}
		return err
	}
	a, pol := r.Agent, r.Agent.Policy
	switch {
	case a.Frozen || a.Revoked:
		return fmt.Errorf("%w: the agent is frozen or revoked by its owner", ErrBudget)
	case pol.Denom != p.budget.Denom:
		return fmt.Errorf("%w: the policy allows only %s", ErrBudget, pol.Denom)
	case pol.MaxPerTx > 0 && amount > pol.MaxPerTx:
		return fmt.Errorf("%w: a deposit of %d is over the policy's %d per transaction", ErrBudget, amount, pol.MaxPerTx)
	case amount > r.RemainingInPeriod:
		return fmt.Errorf("%w: %d left this period, a deposit needs %d", ErrBudget, r.RemainingInPeriod, amount)
	case amount > r.RemainingLifetime:
		return fmt.Errorf("%w: %d left in the agent's lifetime, a deposit needs %d", ErrBudget, r.RemainingLifetime, amount)
	}
	if len(pol.AllowedRecipients) > 0 {
		for _, r := range pol.AllowedRecipients {
			if r == payTo {
				return nil
			}
		}
		return fmt.Errorf("%w: the policy does not allow paying %s", ErrBudget, payTo)
	}
	return nil
}
