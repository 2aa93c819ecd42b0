package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/agoranet/agora/internal/openai"
	"github.com/agoranet/agora/internal/receipt"
	"github.com/agoranet/agora/internal/route"
	"github.com/agoranet/agora/sdk"
	"github.com/agoranet/agora/x402"
)

// exchange is one client request on its way through the providers: the
// attempts the router starts (two at once when it hedges), and the one
// answer that reaches the client. Attempts run concurrently but never
// touch the client's response; only the winner's Deliver does.
type exchange struct {
	s    *Server
	w    http.ResponseWriter
	r    *http.Request
	req  *request
	path string
	bill *bill
	log  *slog.Logger
	// started: the client has the status line. From here a failure can
	// no longer go to another provider whole; a stream can be resumed.
	started bool
}

// maxResumes bounds how many providers one stream may be resumed on.
const maxResumes = 2

// maxJunk is how much a stream may send after its final receipt, and
// junkFor for how long, before the gateway stops reading for its trailer.
const (
	maxJunk = 1 << 20
	junkFor = 5 * time.Second
)

// send posts the request to one provider through the gateway's payer and
// classifies what came back: OK or Refused (a 4xx: the request's own
// fault) with the response, or Failed.
func (x *exchange) send(ctx context.Context, c route.Candidate) (*http.Response, route.Outcome, error) {
	out, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Endpoint+x.path, bytes.NewReader(x.req.body))
	if err != nil {
		return nil, route.Failed, err
	}
	out.Header.Set("Content-Type", "application/json")
	// Nothing else: a provider must not be able to tell the gateway's
	// requests (and its audits' samples) from anyone's.
	resp, err := x.s.http.Do(out)
	if perr := sdk.Refused(resp, err); perr != nil && err == nil {
		resp.Body.Close()
		if !errors.Is(perr, sdk.ErrBudget) { // a price the gateway will not pay: try another provider
			x.s.metrics.errors.WithLabelValues(c.Operator).Inc()
			return nil, route.Failed, fmt.Errorf("%s: %w", c.Endpoint, perr)
		}
		err = perr
	}
	if errors.Is(err, sdk.ErrBudget) { // the gateway's own spending cap: no provider's fault
		return nil, route.Refused, openai.Errorf(http.StatusServiceUnavailable, "server_error", "gateway_budget", "the gateway has reached its spending cap; try later")
	}
	// A 402 the payer could not settle (the provider's books disagree
	// with ours, or it refuses our channel) is the provider's failure,
	// never passed to the client, who pays the gateway.
	outcome := route.Retryable(resp, err)
	if outcome == route.Failed || outcome == route.Down {
		x.s.metrics.errors.WithLabelValues(c.Operator).Inc()
		if resp != nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			return nil, outcome, fmt.Errorf("%s answered %d: %.300s", c.Endpoint, resp.StatusCode, bytes.TrimSpace(b))
		}
		return nil, outcome, err
	}
	return resp, outcome, nil
}

// start is one attempt: it returns once the provider's answer has begun,
// whole for an answer (its receipt checked), the first event for a stream.
func (x *exchange) start(ctx context.Context, c route.Candidate) (route.Begun, route.Outcome, error) {
	resp, out, err := x.send(ctx, c)
	if out == route.Failed || out == route.Down || (out == route.Refused && resp == nil) {
		return nil, out, err
	}
	if out == route.Refused { // the provider's 4xx is the answer: pass it on
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		return &refused{x: x, resp: resp, body: b}, route.OK, nil
	}
	if x.req.stream {
		rd := bufio.NewReader(resp.Body)
		first, err := rd.ReadBytes('\n')
		if err != nil {
			resp.Body.Close()
			x.s.metrics.errors.WithLabelValues(c.Operator).Inc()
			return nil, route.Failed, fmt.Errorf("%s: stream ended before its first event: %w", c.Endpoint, err)
		}
		st := &stream{x: x, c: c, resp: resp, rd: rd, h: sha256.New()}
		st.take(first)
		return st, route.OK, nil
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		x.s.metrics.errors.WithLabelValues(c.Operator).Inc()
		return nil, route.Failed, err
	}
	rc, err := x.s.checkReceipt(resp.Header.Get(receipt.Header), x.req.hash, body, c)
	if err == nil && rc.Partial {
		err = fmt.Errorf("%s: a whole answer with a partial receipt", c.Endpoint)
	}
	if err != nil { // garbage from a provider: it failed, try another
		x.s.metrics.errors.WithLabelValues(c.Operator).Inc()
		return nil, route.Failed, err
	}
	return &answer{x: x, c: c, resp: resp, body: body, rc: rc}, route.OK, nil
}

