// Package gateway is one OpenAI-compatible endpoint over many providers:
// it routes each request to the best provider of its model, fails over to
// another when one dies (only before the first byte of a stream), pays the
// providers over its own x402 channels, checks their receipts, and bills
// its clients by API key against a prepaid balance — only for answers.
package gateway

import (
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
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/agoranet/agora/internal/a2a"
	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/httpserve"
	"github.com/agoranet/agora/internal/keyring"
	"github.com/agoranet/agora/internal/ledger"
	"github.com/agoranet/agora/internal/openai"
	"github.com/agoranet/agora/internal/paygate"
	"github.com/agoranet/agora/internal/receipt"
	"github.com/agoranet/agora/internal/route"
	"github.com/agoranet/agora/sdk"
)

// Config configures a gateway.
type Config struct {
	Listen string
	// TLSCert and TLSKey, PEM files, make it serve HTTPS; both empty:
	// plain HTTP.
	TLSCert, TLSKey string
	// A2AModel answers an A2A message that names no model (metadata
	// "model").
	A2AModel string
	// Key is the gateway's account: it pays providers and signs the
	// gateway's own receipts.
	Key ed25519.PrivateKey
	// Account is the account Key signs for, when a key rotation made it
	// differ from Key's own address (keyring.Key.Account); zero otherwise.
	Account addr.Address
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
	// Timeout bounds the wait for one provider's first byte before the
	// router has measured the model; once it has, the wait follows the
	// observed tail (route.Config.MinFirstByte and up).
	Timeout time.Duration
	// MaxInFlight requests are served at once; more get 429 with
	// Retry-After (0: httpserve's default).
	MaxInFlight int
	Route       route.Config
	Logger      *slog.Logger
}

// DefaultConfig returns a gateway's defaults: it bills and pays in uusdc,
// commits at most 100,000 USDC to providers, locks 1 USDC per channel and
// waits at most 10 s for a provider's first byte.
func DefaultConfig() Config {
	return Config{Listen: "127.0.0.1:8080", A2AModel: "agora/tiny-lm", Denom: coin.Stable, Spend: 100_000_000_000, Deposit: 1_000_000, Timeout: 10 * time.Second, Route: route.DefaultConfig()}
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

// OpenLedger opens the API-key ledger a gateway with cfg uses, for the
// CLI's key commands, while the gateway runs or not. It opens as an owner
// of its own, never as the gateway: opening as an owner releases that
// owner's leases, which a running gateway is serving from.
func OpenLedger(ctx context.Context, cfg Config) (*ledger.Ledger, error) {
	return openLedger(ctx, cfg, "cli")
}

// openLedger opens the ledger as owner: the gateway's own, under its payer
// address, releases what a crash of it left reserved.
func openLedger(ctx context.Context, cfg Config, owner string) (*ledger.Ledger, error) {
	cfg = cfg.withDefaults()
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
	leases  *ledger.Leases // reservations and debits, on keys
	gate    *paygate.Gate  // clients that pay with x402
	metrics *metrics

	srv *httpserve.Server

	stop chan struct{} // closed by Shutdown

	seqs receipt.Seqs // the receipt numbers taken, per provider

	booksMu sync.Mutex
	billed  map[string]uint64 // what clients were billed for each provider's answers, since start
}

// ProviderBooks is the gateway's account with one provider since it
// started: what the provider charged it (the payer's books), what its
// clients were billed for that provider's answers, and the gateway's own
// costs with it by reason (hedge losers, resumed streams, overcharges).
// Paid = Billed + the costs, when no answer is in flight or unsettled.
type ProviderBooks struct {
	Provider string
	Paid     uint64
	Billed   uint64
	Costs    map[string]uint64
}

// Books reconciles the gateway's payments and its billing, per provider.
func (s *Server) Books(ctx context.Context) ([]ProviderBooks, error) {
	costs, err := s.keys.CostsByProvider(ctx, s.cfg.Denom)
	if err != nil {
		return nil, err
	}
	by := map[string]*ProviderBooks{}
	get := func(p string) *ProviderBooks {
		if by[p] == nil {
			by[p] = &ProviderBooks{Provider: p, Costs: map[string]uint64{}}
		}
		return by[p]
	}
	for _, c := range s.payer.Books() {
		get(c.Payee).Paid += c.Charged
	}
	s.booksMu.Lock()
	for p, n := range s.billed {
		get(p).Billed += n
	}
	s.booksMu.Unlock()
	for p, m := range costs {
		for reason, n := range m {
			get(p).Costs[reason] += n
		}
	}
	out := make([]ProviderBooks, 0, len(by))
	for _, b := range by {
		out = append(out, *b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Provider < out[j].Provider })
	return out, nil
}

// SetAuditFeed makes the gateway show the verifier at url every answer it
// buys (request, response and receipt, signed by its payer), streams
// included; "" stops it. The verifier takes a sample; a provider cannot
// tell which. Posting is best effort: a full queue drops samples rather
// than slowing answers.
func (s *Server) SetAuditFeed(url string) { s.payer.SetAuditFeed(url, 1) }

// reclaim takes back the rest of the payer's expired channels every
// minute, until Shutdown.
func (s *Server) reclaim() {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if n, err := s.payer.Reclaim(ctx); err != nil {
			s.log.Warn("gateway: reclaim expired channels", "err", err)
		} else if n > 0 {
			s.log.Info("gateway: reclaimed expired channels", "amount", n)
		}
		cancel()
	}
}

