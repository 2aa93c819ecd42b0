package bank

import (
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/module"
)

// Module is the bank as a chain module.
type Module struct{}

var _ module.Module = Module{}

func (Module) Name() string { return bankpb.Name }

func (Module) Msgs() []module.Msg {
	return []module.Msg{&bankpb.MsgSend{}, &bankpb.MsgMultiSend{}, &bankpb.MsgMint{}, &bankpb.MsgBurn{}, &bankpb.MsgTransferWithAuthorization{}}
}

// Handle executes a bank message. Addresses were validated by ValidateBasic.
func (Module) Handle(ctx *module.Context, msg module.Msg) (proto.Message, error) {
	switch m := msg.(type) {
	case *bankpb.MsgSend:
		if err := CheckRecipient(addr.MustParse(m.To)); err != nil {
			return nil, err
		}
		return nil, Send(ctx, ctx.Signer, addr.MustParse(m.To), m.Amount)
	case *bankpb.MsgMultiSend:
		for _, o := range m.Outputs {
			if err := CheckRecipient(addr.MustParse(o.To)); err != nil {
				return nil, err
			}
			if err := Send(ctx, ctx.Signer, addr.MustParse(o.To), o.Amount); err != nil {
				return nil, err
			}
		}
		return nil, nil
	case *bankpb.MsgMint:
		if err := CheckRecipient(addr.MustParse(m.To)); err != nil {
			return nil, err
		}
		return nil, Mint(ctx, ctx.Signer, addr.MustParse(m.To), m.Amount)
	case *bankpb.MsgBurn:
		return nil, Burn(ctx, ctx.Signer, m.Amount)
	case *bankpb.MsgTransferWithAuthorization:
		return nil, TransferWithAuthorization(ctx, m.Authorization)
	}
	return nil, fmt.Errorf("bank: cannot handle %T: %w", msg, codes.ErrUnknownMsg)
}

func (Module) Queries() []module.QueryRoute {
	return []module.QueryRoute{
		module.Serve(bankpb.QueryBalance, func(ctx *module.Context, r *bankpb.QueryBalanceRequest) (*bankpb.QueryBalanceResponse, error) {
			a, err := bankpb.ParseAddr("address", r.Address)
			if err != nil {
				return nil, err
			}
			return &bankpb.QueryBalanceResponse{Address: a.String(), Balances: Balances(ctx.KV, a)}, nil
		}),
		module.Serve(bankpb.QuerySupply, func(ctx *module.Context, _ *bankpb.QuerySupplyRequest) (*bankpb.QuerySupplyResponse, error) {
			resp := &bankpb.QuerySupplyResponse{}
			for _, d := range GetParams(ctx.KV).Denoms {
				resp.Supply = append(resp.Supply, coin.New(d.Name, Supply(ctx.KV, d.Name)))
			}
			return resp, nil
		}),
		module.Serve(bankpb.QueryParams, func(ctx *module.Context, _ *bankpb.QueryParamsRequest) (*bankpb.Params, error) {
			return GetParams(ctx.KV), nil
		}),
		module.Serve(bankpb.QueryNonce, func(ctx *module.Context, r *bankpb.QueryNonceRequest) (*bankpb.QueryNonceResponse, error) {
			a, err := bankpb.ParseAddr("address", r.Address)
			if err != nil {
				return nil, err
			}
			if len(r.Nonce) != 32 {
				return nil, fmt.Errorf("bank: a nonce is 32 bytes, got %d: %w", len(r.Nonce), codes.ErrInvalidRequest)
			}
			return &bankpb.QueryNonceResponse{Used: NonceUsed(ctx.KV, a, r.Nonce)}, nil
		}),
	}
}

// DefaultGenesis knows the native denom only; a chain with a stable unit
// names its issuer in genesis.
func (Module) DefaultGenesis() json.RawMessage {
	return module.EncodeGenesis(&bankpb.Genesis{Params: &bankpb.Params{Denoms: []*bankpb.Denom{{Name: coin.Native}}}})
}

// InitGenesis sets params and balances; supply is the sum of balances.
func (m Module) InitGenesis(ctx *module.Context, raw json.RawMessage) error {
	var g bankpb.Genesis
	if err := module.DecodeGenesis(raw, m.DefaultGenesis(), &g); err != nil {
		return fmt.Errorf("bank: %w", err)
	}
	if g.Params == nil {
		return fmt.Errorf("bank: genesis has no params")
	}
	names := map[string]bool{}
	for _, d := range g.Params.Denoms {
		if !coin.ValidDenom(d.Name) || names[d.Name] {
			return fmt.Errorf("bank: genesis: bad or repeated denom %q", d.Name)
		}
		if d.Issuer != "" {
			if _, err := bankpb.ParseAddr("issuer of "+d.Name, d.Issuer); err != nil {
				return fmt.Errorf("bank: genesis: %w", err)
			}
		}
		names[d.Name] = true
	}
	setParams(ctx.KV, g.Params)
	seen := map[addr.Address]bool{}
	for _, b := range g.Balances {
		a, err := bankpb.ParseAddr("balance address", b.Address)
		if err != nil {
			return fmt.Errorf("bank: genesis: %w", err)
		}
		if seen[a] {
			return fmt.Errorf("bank: genesis: %s listed twice", a)
		}
		seen[a] = true
		if err := coin.Validate(b.Coins); err != nil {
			return fmt.Errorf("bank: genesis balance of %s: %w", a, err)
		}
		for _, c := range b.Coins {
			if !names[c.Denom] {
				return fmt.Errorf("bank: genesis balance of %s in unknown denom %s", a, c.Denom)
			}
			supply, err := coin.Add(Supply(ctx.KV, c.Denom), c.Amount)
			if err != nil {
				return fmt.Errorf("bank: genesis supply of %s: %w", c.Denom, err)
			}
			setU64(ctx.KV, supplyKey(c.Denom), supply)
			setU64(ctx.KV, bankpb.BalanceKey(a, c.Denom), c.Amount)
		}
	}
	return nil
}
