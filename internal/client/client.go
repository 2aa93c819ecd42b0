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

	rpcclient "github.com/cometbft/cometbft/rpc/client"
	rpchttp "github.com/cometbft/cometbft/rpc/client/http"
	ctypes "github.com/cometbft/cometbft/rpc/core/types"
	"google.golang.org/protobuf/proto"

	"github.com/agoranet/agora/internal/chain"
	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/auth/authpb"
	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/tx"
	"github.com/agoranet/agora/internal/keyring"
)

// Client is a connection to one node.
type Client struct {
	rpc *rpchttp.HTTP
	url string

	mu      sync.Mutex // guards the fields below
	chainID string
	params  *authpb.Params
	seqs    map[addr.Address]*sequencer
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
	rpc, err := rpchttp.New(url, "/websocket")
	if err != nil {
		return nil, fmt.Errorf("client: node %s: %w", url, err)
	}
	return &Client{rpc: rpc, url: url}, nil
}

// RPC exposes the CometBFT RPC client for what this package does not wrap.
func (c *Client) RPC() *rpchttp.HTTP { return c.rpc }

// Status returns the node's status.
func (c *Client) Status(ctx context.Context) (*ctypes.ResultStatus, error) {
	st, err := c.rpc.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("client: node %s is not answering (is it running? see `agora devnet`): %w", c.url, err)
	}
	return st, nil
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
	c.chainID = st.NodeInfo.Network
	c.mu.Unlock()
	return st.NodeInfo.Network, nil
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

// Is lets errors.Is(err, codes.ErrInsufficientFunds) match a remote error.
func (e *ChainError) Is(target error) bool {
	var ce *codes.Error
	return errors.As(target, &ce) && ce.Code == e.Code
}

// Query runs a module query ("/bank/balance") at the latest height and
// decodes the answer into out.
func (c *Client) Query(ctx context.Context, path string, data []byte, out proto.Message) (int64, error) {
	res, err := c.rpc.ABCIQuery(ctx, path, data)
	if err != nil {
		return 0, fmt.Errorf("client: query %s: %w", path, err)
	}
	if res.Response.Code != 0 {
		return 0, &ChainError{Code: res.Response.Code, Log: res.Response.Log}
	}
	return res.Response.Height, proto.Unmarshal(res.Response.Value, out)
}

// Account returns an account (sequence 0 if it has never sent a tx).
func (c *Client) Account(ctx context.Context, a addr.Address) (*authpb.Account, error) {
	var acc authpb.Account
	_, err := c.Query(ctx, "/auth/account", []byte(a.String()), &acc)
	return &acc, err
}

// Balances returns all of an address's balances.
func (c *Client) Balances(ctx context.Context, a addr.Address) (*bankpb.QueryBalanceResponse, error) {
	var r bankpb.QueryBalanceResponse
	_, err := c.Query(ctx, "/bank/balance", []byte(a.String()), &r)
	return &r, err
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
	var r bankpb.QuerySupplyResponse
	_, err := c.Query(ctx, "/bank/supply", nil, &r)
	return &r, err
}

func (c *Client) authParams(ctx context.Context) (*authpb.Params, error) {
	c.mu.Lock()
	p := c.params
	c.mu.Unlock()
	if p != nil {
		return p, nil
	}
	p = &authpb.Params{}
	if _, err := c.Query(ctx, "/auth/params", nil, p); err != nil {
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
	Events []string
	// Attrs holds each event's attributes, keyed "type.key" (the first
	// such attribute wins): res.Attrs["job_order.order_id"].
	Attrs map[string]string
}

// Submit signs msgs with key at its next sequence, pays the minimum fee,
// broadcasts, and waits until the tx is in a committed block. Concurrent
// submits with one key are ordered. An error from the chain is a
// *ChainError carrying the code.
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
	raw, err := tx.Sign(key.Private, chainID, seq, coin.New(coin.Native, authpb.MinFee(p, len(msgs))), memo, msgs...)
	if err != nil {
		sq.mu.Unlock()
		return nil, err
	}
	res, err := c.rpc.BroadcastTxSync(ctx, raw)
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
		return nil, fmt.Errorf("client: broadcast: %w", err)
	}
	if res.Code != 0 {
		return nil, &ChainError{Code: res.Code, Log: res.Log}
	}
	return c.WaitTx(ctx, res.Hash)
}

// BroadcastAndWait sends a signed tx and waits for its block.
func (c *Client) BroadcastAndWait(ctx context.Context, raw []byte) (*Result, error) {
	res, err := c.rpc.BroadcastTxSync(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("client: broadcast: %w", err)
	}
	if res.Code != 0 {
		return nil, &ChainError{Code: res.Code, Log: res.Log}
	}
	return c.WaitTx(ctx, res.Hash)
}

// WaitTx polls until the tx with this hash is committed, or ctx ends.
func (c *Client) WaitTx(ctx context.Context, hash []byte) (*Result, error) {
	for {
		r, err := c.rpc.Tx(ctx, hash, false)
		if err == nil {
			if r.TxResult.Code != 0 {
				return nil, &ChainError{Code: r.TxResult.Code, Log: r.TxResult.Log, inBlock: true}
			}
			out := &Result{Hash: strings.ToUpper(hex.EncodeToString(hash)), Height: r.Height, Attrs: map[string]string{}}
			for _, ev := range r.TxResult.Events {
				out.Events = append(out.Events, ev.Type)
				for _, a := range ev.Attributes {
					if k := ev.Type + "." + a.Key; out.Attrs[k] == "" {
						out.Attrs[k] = a.Value
					}
				}
			}
			return out, nil
		}
		if !strings.Contains(err.Error(), "not found") {
			return nil, fmt.Errorf("client: look up tx %X: %w", hash, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("client: tx %X not committed: %w", hash, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ProvenBalance reads one balance with a Merkle proof and checks the proof
// against the app hash in the header of the following block, so the answer
// does not rest on trusting this node's word alone (only its block
// header, which a light client would check against the validator set).
func (c *Client) ProvenBalance(ctx context.Context, a addr.Address, denom string) (amount uint64, height int64, err error) {
	key := bankpb.BalanceKey(a, denom)
	res, err := c.rpc.ABCIQueryWithOptions(ctx, chain.StorePath, key, rpcclient.ABCIQueryOptions{Prove: true})
	if err != nil {
		return 0, 0, fmt.Errorf("client: query %s: %w", chain.StorePath, err)
	}
	r := res.Response
	if r.Code != 0 {
		return 0, 0, &ChainError{Code: r.Code, Log: r.Log}
	}
	// The state at height h is committed to by block h+1's header.
	next := r.Height + 1
	var hdr *ctypes.ResultHeader
	for {
		hdr, err = c.rpc.Header(ctx, &next)
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return 0, 0, fmt.Errorf("client: header %d: %w", next, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err := chain.VerifyProof(hdr.Header.AppHash, key, r.Value, r.ProofOps); err != nil {
		return 0, 0, fmt.Errorf("client: balance of %s at height %d: %w", a, r.Height, err)
	}
	if len(r.Value) == 8 {
		amount = binary.BigEndian.Uint64(r.Value)
	}
	return amount, r.Height, nil
}
