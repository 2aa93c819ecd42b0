// Package provider is the provider daemon: it serves models over the
// OpenAI API, signs a receipt for every answer, and keeps its registration
// on chain alive with heartbeats.
package provider

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agoranet/agora/internal/answer"
	"github.com/agoranet/agora/internal/blob"
	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/httpserve"
	"github.com/agoranet/agora/internal/keyring"
	"github.com/agoranet/agora/internal/model"
	"github.com/agoranet/agora/internal/paygate"
	"github.com/agoranet/agora/internal/worker"
	"github.com/agoranet/agora/internal/zk"
)

// Offer is one model the provider serves and its price.
type Offer struct {
	// Model is a parsed weights file (built-in or the operator's own).
	// Exactly one of Model and Upstream is set.
	Model *model.Model
	// Upstream serves the model from an OpenAI-compatible engine.
	Upstream *Upstream
	// PricePerRequest and PricePer1KTokens (output tokens) are in Denom.
	Denom            string
	PricePerRequest  uint64
	PricePer1KTokens uint64
	// MaxConcurrency bounds requests in flight; more get 429.
	MaxConcurrency int
	// Royalties name model owners who get a share of each payment.
	Royalties []Royalty
	// Prover, for a classifier, proves answers in zero knowledge when a
	// request asks (its keys must match the verifying key on chain).
	Prover *zk.System
}

// Royalty is a share of payments for a model's owner, in basis points.
type Royalty struct {
	Recipient addr.Address
	Bps       uint32
}

// Upstream names a model on an OpenAI-compatible engine. The operator
// states its id (the sha256 of the weights the engine serves), since the
// provider cannot read the engine's files.
type Upstream struct {
	URL    string // like http://127.0.0.1:8000
	Engine string // the engine's model name
	Name   string // the name clients use
	ID     string // sha256 of the weights, 64 hex digits
}

// Home is where the provider operated by key keeps its state under an
// agora home directory: `agora provider start` and the devnet both use it,
// so a provider's files are laid out the same way wherever it runs.
func Home(agoraHome, key string) string { return filepath.Join(agoraHome, "providers", key) }

