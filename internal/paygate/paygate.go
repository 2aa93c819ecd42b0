// Package paygate puts a price on HTTP answers with x402: it answers 402
// with the payment requirements, checks a request's channel voucher locally
// in microseconds, records it durably before the answer is made, charges
// the actual price afterwards (nothing for an answer that failed), and
// claims what it charged on chain in batches, with the Merkle root of the
// receipts each claim pays for.
package paygate

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/channel/channelpb"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/tx"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/keyring"
	"github.com/agoranet/agora/internal/receipt"
	"github.com/agoranet/agora/x402"
	"google.golang.org/protobuf/proto"
)

// Config configures a Gate.
type Config struct {
	ChainID string
	// Key is the payee's: vouchers must pay its address, and it signs
	// claims.
	Key ed25519.PrivateKey
	// Account is the account Key signs for, when a key rotation made it
	// differ from Key's own address (keyring.Key.Account); zero otherwise.
	Account addr.Address
	// Chain reads channels and submits claims.
	Chain *client.Client
	// LogPath is the durable voucher log.
	LogPath string
	// ClaimEvery claims once this many answers are unclaimed; ClaimInterval
	// claims whatever is unclaimed this often.
	ClaimEvery    int
	ClaimInterval time.Duration
	// ExpiryMargin refuses vouchers on channels that expire within this
	// many blocks, and claims channels that close to expiry at once.
	ExpiryMargin int64
	// HeightEvery is how often the gate reads the chain's height, which
	// its expiry checks need: a gate that believed the height 0 took
	// vouchers on expired channels, whose payer then took its deposit back.
	HeightEvery time.Duration
	// SyncEvery is how long a voucher may wait in the kernel for its
	// fsync. An answer is served once its voucher is written (a crash of
	// the process, SIGKILL included, loses nothing), and the log is
	// fsynced within SyncEvery after: a crash of the machine itself (power,
	// kernel) can lose the vouchers of the answers of that last interval,
	// the provider's own unclaimed earnings for them and never a payer's
	// money. 0 holds every answer until its voucher is fsynced.
	SyncEvery time.Duration
	Logger    *slog.Logger
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{ClaimEvery: 1000, ClaimInterval: 5 * time.Second, ExpiryMargin: 20, HeightEvery: time.Second, SyncEvery: 10 * time.Millisecond}
}

// Price is what one request may cost at most, in a denom, for a model.
type Price struct {
	Denom   string
	Max     uint64
	ModelID string
}

type chanState struct {
	// wmu orders the channel's charge and claim records on disk as they
	// are in memory (receipts, in the order the chain anchors them); it is
	// taken before the gate's mu.
	wmu      sync.Mutex
	anchors  []anchor           // the latest accepted claims' receipt hashes, in order (see keepAnchor)
	nAnchors int                // accepted claims in all: anchors[i] is claim nAnchors-len(anchors)+i
	ch       *channelpb.Channel // as last read from chain
	voucher  uint64             // highest voucher seen
	sig      []byte
	charged  uint64 // charged total of finished answers
	reserved uint64 // maxima of answers in flight
	claimed  uint64 // accepted by the chain
	receipts [][]byte
	// intent is a claim sent whose outcome is unknown: the log says it
	// was about to be sent and not that the chain took it (a crash), or
	// its submission failed short of the chain's answer (a timeout). It
	// is settled against the chain's anchors before the channel claims
	// again (see settle). unlogged is an accepted claim whose record
	// could not be written, written before the channel claims again, so
	// the log keeps the chain's order.
	intent       *record
	intentHeight int64 // the chain's height when it was sent
	unlogged     *record
}

// Gate is the payment side of a server.
type Gate struct {
	cfg    Config
	log    *slog.Logger
	payee  addr.Address
	wal    *wal
	agents *agents

	mu       sync.Mutex // guards the fields below
	channels map[uint64]*chanState
	height   int64
	pending  int             // answers since the last claim
	kept     []uint64        // the channel of each claim whose leaves are in memory, oldest first
	held     int             // what those claims cost in memory (see anchorBudget)
	exact    map[string]bool // exact authorizations paying an answer now, by payer and nonce

	// claimMu makes claims one at a time: two at once (the claim loop and
	// a caller) submitted the same vouchers, paid the fee twice and
	// reported the chain's refusal of the second as a failed claim.
	claimMu sync.Mutex

	kick chan struct{}
	stop context.CancelFunc
	done chan struct{}
}

