// Package client talks to an Agora node over its CometBFT RPC: it queries
// module state and signs, broadcasts and confirms transactions. The CLI,
// the daemons and the tests all use it.
package client

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/auth/authpb"
	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/proof"
	"github.com/agoranet/agora/internal/chain/tx"
	"github.com/agoranet/agora/internal/keyring"
	abci "github.com/cometbft/cometbft/abci/types"
	cmtbytes "github.com/cometbft/cometbft/libs/bytes"
)

// Client is a connection to one node.
type Client struct {
	rpc *rpc
	url string

	mu      sync.Mutex // guards the fields below
	chainID string
	params  *authpb.Params
	seqs    map[addr.Address]*sequencer
	txs     *txWatch
	closed  bool // by Close: nothing subscribes any more
	gas     Gas

	wg sync.WaitGroup // the Tx event dispatcher
}

// Gas is how Submit chooses a tx's gas limit: a fixed Limit, or (Limit 0,
// the default) an estimate by simulation against the latest state times
// Adjustment, as Cosmos tools' --gas auto does. The fee is then the
// minimum for that limit.
type Gas struct {
	Limit      uint64
	Adjustment float64 // for estimates; 0 means DefaultGasAdjustment
}

// DefaultGasAdjustment leaves room for state to change between the
// estimate and the block.
const DefaultGasAdjustment = 1.3

// SetGas sets how Submit chooses gas limits.
func (c *Client) SetGas(g Gas) {
	c.mu.Lock()
	c.gas = g
	c.mu.Unlock()
}

// EstimateGas simulates msgs signed by key against the latest state and
// returns the gas they used.
func (c *Client) EstimateGas(ctx context.Context, key *keyring.Key, memo string, msgs ...module.Msg) (uint64, error) {
	chainID, err := c.ChainID(ctx)
	if err != nil {
		return 0, err
	}
	// The simulation ignores sequence and fee minimum; a 1uagr fee makes
	// it pay one, so the fee's reads and writes are counted too.
	raw, err := tx.Sign(key.Private, tx.Header{ChainID: chainID, Fee: coin.New(coin.Native, 1), Memo: memo, Signer: key.Address().String()}, msgs...)
	if err != nil {
		return 0, err
	}
	var out authpb.SimulateResponse
	if _, err := c.Query(ctx, authpb.SimulatePath, raw, &out); err != nil {
		return 0, fmt.Errorf("client: estimate gas: %w", err)
	}
	return out.GasUsed, nil
}

// gasLimit chooses the gas limit for msgs.
func (c *Client) gasLimit(ctx context.Context, key *keyring.Key, memo string, msgs ...module.Msg) (uint64, error) {
	c.mu.Lock()
	g := c.gas
	c.mu.Unlock()
	if g.Limit > 0 {
		return g.Limit, nil
	}
	used, err := c.EstimateGas(ctx, key, memo, msgs...)
	if err != nil {
		return 0, err
	}
	adj := g.Adjustment
	if adj <= 0 {
		adj = DefaultGasAdjustment
	}
	// A few hundred gas more for the bytes a real gas limit, fee and
	// sequence add to the tx.
	return uint64(float64(used)*adj) + 1_000, nil
}

// sequencer orders one key's transactions: the chain wants each account's
// sequence numbers in order, and a query sees only committed state, so the
// next sequence is tracked here between broadcast and commit.
type sequencer struct {
	mu    sync.Mutex // held from choosing a sequence to the broadcast
	next  uint64
	known bool
}

func (c *Client) sequencer(a addr.Address) *sequencer {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seqs == nil {
		c.seqs = map[addr.Address]*sequencer{}
	}
	s := c.seqs[a]
	if s == nil {
		s = &sequencer{}
		c.seqs[a] = s
	}
	return s
}

// New returns a client for the node at url (like http://127.0.0.1:26657).
func New(url string) (*Client, error) {
	if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
		return nil, fmt.Errorf("client: node URL %q must start with http:// or https://", url)
	}
	return &Client{rpc: newRPC(url), url: url}, nil
}

