package job

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/bank"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/module"
	chainprov "github.com/agoranet/agora/internal/chain/provider"
)

func checkURL(field, s string, optional bool) error {
	if s == "" && optional {
		return nil
	}
	if err := chainprov.ValidEndpoint(s); err != nil {
		return fmt.Errorf("job: %s %q must be an http(s) URL of at most 256 bytes: %w", field, s, codes.ErrInvalidRequest)
	}
	return nil
}

func checkHash(field string, h []byte) error {
	if len(h) != 32 {
		return fmt.Errorf("job: %s must be a 32-byte sha256, got %d bytes: %w", field, len(h), codes.ErrInvalidRequest)
	}
	return nil
}

func (m *MsgCreateOrder) Signer() string { return m.Tenant }

func (m *MsgCreateOrder) ValidateBasic() error {
	if _, err := bank.ParseAddr("tenant", m.Tenant); err != nil {
		return err
	}
	for _, err := range []error{checkHash("module_hash", m.ModuleHash), checkURL("module_url", m.ModuleUrl, false),
		checkHash("input_hash", m.InputHash), checkURL("input_url", m.InputUrl, false), coin.ValidatePositive(m.MaxPrice)} {
		if err != nil {
			return err
		}
	}
	switch {
	case m.Fuel == 0:
		return fmt.Errorf("job: fuel must be positive: %w", codes.ErrInvalidRequest)
	case m.MemoryMib == 0:
		return fmt.Errorf("job: memory_mib must be positive: %w", codes.ErrInvalidRequest)
	case m.BidWindow < 0 || m.DeadlineBlocks < 0:
		return fmt.Errorf("job: bid_window and deadline_blocks cannot be negative: %w", codes.ErrInvalidRequest)
	case m.Redundancy > 255 || m.MaxPrice.Amount > ^uint64(0)/uint64(max(m.Redundancy, 2)):
		return fmt.Errorf("job: max_price × redundancy overflows: %w", codes.ErrInvalidAmount)
	}
	return nil
}

// Spends: the escrow, max_price × redundancy, leaves the tenant.
func (m *MsgCreateOrder) Spends() []module.Spend {
	r := uint64(m.Redundancy)
	if r == 0 {
		r = 2
	}
	return []module.Spend{{From: addr.MustParse(m.Tenant), To: Escrow, Denom: m.MaxPrice.Denom, Amount: m.MaxPrice.Amount * r}}
}

func (m *MsgCancelOrder) Signer() string { return m.Tenant }

func (m *MsgCancelOrder) ValidateBasic() error {
	_, err := bank.ParseAddr("tenant", m.Tenant)
	return err
}

func (m *MsgBid) Signer() string { return m.Provider }

func (m *MsgBid) ValidateBasic() error {
	if _, err := bank.ParseAddr("provider", m.Provider); err != nil {
		return err
	}
	return coin.ValidatePositive(m.Price)
}

func (m *MsgCommitResult) Signer() string { return m.Provider }

func (m *MsgCommitResult) ValidateBasic() error {
	if _, err := bank.ParseAddr("provider", m.Provider); err != nil {
		return err
	}
	return checkHash("commitment", m.Commitment)
}

func (m *MsgRevealResult) Signer() string { return m.Provider }

func (m *MsgRevealResult) ValidateBasic() error {
	if _, err := bank.ParseAddr("provider", m.Provider); err != nil {
		return err
	}
	if err := validResult(m.Result); err != nil {
		return err
	}
	if len(m.Salt) < 16 || len(m.Salt) > 64 {
		return fmt.Errorf("job: a salt is 16 to 64 bytes: %w", codes.ErrInvalidRequest)
	}
	return checkURL("output_url", m.OutputUrl, true)
}

func (m *MsgCommitVote) Signer() string { return m.Verifier }

func (m *MsgCommitVote) ValidateBasic() error {
	if _, err := bank.ParseAddr("verifier", m.Verifier); err != nil {
		return err
	}
	return checkHash("commitment", m.Commitment)
}

func (m *MsgRevealVote) Signer() string { return m.Verifier }

func (m *MsgRevealVote) ValidateBasic() error {
	if _, err := bank.ParseAddr("verifier", m.Verifier); err != nil {
		return err
	}
	if err := validResult(m.Result); err != nil {
		return err
	}
	if len(m.Salt) < 16 || len(m.Salt) > 64 {
		return fmt.Errorf("job: a salt is 16 to 64 bytes: %w", codes.ErrInvalidRequest)
	}
	return nil
}

// Module is the compute market as a chain module.
type Module struct{}

var _ module.Module = Module{}

func (Module) Name() string { return Name }

func (Module) Msgs() []module.Msg {
	return []module.Msg{&MsgCreateOrder{}, &MsgCancelOrder{}, &MsgBid{}, &MsgCommitResult{}, &MsgRevealResult{}, &MsgCommitVote{}, &MsgRevealVote{}}
}

func (Module) Handle(ctx *module.Context, msg module.Msg) error {
	switch m := msg.(type) {
	case *MsgCreateOrder:
		_, err := Create(ctx, m)
		return err
	case *MsgCancelOrder:
		return Cancel(ctx, m)
	case *MsgBid:
		return PlaceBid(ctx, m)
	case *MsgCommitResult:
		return CommitResult(ctx, m)
	case *MsgRevealResult:
		return RevealResult(ctx, m)
	case *MsgCommitVote:
		return CommitVote(ctx, m)
	case *MsgRevealVote:
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
		return &QueryOrderResponse{Order: o}, nil
	case "orders":
		var req QueryOrdersRequest
		if err := proto.Unmarshal(data, &req); err != nil {
			return nil, fmt.Errorf("job: bad orders query: %w", codes.ErrInvalidRequest)
		}
		return &QueryOrdersResponse{Orders: List(ctx.KV, req.Tenant, req.OpenOnly, 500)}, nil
	case "params":
		return GetParams(ctx.KV), nil
	}
	return nil, fmt.Errorf("job: no query %q (try order, orders, params): %w", path, codes.ErrInvalidRequest)
}

func (Module) DefaultGenesis() json.RawMessage {
	return module.EncodeGenesis(&Genesis{Params: DefaultParams()})
}

func (m Module) InitGenesis(ctx *module.Context, raw json.RawMessage) error {
	var g Genesis
	if err := module.DecodeGenesis(raw, m.DefaultGenesis(), &g); err != nil {
		return fmt.Errorf("job: %w", err)
	}
	if g.Params == nil {
		g.Params = DefaultParams()
	}
	p := g.Params
	if p.MaxRedundancy == 0 || p.DefaultBidWindow < 1 || p.DefaultDeadlineBlocks < 1 || p.RevealBlocks < 1 || p.MaxBids == 0 || p.MaxFuel == 0 || p.MaxMemoryMib == 0 {
		return fmt.Errorf("job: genesis params must be positive")
	}
	ctx.KV.Set(paramsKey, module.MustMarshal(p))
	return nil
}