// Start routes requests until Shutdown.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	keys, err := openLedger(ctx, cfg, keyring.AccountOf(cfg.Key, cfg.Account).String())
	if err != nil {
		return nil, err
	}
	rc := cfg.Route
	rc.Chain, rc.Logger = cfg.Chain, cfg.Logger
	if cfg.Timeout > 0 {
		rc.FirstByte = cfg.Timeout // the longest wait for a provider's first byte
	}
	router, err := route.New(ctx, rc)
	if err != nil {
		keys.Close()
		return nil, err
	}
	w, err := sdk.NewWallet(cfg.Key, cfg.NodeURL)
	if err == nil && cfg.Account != (addr.Address{}) {
		err = w.ForAccount(cfg.Account.String())
	}
	if err != nil {
		router.Close()
		keys.Close()
		return nil, err
	}
	// The payer's journal carries its channels across restarts: a
	// restarted gateway goes on paying over them, and reclaims them.
	payer, err := sdk.OpenPayer(w, sdk.Budget{Denom: cfg.Denom, Max: cfg.Spend, Deposit: cfg.Deposit, Schemes: []string{"batch-settlement"}}, filepath.Join(cfg.Home, "payer.journal"))
	if err != nil {
		router.Close()
		keys.Close()
		return nil, err
	}
	payer.PinTo(router.Pins()) // an https provider is reached only by its registered key
	s := &Server{cfg: cfg, log: cfg.Logger, address: keyring.AccountOf(cfg.Key, cfg.Account), router: router, payer: payer,
		http: &http.Client{Transport: payer, CheckRedirect: sdk.NoRedirects}, keys: keys, leases: keys.Leased(ledger.LeaseConfig{Logger: cfg.Logger}), metrics: newMetrics(), stop: make(chan struct{}), billed: map[string]uint64{}}
	go s.reclaim()
	s.metrics.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "agora_gateway_open_channels", Help: "Payment channels the gateway has opened to providers."},
		func() float64 { return float64(len(payer.Channels())) }))
	pc := paygate.DefaultConfig()
	pc.Key, pc.Account, pc.ChainID, pc.Chain, pc.LogPath, pc.Logger = cfg.Key, cfg.Account, cfg.ChainID, cfg.Chain, filepath.Join(cfg.Home, "vouchers.log"), cfg.Logger
	if s.gate, err = paygate.Open(pc); err != nil {
		router.Close()
		payer.Close()
		s.leases.Close(ctx)
		keys.Close()
		return nil, err
	}
	opts := httpserve.DefaultOptions()
	if cfg.MaxInFlight > 0 {
		opts.MaxInFlight = cfg.MaxInFlight
	}
	_, err = opts.WithTLS(cfg.TLSCert, cfg.TLSKey)
	if err == nil {
		s.srv, err = httpserve.ListenWith(cfg.Listen, s.Handler(), s.log, opts)
	}
	if err != nil {
		router.Close()
		s.gate.Close()
		payer.Close()
		s.leases.Close(ctx)
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
	close(s.stop)
	s.router.Close()
	err = errors.Join(err, s.gate.Close(), s.payer.Close())
	// Every answer given is charged, and the leases returned, before the
	// ledger closes.
	lctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = errors.Join(err, s.leases.Close(lctx))
	return errors.Join(err, s.keys.Close())
}