// Close ends the client's event subscriptions. Calls still running fall
// back to polling; none of them subscribes again.
func (c *Client) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.rpc.close()
	c.wg.Wait()
}

// Status is what a node says about itself.
type Status struct {
	ChainID    string
	Height     int64
	AppHash    []byte
	BlockTime  time.Time
	CatchingUp bool
	NodeID     string
	Moniker    string
}

// Status returns the node's status.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var st resultStatus
	if err := c.rpc.call(ctx, "status", map[string]any{}, &st); err != nil {
		return nil, fmt.Errorf("client: node %s is not answering (is it running? see `agora devnet`): %w", c.url, err)
	}
	return &Status{ChainID: st.NodeInfo.Network, Height: st.SyncInfo.LatestBlockHeight, AppHash: st.SyncInfo.LatestAppHash,
		BlockTime: st.SyncInfo.LatestBlockTime, CatchingUp: st.SyncInfo.CatchingUp, NodeID: st.NodeInfo.ID, Moniker: st.NodeInfo.Moniker}, nil
}

// Header is the part of a block header clients check answers against.
type Header struct {
	Height int64
	Time   time.Time
	// AppHash commits to the state after the previous block.
	AppHash []byte
}

// Header returns the header of the block at height.
func (c *Client) Header(ctx context.Context, height int64) (*Header, error) {
	var r resultHeader
	if err := c.rpc.call(ctx, "header", map[string]any{"height": i64(height)}, &r); err != nil {
		return nil, fmt.Errorf("client: header %d: %w", height, err)
	}
	if r.Header == nil {
		return nil, fmt.Errorf("client: header %d: node has none", height)
	}
	return &Header{Height: r.Header.Height, Time: r.Header.Time, AppHash: r.Header.AppHash}, nil
}

// ConsensusValidators returns the validator set consensus uses at height
// (0: the latest), as voting power by consensus address in hex: what the
// staking module's updates have made of it.
func (c *Client) ConsensusValidators(ctx context.Context, height int64) (map[string]int64, error) {
	params := map[string]any{"per_page": "100"}
	if height > 0 {
		params["height"] = i64(height)
	}
	var r resultValidators
	if err := c.rpc.call(ctx, "validators", params, &r); err != nil {
		return nil, fmt.Errorf("client: validators at %d: %w", height, err)
	}
	out := map[string]int64{}
	for _, v := range r.Validators {
		out[v.Address.String()] = v.VotingPower
	}
	return out, nil
}

// Subscribe delivers the events that match a CometBFT query (like
// "tm.event='Tx' AND provider_online.operator EXISTS") until ctx ends or
// the connection drops, when the channel is closed. A consumer slower than
// buf events misses some: subscribers use events as hints and re-read state.
func (c *Client) Subscribe(ctx context.Context, query string, buf int) (<-chan Event, error) {
	ch, err := c.rpc.subscribe(ctx, query, buf)
	if err != nil {
		return nil, fmt.Errorf("client: subscribe %q: %w", query, err)
	}
	return ch, nil
}

// ChainID returns the node's chain-id.
func (c *Client) ChainID(ctx context.Context) (string, error) {
	c.mu.Lock()
	id := c.chainID
	c.mu.Unlock()
	if id != "" {
		return id, nil
	}
	st, err := c.Status(ctx)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	c.chainID = st.ChainID
	c.mu.Unlock()
	return st.ChainID, nil
}

// ChainError is an error the chain returned, with its stable code.
type ChainError struct {
	Code uint32
	Log  string
	// inBlock: the tx was executed in a block (and paid its fee), rather
	// than refused on admission.
	inBlock bool
}

func (e *ChainError) Error() string { return fmt.Sprintf("chain refused (code %d): %s", e.Code, e.Log) }

// ErrMaybeSent marks a Submit error after the tx may have reached the
// chain's mempool (the broadcast's answer was lost, or the wait for its
// block gave up): it may still be committed. Any other error (but a
// *ChainError) means the tx was never sent.
var ErrMaybeSent = errors.New("client: the tx may still be committed")

