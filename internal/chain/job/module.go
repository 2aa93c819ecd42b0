package job

import (
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/job/jobpb"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/staking/stakingpb"
	"github.com/agoranet/agora/internal/chain/store"
)

// Module is the compute market as a chain module.
type Module struct{}

var _ module.Module = Module{}

func (Module) Name() string { return jobpb.Name }

func (Module) Msgs() []module.Msg {
	return []module.Msg{&jobpb.MsgCreateOrder{}, &jobpb.MsgCancelOrder{}, &jobpb.MsgBid{}, &jobpb.MsgCommitResult{}, &jobpb.MsgRevealResult{}, &jobpb.MsgCommitVote{}, &jobpb.MsgRevealVote{}}
}

func (Module) Handle(ctx *module.Context, msg module.Msg) (proto.Message, error) {
	switch m := msg.(type) {
	case *jobpb.MsgCreateOrder:
		o, err := Create(ctx, m)
		if err != nil {
			return nil, err
		}
		return &jobpb.MsgCreateOrderResponse{OrderId: o.Id}, nil
	case *jobpb.MsgCancelOrder:
		return nil, Cancel(ctx, m)
	case *jobpb.MsgBid:
		return nil, PlaceBid(ctx, m)
	case *jobpb.MsgCommitResult:
		return nil, CommitResult(ctx, m)
	case *jobpb.MsgRevealResult:
		return nil, RevealResult(ctx, m)
	case *jobpb.MsgCommitVote:
		return nil, CommitVote(ctx, m)
	case *jobpb.MsgRevealVote:
		return nil, RevealVote(ctx, m)
	}
	return nil, fmt.Errorf("job: cannot handle %T: %w", msg, codes.ErrUnknownMsg)
}

func (Module) Queries() []module.QueryRoute {
	return []module.QueryRoute{
		module.Serve(jobpb.QueryOrder, func(ctx *module.Context, r *jobpb.QueryOrderRequest) (*jobpb.QueryOrderResponse, error) {
			o := Get(ctx.KV, r.Id)
			if o == nil {
				return nil, fmt.Errorf("job: no order %d: %w", r.Id, codes.ErrNotFound)
			}
			return &jobpb.QueryOrderResponse{Order: o}, nil
		}),
		module.Serve(jobpb.QueryOrders, func(ctx *module.Context, r *jobpb.QueryOrdersRequest) (*jobpb.QueryOrdersResponse, error) {
			return &jobpb.QueryOrdersResponse{Orders: List(ctx.KV, r.Tenant, r.OpenOnly, 500)}, nil
		}),
		module.Serve(jobpb.QueryParams, func(ctx *module.Context, _ *jobpb.QueryParamsRequest) (*jobpb.Params, error) {
			return GetParams(ctx.KV), nil
		}),
	}
}

func (Module) DefaultGenesis() json.RawMessage {
	return module.EncodeGenesis(&jobpb.Genesis{Params: jobpb.DefaultParams()})
}

func (m Module) InitGenesis(ctx *module.Context, raw json.RawMessage) error {
	var g jobpb.Genesis
	if err := module.DecodeGenesis(raw, m.DefaultGenesis(), &g); err != nil {
		return fmt.Errorf("job: %w", err)
	}
	if g.Params == nil {
		g.Params = jobpb.DefaultParams()
	}
	if err := m.SetParams(ctx.KV, g.Params); err != nil {
		return fmt.Errorf("job: genesis params: %w", err)
	}
	return nil
}

// SetParams stores p after checking it (genesis and governance both
// call it).
func (Module) SetParams(kv store.KV, msg proto.Message) error {
	p := msg.(*jobpb.Params)
	if p.MaxRedundancy == 0 || p.DefaultBidWindow < 1 || p.DefaultDeadlineBlocks < 1 || p.RevealBlocks < 1 || p.MaxBids == 0 || p.MaxFuel == 0 || p.MaxMemoryMib == 0 {
		return fmt.Errorf("params must be positive: %w", codes.ErrInvalidRequest)
	}
	// A bps over 100% would make the first slash fail in EndBlock, and so
	// every node's next block.
	if p.MissPenaltyBps > stakingpb.BPS || p.WrongResultSlashBps > stakingpb.BPS {
		return fmt.Errorf("miss_penalty_bps and wrong_result_slash_bps are at most %d: %w", stakingpb.BPS, codes.ErrInvalidRequest)
	}
	kv.Set(paramsKey, module.MustMarshal(p))
	return nil
}

// CheckInvariant verifies that the job escrow account holds exactly what
// the open orders' holds say.
func (Module) CheckInvariant(kv store.Reader) error { return held.CheckInvariant(kv) }

// Solvent checks the job escrow at the end of every block.
func (Module) Solvent(kv store.Reader) error { return held.Solvent(kv) }

// ModuleAccounts lists the module's accounts, which no message may send to.
func (Module) ModuleAccounts() []addr.Address { return []addr.Address{jobpb.Escrow} }

// Params returns the module's params, for the checks of module.Params.
func (Module) Params(kv store.Reader) proto.Message { return GetParams(kv) }

// ParamRanges are the values each param may take, in genesis and in a
// governance proposal.
func (Module) ParamRanges() map[string]module.Range {
	return map[string]module.Range{
		"max_redundancy":          {Min: 1, Max: 32},
		"default_bid_window":      {Min: 1, Max: 100_000},
		"max_bid_window":          {Min: 1, Max: 1_000_000},
		"default_deadline_blocks": {Min: 1, Max: 1_000_000},
		"max_deadline_blocks":     {Min: 1, Max: 10_000_000},
		"reveal_blocks":           {Min: 1, Max: 100_000},
		"max_bids":                {Min: 1, Max: 1024},
		"max_releases":            {Min: 0, Max: 64},
		"min_reputation_bps":      {Min: 0, Max: 10_000},
		"miss_penalty_bps":        {Min: 0, Max: 10_000},
		"wrong_result_slash_bps":  {Min: 0, Max: 10_000},
		"max_memory_mib":          {Min: 1, Max: 65_536},
		"max_fuel":                {Min: 1, Max: 1 << 50},
	}
}
