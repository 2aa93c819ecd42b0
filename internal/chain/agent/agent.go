// Package agent gives AI agents accounts whose spending the chain limits.
// An owner creates an agent account (with the agent key's consent) and
// sets its policy: a per-transaction, per-period and lifetime maximum in
// one denom, allowed recipients and message types, and an expiry. Every
// message that moves an agent's money — a send, a channel deposit or
// top-up, a transfer authorization it signed, whoever submits it — is
// checked against the policy before it runs, so a runaway agent cannot
// spend more by any path. The owner can freeze, unfreeze and revoke at once.
package agent

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/agent/agentpb"
	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/channel"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/store"
	"github.com/agoranet/agora/internal/sig"
)

var (
	agentPrefix = []byte("agent/a/") // agent -> Agent
	ownerPrefix = []byte("agent/o/") // owner | agent -> nil
)

func agentKey(a addr.Address) []byte { return append(append([]byte(nil), agentPrefix...), a[:]...) }

// Get returns an agent record, or nil if a is not an agent.
func Get(kv store.Reader, a addr.Address) *agentpb.Agent {
	v := kv.Get(agentKey(a))
	if v == nil {
		return nil
	}
	ag := &agentpb.Agent{}
	module.MustUnmarshal(v, ag)
	return ag
}

func put(kv store.KV, a addr.Address, ag *agentpb.Agent) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(ag)
	if err != nil {
		panic(err)
	}
	kv.Set(agentKey(a), b)
}

func mustOwn(kv store.Reader, owner addr.Address, agentAddr string) (addr.Address, *agentpb.Agent, error) {
	a, err := bankpb.ParseAddr("agent", agentAddr)
	if err != nil {
		return a, nil, err
	}
	ag := Get(kv, a)
	if ag == nil {
		return a, nil, fmt.Errorf("agent: %s is not an agent account: %w", a, codes.ErrNotFound)
	}
	if ag.Owner != owner.String() {
		return a, nil, fmt.Errorf("agent: %s is owned by %s, not %s: %w", a, ag.Owner, owner, codes.ErrUnauthorized)
	}
	return a, ag, nil
}

// Create makes an agent account.
func Create(ctx *module.Context, m *agentpb.MsgCreateAgent) error {
	if !sig.Verify(m.AgentKey, agentpb.ConsentBytes(ctx.ChainID, m.Owner), m.Consent) {
		return fmt.Errorf("agent: the agent key has not consented to be %s's agent on this chain: %w", m.Owner, codes.ErrSignature)
	}
	a := addr.FromPubKey(m.AgentKey)
	if a == ctx.Signer {
		return fmt.Errorf("agent: an account cannot be its own agent: %w", codes.ErrInvalidRequest)
	}
	if Get(ctx.KV, a) != nil {
		return fmt.Errorf("agent: %s is already an agent: %w", a, codes.ErrInvalidRequest)
	}
	if Get(ctx.KV, ctx.Signer) != nil {
		return fmt.Errorf("agent: an agent cannot own agents: %w", codes.ErrUnauthorized)
	}
	put(ctx.KV, a, &agentpb.Agent{Address: a.String(), Owner: m.Owner, Policy: m.Policy, PeriodStart: ctx.Height, CreatedAt: ctx.Height})
	ctx.KV.Set(append(append(append([]byte(nil), ownerPrefix...), ctx.Signer[:]...), a[:]...), []byte{})
	ctx.Emit("create_agent", module.Key("agent", a.String()), module.Key("owner", m.Owner))
	return nil
}

// Remaining returns what ag may still spend this period and in its life
// at height (MaxUint64 where there is no limit), and when the period ends.
func Remaining(ag *agentpb.Agent, height int64) (period, lifetime uint64, periodEnd int64) {
	p := ag.Policy
	spent := ag.SpentInPeriod
	start := ag.PeriodStart
	if p.PeriodBlocks > 0 && height >= start+p.PeriodBlocks {
		start += (height - start) / p.PeriodBlocks * p.PeriodBlocks
		spent = 0
	}
	period, lifetime = ^uint64(0), ^uint64(0)
	if p.MaxPerPeriod > 0 {
		period = p.MaxPerPeriod - min(spent, p.MaxPerPeriod)
		periodEnd = start + p.PeriodBlocks
	}
	if p.MaxLifetime > 0 {
		lifetime = p.MaxLifetime - min(ag.SpentTotal, p.MaxLifetime)
	}
	return period, lifetime, periodEnd
}

