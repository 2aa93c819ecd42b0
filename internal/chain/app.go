// Package chain is the Agora state machine as a CometBFT ABCI application:
// it decodes and routes transactions to the modules, runs block hooks,
// commits state to an IAVL tree and answers queries with Merkle proofs.
//
// The modules (auth, bank, ...) are deterministic packages below this one;
// this package is the only part that touches the disk.
package chain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"

	abci "github.com/cometbft/cometbft/abci/types"
	dbm "github.com/cosmos/cosmos-db"
	"github.com/cosmos/iavl"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/agent"
	"github.com/agoranet/agora/internal/chain/audit"
	"github.com/agoranet/agora/internal/chain/auth"
	"github.com/agoranet/agora/internal/chain/auth/authpb"
	"github.com/agoranet/agora/internal/chain/bank"
	"github.com/agoranet/agora/internal/chain/beacon"
	"github.com/agoranet/agora/internal/chain/channel"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/gas"
	"github.com/agoranet/agora/internal/chain/gov"
	"github.com/agoranet/agora/internal/chain/job"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/provider"
	"github.com/agoranet/agora/internal/chain/staking"
	"github.com/agoranet/agora/internal/chain/storage"
	"github.com/agoranet/agora/internal/chain/store"
	"github.com/agoranet/agora/internal/chain/tx"
	_ "github.com/agoranet/agora/internal/chain/upgrades" // the migrations this binary knows
)

// AppVersion is the version of the state machine's rules.
const AppVersion = 1

// Config configures the App.
type Config struct {
	// Dir holds the state database. Empty keeps state in memory (tests).
	Dir string
	// KeepVersions is how many recent state versions stay queryable;
	// older ones are pruned. 0 keeps all.
	KeepVersions int64
	// CacheNodes is the IAVL node cache size.
	CacheNodes int
	// Logger receives the app's logs; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns the config a node uses.
func DefaultConfig() Config {
	return Config{KeepVersions: 1000, CacheNodes: 200_000}
}

// Validate checks the config.
func (c Config) Validate() error {
	if c.KeepVersions < 0 || c.CacheNodes < 0 {
		return fmt.Errorf("chain: negative KeepVersions or CacheNodes")
	}
	return nil
}

// Modules returns the chain's modules in the order the app runs their
// genesis and block hooks.
func Modules() []module.Module {
	return []module.Module{auth.Module{}, bank.Module{}, staking.Module{}, beacon.Module{}, provider.Module{}, channel.Module{}, agent.Module{}, audit.Module{}, job.Module{}, storage.Module{}, gov.Module{}}
}

// wire installs the hooks by which one module acts inside another's
// operations without importing it: the agent module's spending policies in
// the bank's one place where funds move, the provider module's reaction to
// a slash, and the module accounts users may not send to. They are the
// same on every node.
func wire(modules []module.Module) {
	bank.SetRestriction(agent.Restrict)
	staking.OnSlash(provider.AfterSlash)
	provider.OnDeregister(audit.AfterDeregister)
	params := map[string]gov.ParamsModule{}
	for _, m := range modules {
		if p, ok := m.(gov.ParamsModule); ok {
			params[m.Name()] = p
		}
	}
	gov.SetParamModules(params)
	for _, m := range modules {
		if a, ok := m.(module.Accounts); ok {
			bank.BlockRecipients(a.ModuleAccounts()...)
		}
	}
}

// App is the ABCI application.
type App struct {
	abci.BaseApplication

	cfg     Config
	log     *slog.Logger
	modules []module.Module
	byName  map[string]module.Module
	routes  map[string]route             // by message type URL
	queries map[string]module.QueryRoute // by path

	db   dbm.DB
	tree *iavl.MutableTree

	// chainID is read from state; it is written once, at InitChain.
	chainID string
	// lastTime is the last committed block's time, for CheckTx contexts.
	lastTime int64
	// check is the mempool's view: the last commit plus the txs CheckTx
	// has admitted since. Commit replaces it.
	check *store.Cache
	// failing is, per sender, the gas limits of the txs CheckTx admitted
	// although they fail (see freeCheckGas) since the last commit: at most
	// max_tx_gas each, so that a sender cannot queue many and then make
	// them unpayable (drain its fee) to have every node run them for free.
	failing map[addr.Address]uint64

	// verified remembers, by tx hash, the txs whose signatures have been
	// checked, decoded, so that neither CheckTx nor FinalizeBlock decodes or
	// verifies a tx twice. It changes no result: a tx not in it is simply
	// decoded and verified.
	verifiedMu sync.Mutex // guards verified
	verified   map[[32]byte]*tx.Decoded

	// halted is closed, with haltErr set, when a block could not be
	// executed: CometBFT's consensus stops then, and the node should too.
	halted   chan struct{}
	haltOnce sync.Once
	haltErr  error
}

type route struct {
	mod   module.Module
	proto module.Msg
}

var chainIDKey = []byte("app/chain_id")

const maxVerified = 100_000

// New opens the app's state in cfg.Dir.
func New(cfg Config) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, log: cfg.Logger, modules: Modules(), byName: map[string]module.Module{}, routes: map[string]route{}, queries: map[string]module.QueryRoute{}, verified: map[[32]byte]*tx.Decoded{}, halted: make(chan struct{})}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	wire(a.modules)
	for _, m := range a.modules {
		a.byName[m.Name()] = m
		for _, msg := range m.Msgs() {
			a.routes[tx.TypeURL(msg)] = route{mod: m, proto: msg}
		}
		for _, q := range m.Queries() {
			a.queries[q.Path] = q
		}
	}
	var err error
	if cfg.Dir == "" {
		a.db = dbm.NewMemDB()
	} else if a.db, err = dbm.NewGoLevelDB("state", cfg.Dir, nil); err != nil {
		return nil, fmt.Errorf("chain: open state in %s: %w", cfg.Dir, err)
	}
	if a.tree, err = openTree(a.db, cfg.CacheNodes); err != nil {
		a.db.Close()
		return nil, fmt.Errorf("chain: load state: %w", err)
	}
	a.chainID = string(treeKV{a.tree}.Get(chainIDKey))
	a.resetCheck()
	return a, nil
}