// refused is a provider's 4xx, passed to the client as it came.
type refused struct {
	x    *exchange
	resp *http.Response
	body []byte
}

func (a *refused) Deliver() (route.Outcome, error) {
	a.x.started = true
	copyHeaders(a.x.w, a.resp)
	a.x.w.WriteHeader(a.resp.StatusCode)
	a.x.w.Write(a.body)
	return route.Refused, nil
}

func (a *refused) Discard() {}

// answer is a whole, checked, non-streamed answer.
type answer struct {
	x    *exchange
	c    route.Candidate
	resp *http.Response
	body []byte
	rc   *receipt.Receipt
}

func (a *answer) Deliver() (route.Outcome, error) {
	x := a.x
	price := x.reconcile(a.c, a.rc, booked(a.resp))
	// The receipt's response hash is the body's: checkReceipt saw to it.
	if err := x.bill.settle(x.w.Header(), price, a.rc.ResponseHash); err != nil {
		return route.Refused, err
	}
	x.started = true
	copyHeaders(x.w, a.resp)
	if gr, err := x.s.sign(x.req.hash, a.rc.ResponseHash, a.rc, price, x.bill.ref()); err == nil {
		x.w.Header().Set(receipt.GatewayHeader, gr)
	}
	x.w.WriteHeader(a.resp.StatusCode)
	x.w.Write(a.body)
	return route.OK, nil
}

// Discard: the answer lost a hedge race, but it was made and paid for; the
// gateway bears that cost, not the client.
func (a *answer) Discard() {
	paid, _ := paidFor(booked(a.resp))
	a.x.s.cost("hedge", a.c.Operator, paid)
}

// booked is where the payer put what it booked for a response read to its
// end: its header, or its trailer when the settlement came in one.
func booked(resp *http.Response) http.Header {
	if resp.Header.Get(sdk.ChargedHeader) != "" || resp.Trailer == nil {
		return resp.Header
	}
	return resp.Trailer
}

// paidFor is what the gateway's payer booked for an answer (see
// sdk.ChargedHeader), if it booked anything: h is the response's header,
// or a stream's trailer once read to its end.
func paidFor(h http.Header) (uint64, bool) {
	n, err := strconv.ParseUint(h.Get(sdk.ChargedHeader), 10, 64)
	return n, err == nil
}

// reconcile is what the client pays for an answer from c with receipt rc:
// what the gateway paid for it (h says), and never more than the receipt
// says or than c's registered price makes its usage. What the gateway paid
// beyond that is a cost, "overcharge", in its books (and the payer pays
// that provider no more); so the books balance per provider: paid = billed
// + costs. An answer the payer booked nothing for (a free provider, a
// stream whose trailer never came) is billed by its receipt.
func (x *exchange) reconcile(c route.Candidate, rc *receipt.Receipt, h http.Header) uint64 {
	fair := c.PricePerRequest + (c.PricePer1K*rc.GetUsage().GetCompletionTokens()+999)/1000
	bill := min(rc.GetPrice().GetAmount(), fair)
	if paid, ok := paidFor(h); ok {
		if lie := h.Get(sdk.LiedHeader); lie != "" {
			x.log.Warn("gateway: a provider lied about its charge; it is paid no more", "provider", c.Operator, "lie", lie)
		}
		bill = min(bill, paid)
		x.s.metrics.spend.WithLabelValues(c.Operator).Add(float64(paid))
		x.s.cost("overcharge", c.Operator, paid-bill)
	}
	x.s.booksMu.Lock()
	x.s.billed[c.Operator] += bill
	x.s.booksMu.Unlock()
	return bill
}

