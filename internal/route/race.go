package route

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"
)

// samples keeps the most recent observations of a duration, for its
// quantiles.
type samples struct {
	ring   []time.Duration
	next   int
	full   bool
	sorted []time.Duration // a sorted copy, remade every resortEvery adds
	stale  int
}

// resortEvery: quantiles are read on every request, so the sorted copy is
// remade only after this many new samples (a small lag, no sort per request).
const resortEvery = 32

const sampleWindow = 512

func (s *samples) add(d time.Duration) {
	if s.ring == nil {
		s.ring = make([]time.Duration, sampleWindow)
	}
	s.ring[s.next] = d
	s.next = (s.next + 1) % sampleWindow
	s.full = s.full || s.next == 0
	s.stale++
}

func (s *samples) len() int {
	if s == nil {
		return 0
	}
	if s.full {
		return sampleWindow
	}
	return s.next
}

// quantile is the q-quantile of the samples (0 with none).
func (s *samples) quantile(q float64) time.Duration {
	n := s.len()
	if n == 0 {
		return 0
	}
	if s.sorted == nil || s.stale >= resortEvery || len(s.sorted) < min(n, enough) {
		s.sorted = append(s.sorted[:0], s.ring[:n]...)
		slices.Sort(s.sorted)
		s.stale = 0
	}
	c := s.sorted
	return c[min(len(c)-1, int(q*float64(len(c))))]
}

// enough samples before the tail of a model's latency is trusted.
const enough = 20

// tailFactor times the observed p99 is how long an attempt may wait: a
// provider that slow is hung, not busy.
const tailFactor = 8

func (r *Router) samplesLocked(m map[string]*samples, model string) *samples {
	s := m[model]
	if s == nil {
		s = &samples{}
		m[model] = s
	}
	return s
}

// FirstByteDeadline is how long an attempt at model may wait for its first
// byte: a multiple of the observed tail, within [MinFirstByte, FirstByte].
func (r *Router) FirstByteDeadline(model string) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return deadline(r.latency[model], r.cfg.MinFirstByte, r.cfg.FirstByte)
}

// IdleDeadline is how long a stream of model may pause between chunks
// before its provider counts as hung.
func (r *Router) IdleDeadline(model string) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return deadline(r.gaps[model], r.cfg.MinIdle, r.cfg.Idle)
}

func deadline(s *samples, lo, hi time.Duration) time.Duration {
	if s.len() < enough {
		return hi
	}
	return min(hi, max(lo, tailFactor*s.quantile(0.99)))
}

// ObserveGap records the time between two chunks of a stream of model.
func (r *Router) ObserveGap(model string, d time.Duration) {
	r.mu.Lock()
	r.samplesLocked(r.gaps, model).add(d)
	r.mu.Unlock()
}

// hedgeDelay is how long a request waits for its first provider before it
// asks a second, or 0 for never: before the model is measured, or once
// hedges would exceed their share of requests.
func (r *Router) hedgeDelayLocked(model string) time.Duration {
	s := r.latency[model]
	if r.cfg.HedgeRate <= 0 || s.len() < enough || r.hedges+1 > r.cfg.HedgeRate*r.requests {
		return 0
	}
	return max(s.quantile(r.cfg.HedgeQuantile), 5*time.Millisecond)
}

// hedgeDecay makes the hedge budget a moving window of about a thousand
// requests.
const hedgeDecay = 0.999

// Begun is an attempt whose answer has begun: the provider has sent its
// status and headers (for a stream, its first event).
type Begun interface {
	// Deliver passes the answer on to the client. Only the winning
	// attempt's runs; its error, if any, is the answer failing midway.
	Deliver() (Outcome, error)
	// Discard closes an answer that lost the race to another.
	Discard()
}

// Start sends a request to one provider and returns once its answer has
// begun (OK and a Begun), or how it failed (Failed: try another; Refused:
// the request's own fault). It must return soon after ctx ends: the
// router ends it when the first byte is overdue or another attempt won.
type Start func(ctx context.Context, c Candidate) (Begun, Outcome, error)

// Result is how a request went.
type Result struct {
	Candidate Candidate // the provider that answered
	Tries     int       // attempts started, hedges included
	Hedged    bool      // a second provider was asked while the first was slow
}

type attempt struct {
	i      int
	c      Candidate
	b      Begun
	out    Outcome
	err    error
	took   time.Duration
	cancel context.CancelFunc
	late   atomic.Bool // its first-byte deadline passed
	lost   bool        // cancelled because another attempt won
}

// Race sends a request to the best provider of model, and to the next
// when one fails before its answer begins; a provider that is slow to
// begin is hedged, within the hedge budget, by asking the next one too,
// and whichever begins first answers while the other is cancelled. An
// attempt whose first byte is overdue is cut off and counts as a failure.
// exclude names providers not to ask (those that already failed this
// request).
func (r *Router) Race(ctx context.Context, model string, exclude []string, start Start) (Result, error) {
	return r.race(ctx, model, exclude, start, true)
}