// Close releases the database.
func (a *App) Close() error { return a.db.Close() }

// Resolve returns a new message for a type URL, for tx.Decode.
func (a *App) Resolve(typeURL string) (module.Msg, bool) {
	r, ok := a.routes[typeURL]
	if !ok {
		return nil, false
	}
	return r.proto.ProtoReflect().New().Interface().(module.Msg), true
}

func (a *App) resetCheck() {
	a.failing = map[addr.Address]uint64{}
	v := a.tree.Version()
	if v == 0 {
		a.check = store.NewCache(treeKV{a.tree})
		return
	}
	snap, err := a.tree.GetImmutable(v)
	if err != nil {
		panic(store.IOError{Err: err})
	}
	a.check = store.NewCache(store.NewMemo(snapshotKV{snap}))
}

// Info tells CometBFT how far the app's state has got, so it replays the
// blocks the app has not committed (after a crash, for instance).
func (a *App) Info(context.Context, *abci.RequestInfo) (*abci.ResponseInfo, error) {
	resp := &abci.ResponseInfo{Data: "agora", Version: "1", AppVersion: AppVersion, LastBlockHeight: a.tree.Version()}
	if resp.LastBlockHeight > 0 {
		resp.LastBlockAppHash = a.tree.Hash()
	}
	return resp, nil
}

