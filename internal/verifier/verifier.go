// Package verifier is the verifier daemon: it audits a sample of the
// answers it is shown by re-executing them on the built-in models, turns
// a mismatch into an on-chain challenge (once the lying receipt is
// anchored), and serves on the committees the chain draws for disputes,
// disputed batch jobs and proposed verifying keys (keys.go).
//
// Sampling: a provider that cheats on a fraction f of its answers is
// caught with probability 1-(1-p·f)^n after n answers seen, and a proven
// lie costs it SlashBps of its stake. Cheating pays only while
// p·(reward + slash) < gain per answer (the Proof-of-Sampling condition);
// p is set so that the expected penalty dwarfs any answer's price.
package verifier

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agoranet/agora/internal/answer"
	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/audit/auditpb"
	"github.com/agoranet/agora/internal/chain/channel/channelpb"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/job/jobpb"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/provider/providerpb"
	"github.com/agoranet/agora/internal/chain/staking/stakingpb"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/httpserve"
	"github.com/agoranet/agora/internal/jobrun"
	"github.com/agoranet/agora/internal/keyring"
	"github.com/agoranet/agora/internal/model"
	"github.com/agoranet/agora/internal/openai"
	"github.com/agoranet/agora/internal/receipt"
	"github.com/agoranet/agora/internal/sample"
	"github.com/agoranet/agora/internal/sandbox"
)

// Config configures a verifier.
type Config struct {
	// Listen is where answers to audit are posted (POST /v1/audit).
	Listen string
	// TLSCert and TLSKey, PEM files, make it serve HTTPS; both empty:
	// plain HTTP.
	TLSCert, TLSKey string
	Key             ed25519.PrivateKey
	// Account is the account Key signs for, when a key rotation made it
	// differ from Key's own address (keyring.Key.Account); zero otherwise.
	Account addr.Address
	Chain   *client.Client
	// SampleRate is p: the fraction of posted answers re-executed.
	SampleRate float64
	// Bond is the stake bonded at start if less is bonded.
	Bond uint64
	// Poll is how often the chain is read for disputes and job votes.
	Poll time.Duration
	// Sandbox re-runs disputed batch jobs; nil makes one.
	Sandbox *sandbox.Sandbox
	// Fetch fetches a disputed job's module and input for its re-run: a
	// payer's client for those on storage nodes that charge for reads;
	// nil fetches unpaid.
	Fetch *http.Client
	// CheckTranscript checks the setup transcript of a key review this
	// verifier is drawn for; nil means CheckTranscript, the full check.
	CheckTranscript CheckTranscriptFunc
	// KeyCheckTimeout bounds fetching and checking one transcript (0:
	// 10 minutes).
	KeyCheckTimeout time.Duration
	// LocalTranscripts lets a key review's transcript URL be a local
	// path or file: URL, or an http(s) URL on a loopback, private or
	// link-local address (a devnet, a test serving transcripts on
	// 127.0.0.1, or a committee that fetched the transcripts itself).
	// Otherwise only http and https URLs of public hosts are fetched, so
	// that a proposer can make the verifier read neither its files nor
	// its network.
	LocalTranscripts bool
	Logger           *slog.Logger
}

// DefaultConfig returns a verifier's defaults: it re-executes 5% of the
// answers posted to it, bonds 100 AGR and reads the chain every 200 ms.
func DefaultConfig() Config {
	return Config{Listen: "127.0.0.1:8403", SampleRate: 0.05, Bond: 100_000_000, Poll: 200 * time.Millisecond}
}

// Validate checks the config.
func (c Config) Validate() error {
	switch {
	case len(c.Key) != ed25519.PrivateKeySize || c.Chain == nil:
		return errors.New("verifier: need a key and a chain client")
	case c.SampleRate < 0 || c.SampleRate > 1:
		return fmt.Errorf("verifier: sample rate %v is not a fraction between 0 and 1", c.SampleRate)
	case c.Poll < 0 || c.KeyCheckTimeout < 0:
		return errors.New("verifier: negative poll interval or key check timeout")
	}
	return nil
}