// stream is a provider's event stream whose first event has arrived.
type stream struct {
	x      *exchange
	c      route.Candidate
	resp   *http.Response
	rd     *bufio.Reader
	all    []byte // every line of the stream so far, the client's copy
	start  int    // bytes of all already sent to the client
	cancel func() // ends the stream's request, for a resumed one (nil: the race's)

	// What receipts cover: every byte but the receipt events, the same
	// from every provider of a deterministic model (see openai.SplitStream).
	covered      []byte
	h            hash.Hash // of covered
	afterReceipt bool      // the last line was a receipt's: the blank line ending its event is not covered
	junk         int       // bytes sent after the final receipt
	endsBy       time.Time // when the gateway stops reading after the final receipt
	dropping     bool      // events came after the final receipt: nothing more is relayed
	// The receipts the client has been sent, checked against covered.
	paid  *receipt.Receipt // the last interim one, from any provider: what a cut stream costs the client
	mine  *receipt.Receipt // the last interim one from c: what c charges the gateway if it breaks
	final *receipt.Receipt // the last one, not partial: the stream is whole
}

// take adds one whole line of the provider's stream to the client's copy,
// and checks it if it is a receipt.
func (st *stream) take(line []byte) {
	st.all = append(st.all, line...)
	if enc := openai.ReceiptOf(line); enc != "" {
		st.afterReceipt = true
		rc, err := st.x.s.checkHash(enc, st.x.req.hash, st.h.Sum(nil), st.c)
		switch {
		case err != nil:
			st.x.log.Warn("gateway: a stream's receipt does not check; it pays for nothing", "provider", st.c.Operator, "err", err)
		case rc.Partial:
			st.paid, st.mine = rc, rc
		default:
			st.final = rc
		}
		return
	}
	if st.afterReceipt && string(line) == "\n" {
		st.afterReceipt = false
		return
	}
	st.afterReceipt = false
	if bytes.HasPrefix(line, []byte("data: {")) {
		st.final = nil // an event after a last receipt: the stream did not end there
	}
	st.covered = append(st.covered, line...)
	st.h.Write(line)
}

// Discard closes a stream that lost a race: the provider stops. It has
// sent one event, before any interim receipt, so it charges nothing.
func (st *stream) Discard() { st.resp.Body.Close() }

func (st *stream) Deliver() (route.Outcome, error) {
	x := st.x
	if err := x.bill.durable(); err != nil {
		st.resp.Body.Close()
		return route.Refused, err
	}
	x.started = true
	copyHeaders(x.w, st.resp)
	x.w.Header().Set("Trailer", x402.HeaderResponse+", "+receipt.GatewayHeader)
	x.w.WriteHeader(st.resp.StatusCode)
	return x.relay(st)
}