// Config configures a provider.
type Config struct {
	// Listen is the TCP address to serve on, like 127.0.0.1:8081.
	Listen string
	// Advertise is the endpoint registered on chain; empty means
	// http://<the listening address>.
	Advertise string
	// Key signs receipts and the provider's transactions.
	Key ed25519.PrivateKey
	// Account is the account Key signs for, when a key rotation made it
	// differ from Key's own address (keyring.Key.Account); zero otherwise.
	Account addr.Address
	// ChainID names the chain receipts are for.
	ChainID string
	// Offers are the models served.
	Offers []Offer
	// Home holds the provider's state: receipt-seq (the receipt counter),
	// vouchers.log (payments, when priced) and blobs/ (batch jobs' data).
	// `agora provider start` and the devnet both use <home>/providers/<key>.
	// Empty keeps everything in memory (tests).
	Home string
	// Chain, if set, is used to register, heartbeat and read the height.
	Chain *client.Client
	// Region and Hardware describe the provider on chain.
	Region, Hardware string
	// TLSCert and TLSKey, PEM files, make the provider serve HTTPS and
	// register its certificate's public key on chain with its endpoint,
	// so that routers connect only to a server that holds it.
	TLSCert, TLSKey string
	// HeartbeatEvery is the interval between heartbeats.
	HeartbeatEvery time.Duration
	// Bond is the stake to bond at start if less is bonded.
	Bond uint64
	// Payments, if set (with Chain), makes priced offers charge over x402
	// payment channels; its Key, ChainID and Chain are filled in.
	Payments *paygate.Config
	// Jobs, if set (with Chain), makes the provider take batch jobs: it
	// serves Jobs.Store at /v1/blobs/ and runs a worker with its key,
	// chain client and URL filled in.
	Jobs *worker.Config
	// InterimEvery is how many tokens a stream sends between interim
	// receipts, which price the stream so far: a stream cut short is
	// charged up to its last one. 0 means 32.
	InterimEvery int
	// Logger receives the daemon's logs; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns a config with defaults filled in.
func DefaultConfig() Config {
	return Config{Listen: "127.0.0.1:8081", HeartbeatEvery: time.Second, Region: "local", Hardware: "cpu"}
}

// Validate checks the config.
func (c Config) Validate() error {
	if len(c.Key) != ed25519.PrivateKeySize {
		return errors.New("provider: no key")
	}
	if c.ChainID == "" {
		return errors.New("provider: no chain-id")
	}
	if len(c.Offers) == 0 {
		return errors.New("provider: no models to serve")
	}
	for _, o := range c.Offers {
		if (o.Model == nil) == (o.Upstream == nil) {
			return errors.New("provider: an offer needs exactly one of a model and an upstream")
		}
		if o.Denom != "" && !coin.ValidDenom(o.Denom) {
			return fmt.Errorf("provider: bad price denom %q", o.Denom)
		}
	}
	if c.Jobs != nil && ((c.Jobs.Store == nil && c.Home == "") || c.Jobs.Price == nil) {
		return errors.New("provider: batch jobs need a home (or a blob store) and a bid price")
	}
	if c.HeartbeatEvery <= 0 {
		return errors.New("provider: heartbeat interval must be positive")
	}
	return nil
}

// served is an offer ready to answer.
type served struct {
	Offer
	name, id string
	manifest model.Manifest
	gen      answer.Generator // nil for classifiers
	mlp      *model.MLP       // nil for generators
	slots    chan struct{}
}

// Hooks inject faults, for tests of audits and disputes only: a provider
// that lies.
type Hooks struct {
	// Corrupt picks the answers (whole or streamed) the provider alters,
	// by their canonical request; it signs receipts for the altered bytes.
	Corrupt func(canonical []byte) bool
	// AlterJobOutput replaces each batch job's output before commit.
	AlterJobOutput func(output []byte) []byte
	// BreakStream picks streams, by their canonical request, that break
	// after events pieces of text: the connection is cut (a crash), or,
	// with hang, the provider sends nothing more (a stopped process).
	BreakStream func(canonical []byte) (events int, hang bool)
}

// SetHooks installs test hooks, before Start or once it has returned; safe
// while the provider serves.
func (s *Server) SetHooks(h Hooks) {
	s.hooks.Store(&h)
	if s.worker != nil {
		s.worker.SetHooks(worker.Hooks{AlterOutput: h.AlterJobOutput})
	}
}

// Server is a running provider.
type Server struct {
	cfg     Config
	tlsPin  []byte // the sha256 of the TLS certificate's public key, when serving HTTPS
	hooks   atomic.Pointer[Hooks]
	log     *slog.Logger
	address addr.Address
	models  map[string]*served // by name and by id
	order   []*served
	seq     *seqAlloc
	gate    *paygate.Gate // nil: answers are free
	height  atomic.Int64
	metrics *metrics

	http   *httpserve.Server
	worker *worker.Worker // nil: no batch jobs
	wg     sync.WaitGroup // the chain goroutines
	stop   context.CancelFunc
}

// New prepares a provider; Start makes it serve.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	var seqFile string
	if cfg.Home != "" {
		if err := os.MkdirAll(cfg.Home, 0o700); err != nil {
			return nil, fmt.Errorf("provider: home: %w", err)
		}
		seqFile = filepath.Join(cfg.Home, "receipt-seq")
		if cfg.Payments != nil && cfg.Payments.LogPath == "" {
			pay := *cfg.Payments
			pay.LogPath = filepath.Join(cfg.Home, "vouchers.log")
			cfg.Payments = &pay
		}
		if cfg.Jobs != nil && cfg.Jobs.Store == nil {
			jobs := *cfg.Jobs
			store, err := blob.Open(filepath.Join(cfg.Home, "blobs"), 0)
			if err != nil {
				return nil, err
			}
			jobs.Store = store
			cfg.Jobs = &jobs
		}
	}
	seq, err := openSeq(seqFile)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, address: keyring.AccountOf(cfg.Key, cfg.Account), models: map[string]*served{}, seq: seq, metrics: newMetrics()}
	for _, o := range cfg.Offers {
		sv := &served{Offer: o}
		switch {
		case o.Upstream != nil:
			u := o.Upstream
			sv.name, sv.id = u.Name, u.ID
			sv.manifest = model.Manifest{Name: u.Name, ID: u.ID, Architecture: "upstream", Task: "text-generation"}
			sv.gen = answer.Upstream(u.URL, u.Engine)
		case o.Model.LM != nil:
			sv.manifest = o.Model.Manifest
			sv.gen = answer.Builtin(o.Model.LM)
		case o.Model.MLP != nil:
			sv.manifest = o.Model.Manifest
			sv.mlp = o.Model.MLP
		}
		sv.name, sv.id = sv.manifest.Name, sv.manifest.ID
		if sv.Denom == "" {
			sv.Denom = coin.Stable
		}
		if sv.MaxConcurrency <= 0 {
			sv.MaxConcurrency = 64
		}
		sv.slots = make(chan struct{}, sv.MaxConcurrency)
		if _, dup := s.models[sv.name]; dup {
			return nil, fmt.Errorf("provider: model %s offered twice", sv.name)
		}
		s.models[sv.name], s.models[sv.id] = sv, sv
		s.order = append(s.order, sv)
	}
	return s, nil
}

