// Package auth admits transactions: it checks the chain-id, that the key
// is the signing account's, the account sequence (replay protection) and
// the fee, takes the fee into the fee pool and bumps the sequence. Its one
// message rotates an account's key (docs/adr/0011-key-rotation.md).
package auth

import (
	"bytes"
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/agoranet/agora/internal/chain/account"
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
	"github.com/agoranet/agora/internal/sig"
)

var paramsKey = []byte("auth/params")

var deterministic = proto.MarshalOptions{Deterministic: true}

// GetAccount returns a's account, or a fresh one at sequence 0.
func GetAccount(kv store.Reader, a addr.Address) *authpb.Account { return account.Get(kv, a) }

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
	// The tx's key must be the account's: after a rotation the old key,
	// though it still derives the address, signs for nothing.
	if !account.Holds(ctx.KV, d.Signer, b.PublicKey) {
		if len(acc.PublicKey) == 0 {
			return fmt.Errorf("auth: account %s has no key yet, so its first tx must be signed by the key it derives from: %w", d.Signer, codes.ErrUnauthorized)
		}
		return fmt.Errorf("auth: the tx's key is not the one account %s signs with (it was rotated, or the key is someone else's); sign with the account's current key: %w", d.Signer, codes.ErrUnauthorized)
	}
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
	account.Put(ctx.KV, d.Signer, acc)
	ctx.Emit("tx", module.Key("signer", d.Signer.String()), module.Val("sequence", module.U64(b.Sequence)), module.Val("fee", coin.String(fee)))
	return nil
}

// RotateKey binds m's new key to the account in place of the one that
// signed this tx, which Admit has just checked is the account's.
func RotateKey(ctx *module.Context, m *authpb.MsgRotateKey) error {
	a := addr.MustParse(m.Account)
	acc := GetAccount(ctx.KV, a)
	old := acc.PublicKey
	if bytes.Equal(m.NewPublicKey, old) {
		return fmt.Errorf("auth: %s signs with this key already: %w", a, codes.ErrInvalidRequest)
	}
	for _, r := range acc.RetiredKeys {
		if bytes.Equal(r.PublicKey, m.NewPublicKey) {
			return fmt.Errorf("auth: %s retired this key at height %d; a retired key may have leaked and never signs again, so use a new one: %w", a, r.Until, codes.ErrInvalidRequest)
		}
	}
	if int64(len(acc.RetiredKeys)) >= MaxRetiredKeys {
		return fmt.Errorf("auth: %s has rotated its key %d times, the most an account may: %w", a, MaxRetiredKeys, codes.ErrInvalidRequest)
	}
	ctx.ConsumeGas(gas.Ed25519Verify, "the new key's proof of possession")
	if !sig.Verify(m.NewPublicKey, authpb.RotateKeySignBytes(ctx.ChainID, m.Account, old), m.Proof) {
		return fmt.Errorf("auth: the proof is not the new key's signature over the rotation (chain %s, account %s, current key); sign it with the new key: %w", ctx.ChainID, a, codes.ErrSignature)
	}
	acc.RetiredKeys = append(acc.RetiredKeys, &authpb.RetiredKey{PublicKey: old, Until: ctx.Height})
	acc.PublicKey = m.NewPublicKey
	account.Put(ctx.KV, a, acc)
	ctx.Emit("rotate_key", module.Key("account", a.String()), module.Val("new_key", fmt.Sprintf("%x", m.NewPublicKey)))
	return nil
}

// MaxRetiredKeys bounds an account's key history, which every key check
// of a retired key reads.
const MaxRetiredKeys = 64

// Module is auth as a chain module.
type Module struct{}

var _ module.Module = Module{}

func (Module) Name() string       { return authpb.Name }
func (Module) Msgs() []module.Msg { return []module.Msg{&authpb.MsgRotateKey{}} }

func (Module) Handle(ctx *module.Context, msg module.Msg) (proto.Message, error) {
	switch m := msg.(type) {
	case *authpb.MsgRotateKey:
		if err := RotateKey(ctx, m); err != nil {
			return nil, err
		}
		return &authpb.MsgRotateKeyResponse{}, nil
	}
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
		module.Serve(authpb.QueryKey, func(ctx *module.Context, r *authpb.QueryKeyRequest) (*authpb.QueryKeyResponse, error) {
			a, err := bankpb.ParseAddr("account", r.Account)
			if err != nil {
				return nil, err
			}
			return account.Describe(ctx.KV, a, r.PublicKey), nil
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
