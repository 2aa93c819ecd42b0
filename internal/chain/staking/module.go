package staking

import (
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/staking/stakingpb"
	"github.com/agoranet/agora/internal/chain/store"
)

// Module is staking as a chain module.
type Module struct{}

var (
	_ module.Module     = Module{}
	_ module.EndBlocker = Module{}
)

func (Module) Name() string { return stakingpb.Name }

func (Module) Msgs() []module.Msg { return []module.Msg{&stakingpb.MsgBond{}, &stakingpb.MsgUnbond{}} }

func (Module) Handle(ctx *module.Context, msg module.Msg) (proto.Message, error) {
	switch m := msg.(type) {
	case *stakingpb.MsgBond:
		return nil, Bond(ctx, ctx.Signer, m.Amount.Amount)
	case *stakingpb.MsgUnbond:
		return nil, Unbond(ctx, ctx.Signer, m.Amount.Amount)
	}
	return nil, fmt.Errorf("staking: cannot handle %T: %w", msg, codes.ErrUnknownMsg)
}

func (Module) Queries() []module.QueryRoute {
	return []module.QueryRoute{
		module.Serve(stakingpb.QueryStake, func(ctx *module.Context, r *stakingpb.QueryStakeRequest) (*stakingpb.QueryStakeResponse, error) {
			a, err := bankpb.ParseAddr("address", r.Address)
			if err != nil {
				return nil, err
			}
			return &stakingpb.QueryStakeResponse{Stake: Get(ctx.KV, a), Unbondings: Unbondings(ctx.KV, a)}, nil
		}),
		module.Serve(stakingpb.QueryParams, func(ctx *module.Context, _ *stakingpb.QueryParamsRequest) (*stakingpb.Params, error) {
			return GetParams(ctx.KV), nil
		}),
	}
}

func (Module) DefaultGenesis() json.RawMessage {
	return module.EncodeGenesis(&stakingpb.Genesis{Params: stakingpb.DefaultParams()})
}

// InitGenesis sets params and bonds genesis stake out of genesis balances.
func (m Module) InitGenesis(ctx *module.Context, raw json.RawMessage) error {
	var g stakingpb.Genesis
	if err := module.DecodeGenesis(raw, m.DefaultGenesis(), &g); err != nil {
		return fmt.Errorf("staking: %w", err)
	}
	if g.Params == nil {
		g.Params = stakingpb.DefaultParams()
	}
	if g.Params.UnbondingBlocks < 1 {
		return fmt.Errorf("staking: genesis: unbonding_blocks must be at least 1")
	}
	ctx.KV.Set(paramsKey, module.MustMarshal(g.Params))
	for _, b := range g.Bonds {
		a, err := bankpb.ParseAddr("bond staker", b.Staker)
		if err != nil {
			return fmt.Errorf("staking: genesis: %w", err)
		}
		if err := Bond(ctx, a, b.Amount); err != nil {
			return fmt.Errorf("staking: genesis bond of %s: %w", a, err)
		}
	}
	return nil
}

// Solvent checks the stake pools at the end of every block.
func (Module) Solvent(kv store.Reader) error { return Solvent(kv) }

// CheckInvariant checks every stake record against the pools (for tests).
func (Module) CheckInvariant(kv store.Reader) error { return CheckInvariant(kv) }

// ModuleAccounts lists the module's accounts, which no message may send to.
func (Module) ModuleAccounts() []addr.Address {
	return []addr.Address{stakingpb.BondedPool, stakingpb.UnbondingPool}
}

// Params returns the module's params, for the checks of module.Params.
func (Module) Params(kv store.Reader) proto.Message { return GetParams(kv) }

// ParamRanges are the values each param may take, in genesis and in a
// governance proposal.
func (Module) ParamRanges() map[string]module.Range {
	return map[string]module.Range{
		"unbonding_blocks": {Min: 1, Max: 10_000_000},
	}
}