// relay passes a stream on to the client to its end. A provider that dies
// or hangs midway is replaced: another is asked for the same answer, which
// for a deterministic model is byte for byte the same, and the client's
// stream continues from where it stopped. The client is billed once, by the
// receipt of the provider that finished the stream, which covers every
// byte the client got.
func (x *exchange) relay(st *stream) (route.Outcome, error) {
	fl, _ := x.w.(http.Flusher)
	for resumes := 0; ; resumes++ {
		cut := x.pipe(st, fl)
		if cut == nil {
			break
		}
		if st.final != nil {
			break // it broke after its receipt: the answer is whole
		}
		x.s.metrics.errors.WithLabelValues(st.c.Operator).Inc()
		x.s.router.Report(st.c, route.Failed)
		if resumes == maxResumes || x.r.Context().Err() != nil {
			return x.cutOff(st, cut)
		}
		next, err := x.resume(st)
		if err != nil {
			return x.cutOff(st, fmt.Errorf("%v; resuming: %w", cut, err))
		}
		// The broken provider charges the gateway for what it sent up to
		// its last interim receipt; the client pays once, by the receipt
		// of the provider that finishes.
		x.s.cost("resume", st.c.Operator, st.mine.GetPrice().GetAmount())
		x.log.Info("gateway: stream resumed on another provider", "from", st.c.Operator, "to", next.c.Operator, "at_byte", len(st.all))
		x.s.metrics.resumes.Inc()
		st = next
	}
	trailer := st.resp.Trailer
	if trailer == nil {
		trailer = http.Header{}
	}
	switch {
	case st.final != nil:
		x.charge(st.final, x.reconcile(st.c, st.final, trailer))
	case st.paid != nil: // the provider ended the stream early (with an error event)
		x.charge(st.paid, x.reconcile(st.c, st.paid, trailer))
	default:
		x.log.Warn("gateway: streamed answer without a valid receipt; not billed", "provider", st.c.Operator)
		x.s.metrics.errors.WithLabelValues(st.c.Operator).Inc()
		x.s.router.Report(st.c, route.Failed)
		if paid, ok := paidFor(trailer); ok {
			x.s.cost("unbilled", st.c.Operator, paid)
		}
	}
	if fl != nil {
		fl.Flush()
	}
	return route.OK, nil
}

// charge bills the client price for a stream by the last receipt it was
// sent: the final one, or for a stream cut short the last interim one; the
// gateway's own receipt goes in the trailer.
func (x *exchange) charge(rc *receipt.Receipt, price uint64) {
	if err := x.bill.settle(x.w.Header(), price, rc.ResponseHash); err != nil {
		x.log.Error("gateway: record a streamed answer's charge", "err", err)
	}
	if gr, err := x.s.sign(x.req.hash, rc.ResponseHash, rc, price, x.bill.ref()); err == nil {
		x.w.Header().Set(receipt.GatewayHeader, gr)
	}
}

