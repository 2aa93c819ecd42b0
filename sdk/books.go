package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agoranet/agora/internal/chain/provider/providerpb"
	"github.com/agoranet/agora/internal/receipt"
	"github.com/agoranet/agora/x402"
)

// chanInfo is one channel and the payer's books on it.
//
// The books are the payer's own, and they are the truth (docs/payments.md):
// a voucher is signed for what this payer accepted as charged plus the
// maxima of every request in flight on the channel, this one's included,
// and of those that ended unsettled in the last reserveGrace. A charge is
// accepted only as the payee's receipt states it, at most the request's
// maximum and at most the price the payee registered on chain. A payee's
// statement of the channel's total is believed only up to what the books
// can explain (charged + in flight + unsettled), never beyond: so the most
// a lying payee can take is the maxima of the requests in flight when it
// began to lie.
type chanInfo struct {
	id           uint64
	payee, model string
	deposit      uint64
	expiresAt    int64

	mu        sync.Mutex // guards the books below
	charged   uint64     // charges this payer accepted
	inflight  uint64     // maxima of the requests sent and not yet settled
	unsettled []pending  // requests that ended with no settlement seen: maybe charged, oldest first
	restored  uint64     // from the journal: an earlier run may have had this much charged
	signed    uint64     // the highest voucher known to exist: the most the payee can claim; rises above it are what the budget pays for
	reserved  uint64     // the journal allows vouchers up to here
	retired   string     // why the channel takes no more vouchers ("" while it does)
	reclaimed bool       // settled on chain: the rest is back
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

// retire stops vouchers on the channel: the payee refused it (closed,
// expiring, unknown), or it is full or about to expire. Its rest comes
// back with Reclaim once it expires.
func (p *Payer) retire(c *chanInfo, why string) {
	c.mu.Lock()
	first := c.retired == ""
	if first {
		c.retired = why
	}
	c.mu.Unlock()
	if first && p.journal != nil {
		p.journal.write(jrecord{Channel: c.id, Retired: why}, false)
	}
}

// allocate books an answer of up to amount on the channel and returns the
// cumulative its voucher must carry, or 0 when the channel (nil: none yet)
// cannot carry it. A 402's channel state for this channel, when within the
// books, is adopted first; one beyond them is refused. The voucher's rise
// above the channel's highest is what the budget pays for.
func (p *Payer) allocate(c *chanInfo, req *x402.PaymentRequirements, amount uint64) (uint64, error) {
	if c == nil {
		return 0, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.retired != "" {
		return 0, nil
	}
	recent, unsettled := c.unsettledSums(time.Now())
	base := c.charged + c.inflight + recent
	if st, ok := req.Extra["channelState"].(map[string]any); ok && fmt.Sprint(st["channelId"]) == strconv.FormatUint(c.id, 10) {
		if s, err := x402.Amount(fmt.Sprint(st["chargedCumulativeAmount"])); err == nil && s > base {
			// The provider has charged or reserved more than we know of:
			// requests whose settlement we never saw can explain up to
			// unsettled of it (and, after a restart, what an earlier run
			// reserved), no more.
			if books := min(c.charged+c.inflight+unsettled+c.restored, c.ceiling()); s > books {
				return 0, fmt.Errorf("sdk: provider %s says channel %d has %d charged or in flight; this payer's books allow %d (%d charged, %d in flight, %d unsettled, %d signed), so it is not paid more",
					req.PayTo, c.id, s, books, c.charged, c.inflight, unsettled+c.restored, c.signed)
			}
			// Believing it raises what the provider can claim to s: the
			// budget pays for any rise above the vouchers known signed.
			if s > c.signed {
				if err := p.commit(s - c.signed); err != nil {
					return 0, err
				}
				c.signed = s
			}
			recognized := s - base
			c.charged += recognized
			c.recognize(recognized)
			c.restored = 0 // the provider's total is known now
			p.mu.Lock()
			p.spent += recognized
			p.mu.Unlock()
			base = s
		}
	}
	if c.charged+c.inflight+unsettled+amount > c.deposit {
		return 0, nil
	}
	cum := base + amount
	if cum > c.signed {
		rise := cum - c.signed
		if err := p.commit(rise); err != nil {
			return 0, err
		}
		if p.journal != nil && cum > c.reserved {
			upTo := min(c.deposit, cum+reserveChunk*amount)
			if err := p.journal.write(jrecord{Channel: c.id, UpTo: upTo}, true); err != nil {
				p.uncommit(rise)
				return 0, err
			}
			c.reserved = upTo
		}
		c.signed = cum
	}
	c.inflight += amount
	return cum, nil
}

// ceiling is the most a payee can honestly have charged on the channel:
// the best voucher it holds, which is the best signed; after a crash, up
// to the last reservation, as the earlier run's vouchers are not known.
// A payee's total above it is a lie. Called with c.mu held.
func (c *chanInfo) ceiling() uint64 {
	if c.restored > 0 {
		return max(c.signed, c.reserved)
	}
	return c.signed
}

// commit counts amount more of vouchers or authorizations signed against
// the budget, or refuses.
func (p *Payer) commit(amount uint64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.committed+amount > p.budget.Max {
		return fmt.Errorf("%w: %d committed in vouchers, this answer may cost %d more, budget %d", ErrBudget, p.committed, amount, p.budget.Max)
	}
	p.committed += amount
	return nil
}

func (p *Payer) uncommit(amount uint64) {
	p.mu.Lock()
	p.committed -= amount
	p.mu.Unlock()
}

// A ticket is one request's claim on a channel's books, from signing its
// voucher until the answer's settlement (or its absence) is known.
type ticket struct {
	p       *Payer
	c       *chanInfo // nil for an exact payment
	payee   string
	service *providerpb.Service // the payee's registered price; nil for a payee that is no provider
	max     uint64
	ref     string // the payment, as the payee's receipt must name it
	exact   bool
	done    bool
	// The request, for an audit sample.
	endpoint string
	request  []byte
}

// release gives back a ticket that was never sent.
func (t *ticket) release() {
	t.done = true
	if t.exact {
		t.p.uncommit(t.max)
		return
	}
	t.c.mu.Lock()
	t.c.inflight -= t.max
	t.c.mu.Unlock()
}

// end closes the ticket: with the charge booked (settled), or with none
// (refused: the provider took nothing; or unknown: it may have charged,
// and the maximum stays in the books as unsettled).
func (t *ticket) end(settled bool, charge uint64, unknown bool) {
	if t.done {
		return
	}
	t.done = true
	if c := t.c; c != nil {
		c.mu.Lock()
		c.inflight -= t.max
		if settled {
			c.charged += charge
		} else if unknown {
			c.unsettled = append(c.unsettled, pending{amount: t.max, at: time.Now()})
		}
		c.mu.Unlock()
	}
	if settled {
		t.p.mu.Lock()
		t.p.spent += charge
		t.p.mu.Unlock()
	}
}

// ChargedHeader is set by the payer, never by a server (the payer drops a
// server's), on an answer whose charge it booked: the amount, in the
// budget's denom. For a stream it is a trailer, there once the body has
// been read to its end. A charge that did not check against the payee's
// receipt and registered price is booked at the request's maximum (what
// its voucher lets the payee claim) and marked by LiedHeader.
const (
	ChargedHeader = "Agora-Payer-Charged"
	LiedHeader    = "Agora-Payer-Lied"
)

// settle books the charge in a PAYMENT-RESPONSE, after checking it against
// the payee's receipt in h and its registered price. A charge that does not
// check is booked at the request's maximum, and the payer pays that payee
// no more: it lied, and cannot take more than its vouchers allow.
func (t *ticket) settle(paymentResponse string, h http.Header) {
	if t.done { // a body read past its end reports its end again
		return
	}
	amount, total, ok := settledAmount(paymentResponse, t.exact)
	if !ok {
		t.end(false, 0, true)
		return
	}
	charge := amount
	lie := t.check(amount, h)
	if lie != nil {
		t.p.distrust(t.payee, lie)
		charge = t.max
		h.Set(LiedHeader, lie.Error())
	}
	h.Set(ChargedHeader, strconv.FormatUint(charge, 10))
	t.end(true, charge, false)
	if lie == nil && t.c != nil {
		if err := t.p.learn(t.c, total); err != nil {
			t.p.distrust(t.payee, err)
			h.Set(LiedHeader, err.Error())
		}
	}
}

// learn takes a payee's charged total for a channel, from a settlement,
// as far as the books can explain it: requests that ended unsettled (a
// stream cut short, which the provider charges up to its last interim
// receipt) may have been charged, so up to what they account for, the
// total is believed and counted as spent; beyond, it is not. Without
// this, the books would trail the provider's by those charges, and every
// voucher would be refused once before the next 402 told them.
//
// The total may include requests still in flight here that the provider
// has finished (their settlements are on the way): only what is left
// beyond everything in flight is taken from the unsettled. A total above
// every voucher signed is a lie.
func (p *Payer) learn(c *chanInfo, total uint64) error {
	c.mu.Lock()
	if ceiling := c.ceiling(); total > ceiling {
		c.mu.Unlock()
		return fmt.Errorf("it says channel %d has %d charged; no voucher above %d was signed", c.id, total, ceiling)
	}
	var recognized uint64
	if known := c.charged + c.inflight; total > known {
		_, unsettled := c.unsettledSums(time.Now())
		recognized = min(total-known, unsettled)
		c.charged += recognized
		c.recognize(recognized)
	}
	c.mu.Unlock()
	if recognized > 0 {
		p.mu.Lock()
		p.spent += recognized
		p.mu.Unlock()
	}
	return nil
}

// check compares a reported charge with the request's maximum, the
// payee's receipt and its registered price.
func (t *ticket) check(amount uint64, h http.Header) error {
	if amount > t.max {
		return fmt.Errorf("charged %d for an answer whose voucher allowed %d", amount, t.max)
	}
	rc := payeeReceipt(h, t.payee)
	if rc == nil {
		if t.service != nil { // a registered provider always signs a receipt
			return fmt.Errorf("charged %d with no receipt", amount)
		}
		return nil
	}
	height, _ := t.p.chain.Height(context.Background()) // cached; 0 skips the height check
	if err := receipt.Fresh(rc, t.p.w.chainID, height); err != nil {
		return fmt.Errorf("its receipt does not check: %v", err)
	}
	switch {
	case rc.PaymentRef != t.ref:
		return fmt.Errorf("its receipt names payment %q, this answer's was %q", rc.PaymentRef, t.ref)
	case rc.GetPrice().GetDenom() != t.p.budget.Denom || rc.GetPrice().GetAmount() != amount:
		return fmt.Errorf("charged %d%s, its receipt says %d%s", amount, t.p.budget.Denom, rc.GetPrice().GetAmount(), rc.GetPrice().GetDenom())
	case t.service != nil && amount > priceOf(t.service, rc.GetUsage().GetCompletionTokens()):
		return fmt.Errorf("charged %d for %d tokens; its registered price makes that %d", amount, rc.GetUsage().GetCompletionTokens(), priceOf(t.service, rc.GetUsage().GetCompletionTokens()))
	}
	return nil
}

// payeeReceipt is the receipt in h signed by payee: a provider's, or a
// gateway's for what it relayed. Its signature is not checked (the payer
// only compares it with the payee's other statements; see receipt.Parse).
func payeeReceipt(h http.Header, payee string) *receipt.Receipt {
	for _, name := range []string{receipt.Header, receipt.GatewayHeader} {
		if v := h.Get(name); v != "" {
			if r, err := receipt.Parse(v); err == nil && r.Provider == payee {
				return r
			}
		}
	}
	return nil
}

// distrust stops paying payee, in this run and (with a journal) the next:
// it lied about a charge.
func (p *Payer) distrust(payee string, lie error) {
	p.mu.Lock()
	first := p.liars[payee] == nil
	if first {
		p.liars[payee] = lie
	}
	p.mu.Unlock()
	if first && p.journal != nil {
		p.journal.write(jrecord{Liar: payee, Why: lie.Error()}, true)
	}
}

// settledAmount reads a PAYMENT-RESPONSE: this answer's charge, and for a
// channel the payee's charged total on it (0 if it says none).
func settledAmount(h string, exact bool) (amount, total uint64, ok bool) {
	if h == "" {
		return 0, 0, false
	}
	if exact {
		var sr x402.SettlementResponse
		if x402.Decode(h, &sr) != nil || !sr.Success {
			return 0, 0, false
		}
		n, err := x402.Amount(sr.Amount)
		return n, 0, err == nil
	}
	var sr x402.BatchSettlement
	if x402.Decode(h, &sr) != nil || !sr.Success {
		return 0, 0, false
	}
	amount, err := x402.Amount(sr.Extra.ChargedAmount)
	total, _ = x402.Amount(sr.Extra.ChannelState.ChargedCumulativeAmount)
	return amount, total, err == nil
}

// follow books a paid request's outcome: at once when the response says
// (PAYMENT-RESPONSE in its header, or a refusal), at the end of its body
// for a stream (PAYMENT-RESPONSE in its trailer).
func (t *ticket) follow(resp *http.Response, err error) *http.Response {
	switch {
	case err != nil && neverSent(err): // nothing listens: nothing was asked, nothing charged
		t.end(false, 0, false)
		return resp
	case err != nil: // the answer may have been made and charged
		t.end(false, 0, true)
		return resp
	}
	resp.Header.Del(ChargedHeader) // only we may say what we booked
	resp.Header.Del(LiedHeader)
	// An answer is a 200, or a 206 for a range (a storage read); anything
	// else was refused or failed, and nothing was charged.
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent {
		t.end(false, 0, false)
		return resp
	}
	switch pr := resp.Header.Get(x402.HeaderResponse); {
	case pr != "":
		t.settle(pr, resp.Header)
	case t.service != nil && !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream"):
		// A registered provider settles a whole answer before it sends
		// it: one without a settlement would leave its charge unknown,
		// to be claimed at the maximum later.
		lie := errors.New("it gave a paid answer with no settlement")
		t.p.distrust(t.payee, lie)
		resp.Header.Set(LiedHeader, lie.Error())
		resp.Header.Set(ChargedHeader, strconv.FormatUint(t.max, 10))
		t.end(true, t.max, false)
	default: // a stream: its settlement comes in the trailer
		resp.Body = &settlingBody{ReadCloser: resp.Body, resp: resp, t: t}
	}
	t.sampled(resp)
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
		if b.resp.Trailer == nil {
			b.resp.Trailer = http.Header{}
		}
		b.resp.Trailer.Del(ChargedHeader)
		b.resp.Trailer.Del(LiedHeader)
		b.t.settle(b.resp.Trailer.Get(x402.HeaderResponse), b.resp.Trailer)
		b.mu.Unlock()
	}
	return n, err
}

func (b *settlingBody) Close() error {
	err := b.ReadCloser.Close()
	b.mu.Lock()
	b.t.end(false, 0, true)
	b.mu.Unlock()
	return err
}

// ChannelBooks is the payer's account of one channel.
type ChannelBooks struct {
	ID                 uint64
	Payee, Model       string
	Deposit            uint64
	ExpiresAt          int64
	Charged            uint64 // charges accepted
	InFlight           uint64 // maxima of requests in flight
	Unsettled          uint64 // maxima of requests that ended with no charge seen
	Signed             uint64 // the highest voucher: the most the payee can claim
	Retired, Reclaimed bool
}

// Books lists the payer's channels and its books on each, oldest first.
func (p *Payer) Books() []ChannelBooks {
	p.mu.Lock()
	chans := append([]*chanInfo(nil), p.channels...)
	p.mu.Unlock()
	out := make([]ChannelBooks, 0, len(chans))
	for _, c := range chans {
		c.mu.Lock()
		_, all := c.unsettledSums(time.Now())
		out = append(out, ChannelBooks{ID: c.id, Payee: c.payee, Model: c.model, Deposit: c.deposit, ExpiresAt: c.expiresAt,
			Charged: c.charged, InFlight: c.inflight, Unsettled: all, Signed: c.signed, Retired: c.retired != "", Reclaimed: c.reclaimed})
		c.mu.Unlock()
	}
	return out
}
