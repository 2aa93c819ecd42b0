// Package gateway is one OpenAI-compatible endpoint over many providers:
// it routes each request to the best provider of its model, fails over to
// another when one dies (only before the first byte of a stream), pays the
// providers over its own x402 channels, checks their receipts, and bills
// its clients by API key against a prepaid balance — only for answers.
package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/httpserve"
	"github.com/agoranet/agora/internal/ledger"
	"github.com/agoranet/agora/internal/openai"
	"github.com/agoranet/agora/internal/paygate"
	"github.com/agoranet/agora/internal/receipt"
	"github.com/agoranet/agora/internal/route"
	"github.com/agoranet/agora/sdk"
	"github.com/agoranet/agora/x402"
)

// Config configures a gateway.
type Config struct {
	Listen string
	// Key is the gateway's account: it pays providers and signs the
	// gateway's own receipts.
	Key     ed25519.PrivateKey
	ChainID string
	Chain   *client.Client
	// NodeURL is the chain RPC the gateway's wallet uses.
	NodeURL string
	// Home is the gateway's directory (Home(agoraHome)): its SQLite ledger
	// ledger.db, unless DB names another, and vouchers.log, the voucher
	// log of clients that pay with x402 instead of an API key.
	Home string
	// DB is the API-key ledger: a postgres:// URL that several replicas
	// share, or a SQLite file; "" is <Home>/ledger.db.
	DB string
	// Denom is what clients are billed in and providers paid in.
	Denom string
	// Spend caps what the gateway commits to providers in all, and Deposit
	// is what each channel to a provider locks.
	Spend, Deposit uint64
	// Timeout bounds one attempt at one provider.
	Timeout time.Duration
	// MaxInFlight requests are served at once; more get 429 with
	// Retry-After (0: httpserve's default).
	MaxInFlight int
	Route       route.Config
	Logger      *slog.Logger
}

// DefaultConfig returns a gateway's defaults: it bills and pays in uusdc,
// commits at most 100,000 USDC to providers, locks 1 USDC per channel and
// gives one attempt at one provider 30 s.
func DefaultConfig() Config {
	return Config{Listen: "127.0.0.1:8080", Denom: coin.Stable, Spend: 100_000_000_000, Deposit: 1_000_000, Timeout: 30 * time.Second, Route: route.DefaultConfig()}
}

// Validate checks the config.
func (c Config) Validate() error {
	switch {
	case len(c.Key) != ed25519.PrivateKeySize:
		return errors.New("gateway: no key")
	case c.Chain == nil || c.ChainID == "" || c.NodeURL == "":
		return errors.New("gateway: need a chain client, its chain-id and its node URL")
	case c.Home == "":
		return errors.New("gateway: no home directory")
	case !coin.ValidDenom(c.Denom):
		return fmt.Errorf("gateway: bad denom %q", c.Denom)
	case c.Deposit == 0 || c.Deposit > c.Spend:
		return fmt.Errorf("gateway: a channel deposit of %d must be positive and within the spending cap of %d", c.Deposit, c.Spend)
	case c.Timeout < 0:
		return errors.New("gateway: negative timeout")
	}
	return nil
}

// withDefaults fills what a config leaves zero, in one place.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Timeout == 0 {
		c.Timeout = d.Timeout
	}
	if c.Listen == "" {
		c.Listen = d.Listen
	}
	if c.DB == "" && c.Home != "" {
		c.DB = filepath.Join(c.Home, "ledger.db")
	}
	return c
}

// Home is the gateway's directory in an Agora home.
func Home(agoraHome string) string { return filepath.Join(agoraHome, "gateway") }

