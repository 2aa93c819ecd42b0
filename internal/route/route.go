// Package route picks providers for a model and fails over between them,
// so that no single provider's death loses a request. The gateway and the
// agent SDK share it.
//
// Candidates come from the chain's registry (online providers with stake)
// and stay current from the chain's provider events. Each is scored from
// its price, observed latency (an exponentially weighted average), recent
// error rate and stake; a request goes to the best, and on a connection
// error, a 5xx or a timeout, to the next. A provider that keeps failing is
// cut off by a circuit breaker and probed on /healthz until it answers.
package route

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/agoranet/agora/internal/chain/provider/providerpb"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/tlspin"
)

// Config configures a Router.
type Config struct {
	// Chain is where the registry is read; nil means only Static
	// candidates are used.
	Chain *client.Client
	// Static candidates, for routing without a chain (tests, benchmarks).
	Static []Candidate
	// Refresh is how often the registry is reread besides on events.
	Refresh time.Duration
	// Attempts is how many providers one request may try.
	Attempts int
	// BreakAfter consecutive failures open a provider's circuit; probes go
	// to /healthz every Probe until it answers.
	BreakAfter int
	Probe      time.Duration
	// HedgeRate caps hedged requests (a second provider asked while the
	// first is slow) at this fraction of requests; HedgeQuantile of the
	// model's recent first-byte times is how long a request waits before
	// it is hedged. 0 disables hedging.
	HedgeRate     float64
	HedgeQuantile float64
	// FirstByte bounds the wait for a provider's first byte before the
	// router has measured the model; once it has, the wait is a multiple
	// of the observed tail, never below MinFirstByte. Idle bounds, the
	// same way, the wait between two chunks of a stream.
	FirstByte, MinFirstByte time.Duration
	Idle, MinIdle           time.Duration
	Logger                  *slog.Logger
}

// DefaultConfig returns the defaults: three attempts, circuits opened by
// two failures in a row and probed every 200 ms, hedging of at most 5% of
// requests after the 95th percentile of first-byte time.
func DefaultConfig() Config {
	return Config{Refresh: 5 * time.Second, Attempts: 3, BreakAfter: 2, Probe: 200 * time.Millisecond,
		HedgeRate: 0.05, HedgeQuantile: 0.95, FirstByte: 10 * time.Second, MinFirstByte: time.Second, Idle: 10 * time.Second, MinIdle: time.Second}
}

// Candidate is a provider serving a model.
type Candidate struct {
	// DisputesLost and AuditsPassed are the provider's record on chain.
	DisputesLost, AuditsPassed uint64
	Operator                   string
	// Key is the key the operator signs receipts with, as the chain lists
	// it (receipt.DecodeFor).
	Key []byte
	// TLSKey is, for an https endpoint, the sha256 of the certificate
	// key the chain registered for it: it is connected to only if the
	// server presents that key (Router.Pins).
	TLSKey   []byte
	Endpoint string
	ModelID  string
	Model    string
	Denom    string
	// PricePerRequest and PricePer1K are what the service costs.
	PricePerRequest, PricePer1K uint64
	Stake                       uint64
}

// health is what the router has seen of one provider.
type health struct {
	latency  time.Duration // EWMA of successful answers
	errRate  float64       // EWMA of failures (0 to 1)
	fails    int           // consecutive failures
	open     bool          // circuit open: not routable
	inflight int
}

// Router routes requests to providers.
type Router struct {
	cfg  Config
	log  *slog.Logger
	pins *tlspin.Pins
	http *http.Client

	mu         sync.Mutex // guards the fields below
	candidates []Candidate
	health     map[string]*health  // by operator
	latency    map[string]*samples // by model: first-byte times
	gaps       map[string]*samples // by model: times between stream chunks
	requests   float64             // decayed count of requests, for the hedge budget
	hedges     float64             // decayed count of hedges

	kick chan struct{}
	stop context.CancelFunc
	done chan struct{}
}