// dropConfirm is how long a tx must stay unfound after its signer's
// sequence has passed it before it counts as dropped: a node's tx index
// can trail its commits by seconds on a loaded testnet (one second was
// seen to report a committed vote dropped).
const dropConfirm = 10 * time.Second

// ErrDropped is a Submit error for a tx that will never commit: the node
// took it, but its signer's sequence has since moved past it (another tx
// with that sequence, from another program or node, committed) and it is
// in no block. Nothing of it was applied; it may be sent again.
var ErrDropped = errors.New("client: the tx was dropped from the mempool; nothing of it was applied, so it can be sent again")

// Is lets errors.Is(err, codes.ErrInsufficientFunds) match a remote error.
func (e *ChainError) Is(target error) bool {
	var ce *codes.Error
	return errors.As(target, &ce) && ce.Code == e.Code
}

// Query runs a raw module query at the latest height and decodes the
// answer into out. Callers use Ask, whose types are checked.
func (c *Client) Query(ctx context.Context, path string, data []byte, out proto.Message) (int64, error) {
	r, err := c.abciQuery(ctx, path, data, 0, false)
	if err != nil {
		return 0, err
	}
	return r.Height, proto.Unmarshal(r.Value, out)
}

func (c *Client) abciQuery(ctx context.Context, path string, data []byte, height int64, prove bool) (*abci.ResponseQuery, error) {
	var res resultQuery
	params := map[string]any{"path": path, "data": cmtbytes.HexBytes(data), "height": i64(height), "prove": prove}
	if err := c.rpc.call(ctx, "abci_query", params, &res); err != nil {
		return nil, fmt.Errorf("client: query %s: %w", path, err)
	}
	if res.Response.Code != 0 {
		return nil, &ChainError{Code: res.Response.Code, Log: res.Response.Log}
	}
	return &res.Response, nil
}

// Ask runs one of a module's typed queries (bankpb.QueryBalance, ...).
func Ask[Req, Resp proto.Message](ctx context.Context, c *Client, q module.Query[Req, Resp], req Req) (Resp, error) {
	var zero Resp
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(req)
	if err != nil {
		return zero, fmt.Errorf("client: encode %s request: %w", q.Path, err)
	}
	out := zero.ProtoReflect().Type().New().Interface().(Resp)
	if _, err := c.Query(ctx, q.Path, data, out); err != nil {
		return zero, err
	}
	return out, nil
}

// Account returns an account (sequence 0 if it has never sent a tx).
func (c *Client) Account(ctx context.Context, a addr.Address) (*authpb.Account, error) {
	return Ask(ctx, c, authpb.QueryAccount, &authpb.QueryAccountRequest{Address: a.String()})
}

// Balances returns all of an address's balances.
func (c *Client) Balances(ctx context.Context, a addr.Address) (*bankpb.QueryBalanceResponse, error) {
	return Ask(ctx, c, bankpb.QueryBalance, &bankpb.QueryBalanceRequest{Address: a.String()})
}

// Balance returns one balance.
func (c *Client) Balance(ctx context.Context, a addr.Address, denom string) (uint64, error) {
	r, err := c.Balances(ctx, a)
	if err != nil {
		return 0, err
	}
	for _, b := range r.Balances {
		if b.Denom == denom {
			return b.Amount, nil
		}
	}
	return 0, nil
}

// Supply returns the total supply of every denom.
func (c *Client) Supply(ctx context.Context) (*bankpb.QuerySupplyResponse, error) {
	return Ask(ctx, c, bankpb.QuerySupply, &bankpb.QuerySupplyRequest{})
}

func (c *Client) authParams(ctx context.Context) (*authpb.Params, error) {
	c.mu.Lock()
	p := c.params
	c.mu.Unlock()
	if p != nil {
		return p, nil
	}
	p, err := Ask(ctx, c, authpb.QueryParams, &authpb.QueryParamsRequest{})
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.params = p
	c.mu.Unlock()
	return p, nil
}

// Result is a committed tx.
type Result struct {
	Hash   string
	Height int64
	// Events lists the types of the events the tx emitted.
	Events []string
	// Responses holds each message's typed response, in order; read them
	// with Response.
	Responses []*anypb.Any
	// GasWanted is the tx's gas limit, GasUsed what it used; Fee is what
	// it paid (set by Submit).
	GasWanted, GasUsed uint64
	Fee                *coin.Coin
}

