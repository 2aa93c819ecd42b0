package staking

import (
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/bank"
	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/staking/stakingpb"
	"github.com/agoranet/agora/internal/chain/store"
)

// Module is staking as a chain module.
type Module struct{}

var (
	_ module.Module          = Module{}
	_ module.EndBlocker      = Module{}
	_ module.BeginBlocker    = Module{}
	_ module.ValidatorSetter = Module{}
	_ module.Params          = Module{}
)

func (Module) Name() string { return stakingpb.Name }

func (Module) Msgs() []module.Msg {
	return []module.Msg{&stakingpb.MsgBond{}, &stakingpb.MsgUnbond{},
		&stakingpb.MsgCreateValidator{}, &stakingpb.MsgEditValidator{}, &stakingpb.MsgDelegate{}, &stakingpb.MsgUndelegate{},
		&stakingpb.MsgRedelegate{}, &stakingpb.MsgWithdrawRewards{}, &stakingpb.MsgUnjail{}, &stakingpb.MsgRotateConsensusKey{}}
}

func (Module) Handle(ctx *module.Context, msg module.Msg) (proto.Message, error) {
	switch m := msg.(type) {
	case *stakingpb.MsgBond:
		return nil, Bond(ctx, ctx.Signer, m.Amount.Amount)
	case *stakingpb.MsgUnbond:
		return nil, Unbond(ctx, ctx.Signer, m.Amount.Amount)
	case *stakingpb.MsgCreateValidator:
		return nil, CreateValidator(ctx, ctx.Signer, m)
	case *stakingpb.MsgEditValidator:
		return nil, EditValidator(ctx, ctx.Signer, m)
	case *stakingpb.MsgDelegate:
		return nil, Delegate(ctx, ctx.Signer, addr.MustParse(m.Validator), m.Amount.Amount)
	case *stakingpb.MsgUndelegate:
		return nil, Undelegate(ctx, ctx.Signer, addr.MustParse(m.Validator), m.Amount.Amount)
	case *stakingpb.MsgRedelegate:
		return nil, Redelegate(ctx, ctx.Signer, addr.MustParse(m.Src), addr.MustParse(m.Dst), m.Amount.Amount)
	case *stakingpb.MsgWithdrawRewards:
		return WithdrawRewards(ctx, ctx.Signer, addr.MustParse(m.Validator))
	case *stakingpb.MsgUnjail:
		return nil, Unjail(ctx, ctx.Signer)
	case *stakingpb.MsgRotateConsensusKey:
		return nil, RotateConsensusKey(ctx, ctx.Signer, m.NewConsensusPubkey)
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
		module.Serve(stakingpb.QueryValidators, func(ctx *module.Context, _ *stakingpb.QueryValidatorsRequest) (*stakingpb.QueryValidatorsResponse, error) {
			return &stakingpb.QueryValidatorsResponse{Validators: Validators(ctx.KV)}, nil
		}),
		module.Serve(stakingpb.QueryValidator, func(ctx *module.Context, r *stakingpb.QueryValidatorRequest) (*stakingpb.QueryValidatorResponse, error) {
			op, err := bankpb.ParseAddr("operator", r.Operator)
			if err != nil {
				return nil, err
			}
			v, ok := GetValidator(ctx.KV, op)
			if !ok {
				return nil, fmt.Errorf("staking: %s operates no validator: %w", op, codes.ErrNotFound)
			}
			return &stakingpb.QueryValidatorResponse{Validator: v, Signing: Signing(ctx.KV, op)}, nil
		}),
		module.Serve(stakingpb.QueryDelegations, func(ctx *module.Context, r *stakingpb.QueryDelegationsRequest) (*stakingpb.QueryDelegationsResponse, error) {
			d, err := bankpb.ParseAddr("delegator", r.Delegator)
			if err != nil {
				return nil, err
			}
			resp := &stakingpb.QueryDelegationsResponse{Undelegations: Undelegations(ctx.KV, d), Redelegations: Redelegations(ctx.KV, d)}
			for _, del := range Delegations(ctx.KV, d) {
				v, _ := GetValidator(ctx.KV, addr.MustParse(del.Validator))
				resp.Delegations = append(resp.Delegations, &stakingpb.DelegationInfo{Delegation: del, Tokens: TokensOf(v, del.Shares), Rewards: PendingRewards(v, del)})
			}
			return resp, nil
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
	if err := m.SetParams(ctx.KV, g.Params); err != nil {
		return fmt.Errorf("staking: genesis: %w", err)
	}
	setCeiling(ctx.KV, bank.Supply(ctx.KV, coin.Native), g.BlockTimeMs)
	if len(g.Validators) > 0 {
		ctx.KV.Set(ownsSetKey, []byte{1})
	}
	for _, gv := range g.Validators {
		op, err := bankpb.ParseAddr("validator operator", gv.Operator)
		if err != nil {
			return fmt.Errorf("staking: genesis: %w", err)
		}
		m := &stakingpb.MsgCreateValidator{Operator: gv.Operator, ConsensusPubkey: gv.ConsensusPubkey, SelfBond: coin.New(coin.Native, gv.SelfBond),
			CommissionBps: gv.CommissionBps, Moniker: gv.Moniker}
		if err := m.ValidateBasic(); err != nil {
			return fmt.Errorf("staking: genesis validator %s: %w", op, err)
		}
		if err := CreateValidator(ctx, op, m); err != nil {
			return fmt.Errorf("staking: genesis validator %s: %w", op, err)
		}
	}
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
	return []addr.Address{stakingpb.BondedPool, stakingpb.UnbondingPool, stakingpb.DelegatedPool, stakingpb.UndelegatingPool, stakingpb.RewardsPool}
}

// SetParams stores p after checking it (genesis and governance both
// call it).
func (Module) SetParams(kv store.KV, msg proto.Message) error {
	p := msg.(*stakingpb.Params)
	if p.UnbondingBlocks < 1 || p.MaxValidators < 1 || p.SignedBlocksWindow < 1 {
		return fmt.Errorf("unbonding_blocks, max_validators and signed_blocks_window must be positive: %w", codes.ErrInvalidRequest)
	}
	if p.DoubleSignBps > stakingpb.BPS || p.DowntimeBps > stakingpb.BPS || p.MinSignedBps > stakingpb.BPS || p.ProposerBonusBps > stakingpb.BPS {
		return fmt.Errorf("each bps is at most %d: %w", stakingpb.BPS, codes.ErrInvalidRequest)
	}
	if old := kv.Get(paramsKey); old != nil && GetParams(kv).SignedBlocksWindow != p.SignedBlocksWindow {
		restartWindows(kv) // slots of the old window mean nothing in the new one
	}
	kv.Set(paramsKey, module.MustMarshal(p))
	return nil
}

// Params returns the module's params, for the checks of module.Params.
func (Module) Params(kv store.Reader) proto.Message { return GetParams(kv) }

// ParamRanges are the values each param may take, in genesis and in a
// governance proposal.
func (Module) ParamRanges() map[string]module.Range {
	return map[string]module.Range{
		"unbonding_blocks":     {Min: 1, Max: 10_000_000},
		"max_validators":       {Min: 1, Max: 300},
		"min_self_delegation":  {Min: stakingpb.PowerReduction, Max: 1 << 60},
		"issuance_per_block":   {Min: 0, Max: 1 << 50}, // and never above the genesis ceiling
		"proposer_bonus_bps":   {Min: 0, Max: 2_000},
		"double_sign_bps":      {Min: 1, Max: stakingpb.BPS},
		"signed_blocks_window": {Min: 10, Max: 100_000},
		"min_signed_bps":       {Min: 1, Max: stakingpb.BPS},
		"downtime_bps":         {Min: 0, Max: 1_000},
		"downtime_jail_blocks": {Min: 1, Max: 10_000_000},
	}
}