// Sample is an answer shown to the verifier by the buyer who paid for it.
type Sample = sample.Sample

// Server is a running verifier.
type Server struct {
	cfg     Config
	log     *slog.Logger
	key     *keyring.Key
	ref     *answer.Reference // re-executes with the built-in models
	srv     *httpserve.Server
	samples chan Sample

	sb    *sandbox.Sandbox // re-runs disputed batch jobs
	ownSB bool             // sb is ours to close
	hc    *http.Client

	intake      *intake       // who may post samples, and how many
	challenging chan struct{} // a slot per challenge under way
	// keyCPU is taken by one transcript check at a time (it takes both
	// cores for seconds), earliest commit deadline first; it and blocks
	// have locks of their own.
	keyCPU deadlineSlot
	blocks blockClock   // the chain's pace, for key reviews' budgets
	tc     *http.Client // fetches key reviews' transcripts

	mu        sync.Mutex               // guards the fields below
	jobs      map[uint64]*jobpb.Result // disputed order -> our re-run's result
	rerunning map[uint64]bool          // disputed orders being re-run
	next      uint64                   // next dispute id to look at
	// Key reviews: the verdict of each check done, the checks running,
	// and the next review id to look at. keyFetches has a slot per
	// review being fetched and checked (keys.go).
	keyVerdicts map[uint64][]byte
	keyChecking map[uint64]bool
	keyFetches  chan struct{}
	nextReview  uint64
	stats       Stats
	stop        context.CancelFunc
	wg          sync.WaitGroup
}

// Start registers the verifier on chain and starts auditing.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Poll == 0 {
		cfg.Poll = DefaultConfig().Poll
	}
	if cfg.CheckTranscript == nil {
		cfg.CheckTranscript = CheckTranscript
	}
	if cfg.KeyCheckTimeout == 0 {
		cfg.KeyCheckTimeout = 10 * time.Minute // two parties' transcript takes about 20 s on 2 cores
	}
	s := &Server{cfg: cfg, log: cfg.Logger, key: &keyring.Key{Name: "verifier", Private: cfg.Key, Account: keyring.AccountOf(cfg.Key, cfg.Account)}, ref: answer.NewReference(model.Builtin()), samples: make(chan Sample, 1024), next: 1,
		sb: cfg.Sandbox, hc: jobrun.Client(cfg.Fetch), jobs: map[uint64]*jobpb.Result{}, rerunning: map[uint64]bool{}, intake: newIntake(cfg.Chain), challenging: make(chan struct{}, 16),
	}
	s.initKeys()
	if s.sb == nil {
		s.sb, s.ownSB = sandbox.New(), true
	}
	me := s.key.Address().String()
	stake, err := client.Ask(ctx, cfg.Chain, stakingpb.QueryStake, &stakingpb.QueryStakeRequest{Address: me})
	if err != nil {
		return nil, err
	}
	var msgs []module.Msg
	if stake.Stake.Bonded < cfg.Bond {
		msgs = append(msgs, &stakingpb.MsgBond{Staker: me, Amount: coin.New(coin.Native, cfg.Bond-stake.Stake.Bonded)})
	}
	msgs = append(msgs, &auditpb.MsgRegisterVerifier{Verifier: me})
	if _, err := cfg.Chain.Submit(ctx, s.key, "verifier", msgs...); err != nil {
		return nil, fmt.Errorf("verifier: register: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/audit", s.handleSample)
	opts := httpserve.DefaultOptions()
	_, err = opts.WithTLS(cfg.TLSCert, cfg.TLSKey)
	if err == nil {
		s.srv, err = httpserve.ListenWith(cfg.Listen, mux, s.log, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("verifier: %w", err)
	}
	loop, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.audit(loop) }()
	go func() { defer s.wg.Done(); s.committees(loop) }()
	return s, nil
}

