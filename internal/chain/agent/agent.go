// Package agent gives AI agents accounts whose spending the chain limits.
// An owner creates an agent account (with the agent key's consent) and
// sets its policy: a per-transaction, per-period and lifetime maximum in
// one denom, allowed recipients and message types, a fee allowance, and an
// expiry. The bank consults the module (Restrict) for every coin that
// leaves an account — a send, a fee, a channel deposit, a bond, an escrow,
// a transfer authorization the agent signed, whoever submits it — so a
// runaway agent cannot spend more by any path. The owner can freeze,
// unfreeze and revoke at once, and gets back whatever a revoked agent held.
package agent

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/agoranet/agora/internal/chain/account"
	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/agent/agentpb"
	"github.com/agoranet/agora/internal/chain/bank"
	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/gas"
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
	ctx.ConsumeGas(gas.Ed25519Verify, "the agent key's consent")
	if !sig.Verify(m.AgentKey, agentpb.ConsentBytes(ctx.ChainID, m.Owner), m.Consent) {
		return fmt.Errorf("agent: the agent key has not consented to be %s's agent on this chain: %w", m.Owner, codes.ErrSignature)
	}
	a := addr.FromPubKey(m.AgentKey)
	// The key must still be the account's: a key it rotated away from
	// derives its address but consents to nothing (else a thief with the
	// old key would make the account its agent, and revoke it to itself).
	if !account.Holds(ctx.KV, a, m.AgentKey) {
		return fmt.Errorf("agent: %s no longer signs with this key (it rotated it); an account consents with its current key: %w", a, codes.ErrSignature)
	}
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

// Authorize enforces the restrictions of a signer that is an agent before
// its messages run: it must be usable (not frozen, revoked or expired)
// and each message must be of a type its policy allows. What a message
// spends is limited where the money moves, in Restrict.
func Authorize(ctx *module.Context, signer addr.Address, msgs []module.Msg) error {
	ag := Get(ctx.KV, signer)
	if ag == nil {
		return nil
	}
	if err := usable(ctx, ag); err != nil {
		return err
	}
	for _, m := range msgs {
		name := string(proto.MessageName(m))
		if !allowed(ag.Policy.AllowedMsgs, name) {
			return fmt.Errorf("agent: %s's policy does not allow %s: %w", signer, name, codes.ErrUnauthorized)
		}
	}
	return nil
}

// CanSign refuses a tx from an agent that is frozen, revoked or expired,
// before it pays any fee: its owner stopped it, and a proposer that
// includes its txs anyway must not be able to spend its fees.
func CanSign(ctx *module.Context, signer addr.Address) error {
	if ag := Get(ctx.KV, signer); ag != nil {
		return usable(ctx, ag)
	}
	return nil
}

// authorizationMsg is the message an agent signs when it signs a transfer
// authorization: its policy's allowed_msgs apply to it as to a tx.
const authorizationMsg = "agora.bank.v1.MsgTransferWithAuthorization"

// Restrict is the bank's restriction (bank.SetRestriction): it sees every
// coin that leaves an account, by any message of any module, and holds
// agents to their policies. A coin bound for a revoked agent goes to its
// owner instead, so whatever comes back to a revoked agent (unbonded
// stake, channel refunds, job refunds) reaches the owner.
func Restrict(ctx *module.Context, t *bank.Transfer, c *coin.Coin) (addr.Address, error) {
	to := t.To
	if !to.IsZero() && to != t.From {
		if ag := Get(ctx.KV, to); ag != nil && ag.Revoked {
			to = addr.MustParse(ag.Owner)
		}
	}
	ag := Get(ctx.KV, t.From)
	if ag == nil {
		return to, nil
	}
	// Money going back to the owner is never a leak: that is how revoking
	// sweeps an agent, and how an owner can always get its funds back.
	if to.String() == ag.Owner && len(t.For) == 0 {
		return to, nil
	}
	// A reward out of a slashed stake is owed whether or not the owner has
	// since frozen or revoked the agent: stopping it must not cancel what
	// its lie cost. Its allowed recipients still decide who may be paid.
	if err := usable(ctx, ag); err != nil && !t.Reward {
		return to, err
	}
	if t.Fee {
		return to, payFee(ctx, ag, c)
	}
	if ctx.Signer != t.From && !t.Reward {
		// Someone else's tx moves the agent's money: the agent signed a
		// transfer authorization, which its policy must allow like a tx.
		if !allowed(ag.Policy.AllowedMsgs, authorizationMsg) {
			return to, fmt.Errorf("agent: %s's policy does not allow %s: %w", ag.Address, authorizationMsg, codes.ErrUnauthorized)
		}
	}
	if c.Denom != ag.Policy.Denom {
		return to, fmt.Errorf("agent: %s may spend only %s, not %s: %w", ag.Address, ag.Policy.Denom, c.Denom, codes.ErrUnauthorized)
	}
	targets := t.For
	if len(targets) == 0 {
		targets = []addr.Address{to}
	}
	for _, r := range targets {
		if r.IsZero() && len(ag.Policy.AllowedRecipients) > 0 {
			return to, fmt.Errorf("agent: %s may only pay its allowed recipients, and burning pays no one: %w", ag.Address, codes.ErrUnauthorized)
		}
		if !r.IsZero() && !allowed(ag.Policy.AllowedRecipients, r.String()) {
			return to, fmt.Errorf("agent: %s's policy does not allow paying %s: %w", ag.Address, r, codes.ErrUnauthorized)
		}
	}
	return to, spend(ctx, addr.MustParse(ag.Address), ag, c.Amount)
}