// Handler is the gateway's HTTP API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/models", s.handleModels)
	chat := s.forward("chat.completions")
	mux.HandleFunc("/v1/chat/completions", chat)
	mux.Handle(a2a.Path, &a2a.Server{Chat: chat, Model: s.a2aModel})
	mux.HandleFunc("/.well-known/agent-card.json", s.handleAgentCard)
	mux.HandleFunc("/v1/completions", s.forward("completions"))
	mux.HandleFunc("/v1/responses", s.forward("responses"))
	mux.HandleFunc("/v1/infer", s.forward("infer"))
	mux.HandleFunc("GET /v1/key", func(w http.ResponseWriter, r *http.Request) {
		key, err := s.apiKey(r)
		if err != nil {
			openai.WriteError(w, err)
			return
		}
		a, err := s.leases.Balance(r.Context(), key)
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
		openai.WriteError(w, openai.Errorf(http.StatusNotFound, "invalid_request_error", "unknown_url", "no endpoint %s %s; see /v1/models, /v1/chat/completions, /v1/completions, /v1/responses, /v1/infer", r.Method, r.URL.Path))
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

// a2aModel resolves an A2A message's model: one the router has a
// provider for, or for none named Config.A2AModel.
func (s *Server) a2aModel(name string) (string, error) {
	models := s.router.Models()
	if name == "" {
		name = s.cfg.A2AModel
	}
	if name != "" {
		if _, ok := models[name]; ok {
			return name, nil
		}
		for n, cs := range models {
			if cs[0].ModelID == name {
				return n, nil
			}
		}
		return "", fmt.Errorf("no provider serves model %q now; the agent card's skills list what is served", name)
	}
	return "", errors.New(`name a model in the message's metadata ("model"); the agent card's skills list what is served`)
}

// handleAgentCard serves the gateway's A2A agent card: a skill per model
// a provider serves now, paid by API key (Authorization: Bearer) or x402.
func (s *Server) handleAgentCard(w http.ResponseWriter, r *http.Request) {
	models := s.router.Models()
	names := make([]string, 0, len(models))
	for n := range models {
		names = append(names, n)
	}
	sort.Strings(names)
	var skills []a2a.Skill
	for _, n := range names {
		skills = append(skills, a2a.Skill{ID: models[n][0].ModelID, Name: n, Text: true, Tags: []string{"agora"},
			Description: fmt.Sprintf("%s from %d providers, with failover; every answer carries the provider's signed receipt", n, len(models[n]))})
	}
	writeJSON(w, http.StatusOK, a2a.AgentCard(a2a.Card{Name: "Agora gateway", Organization: s.address.String(), Skills: skills, Paid: true,
		Description: "One endpoint over every Agora provider, failing over when one dies or hangs. Pay with an API key (Authorization: Bearer) or x402."}, s.URL()))
}

// request is what forward needs to know about a client's request.
type request struct {
	endpoint  string
	model     string
	stream    bool
	maxTokens int
	hash      []byte // of the canonical request: what receipts name
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
	return &request{endpoint: endpoint, model: sum.Model, stream: sum.Stream, maxTokens: sum.MaxTokens, hash: receipt.Hash(sum.Canonical), body: body}, nil
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
	path := map[string]string{"chat.completions": "/v1/chat/completions", "completions": "/v1/completions", "responses": "/v1/responses", "infer": "/v1/infer"}[endpoint]
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
		x := &exchange{s: s, w: w, r: r, req: req, path: path, bill: b, log: log}
		res, err := s.router.Race(r.Context(), req.model, nil, x.start)
		s.metrics.retries.Add(float64(max(res.Tries-1, 0)))
		if res.Hedged {
			s.metrics.hedges.Inc()
		}
		if err != nil && !x.started {
			log.Warn("gateway: request failed", "tries", res.Tries, "err", err)
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
			openai.WriteError(w, openai.Errorf(http.StatusServiceUnavailable, "server_error", "providers_failed", "%d providers of %q failed to answer; retry shortly", res.Tries, req.model))
			return
		}
		if err != nil {
			log.Warn("gateway: the answer broke off", "provider", res.Candidate.Operator, "err", err)
		}
		log.Info("gateway: answered", "provider", res.Candidate.Operator, "tries", res.Tries, "hedged", res.Hedged, "charged", b.charged)
	}
}

// cost books what a provider charged the gateway for an answer no client
// was billed for: a named line in the ledger and in the metrics.
func (s *Server) cost(reason, provider string, amount uint64) {
	if amount == 0 {
		return
	}
	s.metrics.costs.WithLabelValues(reason).Add(float64(amount))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.keys.Cost(ctx, reason, provider, s.cfg.Denom, amount); err != nil {
		s.log.Error("gateway: book a cost", "reason", reason, "err", err)
	}
}

// checkReceipt verifies a provider's receipt for this request and answer.
func (s *Server) checkReceipt(enc string, requestHash, body []byte, c route.Candidate) (*receipt.Receipt, error) {
	return s.checkHash(enc, requestHash, receipt.Hash(body), c)
}

// checkHash verifies a provider's receipt for the request that hashes to
// requestHash and an answer that hashes to responseHash.
func (s *Server) checkHash(enc string, requestHash, responseHash []byte, c route.Candidate) (*receipt.Receipt, error) {
	rc, err := receipt.DecodeFor(enc, c.Key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.Endpoint, err)
	}
	if rc.Provider != c.Operator || rc.ModelId != c.ModelID {
		return nil, fmt.Errorf("%s: receipt from %s for model %s; expected %s, %s", c.Endpoint, rc.Provider, rc.ModelId, c.Operator, c.ModelID)
	}
	if string(rc.RequestHash) != string(requestHash) || string(rc.ResponseHash) != string(responseHash) {
		return nil, fmt.Errorf("%s: %w: the receipt's hashes are not this request's and answer's", c.Endpoint, receipt.ErrMismatch)
	}
	if rc.GetPrice().GetDenom() != s.cfg.Denom && rc.GetPrice().GetAmount() != 0 {
		return nil, fmt.Errorf("%s: %w: the receipt is priced in %s, the gateway bills %s", c.Endpoint, receipt.ErrMismatch, rc.GetPrice().GetDenom(), s.cfg.Denom)
	}
	// Its chain, a height that keeps it challengeable, a number not used before.
	if err := receipt.Fresh(rc, s.cfg.ChainID, s.gate.Height()); err != nil {
		return nil, fmt.Errorf("%s: %w", c.Endpoint, err)
	}
	if err := s.seqs.Take(rc.Provider, rc.Seq); err != nil {
		return nil, fmt.Errorf("%s: %w", c.Endpoint, err)
	}
	return rc, nil
}

