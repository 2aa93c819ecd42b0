// Package auth keeps accounts and admits transactions: it checks the
// chain-id, the account sequence (replay protection) and the fee, takes the
// fee into the fee pool and bumps the sequence.
package auth

import (
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/auth/authpb"
	"github.com/agoranet/agora/internal/chain/bank"
	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/gas"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/store"
	"github.com/agoranet/agora/internal/chain/tx"
)

var (
	accountPrefix = []byte("auth/a/")
	paramsKey     = []byte("auth/params")
)

func accountKey(a addr.Address) []byte { return append(append([]byte(nil), accountPrefix...), a[:]...) }

var deterministic = proto.MarshalOptions{Deterministic: true}

// GetAccount returns a's account, or a fresh one at sequence 0.
func GetAccount(kv store.Reader, a addr.Address) *authpb.Account {
	acc := &authpb.Account{}
	if v := kv.Get(accountKey(a)); v != nil {
		if err := proto.Unmarshal(v, acc); err != nil {
			panic(store.IOError{Err: fmt.Errorf("account %s corrupt: %w", a, err)})
		}
	}
	acc.Address = a.String()
	return acc
}

func setAccount(kv store.KV, a addr.Address, acc *authpb.Account) {
	b, err := deterministic.Marshal(acc)
	if err != nil {
		panic(err)
	}
	kv.Set(accountKey(a), b)
}

// GetParams reads auth's params.
func GetParams(kv store.Reader) *authpb.Params {
	v := kv.Get(paramsKey)
	if v == nil {
		return authpb.DefaultParams()
	}
	p := &authpb.Params{}
	if err := proto.Unmarshal(v, p); err != nil {
		panic(store.IOError{Err: fmt.Errorf("auth params corrupt: %w", err)})
	}
	return p
}

// IntrinsicGas is what a tx costs before any message runs: its bytes and
// its signature.
func IntrinsicGas(d *tx.Decoded) uint64 {
	return gas.TxByte*uint64(d.Size) + gas.Ed25519Verify
}

// Admit checks a decoded tx against state and charges it: the fee moves to
// the fee pool and the sequence advances. Its writes stand even when the
// tx's messages then fail, so a failing tx still pays and cannot be replayed.
// A simulation (gas estimation) skips the sequence and the fee minimum.
func Admit(ctx *module.Context, d *tx.Decoded, simulate bool) error {
	b := d.Body
	if b.ChainId != ctx.ChainID {
		return fmt.Errorf("auth: tx is for chain %q, this is %q: %w", b.ChainId, ctx.ChainID, codes.ErrWrongChain)
	}
	p := GetParams(ctx.KV)
	if !simulate {
		if b.GasLimit > p.MaxTxGas {
			return fmt.Errorf("auth: gas limit %d is above the most one tx may use, %d; split the tx: %w", b.GasLimit, p.MaxTxGas, codes.ErrTxTooLarge)
		}
		if need := IntrinsicGas(d); b.GasLimit < need {
			return fmt.Errorf("auth: gas limit %d does not cover the tx's size and signature (%d gas); use --gas auto: %w", b.GasLimit, need, codes.ErrOutOfGas)
		}
	}
	ctx.ConsumeGas(IntrinsicGas(d), "the tx's bytes and signature")
	if len(d.Msgs) > int(p.MaxMsgs) {
		return fmt.Errorf("auth: %d messages, limit %d: %w", len(d.Msgs), p.MaxMsgs, codes.ErrTxTooLarge)
	}
	if len(b.Memo) > int(p.MaxMemoBytes) {
		return fmt.Errorf("auth: memo of %d bytes, limit %d: %w", len(b.Memo), p.MaxMemoBytes, codes.ErrTxTooLarge)
	}
	acc := GetAccount(ctx.KV, d.Signer)
	if !simulate && b.Sequence != acc.Sequence {
		return fmt.Errorf("auth: account %s expects sequence %d, tx has %d: %w", d.Signer, acc.Sequence, b.Sequence, codes.ErrSequence)
	}
	fee := b.Fee
	if fee == nil {
		fee = coin.New(coin.Native, 0)
	}
	if fee.Denom != coin.Native {
		return fmt.Errorf("auth: fee must be paid in %s, not %q: %w", coin.Native, fee.Denom, codes.ErrInsufficientFee)
	}
	if min := authpb.MinFee(p, b.GasLimit); !simulate && fee.Amount < min {
		return fmt.Errorf("auth: fee %s is below the minimum %d%s for a gas limit of %d (%d%s per million gas): %w",
			coin.String(fee), min, coin.Native, b.GasLimit, p.MinGasPrice, coin.Native, codes.ErrInsufficientFee)
	}
	if fee.Amount > 0 {
		if err := bank.Move(ctx, bank.Transfer{From: d.Signer, To: authpb.FeePool, Coins: []*coin.Coin{fee}, Fee: true}); err != nil {
			return fmt.Errorf("auth: cannot pay fee: %w", err)
		}
	}
	acc.PublicKey = b.PublicKey
	acc.Sequence++
	setAccount(ctx.KV, d.Signer, acc)
	ctx.Emit("tx", module.Key("signer", d.Signer.String()), module.Val("sequence", module.U64(b.Sequence)), module.Val("fee", coin.String(fee)))
	return nil
}

