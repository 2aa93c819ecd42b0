package storage

import (
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/staking"
	"github.com/agoranet/agora/internal/chain/staking/stakingpb"
	"github.com/agoranet/agora/internal/chain/storage/storagepb"
	"github.com/agoranet/agora/internal/chain/store"
)

// Module is the storage market as a chain module.
type Module struct{}

var _ module.Module = Module{}

func (Module) Name() string { return storagepb.Name }

func (Module) Msgs() []module.Msg {
	return []module.Msg{&storagepb.MsgRegisterNode{}, &storagepb.MsgCreateDeal{}, &storagepb.MsgProve{}, &storagepb.MsgReportProbes{}, &storagepb.MsgRebut{}}
}

func (Module) Handle(ctx *module.Context, msg module.Msg) (proto.Message, error) {
	switch m := msg.(type) {
	case *storagepb.MsgRegisterNode:
		return &storagepb.MsgRegisterNodeResponse{}, Register(ctx, addr.MustParse(m.Operator), m)
	case *storagepb.MsgCreateDeal:
		d, err := CreateDeal(ctx, addr.MustParse(m.Owner), m)
		if err != nil {
			return nil, err
		}
		return &storagepb.MsgCreateDealResponse{DealId: d.Id, Cid: d.Cid, Escrow: d.Escrow}, nil
	case *storagepb.MsgProve:
		paid, err := Prove(ctx, addr.MustParse(m.Node), m)
		if err != nil {
			return nil, err
		}
		return &storagepb.MsgProveResponse{Paid: paid}, nil
	case *storagepb.MsgReportProbes:
		return &storagepb.MsgReportProbesResponse{}, ReportProbes(ctx, addr.MustParse(m.Prober), m)
	case *storagepb.MsgRebut:
		return &storagepb.MsgRebutResponse{}, Rebut(ctx, addr.MustParse(m.Node), m)
	}
	return nil, fmt.Errorf("storage: cannot handle %T: %w", msg, codes.ErrUnknownMsg)
}

const listLimit = 1000

func (Module) Queries() []module.QueryRoute {
	return []module.QueryRoute{
		module.Serve(storagepb.QueryNode, func(ctx *module.Context, r *storagepb.QueryNodeRequest) (*storagepb.QueryNodeResponse, error) {
			op, err := addr.Parse(r.Operator)
			if err != nil {
				return nil, fmt.Errorf("storage: %q is not an address: %w", r.Operator, codes.ErrInvalidRequest)
			}
			n := GetNode(ctx.KV, op)
			if n == nil {
				return nil, fmt.Errorf("storage: %s is not a storage node: %w", op, codes.ErrNotFound)
			}
			return &storagepb.QueryNodeResponse{Node: n, Stake: staking.Bonded(ctx.KV, op)}, nil
		}),
		module.Serve(storagepb.QueryNodes, func(ctx *module.Context, _ *storagepb.QueryNodesRequest) (*storagepb.QueryNodesResponse, error) {
			return &storagepb.QueryNodesResponse{Nodes: Nodes(ctx.KV)}, nil
		}),
		module.Serve(storagepb.QueryDeal, func(ctx *module.Context, r *storagepb.QueryDealRequest) (*storagepb.QueryDealResponse, error) {
			var d *storagepb.Deal
			if len(r.Cid) > 0 {
				d = DealOf(ctx.KV, r.Cid)
			} else {
				d = GetDeal(ctx.KV, r.Id)
			}
			if d == nil {
				return nil, fmt.Errorf("storage: no open deal for that object (it was never stored here, or its deal ended): %w", codes.ErrNotFound)
			}
			return DealInfo(ctx.KV, d), nil
		}),
		module.Serve(storagepb.QueryDeals, func(ctx *module.Context, r *storagepb.QueryDealsRequest) (*storagepb.QueryDealsResponse, error) {
			owner, err := addr.Parse(r.Owner)
			if err != nil {
				return nil, fmt.Errorf("storage: %q is not an address: %w", r.Owner, codes.ErrInvalidRequest)
			}
			ds := DealsOf(ctx.KV, owner, listLimit)
			for i, d := range ds {
				c := proto.Clone(d).(*storagepb.Deal)
				c.Manifest = nil // a listing names deals; their manifests are one query each
				ds[i] = c
			}
			return &storagepb.QueryDealsResponse{Deals: ds}, nil
		}),
		module.Serve(storagepb.QueryAssigned, func(ctx *module.Context, r *storagepb.QueryAssignedRequest) (*storagepb.QueryAssignedResponse, error) {
			op, err := addr.Parse(r.Node)
			if err != nil {
				return nil, fmt.Errorf("storage: %q is not an address: %w", r.Node, codes.ErrInvalidRequest)
			}
			return &storagepb.QueryAssignedResponse{Pieces: Assigned(ctx.KV, op, 100_000), Epoch: CurrentEpoch(ctx.KV)}, nil
		}),
		module.Serve(storagepb.QueryEpoch, func(ctx *module.Context, _ *storagepb.QueryEpochRequest) (*storagepb.Epoch, error) {
			return CurrentEpoch(ctx.KV), nil
		}),
		module.Serve(storagepb.QueryProbes, func(ctx *module.Context, _ *storagepb.QueryProbesRequest) (*storagepb.QueryProbesResponse, error) {
			return &storagepb.QueryProbesResponse{Probes: OpenProbes(ctx.KV, listLimit)}, nil
		}),
		module.Serve(storagepb.QueryParams, func(ctx *module.Context, _ *storagepb.QueryParamsRequest) (*storagepb.Params, error) {
			return GetParams(ctx.KV), nil
		}),
	}
}