// InitChain loads the genesis app state: a JSON object with one key per
// module, or a state exported from another chain (see Export).
func (a *App) InitChain(_ context.Context, req *abci.RequestInitChain) (*abci.ResponseInitChain, error) {
	var state map[string]json.RawMessage
	if len(req.AppStateBytes) > 0 {
		if err := json.Unmarshal(req.AppStateBytes, &state); err != nil {
			return nil, fmt.Errorf("chain: genesis app_state is not a JSON object: %w", err)
		}
	}
	if req.InitialHeight > 1 {
		// The state's versions are block heights.
		a.tree.SetInitialVersion(uint64(req.InitialHeight))
	}
	exported, isExport := state[exportKey]
	if isExport && len(state) > 1 {
		return nil, fmt.Errorf("chain: genesis app_state holds an exported state (%q) and module states besides; an exported genesis has only the one", exportKey)
	}
	for name := range state {
		if _, ok := a.byName[name]; !ok && name != exportKey {
			return nil, fmt.Errorf("chain: genesis app_state has unknown module %q", name)
		}
	}
	kv := treeKV{a.tree}
	ctx := module.NewContext(kv, req.ChainId, req.InitialHeight, req.Time.UnixNano())
	if isExport {
		if err := a.importState(exported, req.InitialHeight); err != nil {
			return nil, err
		}
		for _, m := range a.modules {
			if im, ok := m.(module.Importer); ok {
				if err := im.Imported(ctx); err != nil {
					return nil, fmt.Errorf("chain: import: %s: %w", m.Name(), err)
				}
			}
		}
	}
	for _, m := range a.modules {
		if !isExport {
			if err := m.InitGenesis(ctx, state[m.Name()]); err != nil {
				return nil, err
			}
		}
		if p, ok := m.(module.Params); ok {
			if err := module.CheckParams(m.Name(), p.Params(kv), p.ParamRanges()); err != nil {
				return nil, fmt.Errorf("chain: genesis: %w", err)
			}
		}
	}
	// The validators of stake are the chain's: CometBFT replaces the
	// genesis file's list with this one when it is not empty.
	// An exported state carries the set consensus was last told; returned,
	// it overrides genesis.json's, so an edited genesis cannot seat keys
	// the state does not know.
	var vals []abci.ValidatorUpdate
	if isExport {
		for _, m := range staking.ConsensusSet(kv) {
			vals = append(vals, abci.Ed25519ValidatorUpdate(m.Pubkey, m.Power))
		}
	} else {
		var err error
		if vals, err = a.validatorUpdates(ctx); err != nil {
			return nil, fmt.Errorf("chain: genesis validators: %w", err)
		}
	}
	if err := a.checkInvariants(kv); err != nil {
		return nil, err
	}
	kv.Set(chainIDKey, []byte(req.ChainId))
	a.chainID = req.ChainId
	a.lastTime = req.Time.UnixNano()
	return &abci.ResponseInitChain{AppHash: a.tree.WorkingHash(), Validators: vals}, nil
}

// CheckTx admits a tx to the mempool only if it would succeed now: it runs
// the whole tx against the mempool's view and keeps its effects there, so a
// second tx from the same account sees the first one's sequence and spend.
func (a *App) CheckTx(_ context.Context, req *abci.RequestCheckTx) (*abci.ResponseCheckTx, error) {
	d, err := a.decode(req.Tx, true)
	var used uint64
	if err == nil {
		ctx := module.NewContext(a.check, a.chainID, a.tree.Version()+1, a.lastTime)
		m := modeCheck
		if req.Type == abci.CheckTxType_Recheck {
			m = modeRecheck
		}
		_, used, err = a.run(ctx, d, m, nil)
	}
	var paid paidFailure
	if errors.As(err, &paid) {
		return &abci.ResponseCheckTx{Code: abci.CodeTypeOK, GasWanted: int64(d.Body.GasLimit), GasUsed: int64(used),
			Log: fmt.Sprintf("admitted although it fails (%v), so that its block charges the fee for the work", paid.err)}, nil
	}
	if err != nil {
		return &abci.ResponseCheckTx{Code: codes.Of(err), Codespace: codes.Codespace, Log: err.Error(), GasUsed: int64(used)}, nil
	}
	// CometBFT fills blocks up to block.max_gas by what txs want.
	return &abci.ResponseCheckTx{Code: abci.CodeTypeOK, GasWanted: int64(d.Body.GasLimit), GasUsed: int64(used)}, nil
}