// pipe copies st's events to the client until the stream ends (nil) or
// breaks (the error): a read error, or no byte within the idle deadline.
func (x *exchange) pipe(st *stream, fl http.Flusher) error {
	defer st.resp.Body.Close()
	if st.cancel != nil {
		defer st.cancel()
	}
	if st.start < len(st.all) {
		x.w.Write(st.all[st.start:])
		st.start = len(st.all)
		if fl != nil {
			fl.Flush()
		}
	}
	idle := x.s.router.IdleDeadline(x.req.model)
	var hung atomic.Bool
	watchdog := time.AfterFunc(idle, func() { hung.Store(true); st.resp.Body.Close() })
	defer watchdog.Stop()
	last := time.Now()
	for {
		line, err := st.rd.ReadBytes('\n')
		// Only whole lines reach the client: a stream resumed elsewhere
		// continues at a line's start.
		if len(line) > 0 && err == nil {
			watchdog.Reset(idle)
			now := time.Now()
			x.s.router.ObserveGap(x.req.model, now.Sub(last))
			last = now
			if st.final != nil {
				// The final receipt said the stream ends there: what
				// follows is vouched for by no receipt, and is not
				// relayed but "data: [DONE]". The rest is read (and
				// dropped) for its trailer, what the provider charged,
				// within maxJunk bytes and junkFor.
				if st.junk == 0 {
					st.endsBy = now.Add(junkFor)
				}
				if st.junk += len(line); st.junk > maxJunk || now.After(st.endsBy) {
					return nil // no trailer worth waiting for
				}
				if !openai.StreamEnd(line) || st.dropping {
					if !st.dropping {
						st.dropping = true
						x.log.Warn("gateway: a provider sent events after its final receipt; they are dropped", "provider", st.c.Operator)
						x.s.metrics.errors.WithLabelValues(st.c.Operator).Inc()
						x.s.router.Report(st.c, route.Failed)
					}
					continue
				}
			}
			st.take(line)
			x.w.Write(line)
			st.start = len(st.all)
			if fl != nil && bytes.Equal(line, []byte("\n")) {
				fl.Flush()
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if !watchdog.Stop() && hung.Load() {
				return fmt.Errorf("%s sent nothing for %v", st.c.Endpoint, idle)
			}
			return fmt.Errorf("%s: %w", st.c.Endpoint, err)
		}
	}
}

// resume asks another provider for the same stream and checks that it
// begins with exactly the bytes the client already has.
func (x *exchange) resume(broken *stream) (*stream, error) {
	sent := broken.covered
	var next *stream
	_, err := x.s.router.Race(x.r.Context(), x.req.model, []string{broken.c.Operator}, func(ctx context.Context, c route.Candidate) (route.Begun, route.Outcome, error) {
		// The stream outlives this race (relay reads it after Race
		// returns, when the attempt's ctx ends), so its request has a
		// context of its own that the attempt's ends only until the
		// stream is handed over.
		sctx, cancel := context.WithCancel(x.r.Context())
		detach := context.AfterFunc(ctx, cancel)
		resp, out, err := x.send(sctx, c)
		if out != route.OK {
			detach()
			cancel()
			if resp != nil {
				resp.Body.Close()
			}
			if err == nil {
				err = fmt.Errorf("%s answered %d", c.Endpoint, resp.StatusCode)
			}
			if out != route.Down {
				out = route.Failed
			}
			return nil, out, err
		}
		// Read the new stream until it has covered what the client has,
		// leaving out its receipt events: its receipts are not the
		// broken one's, but what they cover must be byte for byte the same.
		rd := bufio.NewReader(resp.Body)
		fail := func(out route.Outcome, err error) (route.Begun, route.Outcome, error) {
			resp.Body.Close()
			detach()
			cancel()
			return nil, out, err
		}
		probe := &stream{x: x, c: c, h: sha256.New()}
		for len(probe.covered) < len(sent) {
			line, err := rd.ReadBytes('\n')
			if err != nil {
				return fail(route.Failed, fmt.Errorf("%s: %w", c.Endpoint, err))
			}
			probe.take(line)
			if !bytes.HasPrefix(sent, probe.covered) {
				// Not the same answer: the model is not deterministic
				// (an upstream engine), so no provider can continue.
				return fail(route.Refused, errDiverged)
			}
		}
		all := broken.all[:len(broken.all):len(broken.all)] // attempts race: each appends to a copy
		st := &stream{x: x, c: c, resp: resp, rd: rd, all: all, start: len(all), cancel: cancel,
			covered: broken.covered, h: broken.h, paid: broken.paid}
		if broken.afterReceipt {
			// The client's copy ends inside a receipt event: end it, so
			// that the next event is not read as part of it.
			st.all = append(st.all, '\n')
		}
		return &resumed{st: st, into: &next, detach: detach}, route.OK, nil
	})
	if err != nil {
		return nil, err
	}
	return next, nil
}

// resumed is a stream that has caught up with the client's copy; the
// winner of the race to resume hands itself over to relay.
type resumed struct {
	st     *stream
	into   **stream
	detach func() bool
}

func (r *resumed) Deliver() (route.Outcome, error) {
	if !r.detach() { // the attempt ended just now: the stream went with it
		return route.Failed, errors.New("the resumed stream was cancelled")
	}
	*r.into = r.st
	return route.OK, nil
}

func (r *resumed) Discard() { r.st.resp.Body.Close(); r.st.cancel() }

var errDiverged = errors.New("another provider's answer differs from the bytes already sent (the model is not deterministic)")

// cutOff ends a stream that could not be finished with an error event the
// client can see. The client pays for what it got: the price of the last
// interim receipt it was sent, if any.
func (x *exchange) cutOff(st *stream, why error) (route.Outcome, error) {
	if st.paid != nil {
		x.charge(st.paid, x.reconcile(st.c, st.paid, http.Header{}))
	}
	x.w.Write([]byte(`data: {"error":{"message":"the provider's stream broke and could not be resumed; retry the request","type":"server_error","code":"stream_cut"}}` + "\n\n"))
	if fl, ok := x.w.(http.Flusher); ok {
		fl.Flush()
	}
	return route.Failed, why
}