// Open replays the voucher log and starts the claim loop.
func Open(cfg Config) (*Gate, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if len(cfg.Key) != ed25519.PrivateKeySize || cfg.Chain == nil || cfg.LogPath == "" || cfg.ChainID == "" {
		return nil, errors.New("paygate: need a key, a chain client, a chain-id and a log path")
	}
	if cfg.SyncEvery < 0 || cfg.SyncEvery > time.Second {
		return nil, fmt.Errorf("paygate: voucher log sync interval %s; use 0 (each answer waits for its fsync) up to 1s", cfg.SyncEvery)
	}
	g := &Gate{cfg: cfg, log: cfg.Logger, payee: keyring.AccountOf(cfg.Key, cfg.Account), channels: map[uint64]*chanState{}, exact: map[string]bool{}, kick: make(chan struct{}, 1), done: make(chan struct{})}
	onErr := func(err error) { g.log.Error("paygate: the background fsync of the voucher log failed", "err", err) }
	w, err := openWAL(cfg.LogPath, cfg.SyncEvery, onErr, func(r record) {
		s := g.channels[r.Channel]
		if s == nil {
			s = &chanState{}
			g.channels[r.Channel] = s
		}
		switch {
		case r.Voucher > 0 && r.Voucher > s.voucher:
			s.voucher, s.sig = r.Voucher, r.Signature
		case r.Charged > 0 || r.Receipt != nil: // a free answer's charge has no total yet
			s.charged = max(s.charged, r.Charged)
			s.receipts = append(s.receipts, r.Receipt)
		case r.Claimed > 0 && r.Claimed <= s.claimed:
			// A record written again after a failed fsync that had
			// written it after all: the claim is counted once.
		case r.Claimed > 0:
			s.claimed = r.Claimed
			n := min(int(r.Count), len(s.receipts))
			g.keepAnchor(r.Channel, s, s.receipts[:n:n])
			s.receipts = s.receipts[n:]
			s.intent = nil
		case r.Claiming > 0 && r.Dropped:
			s.intent = nil
		case r.Claiming > 0:
			s.intent = &r
		}
	})
	if err != nil {
		return nil, err
	}
	g.wal = w
	ctx, cancel := context.WithCancel(context.Background())
	g.stop = cancel
	g.followHeight(ctx) // once now, so that no voucher is taken before the height is known
	g.agents = newAgents(cfg.Chain)
	go g.agents.follow(ctx)
	// A revoked session key signs nothing more here at once, and what it
	// signed before is claimed before the chain stops taking it.
	go subscribe(ctx, cfg.Chain, "tm.event='Tx' AND revoke_session_key.channel_id EXISTS", func(ev client.Event) {
		for _, v := range ev.Events["revoke_session_key.channel_id"] {
			id, err := strconv.ParseUint(v, 10, 64)
			g.mu.Lock()
			known := err == nil && g.channels[id] != nil
			g.mu.Unlock()
			if known {
				go func() { // not in the subscription's reader: it would fall behind
					g.refresh(ctx, id)
					select {
					case g.kick <- struct{}{}:
					default:
					}
				}()
			}
		}
	})
	go g.claimLoop(ctx)
	return g, nil
}

// followHeight reads the chain's height now and then every HeightEvery,
// until ctx ends.
func (g *Gate) followHeight(ctx context.Context) {
	read := func() {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if st, err := g.cfg.Chain.Status(rctx); err == nil {
			g.SetHeight(st.Height)
		}
	}
	read()
	every := g.cfg.HeightEvery
	if every <= 0 {
		every = time.Second
	}
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				read()
			}
			if time.Since(last) >= agentRecheck {
				last = time.Now()
				g.recheckSessionKeys(ctx)
			}
		}
	}()
}

// recheckSessionKeys rereads the channels whose session key may sign, in
// case the event of a revocation was missed.
func (g *Gate) recheckSessionKeys(ctx context.Context) {
	g.mu.Lock()
	var ids []uint64
	for id, s := range g.channels {
		if s.ch != nil && len(s.ch.SessionKey) > 0 && s.ch.SessionRevokedAt == 0 && !s.ch.Closed {
			ids = append(ids, id)
		}
	}
	g.mu.Unlock()
	for _, id := range ids {
		g.refresh(ctx, id)
	}
}

// Close claims what is unclaimed and stops.
func (g *Gate) Close() error {
	g.stop()
	<-g.done
	return g.wal.close()
}

// Network is the gate's x402 network.
func (g *Gate) Network() string { return x402.Network(g.cfg.ChainID) }

// Requirements is what a 402 for this price offers.
func (g *Gate) Requirements(url string, p Price, reason string) x402.PaymentRequired {
	return x402.PaymentRequired{
		X402Version: x402.Version, Error: reason,
		Resource: x402.ResourceInfo{URL: url, MimeType: "application/json"},
		Accepts: []x402.PaymentRequirements{{
			Scheme: x402.SchemeBatch, Network: g.Network(), Amount: strconv.FormatUint(p.Max, 10), Asset: p.Denom,
			PayTo: g.payee.String(), MaxTimeoutSeconds: 300,
			Extra: map[string]any{"modelId": p.ModelID, "expiryMarginBlocks": g.cfg.ExpiryMargin},
		}, {
			// exact: a one-off signed transfer of the maximum price,
			// settled on chain before the answer is sent.
			Scheme: x402.SchemeExact, Network: g.Network(), Amount: strconv.FormatUint(p.Max, 10), Asset: p.Denom,
			PayTo: g.payee.String(), MaxTimeoutSeconds: 300, Extra: map[string]any{"modelId": p.ModelID},
		}},
	}
}

// Payment is a request's payment between Begin and Finish or Abort.
type Payment struct {
	g          *Gate
	s          *chanState
	id         uint64
	price      Price
	max        uint64
	cumulative uint64
	payer      string
	done       bool
	auth       *bankpb.Authorization // set for an exact payment
	exactKey   string
	settled    bool   // the exact transfer is on chain
	response   string // its PAYMENT-RESPONSE
	// admitted reports the background check of a channel payment (see
	// Start): nil once its voucher checked and its maximum is reserved.
	// ctx ends, with the refusal as its cause, if the check fails (or the
	// voucher log does).
	admitted chan *PaymentError
	aerr     *PaymentError
	aWaited  bool
	ctx      context.Context
	cancel   context.CancelCauseFunc
	// durable reports when the voucher has reached the disk (or the check
	// failed). The answer is computed meanwhile, but not sent before (see
	// Durable).
	durable chan error
	derr    error
	waited  bool
	// interim is a stream's latest interim receipt and its price: what
	// Abort charges if the stream is cut before its end.
	interim     uint64
	interimHash []byte
}

// Interim records a stream's interim receipt (its hash) and the price of
// the stream so far: if the stream is cut before Finish, the client has had
// that much, and Abort charges it. Channel payments only: an exact payment
// is the whole price, settled before the first byte.
func (p *Payment) Interim(actual uint64, receiptHash []byte) {
	if p != nil && p.auth == nil {
		p.interim, p.interimHash = actual, receiptHash
	}
}