// New starts a router: it reads the registry now and keeps it current.
func New(ctx context.Context, cfg Config) (*Router, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Attempts < 1 || cfg.BreakAfter < 1 || cfg.Probe <= 0 || cfg.Refresh <= 0 {
		return nil, errors.New("route: attempts, break-after, probe and refresh must be positive")
	}
	d := DefaultConfig()
	for _, f := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&cfg.FirstByte, d.FirstByte}, {&cfg.MinFirstByte, d.MinFirstByte}, {&cfg.Idle, d.Idle}, {&cfg.MinIdle, d.MinIdle}} {
		if *f.v <= 0 {
			*f.v = f.def
		}
	}
	// Probes have short deadlines: a hung provider (stopped, swapping)
	// accepts connections and never answers.
	pins := tlspin.NewPins()
	r := &Router{cfg: cfg, log: cfg.Logger, pins: pins, http: &http.Client{Timeout: 500 * time.Millisecond, Transport: pins.Transport(nil)}, health: map[string]*health{},
		latency: map[string]*samples{}, gaps: map[string]*samples{}, kick: make(chan struct{}, 1), done: make(chan struct{})}
	r.candidates = append(r.candidates, cfg.Static...)
	if cfg.Chain != nil {
		if err := r.refresh(ctx); err != nil {
			return nil, err
		}
	}
	loop, cancel := context.WithCancel(context.Background())
	r.stop = cancel
	go r.run(loop)
	return r, nil
}

// Close stops the router's loops.
func (r *Router) Close() {
	r.stop()
	<-r.done
}

// refresh rereads the online providers and their services.
func (r *Router) refresh(ctx context.Context) error {
	resp, err := client.Ask(ctx, r.cfg.Chain, providerpb.QueryProviders, &providerpb.QueryProvidersRequest{OnlineOnly: true})
	if err != nil {
		return fmt.Errorf("route: read the registry: %w", err)
	}
	var cs []Candidate
	for _, p := range resp.Providers {
		for _, s := range p.Services {
			c := Candidate{Operator: p.Provider.Operator, Key: p.PublicKey, TLSKey: p.Provider.TlsKeySha256, Endpoint: p.Provider.Endpoint, ModelID: s.ModelId, Model: s.ModelName, Stake: p.Stake,
				DisputesLost: p.Provider.DisputesLost, AuditsPassed: p.Provider.AuditsPassed}
			if s.PricePerRequest != nil {
				c.Denom, c.PricePerRequest = s.PricePerRequest.Denom, s.PricePerRequest.Amount
			}
			if s.PricePer_1KTokens != nil {
				c.PricePer1K = s.PricePer_1KTokens.Amount
			}
			cs = append(cs, c)
		}
	}
	r.mu.Lock()
	r.candidates = append(cs, r.cfg.Static...)
	pins := map[string][][]byte{}
	for _, c := range r.candidates {
		if len(c.TLSKey) > 0 {
			pins[c.Endpoint] = append(pins[c.Endpoint], c.TLSKey)
		}
	}
	r.mu.Unlock()
	r.pins.Replace(pins)
	return nil
}

// Pins are the certificate keys the chain registered for the candidates'
// https endpoints: a transport from them (tlspin.Pins.Transport) reaches
// a provider over TLS only if it presents its registered key, and never
// reaches an https endpoint over plain http.
func (r *Router) Pins() *tlspin.Pins { return r.pins }

// run keeps the registry current (on chain events and periodically) and
// probes providers whose circuit is open.
func (r *Router) run(ctx context.Context) {
	defer close(r.done)
	refresh := time.NewTicker(r.cfg.Refresh)
	probe := time.NewTicker(r.cfg.Probe)
	defer refresh.Stop()
	defer probe.Stop()
	var events <-chan struct{}
	if r.cfg.Chain != nil {
		events = r.watch(ctx)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-refresh.C:
		case <-events:
		case <-r.kick:
		case <-probe.C:
			r.probeOpen(ctx)
			continue
		}
		if r.cfg.Chain != nil {
			if err := r.refresh(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn("route: refresh failed", "err", err)
			}
		}
	}
}