// payFee charges a fee against the agent's fee allowance.
func payFee(ctx *module.Context, ag *agentpb.Agent, c *coin.Coin) error {
	p := ag.Policy
	rollPeriod(ag, ctx.Height)
	total, err := coin.Add(ag.FeesTotal, c.Amount)
	if err != nil || total > p.FeeAllowance {
		return fmt.Errorf("agent: %s's fee allowance is %duagr for its life and %d is paid; a fee of %s is over it (its owner raises fee_allowance with agora agent set-policy): %w",
			ag.Address, p.FeeAllowance, ag.FeesTotal, coin.String(c), codes.ErrFeeAllowance)
	}
	inPeriod := ag.FeesInPeriod + c.Amount
	if p.FeeAllowancePerPeriod > 0 && inPeriod > p.FeeAllowancePerPeriod {
		return fmt.Errorf("agent: %s may pay %duagr in fees per period of %d blocks and has paid %d; a fee of %s is over it: %w",
			ag.Address, p.FeeAllowancePerPeriod, p.PeriodBlocks, ag.FeesInPeriod, coin.String(c), codes.ErrFeeAllowance)
	}
	ag.FeesTotal, ag.FeesInPeriod = total, inPeriod
	put(ctx.KV, addr.MustParse(ag.Address), ag)
	return nil
}

// rollPeriod starts a new period when the current one has ended.
func rollPeriod(ag *agentpb.Agent, height int64) {
	if p := ag.Policy; p.PeriodBlocks > 0 && height >= ag.PeriodStart+p.PeriodBlocks {
		ag.PeriodStart += (height - ag.PeriodStart) / p.PeriodBlocks * p.PeriodBlocks
		ag.SpentInPeriod = 0
		ag.FeesInPeriod = 0
	}
}

func usable(ctx *module.Context, ag *agentpb.Agent) error {
	switch {
	case ag.Revoked:
		return fmt.Errorf("agent: %s has been revoked by its owner: %w", ag.Address, codes.ErrAgentDisabled)
	case ag.Frozen:
		return fmt.Errorf("agent: %s is frozen by its owner (agora agent unfreeze): %w", ag.Address, codes.ErrAgentDisabled)
	case ag.Policy.ExpiresAt > 0 && ctx.Height > ag.Policy.ExpiresAt:
		return fmt.Errorf("agent: %s's policy expired at height %d (its owner sets a new one): %w", ag.Address, ag.Policy.ExpiresAt, codes.ErrAgentDisabled)
	}
	return nil
}

// spend charges amount against a's limits: per transaction (the tx's
// total so far), per period and for life.
func spend(ctx *module.Context, a addr.Address, ag *agentpb.Agent, amount uint64) error {
	p := ag.Policy
	inTx := amount
	if ctx.Tx != nil {
		inTx = ctx.Tx.AddSpent(a, amount)
	}
	if p.MaxPerTx > 0 && inTx > p.MaxPerTx {
		return fmt.Errorf("agent: %s may spend at most %d%s per transaction, this one spends %d: %w", a, p.MaxPerTx, p.Denom, inTx, codes.ErrUnauthorized)
	}
	period, lifetime, end := Remaining(ag, ctx.Height)
	if amount > period {
		return fmt.Errorf("agent: %s has %d%s left this period (until height %d), this spends %d: %w", a, period, p.Denom, end, amount, codes.ErrUnauthorized)
	}
	if amount > lifetime {
		return fmt.Errorf("agent: %s has %d%s left in its lifetime limit, this spends %d: %w", a, lifetime, p.Denom, amount, codes.ErrUnauthorized)
	}
	rollPeriod(ag, ctx.Height)
	ag.SpentInPeriod += amount
	ag.SpentTotal += amount
	put(ctx.KV, a, ag)
	ctx.Emit("agent_spend", module.Key("agent", a.String()), module.Val("amount", module.U64(amount)+p.Denom))
	return nil
}

// Owns reports whether owner owns agent a.
func Owns(kv store.Reader, owner, a addr.Address) bool {
	ag := Get(kv, a)
	return ag != nil && ag.Owner == owner.String()
}