// URL is where samples are posted.
func (s *Server) URL() string { return s.srv.URL() }

// Address is the verifier's account.
func (s *Server) Address() string { return s.key.Address().String() }

// Shutdown stops the verifier.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stop()
	err := s.srv.Shutdown(ctx)
	s.wg.Wait()
	if s.ownSB {
		err = errors.Join(err, s.sb.Close(ctx))
	}
	return err
}

func (s *Server) handleSample(w http.ResponseWriter, r *http.Request) {
	var smp Sample
	if err := json.NewDecoder(io.LimitReader(r.Body, 4<<20)).Decode(&smp); err != nil {
		http.Error(w, "a sample is {endpoint, request, response, receipt, payer, publicKey, signature}, signed by the payer (see internal/sample)", http.StatusBadRequest)
		return
	}
	if status, err := s.intake.admit(r.Context(), &smp); err != nil {
		if status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "1")
		}
		http.Error(w, err.Error(), status)
		return
	}
	select {
	case s.samples <- smp:
		w.WriteHeader(http.StatusAccepted)
	default:
		s.intake.forget(&smp)
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable) // full: the sample is dropped
	}
}

// reexecute answers a request body again with the built-in models and
// returns the hash an honest receipt for the answer would carry: claimed,
// if it covers the answer or (an interim receipt of a stream cut short) a
// prefix of the answer's events; else the whole answer's.
func (s *Server) reexecute(ctx context.Context, endpoint string, body, claimed []byte) ([]byte, error) {
	truth, err := s.ref.Honest(ctx, endpoint, body, claimed)
	if err != nil {
		return nil, fmt.Errorf("verifier: re-execute: %w", err)
	}
	return truth, nil
}

// audit re-executes a sample of the answers posted and challenges lies.
func (s *Server) audit(ctx context.Context) {
	for {
		var smp Sample
		select {
		case <-ctx.Done():
			return
		case smp = <-s.samples:
		}
		s.count(func(st *Stats) { st.Received++ })
		if mrand.Float64() >= s.cfg.SampleRate {
			continue
		}
		r, err := receipt.DecodeUnbound(smp.Receipt) // intake checked whose key signed it
		if err != nil {
			continue
		}
		canonical, err := openai.CanonicalRequest(smp.Endpoint, []byte(smp.Request))
		if err != nil {
			continue
		}
		covered, _ := openai.SplitStream([]byte(smp.Response))
		if receipt.Check(r, canonical, covered) != nil {
			continue // the sample does not match its receipt: not evidence
		}
		truth, err := s.reexecute(ctx, smp.Endpoint, []byte(smp.Request), r.ResponseHash)
		if err != nil {
			s.log.Warn("verifier: cannot re-execute", "err", err)
			continue
		}
		s.count(func(st *Stats) { st.Audited++ })
		if bytes.Equal(truth, r.ResponseHash) {
			continue
		}
		s.log.Warn("verifier: a provider lied", "provider", r.Provider, "model", r.ModelId)
		s.count(func(st *Stats) { st.Lies++ })
		select {
		case s.challenging <- struct{}{}:
			go func() {
				defer func() { <-s.challenging }()
				s.challenge(ctx, smp.Receipt, r, canonical)
			}()
		default:
			s.intake.forget(&smp) // its buyer's next sample of it is taken
			s.log.Warn("verifier: too many challenges under way; this lie waits for another sample", "provider", r.Provider)
		}
	}
}