// watch subscribes to the provider events that change the candidate set.
func (r *Router) watch(ctx context.Context) <-chan struct{} {
	out := make(chan struct{}, 1)
	// Going offline and being jailed happen at the end of a block (or in a
	// tx whose slash takes a provider below the minimum stake);
	// registering and coming back online happen in transactions.
	for _, q := range []string{
		"tm.event='NewBlock' AND provider_offline.operator EXISTS",
		"tm.event='Tx' AND provider_offline.operator EXISTS", // slashed below the minimum stake
		"tm.event='Tx' AND provider_online.operator EXISTS",
		"tm.event='Tx' AND register_service.operator EXISTS",
	} {
		go r.follow(ctx, q, out)
	}
	return out
}

// follow signals out on every event matching q until ctx ends. When the
// node drops the subscription (a restart, a slow reader) it subscribes
// again; meanwhile the periodic refresh keeps the candidates current.
func (r *Router) follow(ctx context.Context, q string, out chan<- struct{}) {
	for ctx.Err() == nil {
		ch, err := r.cfg.Chain.Subscribe(ctx, q, 16)
		if err != nil {
			r.log.Warn("route: cannot follow provider events; polling until it can", "query", q, "err", err)
		} else {
			for range ch {
				select {
				case out <- struct{}{}:
				default:
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
		}
	}
}

func (r *Router) probeOpen(ctx context.Context) {
	r.mu.Lock()
	var open []Candidate
	seen := map[string]bool{}
	for _, c := range r.candidates {
		if h := r.health[c.Operator]; h != nil && h.open && !seen[c.Operator] {
			open = append(open, c)
			seen[c.Operator] = true
		}
	}
	r.mu.Unlock()
	for _, c := range open {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.Endpoint+"/healthz", nil)
		resp, err := r.http.Do(req)
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			r.mu.Lock()
			if h := r.health[c.Operator]; h != nil {
				h.open, h.fails = false, 0
			}
			r.mu.Unlock()
			r.log.Info("route: provider answers again", "provider", c.Operator)
		}
	}
}

// explore is how often a request goes to a random routable provider.
const explore = 0.1

// ErrNoProvider is returned when no provider serves a model right now.
var ErrNoProvider = errors.New("route: no provider online for this model")

// Models lists the models with at least one routable provider, and their
// providers.
func (r *Router) Models() map[string][]Candidate {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]Candidate{}
	for _, c := range r.candidates {
		if h := r.health[c.Operator]; h != nil && h.open {
			continue
		}
		out[c.Model] = append(out[c.Model], c)
	}
	return out
}

// score is lower for better providers: expected latency, inflated by
// recent errors and load, scaled by price, discounted for stake.
func (r *Router) scoreLocked(c Candidate) float64 {
	h := r.health[c.Operator]
	// A provider not yet measured is assumed fast, so it gets tried and
	// measured rather than starved by ones already known.
	lat, errRate, load := 0.1, 0.0, 0
	if h != nil {
		if h.latency > 0 {
			lat = float64(h.latency) / float64(time.Millisecond)
		}
		errRate, load = h.errRate, h.inflight
	}
	price := 1 + float64(c.PricePerRequest)/1000
	stake := 1 + float64(c.Stake)/1e10
	// Reputation: every lost dispute weighs like a doubling of latency;
	// passed audits earn a little back.
	reputation := (1 + float64(c.DisputesLost)) / (1 + 0.1*float64(c.AuditsPassed))
	return lat * (1 + 20*errRate) * (1 + 0.5*float64(load)) * price * reputation / stake
}