// Response decodes message i's typed response (a MsgOpenChannelResponse,
// say) into out.
func (r *Result) Response(i int, out proto.Message) error {
	if i < 0 || i >= len(r.Responses) {
		return fmt.Errorf("client: tx %s has %d message responses, not %d", r.Hash, len(r.Responses), i+1)
	}
	a := r.Responses[i]
	if want := out.ProtoReflect().Descriptor().FullName(); a.MessageName() != want {
		return fmt.Errorf("client: tx %s message %d answered a %q, not a %s", r.Hash, i, a.MessageName(), want)
	}
	return proto.Unmarshal(a.Value, out)
}

func newResult(hash []byte, height int64, tr *abci.ExecTxResult) (*Result, error) {
	if tr.Code != 0 {
		return nil, &ChainError{Code: tr.Code, Log: tr.Log, inBlock: true}
	}
	out := &Result{Hash: strings.ToUpper(hex.EncodeToString(hash)), Height: height, GasWanted: uint64(tr.GasWanted), GasUsed: uint64(tr.GasUsed)}
	for _, ev := range tr.Events {
		out.Events = append(out.Events, ev.Type)
	}
	var rs tx.Responses
	if err := proto.Unmarshal(tr.Data, &rs); err != nil {
		return nil, fmt.Errorf("client: tx %X: undecodable responses: %w", hash, err)
	}
	out.Responses = rs.Responses
	return out, nil
}

// Submit signs msgs with key at its next sequence, with a gas limit
// chosen as SetGas says (estimated, by default) and the minimum fee for it,
// broadcasts, and waits until the tx is in a committed block. Concurrent
// submits with one key are ordered. An error from the chain is a
// *ChainError carrying the code; one after the tx may have been sent
// wraps ErrMaybeSent; one for a tx that can no longer commit is ErrDropped.
func (c *Client) Submit(ctx context.Context, key *keyring.Key, memo string, msgs ...module.Msg) (*Result, error) {
	// Another program using the same key can have a tx in the mempool that
	// our committed-state query does not see yet; CheckTx then refuses ours
	// without effect, so signing again after its block is safe.
	for attempt := 0; ; attempt++ {
		res, err := c.submit(ctx, key, memo, msgs...)
		var ce *ChainError
		if attempt < 5 && errors.As(err, &ce) && ce.Code == codes.ErrSequence.Code && !ce.inBlock {
			select {
			case <-ctx.Done():
				return nil, err
			case <-time.After(time.Duration(attempt+1) * 250 * time.Millisecond):
			}
			continue
		}
		return res, err
	}
}

func (c *Client) submit(ctx context.Context, key *keyring.Key, memo string, msgs ...module.Msg) (*Result, error) {
	chainID, err := c.ChainID(ctx)
	if err != nil {
		return nil, err
	}
	p, err := c.authParams(ctx)
	if err != nil {
		return nil, err
	}
	limit, err := c.gasLimit(ctx, key, memo, msgs...)
	if err != nil {
		return nil, err
	}
	limit = min(limit, p.MaxTxGas)
	sq := c.sequencer(key.Address())
	sq.mu.Lock()
	acc, err := c.Account(ctx, key.Address())
	if err != nil {
		sq.mu.Unlock()
		return nil, err
	}
	seq := acc.Sequence
	if sq.known && sq.next > seq {
		seq = sq.next
	}
	fee := coin.New(coin.Native, authpb.MinFee(p, limit))
	raw, err := tx.Sign(key.Private, tx.Header{ChainID: chainID, Sequence: seq, GasLimit: limit, Fee: fee, Memo: memo, Signer: key.Address().String()}, msgs...)
	if err != nil {
		sq.mu.Unlock()
		return nil, err
	}
	hash := tx.Hash(raw)
	// Watch before broadcasting, so the commit cannot slip past us.
	done, stop := c.watchTx(hash)
	defer stop()
	var res resultBroadcast
	err = c.rpc.call(ctx, "broadcast_tx_sync", map[string]any{"tx": raw}, &res)
	switch {
	case err != nil:
		sq.known = false
	case res.Code != 0:
		sq.known = false // resynchronise from the chain next time
	default:
		sq.next, sq.known = seq+1, true
	}
	sq.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("client: broadcast: %w (%w)", err, ErrMaybeSent)
	}
	if res.Code != 0 {
		return nil, &ChainError{Code: res.Code, Log: res.Log}
	}
	out, err := c.waitTx(ctx, hash, done, c.sequencePassed(key.Address(), seq))
	if out != nil {
		out.Fee = fee
	}
	var ce *ChainError
	if err != nil && !errors.As(err, &ce) && !errors.Is(err, ErrDropped) {
		err = fmt.Errorf("%w (%w)", err, ErrMaybeSent)
	}
	return out, err
}