// OpenLedger opens the API-key ledger a gateway with cfg uses (for the
// CLI's key commands, while the gateway runs or not).
func OpenLedger(ctx context.Context, cfg Config) (*ledger.Ledger, error) {
	cfg = cfg.withDefaults()
	owner := "cli"
	if len(cfg.Key) == ed25519.PrivateKeySize {
		owner = addr.FromPubKey(cfg.Key.Public().(ed25519.PublicKey)).String()
	}
	l, err := ledger.Open(ctx, cfg.DB, owner)
	if err != nil {
		return nil, err
	}
	if cfg.Home != "" {
		if err := importKeys(ctx, l, filepath.Join(cfg.Home, "keys.jsonl")); err != nil {
			l.Close()
			return nil, err
		}
	}
	return l, nil
}

// Server is a running gateway.
type Server struct {
	cfg     Config
	log     *slog.Logger
	address addr.Address
	router  *route.Router
	payer   *sdk.Payer
	http    *http.Client
	keys    *ledger.Ledger
	gate    *paygate.Gate // clients that pay with x402
	metrics *metrics

	srv *httpserve.Server

	auditMu     sync.Mutex // guards auditURL
	auditURL    string
	samples     chan verifierSample
	stopSamples chan struct{}
}

// verifierSample is an answer sent to a verifier's audit feed.
type verifierSample struct {
	Endpoint string `json:"endpoint"`
	Request  string `json:"request"`
	Response string `json:"response"`
	Receipt  string `json:"receipt"`
}

// SetAuditFeed makes the gateway post every answer it relays (request,
// response and receipt) to a verifier's audit feed; "" stops it. Posting is
// best effort: a full queue drops samples rather than slowing answers.
func (s *Server) SetAuditFeed(url string) {
	s.auditMu.Lock()
	s.auditURL = url
	s.auditMu.Unlock()
}

func (s *Server) feed(endpoint string, req, resp []byte, rc string) {
	s.auditMu.Lock()
	on := s.auditURL != ""
	s.auditMu.Unlock()
	if !on {
		return
	}
	select {
	case s.samples <- verifierSample{Endpoint: endpoint, Request: string(req), Response: string(resp), Receipt: rc}:
	default:
	}
}

func (s *Server) postSamples() {
	hc := &http.Client{Timeout: 5 * time.Second} // a slow verifier costs samples, not goroutines
	for {
		var smp verifierSample
		select {
		case <-s.stopSamples:
			return
		case smp = <-s.samples:
		}
		s.auditMu.Lock()
		url := s.auditURL
		s.auditMu.Unlock()
		if url == "" {
			continue
		}
		b, _ := json.Marshal(smp)
		if resp, err := hc.Post(url+"/v1/audit", "application/json", bytes.NewReader(b)); err == nil {
			resp.Body.Close()
		}
	}
}

// Start routes requests until Shutdown.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	keys, err := OpenLedger(ctx, cfg)
	if err != nil {
		return nil, err
	}
	rc := cfg.Route
	rc.Chain, rc.Logger = cfg.Chain, cfg.Logger
	router, err := route.New(ctx, rc)
	if err != nil {
		return nil, err
	}
	w, err := sdk.NewWallet(cfg.Key, cfg.NodeURL)
	if err != nil {
		router.Close()
		return nil, err
	}
	payer := sdk.NewPayer(w, sdk.Budget{Denom: cfg.Denom, Max: cfg.Spend, Deposit: cfg.Deposit, Schemes: []string{"batch-settlement"}})
	s := &Server{cfg: cfg, log: cfg.Logger, address: addr.FromPubKey(cfg.Key.Public().(ed25519.PublicKey)), router: router, payer: payer,
		http: &http.Client{Transport: payer}, keys: keys, metrics: newMetrics(), samples: make(chan verifierSample, 256), stopSamples: make(chan struct{})}
	go s.postSamples()
	s.metrics.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "agora_gateway_open_channels", Help: "Payment channels the gateway has opened to providers."},
		func() float64 { return float64(len(payer.Channels())) }))
	pc := paygate.DefaultConfig()
	pc.Key, pc.ChainID, pc.Chain, pc.LogPath, pc.Logger = cfg.Key, cfg.ChainID, cfg.Chain, filepath.Join(cfg.Home, "vouchers.log"), cfg.Logger
	if s.gate, err = paygate.Open(pc); err != nil {
		router.Close()
		keys.Close()
		return nil, err
	}
	opts := httpserve.DefaultOptions()
	if cfg.MaxInFlight > 0 {
		opts.MaxInFlight = cfg.MaxInFlight
	}
	if s.srv, err = httpserve.ListenWith(cfg.Listen, s.Handler(), s.log, opts); err != nil {
		router.Close()
		s.gate.Close()
		keys.Close()
		return nil, fmt.Errorf("gateway: %w", err)
	}
	return s, nil
}