// Durable waits until the payment is safe: a voucher on disk, or an exact
// transfer settled on chain. Nothing of the answer may be sent before it
// returns nil: after that point no crash loses the right to be paid, and a
// transfer that fails to settle costs no answer.
func (p *Payment) Durable() error {
	if p != nil && p.auth != nil {
		if !p.settled && p.derr == nil {
			p.response, p.derr = p.settleExact()
			p.settled = p.derr == nil
		}
		return p.derr
	}
	if p == nil || p.durable == nil || p.waited {
		if p != nil {
			return p.derr
		}
		return nil
	}
	p.waited = true
	p.derr = <-p.durable
	return p.derr
}

// Admitted waits for the background check of a started channel payment
// (see Start): nil once its voucher checked and its maximum is reserved,
// or the refusal to send instead of the answer.
func (p *Payment) Admitted() *PaymentError {
	if p == nil || p.admitted == nil {
		return nil
	}
	if !p.aWaited {
		p.aWaited = true
		p.aerr = <-p.admitted
	}
	return p.aerr
}

// Context is the context to compute the answer in: parent, ended early if
// the payment's background check fails.
func (p *Payment) Context(parent context.Context) context.Context {
	if p == nil || p.ctx == nil {
		return parent
	}
	return p.ctx
}

// Refusal is why the payment was refused after Start, or nil, without
// waiting: Admitted's refusal once the check is done, or the voucher
// log's failure once the write is.
func (p *Payment) Refusal() *PaymentError {
	if p == nil || p.ctx == nil {
		return nil
	}
	var perr *PaymentError
	if errors.As(context.Cause(p.ctx), &perr) {
		return perr
	}
	return nil
}

// Price is what the payment was started for.
func (p *Payment) Price() Price { return p.price }

// Ref names the payment in receipts.
func (p *Payment) Ref() string {
	if p.auth != nil {
		return fmt.Sprintf("exact:%s:%x", p.auth.From, p.auth.Nonce)
	}
	return fmt.Sprintf("channel:%d:%d", p.id, p.cumulative)
}

// PaymentError is a payment refusal: HTTP status and x402 reason.
type PaymentError struct {
	Status int
	Reason string
	Msg    string
	State  *x402.ChannelState
}

func (e *PaymentError) Error() string { return e.Msg }

func refuse(status int, reason, format string, args ...any) *PaymentError {
	return &PaymentError{Status: status, Reason: reason, Msg: fmt.Sprintf(format, args...)}
}