// simulate runs a tx against the mempool's view (the last commit and the
// txs admitted since, so a tx that depends on a pending one estimates
// right) with the largest gas limit a tx may have, and returns the gas it
// used. Nothing is kept. Like every ABCI call it runs under CometBFT's
// one mutex, so it sees the view between CheckTxs.
func (a *App) simulate(raw []byte) (*authpb.SimulateResponse, error) {
	d, err := tx.Decode(raw, a.Resolve)
	if err != nil {
		return nil, err
	}
	if err := d.Verify(); err != nil {
		return nil, err
	}
	ctx := module.NewContext(store.NewCache(a.check), a.chainID, a.tree.Version()+1, a.lastTime)
	_, used, err := a.run(ctx, d, modeSimulate, nil)
	if err != nil {
		return nil, err
	}
	return &authpb.SimulateResponse{GasUsed: used}, nil
}

// simulationGas is the most gas a simulation may use: max_tx_gas, or less
// if the signer's uagr cannot pay for that much at the minimum gas price.
// A simulation is free and runs under the one ABCI mutex, so a key with
// nothing gets no work done at all.
func simulationGas(kv store.Reader, signer addr.Address) uint64 {
	p := auth.GetParams(kv)
	if p.MinGasPrice == 0 {
		return p.MaxTxGas
	}
	afford := bank.Balance(kv, signer, coin.Native)
	if afford >= authpb.MinFee(p, p.MaxTxGas) {
		return p.MaxTxGas
	}
	return afford * 1_000_000 / p.MinGasPrice
}

// Preverify checks a tx's signature and remembers the result, so that
// CheckTx need not. Unlike every other method it is safe to call
// concurrently with anything, which lets the node verify signatures on many
// goroutines before CheckTx serialises them.
func (a *App) Preverify(raw []byte) {
	_, _ = a.decode(raw, true)
}

// decode parses a tx and checks its signature, once per tx hash. With
// remember set the result is kept for the next call; without, a kept
// result is used up (a tx is in at most one block).
func (a *App) decode(raw []byte, remember bool) (*tx.Decoded, error) {
	h := tx.Hash(raw)
	a.verifiedMu.Lock()
	d, ok := a.verified[h]
	if ok && !remember {
		delete(a.verified, h)
	}
	a.verifiedMu.Unlock()
	if ok {
		return d, nil
	}
	d, err := tx.Decode(raw, a.Resolve)
	if err != nil {
		return nil, err
	}
	if err := d.Verify(); err != nil {
		return nil, err
	}
	if remember {
		a.verifiedMu.Lock()
		if len(a.verified) >= maxVerified {
			clear(a.verified) // rare: a mempool this large is being flooded
		}
		a.verified[h] = d
		a.verifiedMu.Unlock()
	}
	return d, nil
}

// freeCheckGas is the most work a tx may make CheckTx do and still be
// refused for free. A tx whose messages fail after more than this (a batch
// of proofs with a bad last one) is admitted with its fee and sequence, as
// a block would keep them, so that the block charges for the work; a
// refusal would leave it to the node for nothing, again and again. The
// client sees the failure when the block commits. Node policy, not
// consensus: about a millisecond of execution.
const freeCheckGas = 1_000_000

// paidFailure is a CheckTx failure whose fee is kept; see freeCheckGas.
type paidFailure struct{ err error }

func (p paidFailure) Error() string { return p.err.Error() }
func (p paidFailure) Unwrap() error { return p.err }

type mode int

