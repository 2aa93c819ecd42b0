// Package module defines what a chain module is: the context it runs in, the
// messages it handles and the hooks the app calls. Each module is a
// deterministic function of (state, block, tx); it reads no clock, draws no
// randomness and does no I/O, so every node computes the same state.
package module

import (
	"encoding/json"
	"fmt"
	"strconv"

	abci "github.com/cometbft/cometbft/abci/types"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/gas"
	"github.com/agoranet/agora/internal/chain/store"
)

// Context is what a module sees while it runs: the state, the block, and a
// place to put events. A module keeps no state of its own between calls.
type Context struct {
	KV      store.KV
	ChainID string
	Height  int64
	// TimeUnixNano is the block time chosen by consensus, never a local clock.
	TimeUnixNano int64
	// Signer is the account that signed the transaction being executed;
	// zero in block hooks and genesis.
	Signer addr.Address
	// Seed is the hash of the block being executed: randomness no one
	// can choose (only a proposer could grind it, at a cost). Nil outside
	// blocks.
	Seed []byte
	// Proposer is the consensus address of the block's proposer; nil
	// outside blocks.
	Proposer []byte
	// Votes is the last block's commit as consensus decided it: each
	// validator of that block's set, its power and whether it signed.
	// Nil outside blocks.
	Votes []abci.VoteInfo
	// Misbehavior is the evidence of double-signing that the block
	// carries, already verified by consensus.
	Misbehavior []abci.Misbehavior
	// Tx is the transaction being executed; nil in block hooks, genesis
	// and queries.
	Tx     *Tx
	events *[]abci.Event
}

// Tx is what the messages of one transaction share while it runs: its gas
// meter, the message being executed, and what each account has spent in it
// so far (for per-transaction limits).
type Tx struct {
	Gas *gas.Meter
	// Msg is the full protobuf name of the message being executed.
	Msg   string
	spent []txSpend
}

type txSpend struct {
	a      addr.Address
	amount uint64
}

// AddSpent adds amount to what a has spent in this tx and returns the
// new total (saturating: a total that overflows is over any limit).
func (t *Tx) AddSpent(a addr.Address, amount uint64) uint64 {
	for i := range t.spent {
		if t.spent[i].a == a {
			n := t.spent[i].amount + amount
			if n < amount {
				n = ^uint64(0)
			}
			t.spent[i].amount = n
			return n
		}
	}
	t.spent = append(t.spent, txSpend{a, amount})
	return amount
}

// ConsumeGas charges the tx n gas for what (a signature check, a proof);
// outside a tx it does nothing. Past the tx's limit it panics with
// gas.OutOfGas, which the app turns into a failed tx.
func (c *Context) ConsumeGas(n uint64, what string) {
	if c.Tx != nil {
		c.Tx.Gas.Consume(n, what)
	}
}

// NewContext returns a context that collects events into a fresh buffer.
func NewContext(kv store.KV, chainID string, height, timeUnixNano int64) *Context {
	return &Context{KV: kv, ChainID: chainID, Height: height, TimeUnixNano: timeUnixNano, events: new([]abci.Event)}
}

// With returns a copy of c over another store and a fresh event buffer, for
// work whose writes and events are kept only if it succeeds.
func (c *Context) With(kv store.KV) *Context {
	cp := *c
	cp.KV = kv
	cp.events = new([]abci.Event)
	return &cp
}

// Attr is one attribute of an event.
type Attr = abci.EventAttribute

// Key is an attribute clients search by (an address, an id): the node's
// tx indexer indexes it.
func Key(k, v string) Attr { return Attr{Key: k, Value: v, Index: true} }

// Val is an attribute clients read but do not search by (an amount): not
// indexed, which keeps the indexer's writes per tx down.
func Val(k, v string) Attr { return Attr{Key: k, Value: v} }

// Emit records an event.
func (c *Context) Emit(typ string, attrs ...Attr) {
	*c.events = append(*c.events, abci.Event{Type: typ, Attributes: attrs})
}

// Events returns what has been emitted so far.
func (c *Context) Events() []abci.Event { return *c.events }

// Msg is a message a transaction carries. The generated protobuf types
// implement it in each module's msgs.go.
type Msg interface {
	proto.Message
	// Signer is the address that must sign the transaction.
	Signer() string
	// ValidateBasic checks the message without reading state.
	ValidateBasic() error
}