func allowed(list []string, s string) bool {
	if len(list) == 0 {
		return true
	}
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Authorize enforces agent policies on a transaction's messages before
// they run: the signer's own restrictions if it is an agent, and the
// spending limits of every agent whose money a message moves. It records
// the spends, in the same cache as the messages, so they stand only if the
// messages do.
func Authorize(ctx *module.Context, signer addr.Address, msgs []module.Msg) error {
	if ag := Get(ctx.KV, signer); ag != nil {
		if err := usable(ctx, ag); err != nil {
			return err
		}
		for _, m := range msgs {
			name := string(proto.MessageName(m))
			if !allowed(ag.Policy.AllowedMsgs, name) {
				return fmt.Errorf("agent: %s's policy does not allow %s: %w", signer, name, codes.ErrUnauthorized)
			}
		}
	}
	totals := map[addr.Address]uint64{}
	var order []addr.Address
	for _, m := range msgs {
		sp, ok := m.(module.Spender)
		if !ok {
			continue
		}
		for _, s := range sp.Spends() {
			ag := Get(ctx.KV, s.From)
			if ag == nil {
				continue
			}
			if err := usable(ctx, ag); err != nil {
				return err
			}
			if s.Denom != ag.Policy.Denom {
				return fmt.Errorf("agent: %s may spend only %s, not %s: %w", s.From, ag.Policy.Denom, s.Denom, codes.ErrUnauthorized)
			}
			to := s.To
			if s.Channel != 0 {
				c := channel.Get(ctx.KV, s.Channel)
				if c == nil {
					return fmt.Errorf("agent: no channel %d: %w", s.Channel, codes.ErrNotFound)
				}
				to = addr.MustParse(c.Payee)
			}
			if to.IsZero() && len(ag.Policy.AllowedRecipients) > 0 {
				return fmt.Errorf("agent: %s may only pay its allowed recipients: %w", s.From, codes.ErrUnauthorized)
			}
			if !to.IsZero() && !allowed(ag.Policy.AllowedRecipients, to.String()) {
				return fmt.Errorf("agent: %s's policy does not allow paying %s: %w", s.From, to, codes.ErrUnauthorized)
			}
			if _, seen := totals[s.From]; !seen {
				order = append(order, s.From)
			}
			t, err := coin.Add(totals[s.From], s.Amount)
			if err != nil {
				return err
			}
			totals[s.From] = t
		}
	}
	for _, a := range order {
		if err := spend(ctx, a, totals[a]); err != nil {
			return err
		}
	}
	return nil
}

func usable(ctx *module.Context, ag *agentpb.Agent) error {
	switch {
	case ag.Revoked:
		return fmt.Errorf("agent: %s has been revoked by its owner: %w", ag.Address, codes.ErrUnauthorized)
	case ag.Frozen:
		return fmt.Errorf("agent: %s is frozen by its owner: %w", ag.Address, codes.ErrUnauthorized)
	case ag.Policy.ExpiresAt > 0 && ctx.Height > ag.Policy.ExpiresAt:
		return fmt.Errorf("agent: %s's policy expired at height %d: %w", ag.Address, ag.Policy.ExpiresAt, codes.ErrUnauthorized)
	}
	return nil
}

// spend charges amount (one transaction's total) against a's limits.
func spend(ctx *module.Context, a addr.Address, amount uint64) error {
	ag := Get(ctx.KV, a)
	p := ag.Policy
	if p.MaxPerTx > 0 && amount > p.MaxPerTx {
		return fmt.Errorf("agent: %s may spend at most %d%s per transaction, this one spends %d: %w", a, p.MaxPerTx, p.Denom, amount, codes.ErrUnauthorized)
	}
	period, lifetime, end := Remaining(ag, ctx.Height)
	if amount > period {
		return fmt.Errorf("agent: %s has %d%s left this period (until height %d), this spends %d: %w", a, period, p.Denom, end, amount, codes.ErrUnauthorized)
	}
	if amount > lifetime {
		return fmt.Errorf("agent: %s has %d%s left in its lifetime limit, this spends %d: %w", a, lifetime, p.Denom, amount, codes.ErrUnauthorized)
	}
	if p.PeriodBlocks > 0 && ctx.Height >= ag.PeriodStart+p.PeriodBlocks {
		ag.PeriodStart += (ctx.Height - ag.PeriodStart) / p.PeriodBlocks * p.PeriodBlocks
		ag.SpentInPeriod = 0
	}
	ag.SpentInPeriod += amount
	ag.SpentTotal += amount
	put(ctx.KV, a, ag)
	ctx.Emit("agent_spend", module.Key("agent", a.String()), module.Val("amount", module.U64(amount)+p.Denom))
	return nil
}