// challenge challenges a lying receipt on chain: by itself while it is
// within the chain's window, or else once it is anchored by a claim, with
// its inclusion path.
func (s *Server) challenge(ctx context.Context, enc string, r *receipt.Receipt, canonical []byte) {
	msg := &auditpb.MsgChallenge{Challenger: s.Address(), Receipt: []byte(enc), Request: canonical}
	_, err := s.cfg.Chain.Submit(ctx, s.key, "challenge", msg)
	if err == nil {
		s.log.Info("verifier: challenged a lying receipt", "provider", r.Provider)
		s.count(func(st *Stats) { st.Challenges++ })
		return
	}
	if strings.Contains(err.Error(), "challenged already") {
		return // another verifier was first
	}
	s.log.Warn("verifier: a challenge of the receipt alone failed; trying its anchor", "provider", r.Provider, "err", err)
	id, ok := channelOf(r.PaymentRef)
	if !ok {
		s.log.Warn("verifier: the lying answer was not paid over a channel; nothing anchors it", "provider", r.Provider)
		return
	}
	leaf := receipt.Hash([]byte(enc))
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		info, err := client.Ask(ctx, s.cfg.Chain, providerpb.QueryProvider, &providerpb.QueryProviderRequest{Address: r.Provider})
		if err == nil {
			an, err := client.Ask(ctx, s.cfg.Chain, channelpb.QueryAnchors, &channelpb.QueryAnchorsRequest{ChannelId: id})
			if err == nil {
				for n := len(an.Anchors) - 1; n >= 0; n-- {
					leaves := fetchLeaves(ctx, info.Provider.Endpoint, id, n)
					for i, l := range leaves {
						if bytes.Equal(l, leaf) {
							msg := &auditpb.MsgChallenge{Challenger: s.Address(), Receipt: []byte(enc), ChannelId: id, Anchor: uint32(n), LeafIndex: uint32(i), Path: receipt.Path(leaves, i), Request: canonical}
							if _, err := s.cfg.Chain.Submit(ctx, s.key, "challenge", msg); err != nil {
								s.log.Warn("verifier: challenge refused", "err", err)
							} else {
								s.log.Info("verifier: challenged", "provider", r.Provider)
								s.count(func(st *Stats) { st.Challenges++ })
							}
							return
						}
					}
				}
			}
		}
		time.Sleep(time.Second)
	}
}

func channelOf(ref string) (uint64, bool) {
	parts := strings.Split(ref, ":")
	if len(parts) != 3 || parts[0] != "channel" {
		return 0, false
	}
	id, err := strconv.ParseUint(parts[1], 10, 64)
	return id, err == nil
}

func fetchLeaves(ctx context.Context, endpoint string, id uint64, n int) [][]byte {
	// The accused serves these: it must not hold the verifier up.
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/v1/anchors/%d/%d", endpoint, id, n), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var body struct{ Leaves []string }
	if json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&body) != nil {
		return nil
	}
	var out [][]byte
	for _, h := range body.Leaves {
		b, err := hex.DecodeString(h)
		if err != nil {
			return nil
		}
		out = append(out, b)
	}
	return out
}

// committees watches every dispute, disputed job and key review, and
// votes on those whose committee includes this verifier: commit to the
// re-executed answer's hash (the re-run job's result, the verdict on the
// key), then reveal once the commit window has closed.
func (s *Server) committees(ctx context.Context) {
	t := time.NewTicker(s.cfg.Poll)
	defer t.Stop()
	me := s.Address()
	open := map[uint64]bool{}
	truths := map[uint64][]byte{} // dispute -> the re-executed answer's hash
	reviews := map[uint64]bool{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for { // discover new disputes
			_, err := client.Ask(ctx, s.cfg.Chain, auditpb.QueryDispute, &auditpb.QueryDisputeRequest{Id: s.next})
			if err != nil {
				break
			}
			open[s.next] = true
			s.next++
		}
		st, err := s.cfg.Chain.Status(ctx)
		if err != nil {
			continue
		}
		height := st.Height
		s.blocks.observe(height, st.BlockTime)
		s.jobVotes(ctx, height)
		s.keyReviews(ctx, reviews, height)
		var due []module.Msg
		for id := range open {
			r, err := client.Ask(ctx, s.cfg.Chain, auditpb.QueryDispute, &auditpb.QueryDisputeRequest{Id: id})
			if err != nil {
				continue
			}
			d := r.Dispute
			var mine *auditpb.Vote
			for _, v := range d.Votes {
				if v.Verifier == me {
					mine = v
				}
			}
			if d.Status == auditpb.DisputeStatus_DISPUTE_STATUS_OPEN && d.DrawAt != 0 {
				continue // its committee waits for the beacon
			}
			if mine == nil || d.Status != auditpb.DisputeStatus_DISPUTE_STATUS_OPEN || height > d.RevealUntil {
				delete(open, id)
				delete(truths, id)
				continue
			}
			if m := s.vote(ctx, truths, d, mine, height); m != nil {
				due = append(due, m)
			}
		}
		s.submitVotes(ctx, due)
	}
}