// Module is auth as a chain module. It handles no messages of its own.
type Module struct{}

var _ module.Module = Module{}

func (Module) Name() string       { return authpb.Name }
func (Module) Msgs() []module.Msg { return nil }

func (Module) Handle(ctx *module.Context, msg module.Msg) (proto.Message, error) {
	return nil, fmt.Errorf("auth: cannot handle %T: %w", msg, codes.ErrUnknownMsg)
}

func (Module) Queries() []module.QueryRoute {
	return []module.QueryRoute{
		module.Serve(authpb.QueryAccount, func(ctx *module.Context, r *authpb.QueryAccountRequest) (*authpb.Account, error) {
			a, err := bankpb.ParseAddr("address", r.Address)
			if err != nil {
				return nil, err
			}
			return GetAccount(ctx.KV, a), nil
		}),
		module.Serve(authpb.QueryParams, func(ctx *module.Context, _ *authpb.QueryParamsRequest) (*authpb.Params, error) {
			return GetParams(ctx.KV), nil
		}),
	}
}

func (Module) DefaultGenesis() json.RawMessage {
	return module.EncodeGenesis(&authpb.Genesis{Params: authpb.DefaultParams()})
}

func (m Module) InitGenesis(ctx *module.Context, raw json.RawMessage) error {
	var g authpb.Genesis
	if err := module.DecodeGenesis(raw, m.DefaultGenesis(), &g); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	if g.Params == nil {
		g.Params = authpb.DefaultParams()
	}
	if err := m.SetParams(ctx.KV, g.Params); err != nil {
		return fmt.Errorf("auth: genesis: %w", err)
	}
	return nil
}

// SetParams stores p after checking how its params relate (genesis and
// governance both call it).
func (Module) SetParams(kv store.KV, msg proto.Message) error {
	p := msg.(*authpb.Params)
	if p.MaxMsgs == 0 {
		return fmt.Errorf("max_msgs must be positive: %w", codes.ErrInvalidRequest)
	}
	if p.MaxTxGas == 0 || p.BlockGasLimit < p.MaxTxGas || p.MaxTxGas > 1<<40 || p.MinGasPrice > 1<<20 {
		return fmt.Errorf("need 0 < max_tx_gas (%d) <= block_gas_limit (%d), max_tx_gas <= 2^40 and min_gas_price <= 2^20: %w",
			p.MaxTxGas, p.BlockGasLimit, codes.ErrInvalidRequest)
	}
	b, err := deterministic.Marshal(p)
	if err != nil {
		return err
	}
	kv.Set(paramsKey, b)
	return nil
}

// ModuleAccounts lists the module's accounts, which no message may send to.
func (Module) ModuleAccounts() []addr.Address { return []addr.Address{authpb.FeePool} }

// Params returns the module's params, for the checks of module.Params.
func (Module) Params(kv store.Reader) proto.Message { return GetParams(kv) }

// ParamRanges are the values each param may take, in genesis and in a
// governance proposal.
func (Module) ParamRanges() map[string]module.Range {
	return map[string]module.Range{
		"max_msgs":        {Min: 1, Max: 1024},
		"max_memo_bytes":  {Min: 0, Max: 65_536},
		"min_gas_price":   {Min: 0, Max: 1_000_000_000},
		"max_tx_gas":      {Min: 100_000, Max: 10_000_000_000},
		"block_gas_limit": {Min: 1_000_000, Max: 100_000_000_000},
	}
}
