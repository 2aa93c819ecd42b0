package beacon

import (
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/beacon/beaconpb"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/store"
)

// Module is the randomness beacon as a chain module.
type Module struct{}

var (
	_ module.Module     = Module{}
	_ module.EndBlocker = Module{}
	_ module.Params     = Module{}
	_ module.Importer   = Module{}
)

func (Module) Name() string { return beaconpb.Name }

func (Module) Msgs() []module.Msg { return []module.Msg{&beaconpb.MsgCommit{}, &beaconpb.MsgReveal{}} }

func (Module) Handle(ctx *module.Context, msg module.Msg) (proto.Message, error) {
	switch m := msg.(type) {
	case *beaconpb.MsgCommit:
		return nil, CommitValue(ctx, m)
	case *beaconpb.MsgReveal:
		return nil, RevealValue(ctx, m)
	}
	return nil, fmt.Errorf("beacon: cannot handle %T: %w", msg, codes.ErrUnknownMsg)
}

func (Module) Queries() []module.QueryRoute {
	return []module.QueryRoute{
		module.Serve(beaconpb.QueryParams, func(ctx *module.Context, _ *beaconpb.QueryParamsRequest) (*beaconpb.Params, error) {
			return GetParams(ctx.KV), nil
		}),
		module.Serve(beaconpb.QueryStatus, func(ctx *module.Context, _ *beaconpb.QueryStatusRequest) (*beaconpb.QueryStatusResponse, error) {
			e := Current(ctx.KV)
			if e == nil {
				return nil, fmt.Errorf("beacon: this chain's validators are fixed at genesis, so it has no beacon: %w", codes.ErrNotFound)
			}
			b, _ := Latest(ctx.KV)
			return &beaconpb.QueryStatusResponse{Epoch: e, Latest: b}, nil
		}),
		module.Serve(beaconpb.QueryBeacon, func(ctx *module.Context, r *beaconpb.QueryBeaconRequest) (*beaconpb.QueryBeaconResponse, error) {
			b, ok := Get(ctx.KV, r.Epoch)
			if !ok {
				return nil, fmt.Errorf("beacon: no final beacon for epoch %d (it is final when the next epoch ends, and the last %d are kept): %w", r.Epoch, Keep, codes.ErrNotFound)
			}
			return &beaconpb.QueryBeaconResponse{Beacon: b}, nil
		}),
		module.Serve(beaconpb.QueryCommitments, func(ctx *module.Context, r *beaconpb.QueryCommitmentsRequest) (*beaconpb.QueryCommitmentsResponse, error) {
			return &beaconpb.QueryCommitmentsResponse{Commitments: Commitments(ctx.KV, r.Epoch)}, nil
		}),
	}
}

func (Module) DefaultGenesis() json.RawMessage {
	return module.EncodeGenesis(&beaconpb.Genesis{Params: beaconpb.DefaultParams()})
}

// InitGenesis sets the params and, on a chain whose validators come from
// stake (staking's genesis runs first), starts epoch 0 at the first block.
func (m Module) InitGenesis(ctx *module.Context, raw json.RawMessage) error {
	var g beaconpb.Genesis
	if err := module.DecodeGenesis(raw, m.DefaultGenesis(), &g); err != nil {
		return fmt.Errorf("beacon: %w", err)
	}
	if g.Params == nil {
		g.Params = beaconpb.DefaultParams()
	}
	if err := m.SetParams(ctx.KV, g.Params); err != nil {
		return fmt.Errorf("beacon: genesis: %w", err)
	}
	if On(ctx.KV) {
		begin(ctx.KV, max(ctx.Height, 1))
	}
	return nil
}

// Params returns the module's params, for the checks of module.Params.
func (Module) Params(kv store.Reader) proto.Message { return GetParams(kv) }

// ParamRanges are the values each param may take, in genesis and in a
// proposal.
func (Module) ParamRanges() map[string]module.Range {
	return map[string]module.Range{
		"epoch_blocks":     {Min: 2, Max: MaxEpochBlocks},
		"miss_bps":         {Min: 0, Max: 10_000},
		"miss_jail_blocks": {Min: 0, Max: 10_000_000},
	}
}

// SetParams stores p.
func (Module) SetParams(kv store.KV, p proto.Message) error {
	kv.Set(paramsKey, module.MustMarshal(p.(*beaconpb.Params)))
	return nil
}

// Imported restarts the epoch under way on a chain started from an
// exported state: its commitments and the last epoch's are bound to the
// old chain's id, so they are dropped (no one is penalised for them), and
// the epoch runs its full length from the new chain's first block. The
// beacon of the last epoch would then rest on the block hash alone, so
// draws asked for before the export wait for the beacon of the epoch under
// way, made wholly on the new chain.
func (Module) Imported(ctx *module.Context) error {
	e := Current(ctx.KV)
	if e == nil {
		return nil
	}
	for _, n := range []int64{e.Number - 1, e.Number} {
		for _, c := range Commitments(ctx.KV, n) {
			ctx.KV.Delete(commitmentKey(n, addr.MustParse(c.Validator)))
		}
	}
	e.StartHeight = ctx.Height
	ctx.KV.Set(epochKey, module.MustMarshal(e))
	ctx.KV.Set(resumeKey, be(e.Number))
	return nil
}
