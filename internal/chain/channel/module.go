package channel

import (
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/channel/channelpb"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/store"
)

// Module is payment channels as a chain module.
type Module struct{}

var _ module.Module = Module{}

func (Module) Name() string { return channelpb.Name }

func (Module) Msgs() []module.Msg {
	return []module.Msg{&channelpb.MsgOpenChannel{}, &channelpb.MsgFundChannel{}, &channelpb.MsgExtendChannel{}, &channelpb.MsgClaim{}, &channelpb.MsgCloseChannel{}, &channelpb.MsgSettleExpired{}, &channelpb.MsgRevokeSessionKey{}}
}

func (Module) Handle(ctx *module.Context, msg module.Msg) (proto.Message, error) {
	switch m := msg.(type) {
	case *channelpb.MsgOpenChannel:
		c, err := Open(ctx, m)
		if err != nil {
			return nil, err
		}
		return &channelpb.MsgOpenChannelResponse{ChannelId: c.Id}, nil
	case *channelpb.MsgFundChannel:
		return nil, Fund(ctx, m)
	case *channelpb.MsgExtendChannel:
		return nil, Extend(ctx, m)
	case *channelpb.MsgClaim:
		if max := GetParams(ctx.KV).MaxClaimsPerMsg; uint32(len(m.Claims)) > max {
			return nil, fmt.Errorf("channel: %d claims in one message, limit %d: %w", len(m.Claims), max, codes.ErrTxTooLarge)
		}
		for i, c := range m.Claims {
			if err := claim(ctx, ctx.Signer, c); err != nil {
				return nil, fmt.Errorf("claims[%d]: %w", i, err)
			}
		}
		return nil, nil
	case *channelpb.MsgCloseChannel:
		return nil, Close(ctx, m)
	case *channelpb.MsgSettleExpired:
		return nil, SettleExpired(ctx, m)
	case *channelpb.MsgRevokeSessionKey:
		return nil, RevokeSessionKey(ctx, m)
	}
	return nil, fmt.Errorf("channel: cannot handle %T: %w", msg, codes.ErrUnknownMsg)
}

func (Module) Queries() []module.QueryRoute {
	return []module.QueryRoute{
		module.Serve(channelpb.QueryChannel, func(ctx *module.Context, r *channelpb.QueryChannelRequest) (*channelpb.Channel, error) {
			return mustGet(ctx.KV, r.Id)
		}),
		module.Serve(channelpb.QueryChannels, func(ctx *module.Context, r *channelpb.QueryChannelsRequest) (*channelpb.QueryChannelsResponse, error) {
			cs, err := List(ctx.KV, r.Payer, r.Payee)
			return &channelpb.QueryChannelsResponse{Channels: cs}, err
		}),
		module.Serve(channelpb.QueryAnchors, func(ctx *module.Context, r *channelpb.QueryAnchorsRequest) (*channelpb.QueryAnchorsResponse, error) {
			return &channelpb.QueryAnchorsResponse{Anchors: Anchors(ctx.KV, r.ChannelId)}, nil
		}),
		module.Serve(channelpb.QueryParams, func(ctx *module.Context, _ *channelpb.QueryParamsRequest) (*channelpb.Params, error) {
			return GetParams(ctx.KV), nil
		}),
	}
}

func (Module) DefaultGenesis() json.RawMessage {
	return module.EncodeGenesis(&channelpb.Genesis{Params: channelpb.DefaultParams()})
}

func (m Module) InitGenesis(ctx *module.Context, raw json.RawMessage) error {
	var g channelpb.Genesis
	if err := module.DecodeGenesis(raw, m.DefaultGenesis(), &g); err != nil {
		return fmt.Errorf("channel: %w", err)
	}
	if g.Params == nil {
		g.Params = channelpb.DefaultParams()
	}
	if err := m.SetParams(ctx.KV, g.Params); err != nil {
		return fmt.Errorf("channel: genesis params: %w", err)
	}
	return nil
}

// SetParams stores p after checking it (genesis and governance both
// call it).
func (Module) SetParams(kv store.KV, msg proto.Message) error {
	p := msg.(*channelpb.Params)
	if p.MaxClaimsPerMsg == 0 || p.MaxLifetimeBlocks < 1 {
		return fmt.Errorf("max_claims_per_msg and max_lifetime_blocks must be positive: %w", codes.ErrInvalidRequest)
	}
	kv.Set(paramsKey, module.MustMarshal(p))
	return nil
}

// Solvent checks the channel escrow at the end of every block.
func (Module) Solvent(kv store.Reader) error { return Solvent(kv) }

// CheckInvariant checks every channel against the escrow (for tests).
func (Module) CheckInvariant(kv store.Reader) error { return CheckInvariant(kv) }

// ModuleAccounts lists the module's accounts, which no message may send to.
func (Module) ModuleAccounts() []addr.Address { return []addr.Address{channelpb.Escrow} }

// Params returns the module's params, for the checks of module.Params.
func (Module) Params(kv store.Reader) proto.Message { return GetParams(kv) }

// ParamRanges are the values each param may take, in genesis and in a
// governance proposal.
func (Module) ParamRanges() map[string]module.Range {
	return map[string]module.Range{
		"max_claims_per_msg":  {Min: 1, Max: 100_000},
		"max_lifetime_blocks": {Min: 1, Max: 1_000_000_000},
	}
}
