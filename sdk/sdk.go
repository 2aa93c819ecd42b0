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
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/agent/agentpb"
	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/channel/channelpb"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/provider/providerpb"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/h1"
	"github.com/agoranet/agora/internal/keyring"
	"github.com/agoranet/agora/internal/sample"
	"github.com/agoranet/agora/internal/tlspin"
	"github.com/agoranet/agora/x402"
)

// Wallet is an account key and a connection to the chain.
type Wallet struct {
	key     ed25519.PrivateKey
	account addr.Address // zero: the key's own address
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

// ChainID is the chain the wallet is connected to.
func (w *Wallet) ChainID() string { return w.chainID }

// Address is the wallet's account address.
func (w *Wallet) Address() string { return keyring.AccountOf(w.key, w.account).String() }

// ForAccount makes the wallet sign for account, which rotated its key to
// the wallet's (`agora keys rotate`); the key's own address is the default.
func (w *Wallet) ForAccount(account string) error {
	a, err := addr.Parse(account)
	if err != nil {
		return fmt.Errorf("sdk: account: %w", err)
	}
	w.account = a
	return nil
}

// signer is the wallet as a keyring key, for the chain client.
func (w *Wallet) signer() *keyring.Key {
	return &keyring.Key{Name: "agent", Private: w.key, Account: w.account}
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

// Payer is an http.RoundTripper that pays 402s.
type Payer struct {
	w       *Wallet
	budget  Budget
	base    http.RoundTripper
	chain   *chainView
	journal *journal // nil: the books live in memory only

	mu        sync.Mutex                       // guards the fields below
	lines     map[string]*line                 // by payTo and model id
	channels  []*chanInfo                      // every channel, in the order opened
	spent     uint64                           // charges accepted
	committed uint64                           // rises of vouchers and authorizations signed: what the budget pays for
	liars     map[string]error                 // payees caught lying about a charge: paid no more
	known     map[string]*x402.PaymentRequired // the last requirements, by URL
	hosts     map[string]*x402.PaymentRequired // the last requirements of capped requests, by scheme and host

	feed feed          // samples for verifiers
	stop chan struct{} // closed by Close
	once sync.Once
}

// transport is a payer's own: http.DefaultTransport keeps two idle
// connections per host, and a gateway with dozens of requests in flight to
// one provider would dial anew for most of them.
var transport = func() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 256
	// No "Accept-Encoding: gzip": a pinned payer's requests (internal/h1)
	// send none, and a provider must not tell one payer's from another's.
	t.DisableCompression = true
	return t
}()

// NewPayer returns a Payer whose books live in memory, over a transport
// that keeps up to 256 idle connections to each provider.
func NewPayer(w *Wallet, b Budget) *Payer {
	if b.ExpiryBlocks == 0 {
		b.ExpiryBlocks = 10_000
	}
	if len(b.Schemes) == 0 {
		b.Schemes = []string{x402.SchemeBatch, x402.SchemeExact}
	}
	return &Payer{w: w, budget: b, base: transport, chain: &chainView{c: w.chain, services: map[string]servicesAt{}, reading: map[string]bool{}},
		lines: map[string]*line{}, liars: map[string]error{}, known: map[string]*x402.PaymentRequired{}, hosts: map[string]*x402.PaymentRequired{}, stop: make(chan struct{})}
}

// OpenPayer returns a Payer that keeps its books in a journal file as
// well: the channels it opened and how far their vouchers may go, so that
// the next Payer on the same journal (the next `agora pay`, a restarted
// gateway) goes on paying over the same channels, and no deposit is
// forgotten. One process at a time holds a journal. Close it when done.
func OpenPayer(w *Wallet, b Budget, journalPath string) (*Payer, error) {
	p := NewPayer(w, b)
	j, chans, liars, err := openJournal(journalPath, w.Address(), w.chainID)
	if err != nil {
		return nil, err
	}
	p.journal, p.channels = j, chans
	for payee, why := range liars {
		p.liars[payee] = errors.New(why)
	}
	for _, c := range chans {
		if c.retired == "" && !c.reclaimed {
			p.lines[c.payee+"/"+c.model] = &line{ch: c} // the latest open one wins
		}
	}
	return p, nil
}

// Close stops the payer's audit feed and releases its journal.
func (p *Payer) Close() error {
	p.once.Do(func() { close(p.stop) })
	p.feed.flush()
	if p.journal == nil {
		return nil
	}
	p.mu.Lock()
	chans := append([]*chanInfo(nil), p.channels...)
	p.mu.Unlock()
	return p.journal.close(chans)
}

// Spent is what the providers have charged so far, as the payer accepted
// it: each charge checked against the payee's receipt.
func (p *Payer) Spent() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.spent
}

