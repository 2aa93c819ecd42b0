package job

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/job/jobpb"
	"github.com/agoranet/agora/internal/chain/module"
)

// Module is the compute market as a chain module.
type Module struct{}

var _ module.Module = Module{}

func (Module) Name() string { return jobpb.Name }

func (Module) Msgs() []module.Msg {
	return []module.Msg{&jobpb.MsgCreateOrder{}, &jobpb.MsgCancelOrder{}, &jobpb.MsgBid{}, &jobpb.MsgCommitResult{}, &jobpb.MsgRevealResult{}, &jobpb.MsgCommitVote{}, &jobpb.MsgRevealVote{}}
}

func (Module) Handle(ctx *module.Context, msg module.Msg) error {
	switch m := msg.(type) {
	case *jobpb.MsgCreateOrder:
		_, err := Create(ctx, m)
		return err
	case *jobpb.MsgCancelOrder:
		return Cancel(ctx, m)
	case *jobpb.MsgBid:
		return PlaceBid(ctx, m)
	case *jobpb.MsgCommitResult:
		return CommitResult(ctx, m)
	case *jobpb.MsgRevealResult:
		return RevealResult(ctx, m)
	case *jobpb.MsgCommitVote:
		return CommitVote(ctx, m)
	case *jobpb.MsgRevealVote:
		return RevealVote(ctx, m)
	}
	return fmt.Errorf("job: cannot handle %T: %w", msg, codes.ErrUnknownMsg)
}

// Query paths: "order" (data: 8-byte big-endian id), "orders" (data: a
// QueryOrdersRequest; at most 500), "params".
func (Module) Query(ctx *module.Context, path string, data []byte) (proto.Message, error) {
	switch path {
	case "order":
		if len(data) != 8 {
			return nil, fmt.Errorf("job: query order takes an 8-byte id: %w", codes.ErrInvalidRequest)
		}
		o := Get(ctx.KV, binary.BigEndian.Uint64(data))
		if o == nil {
			return nil, fmt.Errorf("job: no order %d: %w", binary.BigEndian.Uint64(data), codes.ErrNotFound)
		}
		return &jobpb.QueryOrderResponse{Order: o}, nil
	case "orders":
		var req jobpb.QueryOrdersRequest
		if err := proto.Unmarshal(data, &req); err != nil {
			return nil, fmt.Errorf("job: bad orders query: %w", codes.ErrInvalidRequest)
		}
		return &jobpb.QueryOrdersResponse{Orders: List(ctx.KV, req.Tenant, req.OpenOnly, 500)}, nil
	case "params":
		return GetParams(ctx.KV), nil
	}
	return nil, fmt.Errorf("job: no query %q (try order, orders, params): %w", path, codes.ErrInvalidRequest)
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
	p := g.Params
	if p.MaxRedundancy == 0 || p.DefaultBidWindow < 1 || p.DefaultDeadlineBlocks < 1 || p.RevealBlocks < 1 || p.MaxBids == 0 || p.MaxFuel == 0 || p.MaxMemoryMib == 0 {
		return fmt.Errorf("job: genesis params must be positive")
	}
	ctx.KV.Set(paramsKey, module.MustMarshal(p))
	return nil
}