// vote returns the commit or reveal this verifier owes dispute d at
// height, or nil. The re-executed answer is kept in truths, so a dispute
// costs one re-execution however many ticks its windows last.
func (s *Server) vote(ctx context.Context, truths map[uint64][]byte, d *auditpb.Dispute, mine *auditpb.Vote, height int64) module.Msg {
	commit := len(mine.Commitment) == 0 && height < d.CommitUntil
	reveal := len(mine.Commitment) != 0 && len(mine.ResponseHash) == 0 && height >= d.CommitUntil
	if !commit && !reveal {
		return nil
	}
	truth := truths[d.Id]
	if truth == nil {
		endpoint, body, err := requestBody(d.Request)
		if err != nil {
			return nil
		}
		if truth, err = s.reexecute(ctx, endpoint, body, d.ClaimedResponseHash); err != nil {
			s.log.Warn("verifier: could not re-execute a disputed answer", "dispute", d.Id, "err", err)
			return nil
		}
		truths[d.Id] = truth
	}
	me := s.Address()
	salt, err := s.salt(ctx, "agora/audit/salt/v2", d.Id)
	if err != nil {
		return nil
	}
	if commit {
		return &auditpb.MsgCommit{Verifier: me, DisputeId: d.Id, Commitment: auditpb.Commitment(truth, salt, me)}
	}
	return &auditpb.MsgReveal{Verifier: me, DisputeId: d.Id, ResponseHash: truth, Salt: salt}
}