// Committed is what the budget has paid for: the rise of every voucher
// and authorization this payer signed. It bounds what payees can take,
// lying or not.
func (p *Payer) Committed() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.committed
}

// PinTo makes the payer reach https endpoints only by the certificate keys
// in pins (a router's: route.Router.Pins), over its own transport: one
// that does a request's work in the caller's goroutine (internal/h1),
// which on a gateway with both cores busy costs the hop to a provider
// about a third less CPU than net/http's.
func (p *Payer) PinTo(pins *tlspin.Pins) {
	hop := &h1.Transport{DialTLS: pins.DialTLSContext, Fallback: pins.Transport(transport), MaxIdlePerHost: transport.MaxIdleConnsPerHost}
	pins.Track(hop)
	p.base = hop
}

// SetTransport makes the payer send its requests through base instead of
// its own transport (to log or trace them, say). Call it before the
// first request.
func (p *Payer) SetTransport(base http.RoundTripper) { p.base = base }

// Channels lists the channel ids the payer has opened (or continues from
// its journal).
func (p *Payer) Channels() []uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	ids := make([]uint64, len(p.channels))
	for i, c := range p.channels {
		ids[i] = c.id
	}
	return ids
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
	if !strings.HasPrefix(why, "sdk: ") {
		why = "sdk: " + why
	}
	return errors.New(why)
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
			t.endpoint, t.request = sample.Endpoint(req.URL.Path), body
			resp = t.follow(resp, err)
		} else if err == nil {
			resp.Header.Del(ChargedHeader)
			resp.Header.Del(LiedHeader)
		}
		return resp, err
	}
	// A URL that asked for payment before is paid up front, saving the
	// round trip of a 402; if the price has changed, the server's new 402
	// is answered as usual.
	// A capped request (WithPriceCap) is paid up front at its cap when
	// its host asked for payment before, whatever the path: a storage
	// node's pieces each have a URL of their own, and are remembered by
	// host, not one by one.
	url := req.URL.Scheme + "://" + req.URL.Host + req.URL.Path
	most, capped := req.Context().Value(capKey{}).(uint64)
	p.mu.Lock()
	known := p.known[url]
	if h := p.hosts[req.URL.Scheme+"://"+req.URL.Host]; known == nil && capped && most > 0 && h != nil {
		known = atPrice(h, url, most)
	}
	p.mu.Unlock()
	var resp *http.Response
	var err error
	var last *ticket
	if known != nil {
		payment, t, perr := p.pay(req.Context(), known, req.URL.Path, body)
		if perr != nil {
			return nil, perr
		}
		resp, err = send(payment, t)
		last = t
	} else {
		resp, err = send("", nil)
	}
	if err != nil {
		return nil, err
	}
	resp.Header.Del(RefusedHeader) // only we may say we refused
	// A 402 is answered with a fresh voucher: the first asks for payment,
	// a later one says what the channel has charged or in flight (another
	// request's charge that had not reached our books yet), or that the
	// channel can take no more (closed, expiring, full): then another one
	// is opened.
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
		if pr.Error == x402.ReasonAgentStopped {
			resp.Header.Set(RefusedHeader, "budget: the agent is frozen or revoked by its owner")
			return resp, nil
		}
		if last != nil && last.c != nil && channelRefused[pr.Error] {
			// Opening a channel costs a fee and locks a deposit: a payee
			// that says a good channel is done is not believed.
			if err := p.confirmRefusal(req.Context(), last.c, &pr); err != nil {
				resp.Header.Set(RefusedHeader, err.Error())
				return resp, nil
			}
			p.retire(last.c, pr.Error)
		}
		p.mu.Lock()
		if capped {
			p.hosts[req.URL.Scheme+"://"+req.URL.Host] = withoutState(&pr)
		} else {
			p.known[url] = withoutState(&pr)
		}
		p.mu.Unlock()
		payment, t, err := p.pay(req.Context(), &pr, req.URL.Path, body)
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
		last = t
		resp.Header.Del(RefusedHeader)
	}
	return resp, nil
}