// Write sends a refusal: a 402 (or 400) with PAYMENT-REQUIRED, the
// reason, the channel's state when the client needs to resync, and an
// OpenAI-style error body.
func (g *Gate) Write(w http.ResponseWriter, r *http.Request, p Price, e *PaymentError) {
	req := g.Requirements(r.URL.String(), p, e.Reason)
	if e.State != nil {
		req.Accepts[0].Extra["channelState"] = e.State
	}
	if h, err := x402.Encode(req); err == nil {
		w.Header().Set(x402.HeaderRequired, h)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	body, _ := json.Marshal(map[string]any{"error": map[string]any{"message": e.Msg, "type": "payment_required", "code": e.Reason}})
	w.Write(append(body, '\n'))
}

// Begin checks r's PAYMENT-SIGNATURE against the price. With none it
// returns a 402 refusal carrying the requirements.
func (g *Gate) Begin(r *http.Request, p Price) (*Payment, *PaymentError) {
	pay, perr := g.Start(r, p)
	if perr != nil {
		return nil, perr
	}
	if perr := pay.Admitted(); perr != nil {
		return nil, perr
	}
	return pay, nil
}

// Start is Begin with a voucher's signature checked in the background, so
// that the answer can be computed meanwhile: it returns once the checks
// that need no signature pass. The voucher's room is reserved only once
// its signature checks, so an unsigned voucher takes none from the
// payer's honest requests; a failure cancels Context, and Admitted (and
// so Durable and Finish) reports it. Nothing of the answer may be sent
// before Durable returns nil.
func (g *Gate) Start(r *http.Request, p Price) (*Payment, *PaymentError) {
	h := r.Header.Get(x402.HeaderSignature)
	if h == "" {
		return nil, refuse(http.StatusPaymentRequired, "", "this answer costs up to %d%s; pay with x402 (PAYMENT-SIGNATURE)", p.Max, p.Denom)
	}
	var pp x402.PaymentPayload
	if err := x402.Decode(h, &pp); err != nil {
		return nil, refuse(http.StatusBadRequest, x402.ReasonInvalidPayload, "PAYMENT-SIGNATURE: %v", err)
	}
	if pp.X402Version != x402.Version {
		return nil, refuse(http.StatusPaymentRequired, x402.ReasonInvalidX402Version, "x402Version %d; this server speaks %d", pp.X402Version, x402.Version)
	}
	if pp.Accepted.Network != g.Network() {
		return nil, refuse(http.StatusPaymentRequired, x402.ReasonInvalidNetwork, "network %q; this server is on %s", pp.Accepted.Network, g.Network())
	}
	if pp.Accepted.Scheme == x402.SchemeExact {
		req := g.Requirements(r.URL.String(), p, "").Accepts[1]
		auth, perr := VerifyExact(r.Context(), g.cfg.Chain, g.cfg.ChainID, &req, pp.Payload, time.Now())
		if perr != nil {
			return nil, perr
		}
		// The chain refuses a nonce twice, but only once it is settled:
		// until then one authorization must not start two answers.
		key := auth.From + "/" + hex.EncodeToString(auth.Nonce)
		g.mu.Lock()
		inUse := g.exact[key]
		g.exact[key] = true
		g.mu.Unlock()
		if inUse {
			return nil, refuse(http.StatusPaymentRequired, x402.ReasonNonceUsed, "this authorization is paying for another answer already; sign a new one for each request")
		}
		return &Payment{g: g, price: p, max: p.Max, payer: auth.From, auth: auth, exactKey: key}, nil
	}
	if pp.Accepted.Scheme != x402.SchemeBatch {
		return nil, refuse(http.StatusPaymentRequired, x402.ReasonUnsupportedScheme, "scheme %q; this server takes %s or %s", pp.Accepted.Scheme, x402.SchemeBatch, x402.SchemeExact)
	}
	v, perr := ParseVoucher(pp.Payload)
	if perr != nil {
		return nil, perr
	}
	id, cum := v.ChannelId, v.Cumulative
	g.mu.Lock()
	height := g.height
	g.mu.Unlock()
	if height == 0 { // the chain has not answered yet: no expiry can be checked
		return nil, refuse(http.StatusServiceUnavailable, x402.ReasonUnexpectedVerifyError, "this server cannot reach the chain to check channel %d; retry shortly", id)
	}
	s, perr := g.channel(r.Context(), id)
	if perr != nil {
		return nil, perr
	}
	// The cached channel may predate a top-up or an extension: read it
	// again before refusing for either.
	g.mu.Lock()
	stale := cum > s.ch.Deposit || s.ch.ExpiresAt <= g.height+g.cfg.ExpiryMargin
	g.mu.Unlock()
	if stale {
		if s, perr = g.refresh(r.Context(), id); perr != nil {
			return nil, perr
		}
	}
	g.mu.Lock()
	c := s.ch
	state := func() *x402.ChannelState {
		return &x402.ChannelState{ChannelID: strconv.FormatUint(id, 10), Balance: strconv.FormatUint(c.Deposit, 10), TotalClaimed: strconv.FormatUint(s.claimed, 10), ChargedCumulativeAmount: strconv.FormatUint(s.charged+s.reserved, 10)}
	}
	switch {
	case c.Payee != g.payee.String():
		g.mu.Unlock()
		return nil, refuse(http.StatusPaymentRequired, x402.ReasonChannelPayee, "channel %d pays %s, not this provider %s", id, c.Payee, g.payee)
	case c.Denom != p.Denom || c.ModelId != "" && c.ModelId != p.ModelID:
		g.mu.Unlock()
		return nil, refuse(http.StatusPaymentRequired, x402.ReasonChannelPayee, "channel %d is for %s %s; this answer is priced in %s for model %s", id, c.Denom, c.ModelId, p.Denom, p.ModelID)
	case c.Closed:
		g.mu.Unlock()
		return nil, refuse(http.StatusPaymentRequired, x402.ReasonChannelClosed, "channel %d is closed; open a new one", id)
	case c.ExpiresAt <= g.height+g.cfg.ExpiryMargin:
		g.mu.Unlock()
		return nil, refuse(http.StatusPaymentRequired, x402.ReasonChannelExpiring, "channel %d expires at height %d, too soon (height %d, margin %d); extend it or open another", id, c.ExpiresAt, g.height, g.cfg.ExpiryMargin)
	case max(cum, s.voucher) < s.charged+s.reserved+p.Max:
		e := refuse(http.StatusPaymentRequired, x402.ReasonCumulativeMismatch, "voucher for %d; channel %d has %d charged or in flight, so this answer needs a voucher for at least %d", cum, id, s.charged+s.reserved, s.charged+s.reserved+p.Max)
		e.State = state()
		g.mu.Unlock()
		return nil, e
	case cum > c.Deposit:
		g.mu.Unlock()
		return nil, refuse(http.StatusPaymentRequired, x402.ReasonInsufficientFunds, "voucher for %d is above channel %d's deposit of %d; fund the channel", cum, id, c.Deposit)
	}
	g.mu.Unlock()
	if err := g.wal.failed(); err != nil { // refused before the model runs
		return nil, refuse(http.StatusServiceUnavailable, x402.ReasonUnexpectedVerifyError, "this provider cannot record vouchers now: %v", err)
	}
	pay := &Payment{g: g, s: s, id: id, price: p, max: p.Max, cumulative: cum, payer: c.Payer, admitted: make(chan *PaymentError, 1), durable: make(chan error, 1)}
	pay.ctx, pay.cancel = context.WithCancelCause(r.Context())
	go g.admit(pay, c, v)
	return pay, nil
}

// admit checks a started payment's voucher signature and its payer, then
// reserves the answer's maximum and records the voucher: the background
// half of Start.
func (g *Gate) admit(pay *Payment, c *channelpb.Channel, v *channelpb.Voucher) {
	fail := func(perr *PaymentError) {
		pay.admitted <- perr
		pay.durable <- perr
		pay.cancel(perr)
	}
	id, s := pay.id, pay.s
	if err := channelpb.VerifyVoucher(g.cfg.ChainID, c, v, 0); err != nil {
		fail(refuse(http.StatusPaymentRequired, x402.ReasonVoucherSignature, "%v", err))
		return
	}
	if g.agents.Stopped(pay.ctx, c.Payer) {
		fail(refuse(http.StatusPaymentRequired, x402.ReasonAgentStopped, "channel %d's payer %s is an agent its owner has frozen or revoked; its vouchers are not taken", id, c.Payer))
		return
	}
	g.mu.Lock()
	// What must cover every charge is the best voucher the gate holds: a
	// payer's concurrent requests can arrive out of the order it signed
	// them in, and a later voucher covers the earlier requests' maxima.
	if max(v.Cumulative, s.voucher) < s.charged+s.reserved+pay.max { // a concurrent request took the room meanwhile
		e := refuse(http.StatusPaymentRequired, x402.ReasonCumulativeMismatch, "a concurrent request on channel %d used this voucher's room; sign one for at least %d", id, s.charged+s.reserved+pay.max)
		e.State = &x402.ChannelState{ChannelID: strconv.FormatUint(id, 10), Balance: strconv.FormatUint(s.ch.Deposit, 10), TotalClaimed: strconv.FormatUint(s.claimed, 10), ChargedCumulativeAmount: strconv.FormatUint(s.charged+s.reserved, 10)}
		g.mu.Unlock()
		fail(e)
		return
	}
	if v.Cumulative > s.voucher {
		s.voucher, s.sig = v.Cumulative, v.Signature
	}
	// What goes to disk is the best voucher, which may be another
	// request's: it is what covers this answer.
	best, bestSig := s.voucher, s.sig
	s.reserved += pay.max
	g.mu.Unlock()
	pay.admitted <- nil
	// Durable holds the answer back until the voucher is written: with
	// SyncEvery, into the kernel (the background fsync follows); without,
	// onto the disk. Either way while the answer is computed.
	rec := record{Channel: id, Voucher: best, Signature: bestSig}
	var err error
	if g.cfg.SyncEvery > 0 {
		err = g.wal.write(rec)
	} else {
		err = g.wal.append(rec)
	}
	if err != nil { // the model stops, and the client hears why
		perr := refuse(http.StatusServiceUnavailable, x402.ReasonUnexpectedVerifyError, "this provider cannot record vouchers now: %v", err)
		pay.cancel(perr)
		pay.durable <- perr
		return
	}
	pay.durable <- nil
}

// channel returns the state of a channel, reading it from chain when it
// is new to the gate (or known only from the log).
func (g *Gate) channel(ctx context.Context, id uint64) (*chanState, *PaymentError) {
	g.mu.Lock()
	s := g.channels[id]
	known := s != nil && s.ch != nil
	g.mu.Unlock()
	if known {
		return s, nil
	}
	return g.refresh(ctx, id)
}

// refresh reads channel id from chain, without the lock, and installs it
// in one step: the channel stays usable meanwhile.
func (g *Gate) refresh(ctx context.Context, id uint64) (*chanState, *PaymentError) {
	c, err := client.Ask(ctx, g.cfg.Chain, channelpb.QueryChannel, &channelpb.QueryChannelRequest{Id: id})
	if err != nil {
		return nil, refuse(http.StatusPaymentRequired, x402.ReasonChannelNotFound, "channel %d: %v", id, err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.channels[id]
	if s == nil {
		s = &chanState{}
		g.channels[id] = s
	}
	s.ch = c
	s.claimed = max(s.claimed, c.Claimed)
	s.charged = max(s.charged, c.Claimed)
	return s, nil
}

// Finish charges the actual price of a served answer (at most the
// maximum), records it durably, and returns the PAYMENT-RESPONSE value.
func (p *Payment) Finish(actual uint64, receiptHash []byte) (string, error) {
	g := p.g
	if p.auth != nil {
		if err := p.Durable(); err != nil {
			return "", err
		}
		return p.response, nil
	}
	if perr := p.Admitted(); perr != nil {
		p.done = true
		return "", perr
	}
	if err := p.Durable(); err != nil {
		p.Abort()
		return "", fmt.Errorf("paygate: the voucher could not be recorded, so the answer is not served: %w", err)
	}
	actual = min(actual, p.max)
	p.s.wmu.Lock()
	defer p.s.wmu.Unlock()
	g.mu.Lock()
	p.done = true
	p.s.reserved -= p.max
	p.s.charged += actual
	charged := p.s.charged
	p.s.receipts = append(p.s.receipts, receiptHash)
	g.pending++
	kick := g.pending >= g.cfg.ClaimEvery
	deposit, claimed := p.s.ch.Deposit, p.s.claimed
	g.mu.Unlock()
	// The charge is written without an fsync: it must survive the process
	// (a SIGKILL), and does, in the kernel's cache. Should the machine
	// itself fail, the provider claims up to the charges that reached the
	// disk: less than it earned, never more.
	if err := g.wal.write(record{Channel: p.id, Charged: charged, Receipt: receiptHash}); err != nil {
		return "", err
	}
	if kick {
		select {
		case g.kick <- struct{}{}:
		default:
		}
	}
	return x402.Encode(x402.SettlementResponse{
		Success: true, Payer: p.payer, Network: g.Network(), Amount: strconv.FormatUint(actual, 10),
		Extra: map[string]any{"chargedAmount": strconv.FormatUint(actual, 10), "channelState": x402.ChannelState{
			ChannelID: strconv.FormatUint(p.id, 10), Balance: strconv.FormatUint(deposit, 10), TotalClaimed: strconv.FormatUint(claimed, 10),
			ChargedCumulativeAmount: strconv.FormatUint(charged, 10)}},
	})
}

// settleExact submits the transfer authorization and waits for its block:
// the exact scheme charges the full price, before the answer is sent.
func (p *Payment) settleExact() (string, error) {
	p.done = true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	k := &keyring.Key{Name: "payee", Private: p.g.cfg.Key, Account: p.g.payee}
	res, err := p.g.cfg.Chain.Submit(ctx, k, "x402 exact", &bankpb.MsgTransferWithAuthorization{Submitter: p.g.payee.String(), Authorization: p.auth})
	// Settled or not, the chain now answers for the nonce.
	p.g.mu.Lock()
	delete(p.g.exact, p.exactKey)
	p.g.mu.Unlock()
	if err != nil {
		return "", fmt.Errorf("paygate: settle exact payment: %w", err)
	}
	return x402.Encode(x402.SettlementResponse{Success: true, Payer: p.auth.From, Transaction: res.Hash, Network: p.g.Network(), Amount: strconv.FormatUint(p.auth.Amount.Amount, 10)})
}

// Abort releases a payment whose answer failed: nothing is charged, or,
// for a stream cut short, the price of its last interim receipt.
func (p *Payment) Abort() {
	if p != nil && p.cancel != nil {
		defer p.cancel(nil) // the answer is over
	}
	if p == nil || p.done {
		return
	}
	if h := p.interimHash; h != nil {
		p.interimHash = nil // Finish aborts if the voucher cannot be recorded
		if _, err := p.Finish(p.interim, h); err != nil {
			p.g.log.Error("paygate: charge a cut stream", "err", err)
		}
		return
	}
	if p.auth != nil { // never settled: the authorization may pay another answer
		p.done = true
		p.g.mu.Lock()
		delete(p.g.exact, p.exactKey)
		p.g.mu.Unlock()
		return
	}
	p.done = true
	if p.Admitted() != nil {
		return // refused: nothing was reserved
	}
	p.g.mu.Lock()
	p.s.reserved -= p.max
	p.g.mu.Unlock()
}

// Height is the chain's height as the gate last read it (0: not yet).
func (g *Gate) Height() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.height
}

// SetHeight tells the gate the chain's height (for expiry checks).
func (g *Gate) SetHeight(h int64) {
	g.mu.Lock()
	g.height = max(g.height, h)
	h = g.height
	var urgent bool
	for _, s := range g.channels {
		// Only while the chain still pays it: a channel already closed
		// or expired would wake the claim loop at every height for ever.
		urgent = urgent || s.ch != nil && s.charged > s.claimed && !s.ch.Closed && h <= s.ch.ExpiresAt && s.ch.ExpiresAt <= h+g.cfg.ExpiryMargin
	}
	g.mu.Unlock()
	if urgent {
		select {
		case g.kick <- struct{}{}:
		default:
		}
	}
}

func (g *Gate) claimLoop(ctx context.Context) {
	defer close(g.done)
	t := time.NewTicker(g.cfg.ClaimInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			g.Claim(cctx)
			cancel()
			return
		case <-t.C:
		case <-g.kick:
		}
		if err := g.Claim(ctx); err != nil && ctx.Err() == nil {
			g.log.Warn("paygate: claim failed", "err", err)
		}
	}
}

// claimMsgBytes is how much of a claim transaction its claims may fill:
// the tx limit less room for the envelope, signature and fee.
const claimMsgBytes = tx.MaxBytes - 4<<10

// Claim claims everything charged and not yet claimed, on every channel,
// in as many transactions as the tx size limit needs. Channels the chain
// will not pay any more (closed, expired) leave the batch; a batch the
// chain refuses is split until each failing claim is alone, so one
// channel's failure never blocks the others'. The chain pays only
// increases, so no claim is ever paid twice.
func (g *Gate) Claim(ctx context.Context) error {
	g.claimMu.Lock()
	defer g.claimMu.Unlock()
	// Channels known only from the log (after a restart) are read first.
	g.mu.Lock()
	var unknown []uint64
	for id, s := range g.channels {
		if s.ch == nil && s.charged > s.claimed {
			unknown = append(unknown, id)
		}
	}
	g.mu.Unlock()
	for _, id := range unknown {
		g.channel(ctx, id)
	}
	g.flushUnlogged()
	g.settlePending(ctx)
	g.mu.Lock()
	var claims []*channelpb.Claim
	for id, s := range g.channels { // sorted below
		if s.charged <= s.claimed || s.voucher < s.charged || s.ch == nil || s.unlogged != nil || s.intent != nil {
			continue
		}
		if s.ch.Closed || g.height > 0 && g.height > s.ch.ExpiresAt {
			continue // the chain would refuse it, and the batch with it
		}
		claims = append(claims, &channelpb.Claim{Voucher: &channelpb.Voucher{ChannelId: id, Cumulative: s.voucher, Signature: s.sig},
			Amount: s.charged, ReceiptsRoot: receipt.Root(s.receipts), ReceiptsCount: uint64(len(s.receipts))})
	}
	g.pending = 0
	g.mu.Unlock()
	sort.Slice(claims, func(i, j int) bool { return claims[i].Voucher.ChannelId < claims[j].Voucher.ChannelId })
	if len(claims) > 0 {
		// Every charge a claim covers is in the log before its intent: an
		// answer that Finish has counted holds its channel's wmu until
		// its charge record is written.
		for _, c := range claims {
			g.mu.Lock()
			s := g.channels[c.Voucher.ChannelId]
			g.mu.Unlock()
			s.wmu.Lock()
			//lint:ignore SA2001 a barrier: it waits out the charge records being written
			s.wmu.Unlock()
		}
		intents := make([]record, 0, len(claims))
		for _, c := range claims {
			intents = append(intents, record{Channel: c.Voucher.ChannelId, Claiming: c.Amount, Count: c.ReceiptsCount})
		}
		if err := g.wal.append(intents...); err != nil {
			return fmt.Errorf("paygate: the claims about to be sent cannot be logged, so none is sent: %w", err)
		}
	}
	var errs []error
	for _, batch := range batches(claims, claimMsgBytes) {
		errs = append(errs, g.claim(ctx, batch)...)
	}
	if len(errs) > 0 {
		return fmt.Errorf("paygate: %d of %d claims failed: %w", len(errs), len(claims), errors.Join(errs...))
	}
	if len(claims) > 0 {
		g.log.Info("paygate: claimed", "channels", len(claims))
	}
	return nil
}

// flushUnlogged writes the claim records that could not be written when
// their claims were accepted.
func (g *Gate) flushUnlogged() {
	g.mu.Lock()
	var late []*chanState
	for _, s := range g.channels {
		if s.unlogged != nil {
			late = append(late, s)
		}
	}
	g.mu.Unlock()
	for _, s := range late {
		s.wmu.Lock()
		if err := g.wal.append(*s.unlogged); err != nil {
			g.log.Error("paygate: an accepted claim's record still cannot be written; its channel claims no more until it is", "channel", s.unlogged.Channel, "err", err)
		} else {
			s.unlogged = nil
		}
		s.wmu.Unlock()
	}
}

// intentLanding is how many blocks a claim of unknown outcome may still
// land in before it is dropped and its receipts go into the next claim: a
// tx the mempool holds is usually in the next block or two. A channel
// about to expire does not wait (an unclaimed channel pays nothing).
const intentLanding = 20

// settlePending settles the claims of unknown outcome: sent just before a
// crash (from the log) or whose submission gave up before the chain
// answered. A channel whose claim is still undecided claims no more.
func (g *Gate) settlePending(ctx context.Context) {
	g.mu.Lock()
	var pending []*chanState
	for _, s := range g.channels {
		if s.intent != nil {
			pending = append(pending, s)
		}
	}
	g.mu.Unlock()
	for _, s := range pending {
		if err := g.settle(ctx, s); err != nil {
			g.log.Warn("paygate: a claim's outcome is not known yet; its channel waits", "channel", s.intent.Channel, "err", err)
		}
	}
}

// settle decides s's claim of unknown outcome by the chain's anchors: the
// one whose cumulative end is the claim's amount (amounts only rise, so
// at most one) is it. A claim that landed gets its record and its anchor,
// so its receipts stay numbered as the chain numbers them. One not found
// is dropped, its receipts left for the next claim, once it can no longer
// be expected to land (see intentLanding).
func (g *Gate) settle(ctx context.Context, s *chanState) error {
	g.mu.Lock()
	in := s.intent
	g.mu.Unlock()
	if in == nil {
		return nil
	}
	an, err := client.Ask(ctx, g.cfg.Chain, channelpb.QueryAnchors, &channelpb.QueryAnchorsRequest{ChannelId: in.Channel})
	if err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	g.mu.Lock()
	n := min(int(in.Count), len(s.receipts))
	landed := slices.IndexFunc(an.Anchors, func(a *channelpb.Anchor) bool { return a.To == in.Claiming })
	if landed >= 0 {
		if a := an.Anchors[landed]; landed != s.nAnchors || a.Count != in.Count || !bytes.Equal(a.Root, receipt.Root(s.receipts[:n])) {
			g.log.Error("paygate: a claim landed that this gate's log does not match; some of its receipts cannot be proven", "channel", in.Channel, "anchor", landed, "anchors_here", s.nAnchors)
		}
		// The chain took these receipts, matched or not: they are not
		// claimed again.
		s.claimed = max(s.claimed, in.Claiming)
		g.keepAnchor(in.Channel, s, s.receipts[:n:n])
		s.receipts = s.receipts[n:]
	} else {
		switch expiring := s.ch != nil && s.ch.ExpiresAt <= g.height+g.cfg.ExpiryMargin; {
		case g.height == 0:
			g.mu.Unlock()
			return fmt.Errorf("channel %d: the chain's height is not known yet", in.Channel)
		case s.intentHeight == 0: // from the log: the wait starts now
			s.intentHeight = g.height
			g.mu.Unlock()
			return fmt.Errorf("channel %d: the claim for %d sent before the restart may still land", in.Channel, in.Claiming)
		case !expiring && g.height < s.intentHeight+intentLanding:
			g.mu.Unlock()
			return fmt.Errorf("channel %d: the claim for %d may still land (sent at height %d)", in.Channel, in.Claiming, s.intentHeight)
		}
	}
	s.intent = nil
	g.mu.Unlock()
	rec := record{Channel: in.Channel, Claiming: in.Claiming, Count: in.Count, Dropped: true}
	if landed >= 0 {
		rec = record{Channel: in.Channel, Claimed: in.Claiming, Count: uint64(n)}
	}
	if err := g.wal.append(rec); err != nil && landed >= 0 {
		s.unlogged = &rec
	}
	return nil
}

// batches splits claims into runs that each fit in one message of at most
// limit bytes.
func batches(claims []*channelpb.Claim, limit int) [][]*channelpb.Claim {
	var out [][]*channelpb.Claim
	var cur []*channelpb.Claim
	size := 0
	for _, c := range claims {
		n := proto.Size(c) + 8 // the field's tag and length
		if len(cur) > 0 && size+n > limit {
			out = append(out, cur)
			cur, size = nil, 0
		}
		cur = append(cur, c)
		size += n
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// claim submits one batch; if the chain refuses it, it splits the batch in
// two and tries each half, down to single claims, whose refusals it
// returns (after rereading their channels, so the next claim is current).
func (g *Gate) claim(ctx context.Context, batch []*channelpb.Claim) []error {
	k := &keyring.Key{Name: "payee", Private: g.cfg.Key, Account: g.payee}
	_, err := g.cfg.Chain.Submit(ctx, k, "", module.Msg(&channelpb.MsgClaim{Payee: g.payee.String(), Claims: batch}))
	if err != nil {
		if errors.Is(err, client.ErrMaybeSent) {
			// The tx may still land: each claim is settled against the
			// chain before its channel claims again, or the same receipts
			// would be anchored twice.
			g.mu.Lock()
			for _, c := range batch {
				s := g.channels[c.Voucher.ChannelId]
				s.intent = &record{Channel: c.Voucher.ChannelId, Claiming: c.Amount, Count: c.ReceiptsCount}
				s.intentHeight = g.height
			}
			g.mu.Unlock()
			return []error{err}
		}
		var ce *client.ChainError
		if !errors.As(err, &ce) || ctx.Err() != nil {
			return []error{err} // never sent: try all again later
		}
		if len(batch) == 1 {
			id := batch[0].Voucher.ChannelId
			// Refused: its intent will never land (a failure to log that
			// only costs a wait after a restart).
			g.wal.append(record{Channel: id, Claiming: batch[0].Amount, Count: batch[0].ReceiptsCount, Dropped: true})
			g.refresh(ctx, id)
			return []error{fmt.Errorf("channel %d: %w", id, err)}
		}
		half := len(batch) / 2
		return append(g.claim(ctx, batch[:half]), g.claim(ctx, batch[half:])...)
	}
	var errs []error
	for _, c := range batch {
		id := c.Voucher.ChannelId
		g.mu.Lock()
		s := g.channels[id]
		g.mu.Unlock()
		// The claim record is written after every charge it covers.
		s.wmu.Lock()
		g.mu.Lock()
		s.claimed = c.Amount
		g.keepAnchor(id, s, s.receipts[:c.ReceiptsCount:c.ReceiptsCount])
		s.receipts = s.receipts[c.ReceiptsCount:]
		g.mu.Unlock()
		rec := record{Channel: id, Claimed: c.Amount, Count: c.ReceiptsCount}
		if err := g.wal.append(rec); err != nil {
			s.unlogged = &rec // the chain has it: written before this channel claims again
			errs = append(errs, err)
		}
		s.wmu.Unlock()
	}
	return errs
}

// anchorBudget bounds what the latest claims' receipt hashes, over all
// channels, may hold in memory, counted as a unit per hash and per claim:
// 65,536 hashes are 2 MiB. Older claims' are read back from the voucher
// log when asked for, so a provider's memory grows neither with every
// answer nor with every channel it was ever paid through (a payer opens a
// new channel when one runs dry).
var anchorBudget = 1 << 16

// anchor is one accepted claim's receipt hashes, end to end in one
// allocation: a slice per hash cost 56 bytes beside its 32.
type anchor struct {
	size   int // of each hash; -1 if they were not of one size (then read from disk)
	leaves []byte
}

// split is the anchor's hashes as slices of it.
func (a anchor) split() [][]byte {
	if a.size == 0 {
		return [][]byte{}
	}
	out := make([][]byte, 0, len(a.leaves)/a.size)
	for i := 0; i < len(a.leaves); i += a.size {
		out = append(out, a.leaves[i:i+a.size:i+a.size])
	}
	return out
}

// cost is what the anchor counts against anchorBudget.
func (a anchor) cost() int {
	if a.size <= 0 {
		return 1
	}
	return 1 + len(a.leaves)/a.size
}

// keepAnchor records the leaves of channel id's next accepted claim, and
// forgets the oldest claims' (of any channel) beyond anchorBudget. The
// caller holds g.mu.
func (g *Gate) keepAnchor(id uint64, s *chanState, leaves [][]byte) {
	a := anchor{}
	if len(leaves) > 0 {
		a.size = len(leaves[0])
		a.leaves = make([]byte, 0, a.size*len(leaves))
		for _, l := range leaves {
			if len(l) != a.size {
				a = anchor{size: -1}
				break
			}
			a.leaves = append(a.leaves, l...)
		}
	}
	s.anchors = append(s.anchors, a)
	s.nAnchors++
	g.kept = append(g.kept, id)
	g.held += a.cost()
	drop := 0
	for g.held > anchorBudget && len(g.kept)-drop > 1 {
		// Claims are kept in order, so a channel's oldest in memory is the
		// oldest of its entries in kept.
		old := g.channels[g.kept[drop]]
		g.held -= old.anchors[0].cost()
		old.anchors[0] = anchor{}
		old.anchors = old.anchors[1:]
		if len(old.anchors) == 0 {
			old.anchors = nil // let the backing array go
		}
		drop++
	}
	g.kept = g.kept[drop:]
	if cap(g.kept) > 2*len(g.kept)+64 { // the front is dropped: copy now and then, not every time
		g.kept = append([]uint64(nil), g.kept...)
	}
}

// Anchored returns the receipt hashes (leaves) of a channel's n-th
// accepted claim, in order, so anyone can build a receipt's inclusion path
// under the root the chain recorded; nil if unknown.
func (g *Gate) Anchored(channelID uint64, n int) [][]byte {
	g.mu.Lock()
	s := g.channels[channelID]
	if s == nil || n < 0 || n >= s.nAnchors {
		g.mu.Unlock()
		return nil
	}
	if first := s.nAnchors - len(s.anchors); n >= first && s.anchors[n-first].size >= 0 {
		defer g.mu.Unlock()
		return s.anchors[n-first].split()
	}
	g.mu.Unlock()
	return g.anchoredOnDisk(channelID, n)
}

// anchoredOnDisk replays the voucher log for one channel's n-th claim.
func (g *Gate) anchoredOnDisk(channelID uint64, n int) [][]byte {
	var receipts [][]byte
	var found [][]byte
	claims := 0
	var claimed uint64
	err := scanLog(g.cfg.LogPath, func(r record) bool {
		if r.Channel != channelID {
			return true
		}
		switch {
		case r.Voucher > 0:
		case r.Charged > 0 || r.Receipt != nil:
			receipts = append(receipts, r.Receipt)
		case r.Claimed > 0 && r.Claimed <= claimed: // written twice (see Open)
		case r.Claimed > 0:
			claimed = r.Claimed
			k := min(int(r.Count), len(receipts))
			if claims == n {
				found = receipts[:k:k]
				return false
			}
			receipts = receipts[k:]
			claims++
		}
		return true
	})
	if err != nil {
		g.log.Warn("paygate: read anchors from the voucher log", "err", err)
		return nil
	}
	return found
}
