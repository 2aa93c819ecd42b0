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
	"net"
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

// A line is what the payer pays one payee for one model: its current
// channel. mu is held while a channel opens, so a line opens one at a time.
type line struct {
	mu sync.Mutex
	ch *chanInfo
}

// chanInfo is one channel and the payer's books on it.
//
// The invariant (docs/payments.md): a voucher is signed for charged plus the
// maxima of every request in flight on the channel, this one's included,
// and of those that ended unsettled in the last reserveGrace, so that
// however many requests run at once, each voucher covers what the provider
// has charged or reserved. The books are the payer's own: a provider that
// asks for a voucher above charged + in flight + unsettled is not paid
// (the request fails over), whatever its 402 says.
type chanInfo struct {
	id      uint64
	deposit uint64

	mu        sync.Mutex // guards the books below
	charged   uint64     // the provider's charged total, as its settlements report it
	inflight  uint64     // maxima of the requests sent and not yet settled
	unsettled []pending  // requests that ended with no settlement seen: maybe charged, oldest first
}

// pending is a request that ended without the payer learning its charge
// (a broken connection, a stream closed early, the loser of a hedge). The
// provider may have charged it, or may still hold its maximum in reserve
// for a moment, until it notices the client gone.
type pending struct {
	amount uint64
	at     time.Time
}

const (
	// For reserveGrace after a request ends unsettled, its maximum stays
	// in the vouchers' base: the provider may still be holding it.
	reserveGrace = 10 * time.Second
	// For booksGrace it stays in the books: the provider may yet report
	// it charged.
	booksGrace = 10 * time.Minute
)

// unsettledSums prunes what is past booksGrace and returns what is within
// reserveGrace and what is in the books at all.
func (c *chanInfo) unsettledSums(now time.Time) (recent, all uint64) {
	i := 0
	for i < len(c.unsettled) && now.Sub(c.unsettled[i].at) > booksGrace {
		i++
	}
	c.unsettled = c.unsettled[i:]
	for _, p := range c.unsettled {
		all += p.amount
		if now.Sub(p.at) <= reserveGrace {
			recent += p.amount
		}
	}
	return recent, all
}

// recognize takes amount, now known charged, out of the unsettled books,
// oldest first.
func (c *chanInfo) recognize(amount uint64) {
	for amount > 0 && len(c.unsettled) > 0 {
		take := min(amount, c.unsettled[0].amount)
		c.unsettled[0].amount -= take
		amount -= take
		if c.unsettled[0].amount == 0 {
			c.unsettled = c.unsettled[1:]
		}
	}
}

// A ticket is one request's claim on a channel's books, from signing its
// voucher until the answer's settlement (or its absence) is known.
type ticket struct {
	p     *Payer
	c     *chanInfo // nil for an exact payment
	max   uint64
	exact bool
	done  bool
}

// Payer is an http.RoundTripper that pays 402s.
type Payer struct {
	w      *Wallet
	budget Budget
	base   http.RoundTripper

	mu       sync.Mutex                       // guards the fields below
	lines    map[string]*line                 // by payTo and model id
	opened   []uint64                         // every channel opened, in order
	spent    uint64                           // actual charges so far
	inflight uint64                           // maxima of every request in flight, for the budget
	known    map[string]*x402.PaymentRequired // the last requirements, by URL
}

// transport is a payer's own: http.DefaultTransport keeps two idle
// connections per host, and a gateway with dozens of requests in flight to
// one provider would dial anew for most of them.
var transport = func() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 256
	return t
}()

// NewPayer returns a Payer over a transport that keeps up to 256 idle
// connections to each provider.
func NewPayer(w *Wallet, b Budget) *Payer {
	if b.ExpiryBlocks == 0 {
		b.ExpiryBlocks = 10_000
	}
	if len(b.Schemes) == 0 {
		b.Schemes = []string{x402.SchemeBatch, x402.SchemeExact}
	}
	return &Payer{w: w, budget: b, base: transport, lines: map[string]*line{}, known: map[string]*x402.PaymentRequired{}}
}

// Spent is what the providers have charged so far.
func (p *Payer) Spent() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.spent
}