// withoutState is pr without the channel states its requirements carry:
// a state is the provider's word about one moment, to be weighed against
// the books once, not to be remembered for the URL's next requests.
func withoutState(pr *x402.PaymentRequired) *x402.PaymentRequired {
	out := *pr
	out.Accepts = make([]x402.PaymentRequirements, len(pr.Accepts))
	for i, a := range pr.Accepts {
		if _, ok := a.Extra["channelState"]; ok {
			extra := make(map[string]any, len(a.Extra))
			for k, v := range a.Extra {
				if k != "channelState" {
					extra[k] = v
				}
			}
			a.Extra = extra
		}
		out.Accepts[i] = a
	}
	return &out
}

// atPrice is a host's requirements for another of its URLs, at amount.
func atPrice(pr *x402.PaymentRequired, url string, amount uint64) *x402.PaymentRequired {
	out := *pr
	out.Resource.URL = url
	out.Accepts = slices.Clone(pr.Accepts)
	for i := range out.Accepts {
		out.Accepts[i].Amount = strconv.FormatUint(amount, 10)
	}
	return &out
}

// channelRefused are the reasons a payee gives for taking no more vouchers
// on a channel: the payer stops using it and opens another.
// (A voucher above the deposit is not among them: the payer never signs
// one, and retires a full channel itself.)
var channelRefused = map[string]bool{
	x402.ReasonChannelClosed: true, x402.ReasonChannelExpiring: true, x402.ReasonChannelNotFound: true, x402.ReasonChannelPayee: true,
}

// confirmRefusal checks with the chain that a payee's refusal of channel c
// is true: it is gone, closed, not the payee's, or expiring.
func (p *Payer) confirmRefusal(ctx context.Context, c *chanInfo, pr *x402.PaymentRequired) error {
	ch, err := client.Ask(ctx, p.w.chain, channelpb.QueryChannel, &channelpb.QueryChannelRequest{Id: c.id})
	var ce *client.ChainError
	switch {
	case errors.As(err, &ce) && ce.Code == 14:
		return nil // not found
	case err != nil:
		return fmt.Errorf("sdk: the payee refused channel %d (%s) and the chain cannot be asked: %w", c.id, pr.Error, err)
	}
	h, err := p.chain.Latest(ctx)
	if err != nil {
		return err
	}
	margin := int64(0)
	for _, a := range pr.Accepts {
		margin = max(margin, p.marginOf(&a))
	}
	if ch.Closed || ch.Payee != c.payee || ch.ExpiresAt <= h+margin+expirySlack {
		return nil
	}
	return fmt.Errorf("sdk: the payee refused channel %d as %s, but the chain has it open until height %d (now %d); it is not replaced", c.id, pr.Error, ch.ExpiresAt, h)
}

// expirySlack is how many blocks before a payee's expiry margin the payer
// stops using a channel, so that it is replaced before it is refused.
const expirySlack = 10

// marginOf is the expiry margin a payee asks for, at most half of a
// channel's life: a payee that asked for more could make the payer open
// a channel (a fee and a deposit) for every request.
func (p *Payer) marginOf(req *x402.PaymentRequirements) int64 {
	m, _ := req.Extra["expiryMarginBlocks"].(float64)
	return min(max(int64(m), 0), p.budget.ExpiryBlocks/2)
}

