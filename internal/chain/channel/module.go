package channel

import (
	"crypto/ed25519"
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

func (m *MsgOpenChannel) Signer() string { return m.Payer }

func (m *MsgOpenChannel) ValidateBasic() error {
	if _, err := bank.ParseAddr("payer", m.Payer); err != nil {
		return err
	}
	if _, err := bank.ParseAddr("payee", m.Payee); err != nil {
		return err
	}
	if m.Payer == m.Payee {
		return fmt.Errorf("channel: payer and payee are the same: %w", codes.ErrInvalidRequest)
	}
	if m.ModelId != "" {
		if err := chainprov.ValidModelID(m.ModelId); err != nil {
			return err
		}
	}
	if len(m.PayerKey) != ed25519.PublicKeySize {
		return fmt.Errorf("channel: payer_key must be a 32-byte ed25519 key: %w", codes.ErrInvalidRequest)
	}
	if len(m.SessionKey) != 0 && len(m.SessionKey) != ed25519.PublicKeySize {
		return fmt.Errorf("channel: session_key must be empty or a 32-byte ed25519 key: %w", codes.ErrInvalidRequest)
	}
	return coin.ValidatePositive(m.Deposit)
}

func (m *MsgOpenChannel) Spends() []module.Spend {
	return []module.Spend{{From: addr.MustParse(m.Payer), To: addr.MustParse(m.Payee), Denom: m.Deposit.Denom, Amount: m.Deposit.Amount}}
}

func (m *MsgFundChannel) Signer() string { return m.Payer }

func (m *MsgFundChannel) ValidateBasic() error {
	if _, err := bank.ParseAddr("payer", m.Payer); err != nil {
		return err
	}
	return coin.ValidatePositive(m.Amount)
}

// Spends of a top-up: its recipient is the channel's payee, which only
// state knows.
func (m *MsgFundChannel) Spends() []module.Spend {
	return []module.Spend{{From: addr.MustParse(m.Payer), Channel: m.ChannelId, Denom: m.Amount.Denom, Amount: m.Amount.Amount}}
}

func (m *MsgExtendChannel) Signer() string { return m.Payer }

func (m *MsgExtendChannel) ValidateBasic() error {
	_, err := bank.ParseAddr("payer", m.Payer)
	return err
}

func (m *MsgClaim) Signer() string { return m.Payee }

func (m *MsgClaim) ValidateBasic() error {
	if _, err := bank.ParseAddr("payee", m.Payee); err != nil {
		return err
	}
	if len(m.Claims) == 0 {
		return fmt.Errorf("channel: a claim message needs at least one claim: %w", codes.ErrInvalidRequest)
	}
	seen := map[uint64]bool{}
	for i, c := range m.Claims {
		if c.Voucher == nil {
			return fmt.Errorf("channel: claims[%d] has no voucher: %w", i, codes.ErrInvalidRequest)
		}
		if seen[c.Voucher.ChannelId] {
			return fmt.Errorf("channel: channel %d claimed twice in one message: %w", c.Voucher.ChannelId, codes.ErrInvalidRequest)
		}
		seen[c.Voucher.ChannelId] = true
	}
	return nil
}

func (m *MsgCloseChannel) Signer() string { return m.Payee }

func (m *MsgCloseChannel) ValidateBasic() error {
	_, err := bank.ParseAddr("payee", m.Payee)
	return err
}

func (m *MsgSettleExpired) Signer() string { return m.Payer }

func (m *MsgSettleExpired) ValidateBasic() error {
	_, err := bank.ParseAddr("payer", m.Payer)
	return err
}

// Module is payment channels as a chain module.
type Module struct{}

var _ module.Module = Module{}

func (Module) Name() string { return Name }

func (Module) Msgs() []module.Msg {
	return []module.Msg{&MsgOpenChannel{}, &MsgFundChannel{}, &MsgExtendChannel{}, &MsgClaim{}, &MsgCloseChannel{}, &MsgSettleExpired{}}
}

func (Module) Handle(ctx *module.Context, msg module.Msg) error {
	switch m := msg.(type) {
	case *MsgOpenChannel:
		_, err := Open(ctx, m)
		return err
	case *MsgFundChannel:
		return Fund(ctx, m)
	case *MsgExtendChannel:
		return Extend(ctx, m)
	case *MsgClaim:
		if max := GetParams(ctx.KV).MaxClaimsPerMsg; uint32(len(m.Claims)) > max {
			return fmt.Errorf("channel: %d claims in one message, limit %d: %w", len(m.Claims), max, codes.ErrTxTooLarge)
		}
		for i, c := range m.Claims {
			if err := claim(ctx, ctx.Signer, c); err != nil {
				return fmt.Errorf("claims[%d]: %w", i, err)
			}
		}
		return nil
	case *MsgCloseChannel:
		return Close(ctx, m)
	case *MsgSettleExpired:
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
		var req QueryChannelsRequest
		if err := proto.Unmarshal(data, &req); err != nil {
			return nil, fmt.Errorf("channel: bad channels query: %w", codes.ErrInvalidRequest)
		}
		cs, err := List(ctx.KV, req.Payer, req.Payee)
		return &QueryChannelsResponse{Channels: cs}, err
	case "anchors":
		if len(data) != 8 {
			return nil, fmt.Errorf("channel: query anchors takes an 8-byte id: %w", codes.ErrInvalidRequest)
		}
		return &QueryAnchorsResponse{Anchors: Anchors(ctx.KV, binary.BigEndian.Uint64(data))}, nil
	case "params":
		return GetParams(ctx.KV), nil
	}
	return nil, fmt.Errorf("channel: no query %q (try channel, channels, anchors, params): %w", path, codes.ErrInvalidRequest)
}

func (Module) DefaultGenesis() json.RawMessage {
	return module.EncodeGenesis(&Genesis{Params: DefaultParams()})
}

func (m Module) InitGenesis(ctx *module.Context, raw json.RawMessage) error {
	var g Genesis
	if err := module.DecodeGenesis(raw, m.DefaultGenesis(), &g); err != nil {
		return fmt.Errorf("channel: %w", err)
	}
	if g.Params == nil {
		g.Params = DefaultParams()
	}
	if g.Params.MaxClaimsPerMsg == 0 || g.Params.MaxLifetimeBlocks < 1 {
		return fmt.Errorf("channel: genesis params must be positive")
	}
	ctx.KV.Set(paramsKey, module.MustMarshal(g.Params))
	return nil
}
