package agent

import (
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/agoranet/agora/internal/chain/bank"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/module"
)

func (m *MsgCreateAgent) Signer() string { return m.Owner }

func (m *MsgCreateAgent) ValidateBasic() error {
	if _, err := bank.ParseAddr("owner", m.Owner); err != nil {
		return err
	}
	return validatePolicy(m.Policy)
}

func (m *MsgSetPolicy) Signer() string { return m.Owner }

func (m *MsgSetPolicy) ValidateBasic() error {
	if _, err := bank.ParseAddr("owner", m.Owner); err != nil {
		return err
	}
	if _, err := bank.ParseAddr("agent", m.Agent); err != nil {
		return err
	}
	return validatePolicy(m.Policy)
}

type ownerMsg interface {
	GetOwner() string
	GetAgent() string
}

func validateOwnerMsg(m ownerMsg) error {
	if _, err := bank.ParseAddr("owner", m.GetOwner()); err != nil {
		return err
	}
	_, err := bank.ParseAddr("agent", m.GetAgent())
	return err
}

func (m *MsgFreezeAgent) Signer() string         { return m.Owner }
func (m *MsgFreezeAgent) ValidateBasic() error   { return validateOwnerMsg(m) }
func (m *MsgUnfreezeAgent) Signer() string       { return m.Owner }
func (m *MsgUnfreezeAgent) ValidateBasic() error { return validateOwnerMsg(m) }
func (m *MsgRevokeAgent) Signer() string         { return m.Owner }
func (m *MsgRevokeAgent) ValidateBasic() error   { return validateOwnerMsg(m) }

// Module is agent accounts as a chain module.
type Module struct{}

var _ module.Module = Module{}

func (Module) Name() string { return Name }

func (Module) Msgs() []module.Msg {
	return []module.Msg{&MsgCreateAgent{}, &MsgSetPolicy{}, &MsgFreezeAgent{}, &MsgUnfreezeAgent{}, &MsgRevokeAgent{}}
}

func (Module) Handle(ctx *module.Context, msg module.Msg) error {
	switch m := msg.(type) {
	case *MsgCreateAgent:
		return Create(ctx, m)
	case *MsgSetPolicy:
		a, ag, err := mustOwn(ctx.KV, ctx.Signer, m.Agent)
		if err != nil {
			return err
		}
		if ag.Revoked {
			return fmt.Errorf("agent: %s is revoked: %w", a, codes.ErrUnauthorized)
		}
		ag.Policy = m.Policy
		put(ctx.KV, a, ag)
		ctx.Emit("set_agent_policy", module.Key("agent", a.String()))
		return nil
	case *MsgFreezeAgent, *MsgUnfreezeAgent:
		om := m.(ownerMsg)
		a, ag, err := mustOwn(ctx.KV, ctx.Signer, om.GetAgent())
		if err != nil {
			return err
		}
		_, ag.Frozen = m.(*MsgFreezeAgent)
		put(ctx.KV, a, ag)
		ctx.Emit("freeze_agent", module.Key("agent", a.String()), module.Val("frozen", fmt.Sprint(ag.Frozen)))
		return nil
	case *MsgRevokeAgent:
		a, ag, err := mustOwn(ctx.KV, ctx.Signer, m.Agent)
		if err != nil {
			return err
		}
		ag.Revoked = true
		put(ctx.KV, a, ag)
		// The kill switch also sweeps the agent's funds to the owner, so
		// nothing it holds can be spent by a leaked key.
		if bal := bank.Balances(ctx.KV, a); len(bal) > 0 {
			if err := bank.Send(ctx, a, ctx.Signer, bal); err != nil {
				return err
			}
		}
		ctx.Emit("revoke_agent", module.Key("agent", a.String()))
		return nil
	}
	return fmt.Errorf("agent: cannot handle %T: %w", msg, codes.ErrUnknownMsg)
}

// Query paths: "agent" (data: address).
func (Module) Query(ctx *module.Context, path string, data []byte) (proto.Message, error) {
	if path != "agent" {
		return nil, fmt.Errorf("agent: no query %q (try agent): %w", path, codes.ErrInvalidRequest)
	}
	a, err := bank.ParseAddr("address", string(data))
	if err != nil {
		return nil, err
	}
	ag := Get(ctx.KV, a)
	if ag == nil {
		return nil, fmt.Errorf("agent: %s is not an agent account: %w", a, codes.ErrNotFound)
	}
	period, lifetime, end := Remaining(ag, ctx.Height)
	return &QueryAgentResponse{Agent: ag, RemainingInPeriod: period, RemainingLifetime: lifetime, PeriodEndsAt: end}, nil
}

func (Module) DefaultGenesis() json.RawMessage { return json.RawMessage(`{}`) }

func (Module) InitGenesis(*module.Context, json.RawMessage) error { return nil }