type capKey struct{}

// WithPriceCap makes a payer pay at most most for the requests made with
// ctx: a caller that knows what a request should cost (a storage read, at
// the price per GiB its node registered on chain) caps it, and a payee
// that asks for more is refused before anything is signed. A capped
// request to a host that asked for payment before is paid up front at
// its cap, without the round trip of a 402: what the payee charges is
// still the price of what it serves, never more than the cap.
func WithPriceCap(ctx context.Context, most uint64) context.Context {
	return context.WithValue(ctx, capKey{}, most)
}

// pay picks a requirement it can meet, checks its price against the
// payee's registered one, makes sure a channel can carry it and signs the
// voucher; the ticket follows the request until its settlement is known.
func (p *Payer) pay(ctx context.Context, pr *x402.PaymentRequired, path string, body []byte) (string, *ticket, error) {
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
	if most, ok := ctx.Value(capKey{}).(uint64); ok && amount > most {
		return "", nil, fmt.Errorf("sdk: %s asks %d%s for this request; its price allows at most %d", req.PayTo, amount, req.Asset, most)
	}
	model, _ := req.Extra["modelId"].(string)
	p.mu.Lock()
	lie := p.liars[req.PayTo]
	p.mu.Unlock()
	if lie != nil {
		return "", nil, fmt.Errorf("sdk: %s lied about a charge (%v); this payer pays it no more", req.PayTo, lie)
	}
	svc, err := p.checkPrice(ctx, req, model, amount, path, body)
	if err != nil {
		return "", nil, err
	}
	if req.Scheme == x402.SchemeExact {
		return p.payExact(pr, req, amount, svc)
	}
	key := req.PayTo + "/" + model
	p.mu.Lock()
	l := p.lines[key]
	if l == nil {
		l = &line{}
		p.lines[key] = l
	}
	p.mu.Unlock()

	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.ch
	if c != nil {
		// Replace a channel before the payee refuses it for its expiry.
		if h, err := p.chain.Height(ctx); err == nil && c.expiresAt <= h+p.marginOf(req)+expirySlack {
			p.retire(c, "expiring")
		}
	}
	cum, err := p.allocate(c, req, amount)
	if err != nil {
		return "", nil, err
	}
	if cum == 0 { // no channel yet, or this one cannot carry the answer
		if c != nil {
			p.retire(c, "full")
		}
		if c, err = p.openChannel(ctx, req.PayTo, model, amount); err != nil {
			return "", nil, err
		}
		l.ch = c
		if cum, err = p.allocate(c, req, amount); err != nil {
			return "", nil, err
		}
		if cum == 0 {
			return "", nil, fmt.Errorf("sdk: a new channel of %d cannot carry an answer of %d", c.deposit, amount)
		}
	}
	t := &ticket{p: p, c: c, payee: req.PayTo, service: svc, max: amount, ref: fmt.Sprintf("channel:%d:%d", c.id, cum)}
	v := channelpb.SignVoucher(p.w.key, p.w.chainID, c.id, cum)
	payload, _ := x402.MarshalPayload(x402.BatchPayload{Type: "voucher", Voucher: x402.Voucher{
		ChannelID: strconv.FormatUint(c.id, 10), MaxClaimableAmount: strconv.FormatUint(v.Cumulative, 10), Signature: base64.StdEncoding.EncodeToString(v.Signature)}})
	h, err := x402.Encode(x402.PaymentPayload{X402Version: x402.Version, Resource: &pr.Resource, Accepted: *req, Payload: payload})
	if err != nil {
		t.release()
		return "", nil, err
	}
	return h, t, nil
}

