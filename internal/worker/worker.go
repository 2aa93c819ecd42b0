// Package worker is a provider's side of the batch compute market: it
// bids on open orders it can run, runs the jobs it is leased in the
// sandbox, stores their outputs, and commits then reveals the results on
// chain; it runs each job with jobrun, as verifiers re-running a
// disputed job do.
package worker

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agoranet/agora/internal/blob"
	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/job/jobpb"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/jobrun"
	"github.com/agoranet/agora/internal/keyring"
	"github.com/agoranet/agora/internal/sandbox"
)

// Config configures a worker.
type Config struct {
	Key ed25519.PrivateKey
	// Account is the account Key signs for, when a key rotation made it
	// differ from Key's own address (keyring.Key.Account); zero otherwise.
	Account addr.Address
	Chain   *client.Client
	// Store keeps outputs (and whatever tenants upload); BaseURL is where
	// it is served, so outputs are at BaseURL + blob.Path + hex.
	Store   *blob.Store
	BaseURL string
	// Price is the bid per job; orders whose maximum is lower, or in
	// another denom, are skipped.
	Price *coin.Coin
	// MaxFuel and MaxMemoryMiB bound the jobs bid on.
	MaxFuel      uint64
	MaxMemoryMiB uint32
	// Parallel is how many jobs run at once.
	Parallel int
	Poll     time.Duration
	// Sandbox runs the jobs; nil makes one.
	Sandbox *sandbox.Sandbox
	// Fetch fetches jobs' modules and inputs: a payer's client
	// (transfer.Paying) for those on storage nodes that charge for
	// reads; nil fetches unpaid.
	Fetch  *http.Client
	Logger *slog.Logger
}

// Hooks inject faults, for tests of disputes only: a worker that lies.
type Hooks struct {
	// AlterOutput replaces each job's output before it is committed.
	AlterOutput func(output []byte) []byte
}

// SetHooks installs test hooks; safe while jobs run.
func (w *Worker) SetHooks(h Hooks) { w.hooks.Store(&h) }

// DefaultConfig returns a worker that bids 1000uusdc per job.
func DefaultConfig() Config {
	return Config{Price: coin.New(coin.Stable, 1000), MaxFuel: 1 << 38, MaxMemoryMiB: 512, Parallel: 1, Poll: 250 * time.Millisecond}
}

// Worker is a running worker.
type Worker struct {
	cfg   Config
	hooks atomic.Pointer[Hooks]
	key   *keyring.Key
	me    string
	hc    *http.Client
	sb    *sandbox.Sandbox
	own   bool // sb is ours to close
	slot  chan struct{}
	stop  context.CancelFunc
	wg    sync.WaitGroup

	mu      sync.Mutex          // guards the fields below
	running map[uint64]bool     // jobs being run
	done    map[uint64]*outcome // results not yet revealed
	tried   map[uint64]bool     // orders bid on (or judged not worth it)
}

type outcome struct {
	res       *jobpb.Result
	committed bool
}