// SetTransport makes the payer send its requests through base instead of
// its own transport (to log or trace them, say). Call it before the
// first request.
func (p *Payer) SetTransport(base http.RoundTripper) { p.base = base }

// Channels lists the channel ids the payer has opened.
func (p *Payer) Channels() []uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]uint64(nil), p.opened...)
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
// budget can meet, the chain unreachable, a provider asking for more than
// the payer's books allow) is the request's failure.
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
// an error: a 402 it will not pay comes back as is (see Refused). Many
// requests may be in flight at once, on one channel or several.
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
	send := func(payment string, t *ticket) (*http.Response, error) {
		r := req.Clone(req.Context())
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		if payment != "" {
			r.Header.Set(x402.HeaderSignature, payment)
		}
		resp, err := p.base.RoundTrip(r)
		if t != nil {
			resp = t.follow(resp, err)
		}
		return resp, err
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
		payment, t, perr := p.pay(req.Context(), known)
		if perr != nil {
			return nil, perr
		}
		resp, err = send(payment, t)
	} else {
		resp, err = send("", nil)
	}
	if err != nil {
		return nil, err
	}
	resp.Header.Del(RefusedHeader) // only we may say we refused
	// A 402 is answered with a fresh voucher: the first asks for payment,
	// a later one says what the channel has charged or in flight (another
	// request's charge that had not reached our books yet).
	for attempt := 0; attempt < 3 && resp.StatusCode == http.StatusPaymentRequired; attempt++ {
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
		payment, t, err := p.pay(req.Context(), &pr)
		if err != nil {
			why := err.Error()
			if errors.Is(err, ErrBudget) {
				why = "budget: " + strings.TrimPrefix(why, ErrBudget.Error()+": ")
			}
			resp.Header.Set(RefusedHeader, why)
			return resp, nil
		}
		if resp, err = send(payment, t); err != nil {
			return nil, err
		}
		resp.Header.Del(RefusedHeader)
	}
	return resp, nil
}

// pay picks a requirement it can meet, makes sure a channel can carry it
// and signs the voucher; the ticket follows the request until its
// settlement is known.
func (p *Payer) pay(ctx context.Context, pr *x402.PaymentRequired) (string, *ticket, error) {
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
		return "", nil, fmt.Errorf("sdk: no payment option in %s on %s among %d offered", p.budget.Denom, x402.Network(p.w.chainID), len(pr.Accepts))
	}
	amount, err := x402.Amount(req.Amount)
	if err != nil {
		return "", nil, err
	}
	if req.Scheme == x402.SchemeExact {
		return p.payExact(pr, req, amount)
	}
	// The budget counts every request in flight at its maximum.
	p.mu.Lock()
	if committed := p.spent + p.inflight; committed+amount > p.budget.Max {
		p.mu.Unlock()
		return "", nil, fmt.Errorf("%w: %d spent or in flight, this answer may cost %d, budget %d", ErrBudget, committed, amount, p.budget.Max)
	}
	model, _ := req.Extra["modelId"].(string)
	key := req.PayTo + "/" + model
	l := p.lines[key]
	if l == nil {
		l = &line{}
		p.lines[key] = l
	}
	p.inflight += amount // taken now, so concurrent requests see it
	p.mu.Unlock()
	t := &ticket{p: p, max: amount}

	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.ch
	cum, err := c.allocate(req, amount)
	if err != nil {
		t.release()
		return "", nil, err
	}
	if cum == 0 { // no channel yet, or this one cannot carry the answer
		if c, err = p.openChannel(ctx, req.PayTo, model, amount); err != nil {
			t.release()
			return "", nil, err
		}
		l.ch = c
		p.mu.Lock()
		p.opened = append(p.opened, c.id)
		p.mu.Unlock()
		if cum, err = c.allocate(req, amount); err != nil || cum == 0 {
			t.release()
			return "", nil, fmt.Errorf("sdk: a new channel of %d cannot carry an answer of %d", c.deposit, amount)
		}
	}
	t.c = c
	v := channelpb.SignVoucher(p.w.key, p.w.chainID, c.id, cum)
	payload, _ := json.Marshal(x402.BatchPayload{Type: "voucher", Voucher: x402.Voucher{
		ChannelID: strconv.FormatUint(c.id, 10), MaxClaimableAmount: strconv.FormatUint(v.Cumulative, 10), Signature: base64.StdEncoding.EncodeToString(v.Signature)}})
	h, err := x402.Encode(x402.PaymentPayload{X402Version: x402.Version, Resource: &pr.Resource, Accepted: *req, Payload: payload})
	if err != nil {
		t.release()
		return "", nil, err
	}
	return h, t, nil
}