// Pick returns the routable providers of a model (name or id), best first.
func (r *Router) Pick(model string) []Candidate {
	r.mu.Lock()
	defer r.mu.Unlock()
	var cs, open []Candidate
	for _, c := range r.candidates {
		if c.Model != model && c.ModelID != model {
			continue
		}
		if h := r.health[c.Operator]; h != nil && h.open {
			open = append(open, c)
			continue
		}
		cs = append(cs, c)
	}
	if len(cs) == 0 {
		// Every circuit is open: under an overload that times every
		// provider out, refusing all requests would turn a slowdown into
		// an outage. As Envoy's panic threshold does, route to them all.
		cs = open
	}
	// Scores get a little noise, so providers whose scores are close share
	// the load (and keep being measured) instead of the best taking all.
	scores := make(map[string]float64, len(cs))
	for _, c := range cs {
		scores[c.Operator+c.ModelID] = r.scoreLocked(c) * (1 + 0.5*mrand.Float64())
	}
	sort.SliceStable(cs, func(i, j int) bool {
		return scores[cs[i].Operator+cs[i].ModelID] < scores[cs[j].Operator+cs[j].ModelID]
	})
	// Now and then a random provider goes first, so one slow answer (the
	// first to a provider pays for opening a channel) does not keep it
	// unmeasured, and unused, for good.
	if len(cs) > 1 && mrand.Float64() < explore {
		i := 1 + mrand.IntN(len(cs)-1)
		cs[0], cs[i] = cs[i], cs[0]
	}
	return cs
}

func (r *Router) healthLocked(op string) *health {
	h := r.health[op]
	if h == nil {
		h = &health{}
		r.health[op] = h
	}
	return h
}

// Outcome is how an attempt went.
type Outcome int

// Outcomes.
const (
	OK      Outcome = iota
	Failed          // the provider failed: try another
	Refused         // the request itself is bad (4xx): do not retry
	Down            // nothing listens at the provider's address: try another, and cut it off at once
)

// Do sends a request through up to Attempts providers of model, best
// first: attempt is called with each, one at a time, until it reports OK
// or Refused. It is Race without hedging, for callers whose attempt does
// all its work at once; first-byte deadlines apply. It returns the last
// candidate tried and the number of attempts.
func (r *Router) Do(ctx context.Context, model string, attempt func(ctx context.Context, c Candidate) (Outcome, error)) (Candidate, int, error) {
	res, err := r.race(ctx, model, nil, func(ctx context.Context, c Candidate) (Begun, Outcome, error) {
		out, err := attempt(ctx, c)
		if out == OK {
			return done{}, OK, err
		}
		return nil, out, err
	}, false)
	return res.Candidate, res.Tries, err
}

// done is an answer already delivered.
type done struct{}

func (done) Deliver() (Outcome, error) { return OK, nil }
func (done) Discard()                  {}

// book records how an attempt went: its latency when it succeeded, a
// failure against the provider (two in a row open its circuit).
func (r *Router) book(c Candidate, out Outcome, took time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.healthLocked(c.Operator)
	const alpha = 0.2
	if out == Failed || out == Down {
		h.errRate = h.errRate*(1-alpha) + alpha
		h.fails++
		// A refused connection is not a slow or flaky provider but a dead
		// one: its circuit opens at once, and the probe lets it back in
		// the moment it listens again.
		if (out == Down || h.fails >= r.cfg.BreakAfter) && !h.open {
			h.open = true
			r.log.Warn("route: circuit open", "provider", c.Operator)
		}
		return
	}
	h.errRate *= 1 - alpha
	h.fails = 0
	if took <= 0 {
		return
	}
	if h.latency == 0 {
		h.latency = took
	} else {
		h.latency = time.Duration(float64(h.latency)*(1-alpha) + float64(took)*alpha)
	}
}

// Retryable classifies an HTTP attempt: transport errors, timeouts, 5xx
// and most 4xx mean the provider failed; 400, 413 and 422 are the
// request's own.
func Retryable(resp *http.Response, err error) Outcome {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return Down
	}
	if err != nil {
		return Failed
	}
	switch {
	case resp.StatusCode < 400:
		return OK
	case resp.StatusCode == http.StatusBadRequest, resp.StatusCode == http.StatusRequestEntityTooLarge, resp.StatusCode == http.StatusUnprocessableEntity:
		return Refused // the request's own fault: another provider would say the same
	}
	// A 5xx, a 429, and any other 4xx: a payment the provider refuses
	// after the payer paid (its books disagree with ours), a model it was
	// registered for and does not serve, … are the provider's failure.
	return Failed
}