func (Module) DefaultGenesis() json.RawMessage {
	return module.EncodeGenesis(&storagepb.Genesis{Params: storagepb.DefaultParams()})
}

func (m Module) InitGenesis(ctx *module.Context, raw json.RawMessage) error {
	var g storagepb.Genesis
	if err := module.DecodeGenesis(raw, m.DefaultGenesis(), &g); err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	if g.Params == nil {
		g.Params = storagepb.DefaultParams()
	}
	if err := m.SetParams(ctx.KV, g.Params); err != nil {
		return fmt.Errorf("storage: genesis params: %w", err)
	}
	return nil
}

// SetParams stores p after checking it (genesis and governance both
// call it).
func (Module) SetParams(kv store.KV, msg proto.Message) error {
	p := msg.(*storagepb.Params)
	switch {
	case p.EpochBlocks < 2 || p.WindowBlocks < 1 || p.WindowBlocks >= p.EpochBlocks:
		// Answers for an epoch are due before the next opens, so that only
		// one epoch's seed need be kept.
		return fmt.Errorf("storage: epoch_blocks must be at least 2 and window_blocks from 1 to epoch_blocks-1: %w", codes.ErrInvalidRequest)
	case p.MissSlashBps > stakingpb.BPS || p.RepairMarginBps > stakingpb.BPS || p.RepairReserveBps > stakingpb.BPS:
		return fmt.Errorf("storage: miss_slash_bps, repair_margin_bps and repair_reserve_bps are at most %d: %w", stakingpb.BPS, codes.ErrInvalidRequest)
	case p.RebutBlocks < 1:
		return fmt.Errorf("storage: rebut_blocks must be at least 1: %w", codes.ErrInvalidRequest)
	case p.AcceptEpochs < 1:
		return fmt.Errorf("storage: accept_epochs must be at least 1: %w", codes.ErrInvalidRequest)
	case p.ExcludeAfter == 0 || p.MaxAnswers == 0 || p.MaxNodes == 0 || p.MaxDurationEpochs < 1 || p.MaxManifestBytes == 0 || p.SuspendEpochs < 0:
		return fmt.Errorf("storage: exclude_after, max_answers, max_nodes, max_duration_epochs and max_manifest_bytes must be positive: %w", codes.ErrInvalidRequest)
	}
	// Due heights are scheduled with the epoch's length and window, and
	// epochs are numbered by them: changing either would move every
	// deadline already on the agenda. They are fixed at genesis.
	if v := kv.Get(paramsKey); v != nil {
		old := &storagepb.Params{}
		module.MustUnmarshal(v, old)
		if old.EpochBlocks != p.EpochBlocks || old.WindowBlocks != p.WindowBlocks {
			return fmt.Errorf("storage: epoch_blocks and window_blocks are fixed at genesis (%d and %d): every scheduled proof is due by them: %w", old.EpochBlocks, old.WindowBlocks, codes.ErrInvalidRequest)
		}
	}
	kv.Set(paramsKey, module.MustMarshal(p))
	return nil
}

// CheckInvariant verifies that the storage escrow holds exactly what the
// open deals' holds say.
func (Module) CheckInvariant(kv store.Reader) error { return held.CheckInvariant(kv) }

// Solvent checks the storage escrow at the end of every block.
func (Module) Solvent(kv store.Reader) error { return held.Solvent(kv) }

// ModuleAccounts lists the module's accounts, which no message may send to.
func (Module) ModuleAccounts() []addr.Address { return []addr.Address{storagepb.Escrow} }

// Params returns the module's params, for the checks of module.Params.
func (Module) Params(kv store.Reader) proto.Message { return GetParams(kv) }

// ParamRanges are the values each param may take, in genesis and in a
// governance proposal.
func (Module) ParamRanges() map[string]module.Range {
	return map[string]module.Range{
		"epoch_blocks":         {Min: 2, Max: 1_000_000},
		"window_blocks":        {Min: 1, Max: 1_000_000},
		"min_stake":            {Min: 0, Max: 1 << 62},
		"miss_slash_bps":       {Min: 0, Max: 10_000},
		"suspend_epochs":       {Min: 0, Max: 1_000_000},
		"exclude_after":        {Min: 1, Max: 1_000},
		"repair_margin_bps":    {Min: 0, Max: 10_000},
		"repair_price_per_gib": {Min: 0, Max: 1 << 40},
		"repair_reserve_bps":   {Min: 0, Max: 10_000},
		"max_manifest_bytes":   {Min: 1, Max: 60 << 10}, // a deal's tx is at most 64 KiB
		"max_duration_epochs":  {Min: 1, Max: 100_000_000},
		"max_answers":          {Min: 1, Max: 4_096},
		"max_nodes":            {Min: 1, Max: 10_000},
		"accept_epochs":        {Min: 1, Max: 1_000},
		"probes_per_epoch":     {Min: 0, Max: 64},
		"rebut_blocks":         {Min: 1, Max: 1_000_000},
	}
}