// URL is where the gateway serves.
func (s *Server) URL() string { return s.srv.URL() }

// Ledger is where the API keys are: a file, or a PostgreSQL URL.
func (s *Server) Ledger() string { return s.keys.Where() }

// Shutdown stops serving (letting requests in flight finish until ctx
// ends), then routing, paying and billing.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	// The samples channel is never closed: a handler still running after
	// ctx ended may yet send on it.
	close(s.stopSamples)
	s.router.Close()
	err = errors.Join(err, s.gate.Close())
	return errors.Join(err, s.keys.Close())
}

// Handler is the gateway's HTTP API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/models", s.handleModels)
	mux.HandleFunc("/v1/chat/completions", s.forward("chat.completions"))
	mux.HandleFunc("/v1/completions", s.forward("completions"))
	mux.HandleFunc("/v1/infer", s.forward("infer"))
	mux.HandleFunc("GET /v1/key", func(w http.ResponseWriter, r *http.Request) {
		key, err := s.apiKey(r)
		if err != nil {
			openai.WriteError(w, err)
			return
		}
		a, err := s.keys.Balance(r.Context(), key)
		if errors.Is(err, ledger.ErrUnknownKey) {
			openai.WriteError(w, openai.Errorf(http.StatusUnauthorized, "invalid_request_error", "invalid_api_key", "this API key is not known to the gateway"))
			return
		}
		if err != nil {
			openai.WriteError(w, openai.Errorf(http.StatusServiceUnavailable, "server_error", "ledger_unavailable", "the gateway cannot reach its API-key ledger; retry shortly"))
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"id": a.ID, "balance": strconv.FormatUint(a.Balance, 10), "reserved": strconv.FormatUint(a.Reserved, 10), "denom": a.Denom})
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "gateway": s.address.String(), "models": len(s.router.Models())})
	})
	mux.Handle("/metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		openai.WriteError(w, openai.Errorf(http.StatusNotFound, "invalid_request_error", "unknown_url", "no endpoint %s %s; see /v1/models, /v1/chat/completions, /v1/completions, /v1/infer", r.Method, r.URL.Path))
	})
	return withRequestID(mux)
}

// withRequestID gives every request an id, in the response and the logs.
func withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if id == "" || len(id) > 64 {
			b := make([]byte, 8)
			rand.Read(b)
			id = hex.EncodeToString(b)
		}
		w.Header().Set("X-Request-Id", id)
		r.Header.Set("X-Request-Id", id)
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b, _ := json.Marshal(v)
	w.Write(append(b, '\n'))
}

func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	list := openai.ModelList{Object: "list", Data: []openai.ModelCard{}}
	models := s.router.Models()
	names := make([]string, 0, len(models))
	for n := range models {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		cs := models[n]
		best := cs[0]
		for _, c := range cs {
			if c.PricePerRequest < best.PricePerRequest {
				best = c
			}
		}
		list.Data = append(list.Data, openai.ModelCard{ID: n, Object: "model", OwnedBy: "agora", ModelID: best.ModelID, Providers: len(cs),
			Price: &openai.Price{Denom: best.Denom, PerRequest: strconv.FormatUint(best.PricePerRequest, 10), Per1KTokens: strconv.FormatUint(best.PricePer1K, 10)}})
	}
	writeJSON(w, http.StatusOK, list)
}