// TxInfo is a committed tx as the node's index has it.
type TxInfo struct {
	Hash   []byte
	Height int64
	Raw    []byte
	Result abci.ExecTxResult
}

// Tx looks up a committed tx by hash.
func (c *Client) Tx(ctx context.Context, hash []byte) (*TxInfo, error) {
	var r resultTx
	if err := c.rpc.call(ctx, "tx", map[string]any{"hash": hash, "prove": false}, &r); err != nil {
		return nil, fmt.Errorf("client: look up tx %X: %w", hash, err)
	}
	return &TxInfo{Hash: r.Hash, Height: r.Height, Raw: r.Tx, Result: r.TxResult}, nil
}

// WaitTx waits until the tx with this hash is committed, or ctx ends. It
// follows the node's Tx events, and looks the tx up now and then in case
// the node dropped an event.
func (c *Client) WaitTx(ctx context.Context, hash []byte) (*Result, error) {
	if len(hash) != 32 {
		return nil, fmt.Errorf("client: a tx hash is 32 bytes, got %d", len(hash))
	}
	h := [32]byte(hash)
	done, stop := c.watchTx(h)
	defer stop()
	return c.waitTx(ctx, h, done, nil)
}

// sequencePassed returns waitTx's check for a tx of signer at seq.
func (c *Client) sequencePassed(signer addr.Address, seq uint64) func(context.Context) bool {
	return func(ctx context.Context) bool {
		acc, err := c.Account(ctx, signer)
		return err == nil && acc.Sequence > seq
	}
}

// waitTx waits for the tx's event or finds it by lookup. passed, if set,
// says whether the signer's committed sequence has moved past the tx's:
// seen for dropConfirm with the tx in no block, the tx can never commit
// (the wait leaves the node's indexer time to catch up).
func (c *Client) waitTx(ctx context.Context, hash [32]byte, done <-chan *abci.TxResult, passed func(context.Context) bool) (*Result, error) {
	poll := time.Second // a safety net only: the event is the fast path
	if done == nil {
		poll = 100 * time.Millisecond // no event stream: poll for real
	}
	t := time.NewTimer(0)
	defer t.Stop()
	var passedAt time.Time
	start := time.Now()
	for {
		select {
		case tr := <-done:
			return newResult(hash[:], tr.Height, &tr.Result)
		case <-ctx.Done():
			return nil, fmt.Errorf("client: tx %X not committed: %w", hash, ctx.Err())
		case <-t.C:
			r, err := c.Tx(ctx, hash[:])
			if err == nil {
				return newResult(hash[:], r.Height, &r.Result)
			}
			// Without an event stream the lookup is all we have; with one,
			// a failed lookup (a node restarting, indexing lagging) is no
			// reason to give up on a tx that may well commit.
			if done == nil && !strings.Contains(err.Error(), "not found") {
				return nil, err
			}
			switch {
			case passed == nil || time.Since(start) < poll || !strings.Contains(err.Error(), "not found"):
			case !passed(ctx):
				passedAt = time.Time{}
			case passedAt.IsZero():
				passedAt = time.Now()
			case time.Since(passedAt) >= dropConfirm:
				return nil, fmt.Errorf("%w (tx %X)", ErrDropped, hash)
			}
			t.Reset(poll)
		}
	}
}