// submitVotes sends the votes due in one tick in as few txs as a tx's
// message limit allows: one block's wait however many disputes are open,
// so none misses its window behind the others. If a batch fails (one vote
// late, say) its votes are sent one by one, so the rest still count.
func (s *Server) submitVotes(ctx context.Context, msgs []module.Msg) {
	if len(msgs) == 0 {
		return
	}
	// A vote is worth nothing after its window, and a tx that never
	// commits must not stop this verifier voting on everything after it.
	timeout := voteTimeout
	if interval, ok := s.blocks.interval(); ok {
		timeout = max(timeout, voteBlocks*interval)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for batch := range slices.Chunk(msgs, votesPerTx) {
		if _, err := s.cfg.Chain.Submit(ctx, s.key, "", batch...); err == nil || len(batch) == 1 {
			if err != nil {
				s.log.Warn("verifier: a dispute vote failed", "err", err)
			}
			continue
		}
		for _, m := range batch {
			if _, err := s.cfg.Chain.Submit(ctx, s.key, "", m); err != nil {
				s.log.Warn("verifier: a dispute vote failed", "err", err)
			}
		}
	}
}

// One tick's vote txs may take voteTimeout or voteBlocks blocks,
// whichever is longer: several commit and reveal windows (ten blocks each
// by default).
const (
	voteTimeout = 20 * time.Second
	voteBlocks  = 30
)

// votesPerTx is well under the chain's messages per tx (auth's MaxMsgs,
// 64 by default), so a batch never fails for its size alone.
const votesPerTx = 32

// salt is this verifier's commitment salt for item id of a kind (domain).
func (s *Server) salt(ctx context.Context, domain string, id uint64) ([]byte, error) {
	chainID, err := s.cfg.Chain.ChainID(ctx)
	if err != nil {
		return nil, err
	}
	return jobrun.CommitSalt(s.cfg.Key, chainID, domain, id), nil
}

// jobVotes serves on the committees of disputed batch jobs: it re-runs
// the job in the sandbox, commits to the result, and reveals it once the
// commit window has closed.
func (s *Server) jobVotes(ctx context.Context, height int64) {
	r, err := client.Ask(ctx, s.cfg.Chain, jobpb.QueryOrders, &jobpb.QueryOrdersRequest{OpenOnly: true})
	if err != nil {
		return
	}
	me := s.Address()
	disputed := map[uint64]bool{}
	for _, o := range r.Orders {
		if o.Status != jobpb.OrderStatus_ORDER_STATUS_DISPUTED {
			continue
		}
		var mine *jobpb.Vote
		for _, v := range o.Votes {
			if v.Verifier == me {
				mine = v
			}
		}
		if mine == nil || mine.Result != nil {
			continue
		}
		disputed[o.Id] = true
		s.mu.Lock()
		res, running := s.jobs[o.Id], s.rerunning[o.Id]
		if res == nil && !running {
			// Re-run in the background: a long job must not hold up
			// this verifier's other committees.
			s.rerunning[o.Id] = true
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				res, _, err := jobrun.Execute(ctx, s.sb, s.hc, nil, jobrun.Mirrors(ctx, s.cfg.Chain), o)
				s.mu.Lock()
				defer s.mu.Unlock()
				delete(s.rerunning, o.Id)
				if err != nil {
					s.log.Warn("verifier: could not re-run a disputed job", "order", o.Id, "err", err)
					return
				}
				s.jobs[o.Id] = res
			}()
		}
		s.mu.Unlock()
		if res == nil {
			continue
		}
		salt, err := s.salt(ctx, "agora/job/salt/v2", o.Id)
		if err != nil {
			continue
		}
		switch {
		case len(mine.Commitment) == 0 && height < o.VoteCommitUntil:
			s.cfg.Chain.Submit(ctx, s.key, "", &jobpb.MsgCommitVote{Verifier: me, OrderId: o.Id, Commitment: jobpb.ResultCommitment(o.Id, me, res, salt)})
		case len(mine.Commitment) != 0 && height >= o.VoteCommitUntil:
			s.cfg.Chain.Submit(ctx, s.key, "", &jobpb.MsgRevealVote{Verifier: me, OrderId: o.Id, Result: res, Salt: salt})
		}
	}
	s.mu.Lock()
	for id := range s.jobs { // forget disputes that are over or voted on
		if !disputed[id] {
			delete(s.jobs, id)
		}
	}
	s.mu.Unlock()
}

// requestBody turns a canonical request back into a request body.
func requestBody(canonical []byte) (string, []byte, error) {
	var probe struct {
		Endpoint string `json:"endpoint"`
	}
	if err := json.Unmarshal(canonical, &probe); err != nil {
		return "", nil, err
	}
	if probe.Endpoint == "infer" {
		return "infer", canonical, nil
	}
	var g openai.Generation
	if err := json.Unmarshal(canonical, &g); err != nil {
		return "", nil, err
	}
	body := map[string]any{"model": g.Model, "max_tokens": g.MaxTokens, "temperature": float64(g.TemperatureMilli) / 1000, "seed": g.Seed, "stream": g.Stream}
	if len(g.Stop) > 0 {
		body["stop"] = g.Stop
	}
	if g.Prompt != nil {
		body["prompt"] = *g.Prompt
	} else {
		body["messages"] = g.Messages
	}
	b, err := json.Marshal(body)
	return g.Endpoint, b, err
}

// Stats counts what the verifier has done.
type Stats struct {
	Received, Audited, Lies, Challenges int
}

func (s *Server) count(f func(*Stats)) {
	s.mu.Lock()
	f(&s.stats)
	s.mu.Unlock()
}

// Stats returns the verifier's counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}