// request is what forward needs to know about a client's request.
type request struct {
	endpoint  string
	model     string
	stream    bool
	maxTokens int
	canonical []byte
	body      []byte
}

func parse(endpoint string, r *http.Request) (*request, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, openai.MaxBodyBytes+1))
	if err != nil || len(body) > openai.MaxBodyBytes {
		return nil, openai.Errorf(http.StatusRequestEntityTooLarge, "invalid_request_error", "request_too_large", "the request body is over %d bytes", openai.MaxBodyBytes)
	}
	sum, err := openai.Summarize(endpoint, body, openai.Limits{MaxTokens: 1 << 20, MaxPromptBytes: openai.MaxBodyBytes})
	if err != nil {
		return nil, err
	}
	if sum.Model == "" {
		return nil, openai.Invalid("model", "model is required; GET /v1/models lists what is served")
	}
	return &request{endpoint: endpoint, model: sum.Model, stream: sum.Stream, maxTokens: sum.MaxTokens, canonical: sum.Canonical, body: body}, nil
}

func (s *Server) apiKey(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	key, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || key == "" {
		return "", openai.Errorf(http.StatusUnauthorized, "invalid_request_error", "missing_api_key", "send an API key as 'Authorization: Bearer <key>'; create one with `agora gateway key create`")
	}
	return strings.TrimSpace(key), nil
}