// txWatch hands the node's Tx events to the WaitTx calls waiting for them.
// One subscription serves every wait of a client: CometBFT allows a client
// only a few subscriptions.
type txWatch struct {
	mu      sync.Mutex // guards the fields below
	waiters map[[32]byte][]chan *abci.TxResult
	live    bool
	dialing bool // a subscription is being made, without mu held
	// failedAt is when subscribing last failed: waits poll, without
	// dialing again, for a few seconds after, so a node without a usable
	// websocket does not cost every Submit a dial.
	failedAt time.Time
}

// watchTx returns a channel that receives the tx's result when its event
// arrives (nil when the node's event stream cannot be had, or is still
// being dialed: the wait polls), and a func that stops watching.
func (c *Client) watchTx(hash [32]byte) (<-chan *abci.TxResult, func()) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, func() {}
	}
	if c.txs == nil {
		c.txs = &txWatch{waiters: map[[32]byte][]chan *abci.TxResult{}}
	}
	w := c.txs
	c.mu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.live {
		if w.dialing || time.Since(w.failedAt) < 5*time.Second {
			return nil, func() {}
		}
		// Dial without the lock, so that events keep flowing to the
		// other waits and their stop funcs do not block on a handshake.
		w.dialing = true
		w.mu.Unlock()
		sub, err := c.subscribeTxs()
		w.mu.Lock()
		w.dialing = false
		if err != nil {
			w.failedAt = time.Now()
			return nil, func() {}
		}
		w.live = true
		go c.dispatchTx(w, sub)
	}
	ch := make(chan *abci.TxResult, 1)
	w.waiters[hash] = append(w.waiters[hash], ch)
	return ch, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		list := w.waiters[hash]
		for i, x := range list {
			if x == ch {
				list = append(list[:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(w.waiters, hash)
		} else {
			w.waiters[hash] = list
		}
	}
}

// subscribeTxs subscribes to every Tx event, unless the client is closed.
// The dispatcher it is for is counted in wg before Close can wait, so
// Close never misses one.
func (c *Client) subscribeTxs() (<-chan Event, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, errClosed
	}
	c.wg.Add(1)
	c.mu.Unlock()
	// Lives until Close; the dial has its own handshake timeout.
	sub, err := c.rpc.subscribe(context.Background(), "tm.event='Tx'", 256)
	if err != nil {
		c.wg.Done()
		return nil, err
	}
	return sub, nil
}

func (c *Client) dispatchTx(w *txWatch, sub <-chan Event) {
	defer c.wg.Done()
	defer func() {
		w.mu.Lock()
		w.live = false // the next wait subscribes again
		w.mu.Unlock()
	}()
	for ev := range sub {
		if ev.Tx == nil {
			continue
		}
		h := tx.Hash(ev.Tx.Tx)
		w.mu.Lock()
		for _, ch := range w.waiters[h] {
			select {
			case ch <- ev.Tx:
			default:
			}
		}
		w.mu.Unlock()
	}
}

// ProvenBalance reads one balance with a Merkle proof and checks the proof
// against the app hash in the header of the following block, so the answer
// does not rest on trusting this node's word alone (only its block
// header, which a light client would check against the validator set).
func (c *Client) ProvenBalance(ctx context.Context, a addr.Address, denom string) (amount uint64, height int64, err error) {
	key := bankpb.BalanceKey(a, denom)
	r, err := c.abciQuery(ctx, proof.StorePath, key, 0, true)
	if err != nil {
		return 0, 0, err
	}
	// The state at height h is committed to by block h+1's header.
	next := r.Height + 1
	var hdr *Header
	for {
		hdr, err = c.Header(ctx, next)
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return 0, 0, fmt.Errorf("client: header %d: %w", next, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err := proof.Verify(hdr.AppHash, key, r.Value, r.ProofOps); err != nil {
		return 0, 0, fmt.Errorf("client: balance of %s at height %d: %w", a, r.Height, err)
	}
	if len(r.Value) == 8 {
		amount = binary.BigEndian.Uint64(r.Value)
	}
	return amount, r.Height, nil
}