const (
	modeCheck    mode = iota // CheckTx: the mempool's view
	modeRecheck              // CheckTx again after a commit: see keepFee
	modeDeliver              // a block: a failed tx still pays its fee
	modeSimulate             // gas estimation: no sequence or fee minimum
)

// run executes a decoded tx on ctx.KV: admission (fee, sequence) and then
// the messages, all metered against the tx's gas limit. On success
// everything is written to ctx.KV. If admission fails nothing is written.
// If a message fails or gas runs out, admission's writes (the fee and the
// sequence) are kept in a block, the messages' writes never are. Events of
// kept writes go to into. On success it returns the messages' typed
// responses, encoded as ExecTxResult.Data; in every case the gas used.
func (a *App) run(ctx *module.Context, d *tx.Decoded, m mode, into *[]abci.Event) (data []byte, used uint64, err error) {
	// A frozen or revoked agent's tx is refused before it pays anything:
	// its owner stopped it, and a proposer may include it regardless.
	if err := agent.CanSign(ctx, d.Signer); err != nil {
		return nil, 0, err
	}
	limit := d.Body.GasLimit
	if m == modeSimulate {
		limit = simulationGas(ctx.KV, d.Signer)
	}
	meter := gas.NewMeter(limit)
	cur := &module.Tx{Gas: meter}
	admitted := store.NewCache(ctx.KV)
	actx := ctx.With(gas.KV{Parent: admitted, Meter: meter})
	actx.Signer = d.Signer
	actx.Tx = cur
	admittedOK := false
	// keepFee keeps admission's writes when the messages fail: in a block
	// always; in CheckTx when the failure cost more than freeCheckGas; in a
	// recheck always (within the sender's failing budget). A tx admitted as
	// succeeding that a later block made fail (a vote whose window closed)
	// is kept to be charged and fail in its block: dropped, its sender
	// would wait for a tx that never commits, and every later tx of the
	// sender would be dropped too, its sequence now out of order.
	keepFee := func(err error) error {
		if !admittedOK {
			return err
		}
		switch {
		case m == modeDeliver:
			admitted.Write()
			*into = append(*into, actx.Events()...)
		case (m == modeRecheck || m == modeCheck && meter.Used() > freeCheckGas) && a.failing[d.Signer]+d.Body.GasLimit <= auth.GetParams(ctx.KV).MaxTxGas:
			a.failing[d.Signer] += d.Body.GasLimit
			admitted.Write()
			return paidFailure{err}
		}
		return err
	}
	defer func() {
		used = meter.Used()
		r := recover()
		if r == nil {
			return
		}
		switch r := r.(type) {
		case store.IOError:
			panic(r)
		case gas.OutOfGas:
			err = keepFee(r.Err())
		default:
			a.log.Error("panic while executing tx; this is a bug", "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("chain: tx execution panicked: %v: %w", r, codes.ErrInternal)
		}
	}()
	if err := auth.Admit(actx, d, m == modeSimulate); err != nil {
		return nil, 0, err
	}
	admittedOK = true
	msgs := store.NewCache(admitted)
	mctx := actx.With(gas.KV{Parent: msgs, Meter: meter})
	// The signer's own restrictions first, if it is an agent: the message
	// types its policy allows. Its spending is limited where money moves.
	if err := agent.Authorize(mctx, d.Signer, d.Msgs); err != nil {
		return nil, 0, keepFee(err)
	}
	resps := &tx.Responses{Responses: make([]*anypb.Any, len(d.Msgs))}
	for i, msg := range d.Msgs {
		cur.Msg = string(msg.ProtoReflect().Descriptor().FullName())
		resp, err := a.routes[tx.TypeURL(msg)].mod.Handle(mctx, msg)
		if err != nil {
			// In a block: the fee is paid, the messages undone.
			return nil, 0, keepFee(fmt.Errorf("message %d: %w", i, err))
		}
		resps.Responses[i] = &anypb.Any{}
		if resp != nil {
			resps.Responses[i] = &anypb.Any{TypeUrl: tx.TypeURL(resp), Value: module.MustMarshal(resp)}
		}
	}
	msgs.Write()
	admitted.Write()
	if into != nil {
		*into = append(*into, actx.Events()...)
		*into = append(*into, mctx.Events()...)
	}
	return module.MustMarshal(resps), 0, nil
}

// Halted is closed when the app could not execute a decided block (an
// upgrade this binary lacks, or a fault); HaltErr then says why. No
// block after it can be executed, so the node should stop.
func (a *App) Halted() <-chan struct{} { return a.halted }

// HaltErr is why the app halted, once Halted is closed.
func (a *App) HaltErr() error {
	select {
	case <-a.halted:
		return a.haltErr
	default:
		return nil
	}
}

// FinalizeBlock executes a decided block.
func (a *App) FinalizeBlock(ctx context.Context, req *abci.RequestFinalizeBlock) (resp *abci.ResponseFinalizeBlock, err error) {
	// A panic (a disk error, a migration's bug) stops CometBFT's consensus
	// as surely as an error does: record it as the halt too, so the node
	// exits instead of running on with consensus dead.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("chain: block %d: panic: %v", req.Height, r)
		}
		if err != nil {
			a.halt(err)
		}
	}()
	return a.finalizeBlock(ctx, req)
}

