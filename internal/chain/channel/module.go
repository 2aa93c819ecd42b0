package channel

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/agoranet/agora/internal/chain/channel/channelpb"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/module"
)

// Module is payment channels as a chain module.
type Module struct{}

var _ module.Module = Module{}

func (Module) Name() string { return channelpb.Name }

func (Module) Msgs() []module.Msg {
	return []module.Msg{&channelpb.MsgOpenChannel{}, &channelpb.MsgFundChannel{}, &channelpb.MsgExtendChannel{}, &channelpb.MsgClaim{}, &channelpb.MsgCloseChannel{}, &channelpb.MsgSettleExpired{}}
}

func (Module) Handle(ctx *module.Context, msg module.Msg) error {
	switch m := msg.(type) {
	case *channelpb.MsgOpenChannel:
		_, err := Open(ctx, m)
		return err
	case *channelpb.MsgFundChannel:
		return Fund(ctx, m)
	case *channelpb.MsgExtendChannel:
		return Extend(ctx, m)
	case *channelpb.MsgClaim:
		if max := GetParams(ctx.KV).MaxClaimsPerMsg; uint32(len(m.Claims)) > max {
			return fmt.Errorf("channel: %d claims in one message, limit %d: %w", len(m.Claims), max, codes.ErrTxTooLarge)
		}
		for i, c := range m.Claims {
			if err := claim(ctx, ctx.Signer, c); err != nil {
				return fmt.Errorf("claims[%d]: %w", i, err)
			}
		}
		return nil
	case *channelpb.MsgCloseChannel:
		return Close(ctx, m)
	case *channelpb.MsgSettleExpired:
		return SettleExpired(ctx, m)
	}
	return fmt.Errorf("channel: cannot handle %T: %w", msg, codes.ErrUnknownMsg)
}

// Query paths: "channel" and "anchors" (data: 8-byte big-endian id),
// "channels" (data: a QueryChannelsRequest), "params".
func (Module) Query(ctx *module.Context, path string, data []byte) (proto.Message, error) {
	switch path {
	case "channel":
		if len(data) != 8 {
			return nil, fmt.Errorf("channel: query channel takes an 8-byte id: %w", codes.ErrInvalidRequest)
		}
		return mustGet(ctx.KV, binary.BigEndian.Uint64(data))
	case "channels":
		var req channelpb.QueryChannelsRequest
		if err := proto.Unmarshal(data, &req); err != nil {
			return nil, fmt.Errorf("channel: bad channels query: %w", codes.ErrInvalidRequest)
		}
		cs, err := List(ctx.KV, req.Payer, req.Payee)
		return &channelpb.QueryChannelsResponse{Channels: cs}, err
	case "anchors":
		if len(data) != 8 {
			return nil, fmt.Errorf("channel: query anchors takes an 8-byte id: %w", codes.ErrInvalidRequest)
		}
		return &channelpb.QueryAnchorsResponse{Anchors: Anchors(ctx.KV, binary.BigEndian.Uint64(data))}, nil
	case "params":
		return GetParams(ctx.KV), nil
	}
	return nil, fmt.Errorf("channel: no query %q (try channel, channels, anchors, params): %w", path, codes.ErrInvalidRequest)
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
	if g.Params.MaxClaimsPerMsg == 0 || g.Params.MaxLifetimeBlocks < 1 {
		return fmt.Errorf("channel: genesis params must be positive")
	}
	ctx.KV.Set(paramsKey, module.MustMarshal(g.Params))
	return nil
}