// sign makes the gateway's own receipt beside the provider's: for what
// the client paid (price, by the payment ref) for the provider's answer.
func (s *Server) sign(requestHash, responseHash []byte, prov *receipt.Receipt, price uint64, ref string) (string, error) {
	return receipt.SignAs(s.cfg.Key, s.address, &receipt.Receipt{ChainId: s.cfg.ChainID, ModelId: prov.ModelId, RequestHash: requestHash,
		ResponseHash: responseHash, Usage: prov.Usage, Price: coin.New(s.cfg.Denom, price), PaymentRef: ref, Height: prov.Height})
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
	costs   *prometheus.CounterVec
	retries prometheus.Counter
	hedges  prometheus.Counter
	resumes prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "agora_gateway_provider_seconds", Help: "Provider answer time.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)},
			[]string{"provider"}),
		errors:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agora_gateway_provider_errors_total", Help: "Failed attempts by provider."}, []string{"provider"}),
		spend:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agora_gateway_provider_spend_total", Help: "What the gateway was charged, by provider."}, []string{"provider"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{Name: "agora_gateway_retries_total", Help: "Attempts beyond the first."}),
		costs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agora_gateway_costs_total", Help: "What providers charged the gateway for answers no client was billed for, by reason (hedge: the losing copy of a hedged request)."},
			[]string{"reason"}),
		hedges:  prometheus.NewCounter(prometheus.CounterOpts{Name: "agora_gateway_hedges_total", Help: "Requests sent to a second provider while the first was slow."}),
		resumes: prometheus.NewCounter(prometheus.CounterOpts{Name: "agora_gateway_resumes_total", Help: "Streams continued on another provider after theirs broke off."}),
	}
	m.reg.MustRegister(m.latency, m.errors, m.spend, m.costs, m.retries, m.hedges, m.resumes,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