func (a *App) halt(err error) {
	a.haltOnce.Do(func() {
		a.haltErr = err
		close(a.halted)
	})
}

func (a *App) finalizeBlock(_ context.Context, req *abci.RequestFinalizeBlock) (*abci.ResponseFinalizeBlock, error) {
	// The block's writes collect in a cache and reach the tree once, in key
	// order, at the end: a key written by many txs (the fee pool's
	// balance) costs one tree update per block, not one per tx.
	blockKV := store.NewCache(store.NewMemo(treeKV{a.tree}))
	block := module.NewContext(blockKV, a.chainID, req.Height, req.Time.UnixNano())
	block.Seed = req.Hash
	block.Proposer = req.ProposerAddress
	block.Votes = req.DecidedLastCommit.Votes
	block.Misbehavior = req.Misbehavior
	// An upgrade scheduled for this height runs first, or halts a binary
	// that does not know it.
	if err := gov.BeginUpgrade(block); err != nil {
		var need gov.UpgradeNeeded
		if errors.As(err, &need) {
			a.log.Error(err.Error())
		}
		return nil, err
	}
	for _, m := range a.modules {
		if b, ok := m.(module.BeginBlocker); ok {
			if err := b.BeginBlock(block); err != nil {
				return nil, fmt.Errorf("chain: %s begin block %d: %w", m.Name(), req.Height, err)
			}
		}
	}
	resp := &abci.ResponseFinalizeBlock{TxResults: make([]*abci.ExecTxResult, len(req.Txs))}
	// A proposer may include anything: the block's gas limit holds here
	// too, counted as CometBFT fills blocks, by what txs want.
	room := auth.GetParams(blockKV).BlockGasLimit
	for i, raw := range req.Txs {
		resp.TxResults[i] = a.deliverTx(block, raw, &room)
	}
	for _, m := range a.modules {
		if e, ok := m.(module.EndBlocker); ok {
			if err := e.EndBlock(block); err != nil {
				return nil, fmt.Errorf("chain: %s end block %d: %w", m.Name(), req.Height, err)
			}
		}
	}
	updates, err := a.validatorUpdates(block)
	if err != nil {
		return nil, fmt.Errorf("chain: validator updates at block %d: %w", req.Height, err)
	}
	resp.ValidatorUpdates = updates
	if err := a.checkBlock(blockKV); err != nil {
		a.log.Error("an invariant broke; this node halts rather than commit a wrong state", "height", req.Height, "err", err)
		return nil, fmt.Errorf("chain: block %d breaks an invariant, so this node halts before committing it: %v. "+
			"This is a bug in the state machine: keep the data directory and report it", req.Height, err)
	}
	blockKV.Write()
	resp.Events = block.Events()
	resp.AppHash = a.tree.WorkingHash()
	a.lastTime = req.Time.UnixNano()
	return resp, nil
}