// Address is the provider's account address.
func (s *Server) Address() addr.Address { return s.address }

// URL is where the provider serves, once started.
func (s *Server) URL() string {
	if s.cfg.Advertise != "" {
		return s.cfg.Advertise
	}
	return s.http.URL()
}

// Registry exposes the provider's Prometheus metrics.
func (s *Server) Registry() *prometheus.Registry { return s.metrics.reg }

// Start listens, serves, and (with a chain client) registers on chain and
// heartbeats until Shutdown.
func (s *Server) Start(ctx context.Context) error {
	// The payment gate opens before the first request is served, so a
	// priced model is never answered for free.
	if s.cfg.Payments != nil && s.cfg.Chain != nil {
		pc := *s.cfg.Payments
		pc.Key, pc.Account, pc.ChainID, pc.Chain = s.cfg.Key, s.address, s.cfg.ChainID, s.cfg.Chain
		if pc.Logger == nil {
			pc.Logger = s.log
		}
		gate, err := paygate.Open(pc)
		if err != nil {
			return err
		}
		s.gate = gate
	}
	var err error
	opts := httpserve.DefaultOptions()
	if s.tlsPin, err = opts.WithTLS(s.cfg.TLSCert, s.cfg.TLSKey); err != nil {
		if s.gate != nil {
			s.gate.Close()
		}
		return fmt.Errorf("provider: %w", err)
	}
	if s.cfg.Jobs != nil { // blob uploads, up to the store's limit, streamed to disk
		opts.BodyLimits = map[string]int64{strings.TrimSuffix(blob.Path, "/"): s.cfg.Jobs.Store.Max()}
	}
	if s.http, err = httpserve.ListenWith(s.cfg.Listen, s.Handler(), s.log, opts); err != nil {
		if s.gate != nil {
			s.gate.Close()
		}
		return fmt.Errorf("provider: %w", err)
	}
	loopCtx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	if s.cfg.Chain != nil {
		if err := s.register(ctx); err != nil {
			s.Shutdown(context.Background())
			return err
		}
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.heartbeats(loopCtx) }()
		if s.cfg.Jobs != nil {
			wc := *s.cfg.Jobs
			wc.Key, wc.Account, wc.Chain, wc.BaseURL = s.cfg.Key, s.address, s.cfg.Chain, s.URL()
			if wc.Logger == nil {
				wc.Logger = s.log
			}
			if s.worker, err = worker.Start(wc); err == nil {
				if h := s.hooks.Load(); h != nil {
					s.worker.SetHooks(worker.Hooks{AlterOutput: h.AlterJobOutput})
				}
			}
			if err != nil {
				s.Shutdown(context.Background())
				return err
			}
		}
	}
	s.log.Info("provider serving", "url", s.URL(), "address", s.address, "models", len(s.order), "paid", s.gate != nil)
	return nil
}

// Shutdown stops taking requests, lets those in flight finish (until ctx
// ends) and stops the chain loops.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.stop != nil {
		s.stop()
	}
	var err error
	if s.http != nil {
		err = s.http.Shutdown(ctx)
	}
	if s.worker != nil {
		err = errors.Join(err, s.worker.Close())
	}
	s.wg.Wait()
	if s.gate != nil {
		err = errors.Join(err, s.gate.Close())
	}
	return errors.Join(err, s.seq.close())
}
