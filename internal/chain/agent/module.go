package agent

import (
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/agent/agentpb"
	"github.com/agoranet/agora/internal/chain/bank"
	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/provider"
	"github.com/agoranet/agora/internal/chain/staking"
)

// Module is agent accounts as a chain module.
type Module struct{}

var _ module.Module = Module{}

func (Module) Name() string { return agentpb.Name }

func (Module) Msgs() []module.Msg {
	return []module.Msg{&agentpb.MsgCreateAgent{}, &agentpb.MsgSetPolicy{}, &agentpb.MsgFreezeAgent{}, &agentpb.MsgUnfreezeAgent{}, &agentpb.MsgRevokeAgent{}}
}

func (Module) Handle(ctx *module.Context, msg module.Msg) (proto.Message, error) {
	switch m := msg.(type) {
	case *agentpb.MsgCreateAgent:
		if err := Create(ctx, m); err != nil {
			return nil, err
		}
		return &agentpb.MsgCreateAgentResponse{Agent: addr.FromPubKey(m.AgentKey).String()}, nil
	case *agentpb.MsgSetPolicy:
		a, ag, err := mustOwn(ctx.KV, ctx.Signer, m.Agent)
		if err != nil {
			return nil, err
		}
		if ag.Revoked {
			return nil, fmt.Errorf("agent: %s is revoked: %w", a, codes.ErrUnauthorized)
		}
		ag.Policy = m.Policy
		put(ctx.KV, a, ag)
		ctx.Emit("set_agent_policy", module.Key("agent", a.String()))
		return nil, nil
	case *agentpb.MsgFreezeAgent, *agentpb.MsgUnfreezeAgent:
		om := m.(interface{ GetAgent() string })
		a, ag, err := mustOwn(ctx.KV, ctx.Signer, om.GetAgent())
		if err != nil {
			return nil, err
		}
		_, ag.Frozen = m.(*agentpb.MsgFreezeAgent)
		put(ctx.KV, a, ag)
		ctx.Emit("freeze_agent", module.Key("agent", a.String()), module.Val("frozen", fmt.Sprint(ag.Frozen)))
		return nil, nil
	case *agentpb.MsgRevokeAgent:
		a, ag, err := mustOwn(ctx.KV, ctx.Signer, m.Agent)
		if err != nil {
			return nil, err
		}
		ag.Revoked = true
		put(ctx.KV, a, ag)
		// The kill switch also sweeps the agent's funds to the owner, so
		// nothing it holds can be spent by a leaked key, and starts
		// unbonding its stake. Whatever reaches the agent from now on
		// (that stake, channel refunds, job refunds) goes to the owner.
		if bal := bank.Balances(ctx.KV, a); len(bal) > 0 {
			if err := bank.Send(ctx, a, ctx.Signer, bal); err != nil {
				return nil, err
			}
		}
		// A provider agent stops serving first, so its stake stays
		// slashable for as long as its receipts can be challenged.
		if provider.Get(ctx.KV, a) != nil {
			if err := provider.Deregister(ctx, a); err != nil {
				return nil, err
			}
		}
		if err := staking.UnbondAll(ctx, a); err != nil {
			return nil, err
		}
		ctx.Emit("revoke_agent", module.Key("agent", a.String()))
		return nil, nil
	}
	return nil, fmt.Errorf("agent: cannot handle %T: %w", msg, codes.ErrUnknownMsg)
}

func (Module) Queries() []module.QueryRoute {
	return []module.QueryRoute{
		module.Serve(agentpb.QueryAgent, func(ctx *module.Context, r *agentpb.QueryAgentRequest) (*agentpb.QueryAgentResponse, error) {
			a, err := bankpb.ParseAddr("address", r.Address)
			if err != nil {
				return nil, err
			}
			ag := Get(ctx.KV, a)
			if ag == nil {
				return nil, fmt.Errorf("agent: %s is not an agent account: %w", a, codes.ErrNotFound)
			}
			period, lifetime, end := Remaining(ag, ctx.Height)
			return &agentpb.QueryAgentResponse{Agent: ag, RemainingInPeriod: period, RemainingLifetime: lifetime, PeriodEndsAt: end}, nil
		}),
	}
}

func (Module) DefaultGenesis() json.RawMessage { return json.RawMessage(`{}`) }

func (Module) InitGenesis(*module.Context, json.RawMessage) error { return nil }