// Module is a state-machine module.
type Module interface {
	// Name is the module's name, used as its store prefix, its query route
	// and its key in the genesis app state.
	Name() string
	// Msgs lists one zero value of each message type the module handles.
	Msgs() []Msg
	// Handle executes one message whose signer has been authenticated and
	// returns its typed response (nil when it has nothing to say: the
	// client learns ids from responses, never from events). It must not
	// modify msg, which the app may share between CheckTx and the block.
	Handle(ctx *Context, msg Msg) (proto.Message, error)
	// Queries lists the read-only queries the module answers.
	Queries() []QueryRoute
	// InitGenesis loads the module's part of the genesis app state; raw is
	// nil when genesis has none, and the module uses its defaults.
	InitGenesis(ctx *Context, raw json.RawMessage) error
	// DefaultGenesis is the module's genesis for a new chain.
	DefaultGenesis() json.RawMessage
}

// Query is one query a module answers: the path it is served at and the
// types of its request and response. Each wire package declares one
// variable per query; the module serves it with Serve and clients call it
// with client.Ask, so both ends agree on the types by construction.
type Query[Req, Resp proto.Message] struct {
	Path string // "/<module>/<name>"
}

// QueryRoute is a query's handler as the app routes it.
type QueryRoute struct {
	Path   string
	Handle func(ctx *Context, data []byte) (proto.Message, error)
}

// Serve returns the route that answers q with fn.
func Serve[Req, Resp proto.Message](q Query[Req, Resp], fn func(*Context, Req) (Resp, error)) QueryRoute {
	return QueryRoute{Path: q.Path, Handle: func(ctx *Context, data []byte) (proto.Message, error) {
		var zero Req
		req := zero.ProtoReflect().Type().New().Interface().(Req)
		if err := proto.Unmarshal(data, req); err != nil {
			return nil, fmt.Errorf("query %s: the request is not a %s (%v): %w", q.Path, proto.MessageName(zero), err, codes.ErrInvalidRequest)
		}
		return fn(ctx, req)
	}}
}

// Accounts is a module with module accounts (escrows, pools). No message
// may send to them directly: their balances are what their modules owe,
// and coins sent from outside would break that.
type Accounts interface {
	ModuleAccounts() []addr.Address
}

// Solvency is a module whose account holds coins it owes to others
// (deposits, bonds, escrows). Solvent checks, at the end of every block,
// that the account holds exactly what is owed; it must be cheap (a few
// reads, from totals the module keeps as it goes), since it runs on every
// block of every node.
type Solvency interface {
	Solvent(kv store.Reader) error
}

// EndBlocker is a module with work at the end of every block.
type EndBlocker interface {
	EndBlock(ctx *Context) error
}

// Importer is a module with work when a chain starts from an exported
// state (agora export): what it keeps that is bound to the old chain
// (its id, its heights) it adjusts here, after the state is loaded.
type Importer interface {
	Imported(ctx *Context) error
}

// BeginBlocker is a module with work at the start of every block.
type BeginBlocker interface {
	BeginBlock(ctx *Context) error
}

// ValidatorSetter is the module that chooses the consensus validators.
// The app asks it at genesis and after every block's end-block hooks;
// it returns only what changed (power 0 removes a validator).
type ValidatorSetter interface {
	ValidatorUpdates(ctx *Context) ([]abci.ValidatorUpdate, error)
}

// U64 formats an amount or counter for an event attribute.
func U64(n uint64) string { return strconv.FormatUint(n, 10) }

var deterministic = proto.MarshalOptions{Deterministic: true}

// MustMarshal encodes a state record deterministically. A record that does
// not encode is a bug, so it panics.
func MustMarshal(m proto.Message) []byte {
	b, err := deterministic.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// MustUnmarshal decodes a state record. A record that does not decode
// means the state on disk is damaged: it panics with store.IOError, which
// stops the node rather than letting it vote on bad state.
func MustUnmarshal(b []byte, m proto.Message) {
	if err := proto.Unmarshal(b, m); err != nil {
		panic(store.IOError{Err: fmt.Errorf("corrupt %s record: %w", proto.MessageName(m), err)})
	}
}

// DecodeGenesis reads a module's genesis JSON into g, or def when raw is
// nil (genesis without the module).
func DecodeGenesis(raw, def json.RawMessage, g proto.Message) error {
	if raw == nil {
		raw = def
	}
	if err := protojson.Unmarshal(raw, g); err != nil {
		return fmt.Errorf("genesis of %s: %w", proto.MessageName(g), err)
	}
	return nil
}

// EncodeGenesis renders a module's genesis as JSON with proto field names.
func EncodeGenesis(g proto.Message) json.RawMessage {
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(g)
	if err != nil {
		panic(err)
	}
	return b
}