// forward serves an inference endpoint through the providers.
func (s *Server) forward(endpoint string) http.HandlerFunc {
	path := map[string]string{"chat.completions": "/v1/chat/completions", "completions": "/v1/completions", "infer": "/v1/infer"}[endpoint]
	return func(w http.ResponseWriter, r *http.Request) {
		rid := r.Header.Get("X-Request-Id")
		log := s.log.With("request_id", rid, "endpoint", endpoint)
		if r.Method != http.MethodPost {
			openai.WriteError(w, openai.Errorf(http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed", "use POST for %s", path))
			return
		}
		req, err := parse(endpoint, r)
		if err != nil {
			openai.WriteError(w, err)
			return
		}
		cands := s.router.Pick(req.model)
		if len(cands) == 0 {
			w.Header().Set("Retry-After", "1")
			openai.WriteError(w, openai.Errorf(http.StatusServiceUnavailable, "server_error", "no_provider", "no provider of %q is online and answering right now; retry shortly, or GET /v1/models for what is", req.model))
			return
		}
		// The most the answer can cost, at the dearest candidate.
		var most uint64
		for _, c := range cands {
			most = max(most, c.PricePerRequest+(uint64(req.maxTokens)*c.PricePer1K+999)/1000)
		}
		b := s.bill(w, r, most)
		if b == nil {
			return
		}
		defer b.close(log)
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		started := false
		c, tries, err := s.router.Do(ctx, req.model, func(ctx context.Context, c route.Candidate) (route.Outcome, error) {
			return s.attempt(ctx, w, r, req, c, path, &started, b)
		})
		s.metrics.retries.Add(float64(max(tries-1, 0)))
		if err != nil && !started {
			log.Warn("gateway: request failed", "tries", tries, "err", err)
			var oe *openai.Error
			if errors.As(err, &oe) {
				openai.WriteError(w, oe)
				return
			}
			// Nothing could answer: every provider down, failing or cut off.
			w.Header().Set("Retry-After", "1")
			if errors.Is(err, route.ErrNoProvider) {
				openai.WriteError(w, openai.Errorf(http.StatusServiceUnavailable, "server_error", "no_provider", "no provider of %q is online and answering right now; retry shortly", req.model))
				return
			}
			openai.WriteError(w, openai.Errorf(http.StatusServiceUnavailable, "server_error", "providers_failed", "%d providers of %q failed to answer; retry shortly", tries, req.model))
			return
		}
		log.Info("gateway: answered", "provider", c.Operator, "tries", tries, "charged", b.charged)
	}
}

// attempt sends the request to one provider. Before the first byte reaches
// the client it may fail over; after, it streams to the end.
func (s *Server) attempt(ctx context.Context, w http.ResponseWriter, r *http.Request, req *request, c route.Candidate, path string, started *bool, b *bill) (route.Outcome, error) {
	actx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	out, err := http.NewRequestWithContext(actx, http.MethodPost, c.Endpoint+path, bytes.NewReader(req.body))
	if err != nil {
		return route.Failed, err
	}
	out.Header.Set("Content-Type", "application/json")
	out.Header.Set("X-Request-Id", r.Header.Get("X-Request-Id"))
	start := time.Now()
	resp, err := s.http.Do(out)
	if perr := sdk.Refused(resp, err); perr != nil && err == nil {
		resp.Body.Close()
		if !errors.Is(perr, sdk.ErrBudget) { // a price the gateway cannot pay: try another provider
			s.metrics.errors.WithLabelValues(c.Operator).Inc()
			return route.Failed, fmt.Errorf("%s: %w", c.Endpoint, perr)
		}
		err = perr
	}
	if errors.Is(err, sdk.ErrBudget) { // the gateway's own spending cap: no provider's fault
		return route.Refused, openai.Errorf(http.StatusServiceUnavailable, "server_error", "gateway_budget", "the gateway has reached its spending cap; try later")
	}
	outcome := route.Retryable(resp, err)
	lbl := c.Operator
	if outcome == route.Failed {
		s.metrics.errors.WithLabelValues(lbl).Inc()
		if resp != nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return route.Failed, fmt.Errorf("%s answered %d", c.Endpoint, resp.StatusCode)
		}
		return route.Failed, err
	}
	defer resp.Body.Close()
	if outcome == route.Refused { // the request's own fault: pass it on
		*started = true
		copyHeaders(w, resp)
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
		return route.Refused, nil
	}
	if req.stream {
		return s.relayStream(w, resp, req, c, started, b)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		s.metrics.errors.WithLabelValues(lbl).Inc()
		return route.Failed, err
	}
	rc, rerr := s.checkReceipt(resp.Header.Get(receipt.Header), req.canonical, body, c)
	if rerr != nil { // garbage from a provider: it failed, try another
		s.metrics.errors.WithLabelValues(lbl).Inc()
		return route.Failed, rerr
	}
	s.metrics.latency.WithLabelValues(lbl).Observe(time.Since(start).Seconds())
	price := rc.GetPrice().GetAmount()
	if err := b.settle(w.Header(), price, receipt.Hash(body)); err != nil {
		return route.Refused, err
	}
	s.metrics.spend.WithLabelValues(lbl).Add(float64(price))
	*started = true
	copyHeaders(w, resp)
	if gr, err := s.sign(req.canonical, receipt.Hash(body), rc); err == nil {
		w.Header().Set("Agora-Gateway-Receipt", gr)
	}
	w.WriteHeader(resp.StatusCode)
	w.Write(body)
	s.feed(req.endpoint, req.body, body, resp.Header.Get(receipt.Header))
	return route.OK, nil
}

// relayStream passes a provider's event stream through. Until its first
// event arrives the attempt can still fail over; then it is the answer.
func (s *Server) relayStream(w http.ResponseWriter, resp *http.Response, req *request, c route.Candidate, started *bool, b *bill) (route.Outcome, error) {
	rd := bufio.NewReader(resp.Body)
	first, err := rd.ReadBytes('\n')
	if err != nil {
		s.metrics.errors.WithLabelValues(c.Operator).Inc()
		return route.Failed, fmt.Errorf("%s: stream ended before its first event: %w", c.Endpoint, err)
	}
	if err := b.durable(); err != nil {
		return route.Refused, err
	}
	*started = true
	copyHeaders(w, resp)
	w.Header().Set("Trailer", x402.HeaderResponse)
	w.WriteHeader(resp.StatusCode)
	fl, _ := w.(http.Flusher)
	w.Write(first)
	var all bytes.Buffer
	all.Write(first)
	for {
		line, err := rd.ReadBytes('\n')
		if len(line) > 0 {
			w.Write(line)
			all.Write(line)
			if fl != nil && bytes.Equal(line, []byte("\n")) {
				fl.Flush()
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			// Cut after the first byte: no retry is possible; say so.
			w.Write([]byte(`data: {"error":{"message":"the provider's stream broke; retry the request","type":"server_error","code":"stream_cut"}}` + "\n\n"))
			s.metrics.errors.WithLabelValues(c.Operator).Inc()
			return route.OK, nil // the client has an answer of sorts; not billed
		}
	}
	covered, rcs := openai.SplitStream(all.Bytes())
	if rc, err := s.checkReceipt(rcs, req.canonical, covered, c); err == nil {
		price := rc.GetPrice().GetAmount()
		if err := b.settle(w.Header(), price, receipt.Hash(covered)); err != nil {
			s.log.Error("gateway: record a streamed answer's charge", "err", err)
		}
		s.metrics.spend.WithLabelValues(c.Operator).Add(float64(price))
	} else {
		s.log.Warn("gateway: streamed answer without a valid receipt; not billed", "provider", c.Operator, "err", err)
	}
	if fl != nil {
		fl.Flush()
	}
	return route.OK, nil
}

// checkReceipt verifies a provider's receipt for this request and answer.
func (s *Server) checkReceipt(enc string, canonical, body []byte, c route.Candidate) (*receipt.Receipt, error) {
	rc, err := receipt.Decode(enc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.Endpoint, err)
	}
	if rc.Provider != c.Operator || rc.ModelId != c.ModelID {
		return nil, fmt.Errorf("%s: receipt from %s for model %s; expected %s, %s", c.Endpoint, rc.Provider, rc.ModelId, c.Operator, c.ModelID)
	}
	if err := receipt.Check(rc, canonical, body); err != nil {
		return nil, fmt.Errorf("%s: %w", c.Endpoint, err)
	}
	return rc, nil
}

// sign makes the gateway's own receipt beside the provider's.
func (s *Server) sign(canonical, responseHash []byte, prov *receipt.Receipt) (string, error) {
	return receipt.Sign(s.cfg.Key, &receipt.Receipt{ChainId: s.cfg.ChainID, ModelId: prov.ModelId, RequestHash: receipt.Hash(canonical),
		ResponseHash: responseHash, Usage: prov.Usage, Price: prov.Price, PaymentRef: "provider:" + prov.Provider + ":" + strconv.FormatUint(prov.Seq, 10), Height: prov.Height})
}

func copyHeaders(w http.ResponseWriter, resp *http.Response) {
	for _, h := range []string{"Content-Type", receipt.Header, "Agora-Provider", "Agora-Model-Id", "Cache-Control"} {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
}

type metrics struct {
	reg     *prometheus.Registry
	latency *prometheus.HistogramVec
	errors  *prometheus.CounterVec
	spend   *prometheus.CounterVec
	retries prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "agora_gateway_provider_seconds", Help: "Provider answer time.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)},
			[]string{"provider"}),
		errors:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agora_gateway_provider_errors_total", Help: "Failed attempts by provider."}, []string{"provider"}),
		spend:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agora_gateway_provider_spend_total", Help: "What the gateway was charged, by provider."}, []string{"provider"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{Name: "agora_gateway_retries_total", Help: "Attempts beyond the first."}),
	}
	m.reg.MustRegister(m.latency, m.errors, m.spend, m.retries)
	return m
}