func (r *Router) race(ctx context.Context, model string, exclude []string, start Start, hedging bool) (Result, error) {
	var cs []Candidate
	for _, c := range r.Pick(model) {
		if !slices.Contains(exclude, c.Operator) {
			cs = append(cs, c)
		}
	}
	if len(cs) == 0 {
		return Result{}, ErrNoProvider
	}
	r.mu.Lock()
	panicking := true // every candidate's circuit is open: try them anyway
	for _, c := range cs {
		if h := r.health[c.Operator]; h == nil || !h.open {
			panicking = false
		}
	}
	r.requests = r.requests*hedgeDecay + 1
	r.hedges *= hedgeDecay
	var hedgeAfter time.Duration
	if hedging {
		hedgeAfter = r.hedgeDelayLocked(model)
	}
	r.mu.Unlock()
	firstByte := r.FirstByteDeadline(model)

	results := make(chan *attempt, len(cs))
	running := map[int]*attempt{}
	next, tried := 0, 0
	var res Result
	// launch starts an attempt at the next routable candidate; false when
	// none is left or the attempts are used up.
	launch := func() bool {
		for next < len(cs) && tried < r.cfg.Attempts {
			c := cs[next]
			next++
			r.mu.Lock()
			h := r.healthLocked(c.Operator)
			if h.open && !panicking { // its circuit opened since the pick
				r.mu.Unlock()
				continue
			}
			h.inflight++
			r.mu.Unlock()
			tried++
			actx, cancel := context.WithCancel(ctx)
			a := &attempt{i: next - 1, c: c, cancel: cancel}
			running[a.i] = a
			overdue := time.AfterFunc(firstByte, func() { a.late.Store(true); cancel() })
			go func() {
				t0 := time.Now()
				a.b, a.out, a.err = start(actx, c)
				a.took = time.Since(t0)
				if !overdue.Stop() && a.out == OK { // begun just as it was cut off
					a.b.Discard()
					a.b, a.out, a.err = nil, Failed, context.DeadlineExceeded
				}
				results <- a
			}()
			return true
		}
		return false
	}
	if !launch() {
		return Result{}, ErrNoProvider
	}
	var hedge <-chan time.Time
	if hedgeAfter > 0 {
		t := time.NewTimer(hedgeAfter)
		defer t.Stop()
		hedge = t.C
	}
	var last error
	for len(running) > 0 {
		select {
		case <-hedge:
			hedge = nil
			r.mu.Lock()
			allowed := r.hedges+1 <= r.cfg.HedgeRate*r.requests
			if allowed {
				r.hedges++
			}
			r.mu.Unlock()
			if allowed && len(running) == 1 && launch() {
				res.Hedged = true
			}
			continue
		case a := <-results:
			delete(running, a.i)
			if a.lost {
				r.finish(a.c, nil, 0)
				if a.b != nil {
					a.b.Discard()
				}
				a.cancel()
				continue
			}
			switch a.out {
			case OK:
				r.finish(a.c, &a.out, a.took)
				r.mu.Lock()
				r.samplesLocked(r.latency, model).add(a.took)
				r.mu.Unlock()
				for _, o := range running { // the race is won: the others lose
					o.lost = true
					o.cancel()
				}
				// The losers are collected meanwhile, so they leave the
				// books before a long stream ends.
				if len(running) > 0 {
					go r.drain(running, results)
				}
				res.Candidate, res.Tries = a.c, tried
				_, err := a.b.Deliver() // a break midway is the caller's to report (Report)
				a.cancel()
				return res, err
			case Refused:
				r.finish(a.c, &a.out, a.took)
				for _, o := range running {
					o.lost = true
					o.cancel()
				}
				a.cancel()
				r.drain(running, results)
				res.Candidate, res.Tries = a.c, tried
				return res, a.err
			default:
				if a.late.Load() {
					a.err = fmt.Errorf("no first byte within %v: %w", firstByte, errOverdue)
				}
				r.finish(a.c, &a.out, a.took)
				a.cancel()
				last = a.err
				if a.out == Down {
					// A refused connection cost nothing and cut the
					// provider off: it does not use up the attempts, so
					// providers that just died cannot crowd out live ones.
					tried--
				}
				r.log.Warn("route: provider failed; trying another", "provider", a.c.Operator, "err", a.err)
				if len(running) == 0 && ctx.Err() == nil {
					launch()
				}
			}
		}
	}
	res.Tries = tried
	if ctx.Err() != nil && last == nil {
		last = ctx.Err()
	}
	return res, fmt.Errorf("route: %d providers failed; last: %w", tried, last)
}

var errOverdue = errors.New("the provider is hung or overloaded")

// drain waits for the losers to return (they have been cancelled) and
// discards what they began.
func (r *Router) drain(running map[int]*attempt, results chan *attempt) {
	for len(running) > 0 {
		a := <-results
		delete(running, a.i)
		r.finish(a.c, nil, 0)
		if a.b != nil {
			a.b.Discard()
		}
		a.cancel()
	}
}

// finish ends an attempt's time in flight and, unless it lost a race (out
// nil), books its outcome.
func (r *Router) finish(c Candidate, out *Outcome, took time.Duration) {
	r.mu.Lock()
	r.healthLocked(c.Operator).inflight--
	r.mu.Unlock()
	if out != nil {
		r.book(c, *out, took)
	}
}

// Report books a failure found after an answer began (a stream that broke
// off): it counts against the provider as any failure does.
func (r *Router) Report(c Candidate, out Outcome) { r.book(c, out, 0) }