// checkPrice holds a registered provider to the price it put on chain: an
// answer may cost at most its per-request price plus its per-token price
// for as many tokens as the request allows. It returns the service (nil
// for a payee that is no provider, such as a gateway, which is held to the
// budget and to its own receipts).
func (p *Payer) checkPrice(ctx context.Context, req *x402.PaymentRequirements, model string, amount uint64, path string, body []byte) (*providerpb.Service, error) {
	svc, err := p.chain.Service(ctx, req.PayTo, model)
	if err != nil || svc == nil {
		return nil, err
	}
	if d := svc.GetPricePerRequest().GetDenom(); d != "" && d != req.Asset {
		return nil, fmt.Errorf("sdk: %s asks for %s; it registered its price in %s", req.PayTo, req.Asset, d)
	}
	tokens, ok, err := maxTokensOf(path, body)
	switch {
	case err != nil:
		return nil, fmt.Errorf("sdk: the request cannot be priced: %w", err)
	case !ok:
		return nil, fmt.Errorf("sdk: %s asks to be paid for %s, which is not an inference endpoint its registered price covers", req.PayTo, path)
	}
	if most := priceOf(svc, tokens); amount > most {
		return nil, fmt.Errorf("sdk: %s asks %d for this answer; the price it registered allows at most %d (%d per request + %d per 1000 tokens, up to %d tokens)",
			req.PayTo, amount, most, svc.GetPricePerRequest().GetAmount(), svc.GetPricePer_1KTokens().GetAmount(), tokens)
	}
	return svc, nil
}

// payExact signs a one-off transfer authorization for the exact price.
func (p *Payer) payExact(pr *x402.PaymentRequired, req *x402.PaymentRequirements, amount uint64, svc *providerpb.Service) (string, *ticket, error) {
	if err := p.commit(amount); err != nil {
		return "", nil, err
	}
	t := &ticket{p: p, payee: req.PayTo, service: svc, max: amount, exact: true}
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
	t.ref = fmt.Sprintf("exact:%s:%x", a.From, nonce)
	payload, _ := x402.MarshalPayload(x402.ExactPayload{Signature: base64.StdEncoding.EncodeToString(a.Signature), Authorization: x402.ExactAuthorization{
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
// and the agent's policy, and records it in the journal.
func (p *Payer) openChannel(ctx context.Context, payTo, model string, amount uint64) (*chanInfo, error) {
	deposit := p.budget.Deposit
	if deposit == 0 {
		deposit = 100 * amount
	}
	p.mu.Lock()
	left := p.budget.Max - min(p.committed, p.budget.Max)
	p.mu.Unlock()
	deposit = min(deposit, left)
	if deposit < amount {
		return nil, fmt.Errorf("%w: %d left, a channel for this answer needs %d", ErrBudget, left, amount)
	}
	if err := p.checkPolicy(ctx, payTo, deposit); err != nil {
		return nil, err
	}
	h, err := p.chain.Height(ctx)
	if err != nil {
		return nil, err
	}
	k := p.w.signer()
	msg := &channelpb.MsgOpenChannel{Payer: p.w.Address(), Payee: payTo, ModelId: model, Deposit: coin.New(p.budget.Denom, deposit),
		ExpiresAt: h + p.budget.ExpiryBlocks, PayerKey: p.w.key.Public().(ed25519.PublicKey)}
	res, err := p.w.chain.Submit(ctx, k, "x402 channel", msg)
	if err != nil {
		return nil, fmt.Errorf("sdk: open a channel to %s: %w", payTo, err)
	}
	var opened channelpb.MsgOpenChannelResponse
	if err := res.Response(0, &opened); err != nil {
		return nil, fmt.Errorf("sdk: opened a channel to %s: %w", payTo, err)
	}
	c := &chanInfo{id: opened.ChannelId, payee: payTo, model: model, deposit: deposit, expiresAt: msg.ExpiresAt}
	if p.journal != nil {
		// Synced: a channel the journal forgot would be a deposit forgotten.
		if err := p.journal.write(jrecord{Channel: c.id, Payee: payTo, Model: model, Denom: p.budget.Denom, Deposit: deposit, ExpiresAt: c.expiresAt}, true); err != nil {
			return nil, err
		}
	}
	p.mu.Lock()
	p.channels = append(p.channels, c)
	p.mu.Unlock()
	return c, nil
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