// Start runs a worker until Close.
func Start(cfg Config) (*Worker, error) {
	if len(cfg.Key) != ed25519.PrivateKeySize || cfg.Chain == nil || cfg.Store == nil || cfg.BaseURL == "" || cfg.Price == nil {
		return nil, errors.New("worker: a key, a chain client, a store, its URL and a price are required")
	}
	d := DefaultConfig()
	if cfg.Parallel <= 0 {
		cfg.Parallel = d.Parallel
	}
	if cfg.Poll <= 0 {
		cfg.Poll = d.Poll
	}
	if cfg.MaxFuel == 0 {
		cfg.MaxFuel = d.MaxFuel
	}
	if cfg.MaxMemoryMiB == 0 {
		cfg.MaxMemoryMiB = d.MaxMemoryMiB
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	w := &Worker{cfg: cfg, key: &keyring.Key{Name: "worker", Private: cfg.Key, Account: keyring.AccountOf(cfg.Key, cfg.Account)}, hc: jobrun.Client(cfg.Fetch), sb: cfg.Sandbox,
		slot: make(chan struct{}, cfg.Parallel), running: map[uint64]bool{}, done: map[uint64]*outcome{}, tried: map[uint64]bool{}}
	w.me = w.key.Address().String()
	if w.sb == nil {
		w.sb, w.own = sandbox.New(), true
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.stop = cancel
	w.wg.Add(1)
	go func() { defer w.wg.Done(); w.loop(ctx) }()
	return w, nil
}

// Close stops the worker and waits for its jobs to stop.
func (w *Worker) Close() error {
	w.stop()
	w.wg.Wait()
	if w.own {
		return w.sb.Close(context.Background())
	}
	return nil
}

func (w *Worker) loop(ctx context.Context) {
	t := time.NewTicker(w.cfg.Poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r, err := client.Ask(ctx, w.cfg.Chain, jobpb.QueryOrders, &jobpb.QueryOrdersRequest{OpenOnly: true})
		if err != nil {
			continue
		}
		open := map[uint64]bool{}
		for _, o := range r.Orders {
			open[o.Id] = true
			w.tend(ctx, o)
		}
		w.mu.Lock()
		for id := range w.tried { // forget orders that have ended
			if !open[id] {
				delete(w.tried, id)
			}
		}
		for id := range w.done {
			if !open[id] {
				delete(w.done, id)
			}
		}
		w.mu.Unlock()
	}
}

// tend does the next thing an open order needs from this worker.
func (w *Worker) tend(ctx context.Context, o *jobpb.Order) {
	var mine *jobpb.Lease
	for _, l := range o.Leases {
		if l.Provider == w.me && (l.Status == jobpb.LeaseStatus_LEASE_STATUS_ACTIVE || l.Status == jobpb.LeaseStatus_LEASE_STATUS_COMMITTED) {
			mine = l
		}
	}
	w.mu.Lock()
	out, running, tried := w.done[o.Id], w.running[o.Id], w.tried[o.Id]
	w.mu.Unlock()
	switch {
	case mine == nil && o.Status == jobpb.OrderStatus_ORDER_STATUS_BIDDING && !tried:
		w.bid(ctx, o)
	case mine == nil:
	case out == nil && !running:
		w.mu.Lock()
		w.running[o.Id] = true
		w.mu.Unlock()
		w.wg.Add(1)
		go func() { defer w.wg.Done(); w.run(ctx, o) }()
	case out == nil:
	case mine.Status == jobpb.LeaseStatus_LEASE_STATUS_ACTIVE && !out.committed:
		salt, err := w.salt(ctx, o.Id)
		if err != nil {
			w.cfg.Logger.Warn("worker: commit failed", "order", o.Id, "err", err)
			return
		}
		c := jobpb.ResultCommitment(o.Id, w.me, out.res, salt)
		if _, err := w.cfg.Chain.Submit(ctx, w.key, "", &jobpb.MsgCommitResult{Provider: w.me, OrderId: o.Id, Commitment: c}); err != nil {
			w.cfg.Logger.Warn("worker: commit failed", "order", o.Id, "err", err)
			return
		}
		out.committed = true
		w.cfg.Logger.Info("worker: committed a result", "order", o.Id, "code", out.res.Code)
	case mine.Status == jobpb.LeaseStatus_LEASE_STATUS_COMMITTED && o.Status == jobpb.OrderStatus_ORDER_STATUS_REVEALING:
		url := ""
		if out.res.OutputSize > 0 || out.res.Code == jobpb.ResultCode_RESULT_CODE_OK {
			url = strings.TrimSuffix(w.cfg.BaseURL, "/") + blob.Path + fmt.Sprintf("%x", out.res.OutputHash)
		}
		salt, err := w.salt(ctx, o.Id)
		if err != nil {
			w.cfg.Logger.Warn("worker: reveal failed", "order", o.Id, "err", err)
			return
		}
		if _, err := w.cfg.Chain.Submit(ctx, w.key, "", &jobpb.MsgRevealResult{Provider: w.me, OrderId: o.Id, Result: out.res, Salt: salt, OutputUrl: url}); err != nil {
			w.cfg.Logger.Warn("worker: reveal failed", "order", o.Id, "err", err)
			return
		}
		w.mu.Lock()
		delete(w.done, o.Id)
		w.mu.Unlock()
		w.cfg.Logger.Info("worker: revealed a result", "order", o.Id)
	}
}

// bid bids on an order this worker can take, once; a bid the chain
// refuses (this provider not yet online, say) is tried again next poll.
func (w *Worker) bid(ctx context.Context, o *jobpb.Order) {
	done := func() {
		w.mu.Lock()
		w.tried[o.Id] = true
		w.mu.Unlock()
	}
	p := w.cfg.Price
	if o.MaxPrice.Denom != p.Denom || o.MaxPrice.Amount < p.Amount || o.Fuel > w.cfg.MaxFuel || o.MemoryMib > w.cfg.MaxMemoryMiB || o.Tenant == w.me {
		done()
		return
	}
	for _, b := range o.Bids { // already bid (before a restart), or a lease once missed
		if b.Provider == w.me {
			done()
			return
		}
	}
	if _, err := w.cfg.Chain.Submit(ctx, w.key, "", &jobpb.MsgBid{Provider: w.me, OrderId: o.Id, Price: coin.New(p.Denom, p.Amount)}); err != nil {
		w.cfg.Logger.Warn("worker: bid failed", "order", o.Id, "err", err)
		return
	}
	done()
	w.cfg.Logger.Info("worker: bid", "order", o.Id, "price", p.String())
}

// run executes a leased job and keeps its result for commit and reveal.
func (w *Worker) run(ctx context.Context, o *jobpb.Order) {
	defer func() {
		w.mu.Lock()
		delete(w.running, o.Id)
		w.mu.Unlock()
	}()
	select {
	case w.slot <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-w.slot }()
	start := time.Now()
	res, output, err := jobrun.Execute(ctx, w.sb, w.hc, w.cfg.Store, jobrun.Mirrors(ctx, w.cfg.Chain), o)
	if err != nil {
		w.cfg.Logger.Warn("worker: could not finish a job", "order", o.Id, "err", err)
		return
	}
	if h := w.hooks.Load(); h != nil && h.AlterOutput != nil && len(output) > 0 {
		output = h.AlterOutput(output)
		h := sha256.Sum256(output)
		res.OutputHash, res.OutputSize = h[:], uint64(len(output))
	}
	if len(output) > 0 || res.Code == jobpb.ResultCode_RESULT_CODE_OK {
		if _, err := w.cfg.Store.Put(output); err != nil {
			w.cfg.Logger.Warn("worker: could not store an output", "order", o.Id, "err", err)
			return
		}
	}
	w.cfg.Logger.Info("worker: ran a job", "order", o.Id, "code", res.Code, "bytes", len(output), "took", time.Since(start))
	w.mu.Lock()
	w.done[o.Id] = &outcome{res: res}
	w.mu.Unlock()
}

// salt is the worker's commitment salt for an order (jobrun.Salt).
func (w *Worker) salt(ctx context.Context, orderID uint64) ([]byte, error) {
	chainID, err := w.cfg.Chain.ChainID(ctx)
	if err != nil {
		return nil, err
	}
	return jobrun.Salt(w.cfg.Key, chainID, orderID), nil
}