func (a *App) deliverTx(block *module.Context, raw []byte, room *uint64) *abci.ExecTxResult {
	d, err := a.decode(raw, false)
	var events []abci.Event
	var data []byte
	var used uint64
	if err == nil {
		if want := d.Body.GasLimit; want > *room {
			err = fmt.Errorf("chain: the tx wants %d gas and the block has %d left of its limit; it did not run: %w", want, *room, codes.ErrBlockGasFull)
		} else {
			*room -= want
			data, used, err = a.run(block, d, modeDeliver, &events)
		}
	}
	res := &abci.ExecTxResult{Code: abci.CodeTypeOK, Data: data, Events: events, GasUsed: int64(used)}
	if d != nil {
		res.GasWanted = int64(d.Body.GasLimit)
	}
	if err != nil {
		res.Code, res.Codespace, res.Log, res.Data = codes.Of(err), codes.Codespace, err.Error(), nil
	}
	return res
}

// Commit makes the block's state durable, prunes old versions and resets
// the mempool's view.
func (a *App) Commit(context.Context, *abci.RequestCommit) (*abci.ResponseCommit, error) {
	_, v, err := a.tree.SaveVersion()
	if err != nil {
		err = fmt.Errorf("chain: save state: %w", err)
		a.halt(err)
		return nil, err
	}
	if keep := a.cfg.KeepVersions; keep > 0 && v > keep && v%100 == 0 {
		if err := a.tree.DeleteVersionsTo(v - keep); err != nil {
			a.log.Warn("pruning old state versions failed", "err", err)
		}
	}
	a.resetCheck()
	return &abci.ResponseCommit{}, nil
}

// validatorUpdates asks the module that chooses validators what changed.
func (a *App) validatorUpdates(ctx *module.Context) ([]abci.ValidatorUpdate, error) {
	for _, m := range a.modules {
		if s, ok := m.(module.ValidatorSetter); ok {
			return s.ValidatorUpdates(ctx)
		}
	}
	return nil, nil
}

// CheckInvariants verifies the invariants on the latest committed state:
// the bank's supply, and each module's own (its escrow holds what it owes).
// A failure is a state-machine bug.
func CheckInvariants(a *App) error {
	v := a.tree.Version()
	if v == 0 {
		return a.checkInvariants(treeKV{a.tree})
	}
	snap, err := a.tree.GetImmutable(v)
	if err != nil {
		return err
	}
	return a.checkInvariants(snapshotKV{snap})
}

// invariantChecker is a module with an invariant of its own.
type invariantChecker interface {
	CheckInvariant(kv store.Reader) error
}

// checkBlock runs the cheap invariants at the end of every block, on the
// block's state before it is committed: the supply moved as the balances
// did (from the block's writes only), and every module account holds what
// its module owes (from running totals). It is the crisis module of the
// Cosmos SDK, made cheap enough for every block.
func (a *App) checkBlock(block *store.Cache) error {
	if err := bank.CheckBlock(block); err != nil {
		return err
	}
	for _, m := range a.modules {
		if s, ok := m.(module.Solvency); ok {
			if err := s.Solvent(block); err != nil {
				return fmt.Errorf("%s: %w", m.Name(), err)
			}
		}
	}
	return nil
}

func (a *App) checkInvariants(kv store.Reader) error {
	if err := bank.CheckInvariant(kv); err != nil {
		return err
	}
	for _, m := range a.modules {
		if c, ok := m.(invariantChecker); ok {
			if err := c.CheckInvariant(kv); err != nil {
				return err
			}
		}
	}
	return nil
}
