package gov

import (
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/gov/govpb"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/store"
)

// Module is governance as a chain module.
type Module struct{}

var (
	_ module.Module     = Module{}
	_ module.EndBlocker = Module{}
	_ ParamsModule      = Module{}
)

func (Module) Name() string { return govpb.Name }

func (Module) Msgs() []module.Msg {
	return []module.Msg{&govpb.MsgSubmitProposal{}, &govpb.MsgDeposit{}, &govpb.MsgVote{}}
}

func (Module) Handle(ctx *module.Context, msg module.Msg) (proto.Message, error) {
	switch m := msg.(type) {
	case *govpb.MsgSubmitProposal:
		id, err := Submit(ctx, ctx.Signer, m)
		if err != nil {
			return nil, err
		}
		return &govpb.MsgSubmitProposalResponse{ProposalId: id}, nil
	case *govpb.MsgDeposit:
		return nil, Deposit(ctx, ctx.Signer, m.ProposalId, m.Amount.Amount)
	case *govpb.MsgVote:
		return nil, CastVote(ctx, ctx.Signer, m.ProposalId, m.Option)
	}
	return nil, fmt.Errorf("gov: cannot handle %T: %w", msg, codes.ErrUnknownMsg)
}

func (Module) Queries() []module.QueryRoute {
	return []module.QueryRoute{
		module.Serve(govpb.QueryProposal, func(ctx *module.Context, r *govpb.QueryProposalRequest) (*govpb.QueryProposalResponse, error) {
			p, ok := GetProposal(ctx.KV, r.Id)
			if !ok {
				return nil, fmt.Errorf("gov: no proposal %d: %w", r.Id, codes.ErrNotFound)
			}
			resp := &govpb.QueryProposalResponse{Proposal: p, Votes: Votes(ctx.KV, r.Id)}
			if p.Status == govpb.Status_STATUS_VOTING {
				resp.Tally = Tally(ctx.KV, r.Id)
			}
			return resp, nil
		}),
		module.Serve(govpb.QueryProposals, func(ctx *module.Context, _ *govpb.QueryProposalsRequest) (*govpb.QueryProposalsResponse, error) {
			return &govpb.QueryProposalsResponse{Proposals: Proposals(ctx.KV)}, nil
		}),
		module.Serve(govpb.QueryParams, func(ctx *module.Context, _ *govpb.QueryParamsRequest) (*govpb.Params, error) {
			return GetParams(ctx.KV), nil
		}),
		module.Serve(govpb.QueryUpgrade, func(ctx *module.Context, _ *govpb.QueryUpgradeRequest) (*govpb.QueryUpgradeResponse, error) {
			return &govpb.QueryUpgradeResponse{Plan: Plan(ctx.KV), Done: Done(ctx.KV)}, nil
		}),
	}
}

func (Module) DefaultGenesis() json.RawMessage {
	return module.EncodeGenesis(&govpb.Genesis{Params: govpb.DefaultParams()})
}

func (m Module) InitGenesis(ctx *module.Context, raw json.RawMessage) error {
	var g govpb.Genesis
	if err := module.DecodeGenesis(raw, m.DefaultGenesis(), &g); err != nil {
		return fmt.Errorf("gov: %w", err)
	}
	if g.Params == nil {
		g.Params = govpb.DefaultParams()
	}
	if err := m.SetParams(ctx.KV, g.Params); err != nil {
		return fmt.Errorf("gov: genesis: %w", err)
	}
	return nil
}

// Solvent checks the deposits at the end of every block.
func (Module) Solvent(kv store.Reader) error { return Solvent(kv) }

// CheckInvariant checks every deposit record (for tests).
func (Module) CheckInvariant(kv store.Reader) error { return CheckInvariant(kv) }

// ModuleAccounts lists the module's accounts, which no message may send to.
func (Module) ModuleAccounts() []addr.Address { return []addr.Address{govpb.Deposits} }

// Params returns the module's params, for the checks of module.Params.
func (Module) Params(kv store.Reader) proto.Message { return GetParams(kv) }

// ParamRanges are the values each param may take, in genesis and in a
// proposal (governance can change its own rules, within these).
func (Module) ParamRanges() map[string]module.Range {
	return map[string]module.Range{
		"min_deposit":         {Min: 1, Max: 1 << 60},
		"min_initial_deposit": {Min: 1, Max: 1 << 60},
		"deposit_period":      {Min: 1, Max: 10_000_000},
		"voting_period":       {Min: 2, Max: 10_000_000},
		"quorum_bps":          {Min: 1, Max: 10_000},
		"threshold_bps":       {Min: 1, Max: 9_999},
		"veto_bps":            {Min: 1, Max: 10_000},
		"late_window_blocks":  {Min: 0, Max: 10_000_000},
		"extension_blocks":    {Min: 0, Max: 10_000_000},
	}
}

// SetParams stores p after checking how its params relate.
func (Module) SetParams(kv store.KV, p proto.Message) error {
	g := p.(*govpb.Params)
	if g.MinInitialDeposit > g.MinDeposit {
		return fmt.Errorf("gov: min_initial_deposit %d is above min_deposit %d: %w", g.MinInitialDeposit, g.MinDeposit, codes.ErrInvalidRequest)
	}
	if g.LateWindowBlocks >= g.VotingPeriod {
		return fmt.Errorf("gov: late_window_blocks %d must be shorter than voting_period %d: %w", g.LateWindowBlocks, g.VotingPeriod, codes.ErrInvalidRequest)
	}
	kv.Set(paramsKey, module.MustMarshal(g))
	return nil
}