// allocate books an answer of up to amount on the channel and returns the
// cumulative its voucher must carry, or 0 when the channel (nil: none yet)
// cannot carry it. A 402's channel state for this channel, when within the
// books, is adopted first; one beyond them is refused.
func (c *chanInfo) allocate(req *x402.PaymentRequirements, amount uint64) (uint64, error) {
	if c == nil {
		return 0, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	recent, unsettled := c.unsettledSums(time.Now())
	base := c.charged + c.inflight + recent
	if st, ok := req.Extra["channelState"].(map[string]any); ok && fmt.Sprint(st["channelId"]) == strconv.FormatUint(c.id, 10) {
		if s, err := x402.Amount(fmt.Sprint(st["chargedCumulativeAmount"])); err == nil && s > base {
			// The provider has charged or reserved more than we know of:
			// requests whose settlement we never saw can explain up to
			// unsettled of it, no more.
			if books := c.charged + c.inflight + unsettled; s > books {
				return 0, fmt.Errorf("sdk: provider %s says channel %d has %d charged or in flight; this payer's books allow %d (%d charged, %d in flight, %d unsettled), so it is not paid more",
					req.PayTo, c.id, s, books, c.charged, c.inflight, unsettled)
			}
			recognized := s - base
			c.charged += recognized
			c.recognize(recognized)
			base = s
		}
	}
	if c.charged+c.inflight+unsettled+amount > c.deposit {
		return 0, nil
	}
	c.inflight += amount
	return base + amount, nil
}

// release gives back a ticket that was never sent.
func (t *ticket) release() {
	t.done = true
	t.p.mu.Lock()
	t.p.inflight -= t.max
	t.p.mu.Unlock()
}

// end closes the ticket: with the charge a settlement reported (ok), or
// with none (refused: the provider took nothing; or unknown: it may have
// charged, and the maximum stays in the books as unsettled).
func (t *ticket) end(settled bool, charged, amount uint64, unknown bool) {
	if t.done {
		return
	}
	t.done = true
	p := t.p
	if t.exact {
		p.mu.Lock()
		p.inflight -= t.max
		if settled {
			p.spent += amount
		}
		p.mu.Unlock()
		return
	}
	c := t.c
	c.mu.Lock()
	c.inflight -= t.max
	if settled {
		c.charged = max(c.charged, charged)
	} else if unknown {
		c.unsettled = append(c.unsettled, pending{amount: t.max, at: time.Now()})
	}
	c.mu.Unlock()
	p.mu.Lock()
	p.inflight -= t.max
	if settled {
		p.spent += amount
	}
	p.mu.Unlock()
}

// settlement reads a PAYMENT-RESPONSE: the channel's charged total after
// this answer and this answer's charge.
func settlement(h string, exact bool) (charged, amount uint64, ok bool) {
	if h == "" {
		return 0, 0, false
	}
	if exact {
		var sr x402.SettlementResponse
		if x402.Decode(h, &sr) != nil || !sr.Success {
			return 0, 0, false
		}
		n, err := x402.Amount(sr.Amount)
		return 0, n, err == nil
	}
	var sr struct {
		Success bool `json:"success"`
		Extra   struct {
			ChargedAmount string            `json:"chargedAmount"`
			ChannelState  x402.ChannelState `json:"channelState"`
		} `json:"extra"`
	}
	if x402.Decode(h, &sr) != nil || !sr.Success {
		return 0, 0, false
	}
	charged, err1 := x402.Amount(sr.Extra.ChannelState.ChargedCumulativeAmount)
	amount, err2 := x402.Amount(sr.Extra.ChargedAmount)
	return charged, amount, err1 == nil && err2 == nil
}

// follow books a paid request's outcome: at once when the response says
// (PAYMENT-RESPONSE in its header, or a refusal), at the end of its body
// for a stream (PAYMENT-RESPONSE in its trailer).
func (t *ticket) follow(resp *http.Response, err error) *http.Response {
	switch {
	case err != nil && neverSent(err): // nothing listens: nothing was asked, nothing charged
		t.end(false, 0, 0, false)
		return resp
	case err != nil: // the answer may have been made and charged
		t.end(false, 0, 0, true)
		return resp
	case resp.StatusCode != http.StatusOK: // refused or failed: nothing charged
		t.end(false, 0, 0, false)
		return resp
	}
	if charged, amount, ok := settlement(resp.Header.Get(x402.HeaderResponse), t.exact); ok {
		t.end(true, charged, amount, false)
		return resp
	}
	resp.Body = &settlingBody{ReadCloser: resp.Body, resp: resp, t: t}
	return resp
}

// neverSent tells whether err is a failure to connect, so that the
// request never reached the provider. Counting those as maybe charged
// would let a provider that is down for a moment, refusing thousands of
// connections, fill the channel's books with charges that cannot exist.
func neverSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// settlingBody books a streamed answer's charge from its trailer when the
// body ends; a body closed early leaves the answer unsettled.
type settlingBody struct {
	io.ReadCloser
	resp *http.Response
	t    *ticket
	mu   sync.Mutex
}

func (b *settlingBody) Read(buf []byte) (int, error) {
	n, err := b.ReadCloser.Read(buf)
	if err == io.EOF {
		b.mu.Lock()
		charged, amount, ok := settlement(b.resp.Trailer.Get(x402.HeaderResponse), b.t.exact)
		b.t.end(ok, charged, amount, !ok)
		b.mu.Unlock()
	}
	return n, err
}

func (b *settlingBody) Close() error {
	err := b.ReadCloser.Close()
	b.mu.Lock()
	b.t.end(false, 0, 0, true)
	b.mu.Unlock()
	return err
}

// payExact signs a one-off transfer authorization for the exact price.
func (p *Payer) payExact(pr *x402.PaymentRequired, req *x402.PaymentRequirements, amount uint64) (string, *ticket, error) {
	p.mu.Lock()
	if p.spent+p.inflight+amount > p.budget.Max {
		p.mu.Unlock()
		return "", nil, fmt.Errorf("%w: this answer costs %d, budget %d", ErrBudget, amount, p.budget.Max)
	}
	p.inflight += amount
	p.mu.Unlock()
	t := &ticket{p: p, max: amount, exact: true}
	if err := p.checkPolicy(context.Background(), req.PayTo, amount); err != nil {
		t.release()
		return "", nil, err
	}
	nonce := make([]byte, 32)
	if _, err := rand.Read(nonce); err != nil {
		t.release()
		return "", nil, err
	}
	now := time.Now().Unix()
	a := &bankpb.Authorization{From: p.w.Address(), To: req.PayTo, Amount: coin.New(req.Asset, amount), ValidAfter: now - 60, ValidBefore: now + int64(req.MaxTimeoutSeconds) + 60, Nonce: nonce}
	bankpb.SignAuthorization(p.w.key, p.w.chainID, a)
	payload, _ := json.Marshal(x402.ExactPayload{Signature: base64.StdEncoding.EncodeToString(a.Signature), Authorization: x402.ExactAuthorization{
		From: a.From, To: a.To, Value: strconv.FormatUint(amount, 10), ValidAfter: strconv.FormatInt(a.ValidAfter, 10), ValidBefore: strconv.FormatInt(a.ValidBefore, 10),
		Nonce: hex.EncodeToString(nonce), PublicKey: base64.StdEncoding.EncodeToString(a.PublicKey)}})
	h, err := x402.Encode(x402.PaymentPayload{X402Version: x402.Version, Resource: &pr.Resource, Accepted: *req, Payload: payload})
	if err != nil {
		t.release()
		return "", nil, err
	}
	return h, t, nil
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
