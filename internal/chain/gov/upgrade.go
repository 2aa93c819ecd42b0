package gov

import (
	"fmt"

	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/gov/govpb"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/store"
)

// An upgrade is a plan (a name and a height) that a passed proposal
// schedules. At that height every node runs the plan's migration before
// anything else in the block, if its binary has one registered under the
// plan's name; a binary that has none halts there, naming the plan, and
// the operator starts the one that does. The block is replayed on start,
// so the new binary migrates and the chain continues.

// Migration is the state change a new binary makes at its upgrade.
type Migration func(ctx *module.Context) error

var migrations = map[string]Migration{}

// RegisterUpgrade registers the migration this binary runs for the
// upgrade name. A binary registers its upgrades at init; a test that
// registers one removes it with the returned func.
func RegisterUpgrade(name string, m Migration) (unregister func()) {
	migrations[name] = m
	return func() { delete(migrations, name) }
}

// UpgradeNeeded halts a node at an upgrade its binary does not know.
type UpgradeNeeded struct{ Plan *govpb.UpgradePlan }

func (u UpgradeNeeded) Error() string {
	info := u.Plan.Info
	if info == "" {
		info = "see the proposal"
	}
	return fmt.Sprintf("UPGRADE %q NEEDED at height %d: this binary does not have it. Stop the node and start the binary that does (%s); "+
		"it migrates the state and the chain continues", u.Plan.Name, u.Plan.Height, info)
}

// Plan returns the scheduled upgrade, if any.
func Plan(kv store.Reader) *govpb.UpgradePlan {
	v := kv.Get(planKey)
	if v == nil {
		return nil
	}
	p := &govpb.UpgradePlan{}
	module.MustUnmarshal(v, p)
	return p
}

// Done lists the upgrades this chain has run, by name.
func Done(kv store.Reader) []*govpb.UpgradePlan {
	it := kv.Iterator(donePrefix, store.PrefixEnd(donePrefix))
	defer it.Close()
	var out []*govpb.UpgradePlan
	for ; it.Valid(); it.Next() {
		p := &govpb.UpgradePlan{}
		module.MustUnmarshal(it.Value(), p)
		out = append(out, p)
	}
	return out
}

// schedule records plan; a later plan replaces an earlier one not yet run.
func schedule(ctx *module.Context, plan *govpb.UpgradePlan) error {
	if plan.Height <= ctx.Height {
		return fmt.Errorf("gov: an upgrade at height %d is not in the future (the chain is at %d): %w", plan.Height, ctx.Height, codes.ErrInvalidRequest)
	}
	if ctx.KV.Get(key(donePrefix, []byte(plan.Name))) != nil {
		return fmt.Errorf("gov: upgrade %q has already run; name the next one anew: %w", plan.Name, codes.ErrInvalidRequest)
	}
	ctx.KV.Set(planKey, module.MustMarshal(plan))
	ctx.Emit("upgrade_scheduled", module.Key("name", plan.Name), module.Val("height", module.U64(uint64(plan.Height))))
	return nil
}

// BeginUpgrade runs at the start of every block, before any module's
// hooks: at a plan's height it runs the plan's migration, or halts this
// node with UpgradeNeeded if the binary has none.
func BeginUpgrade(ctx *module.Context) error {
	plan := Plan(ctx.KV)
	if plan == nil || plan.Height != ctx.Height {
		return nil
	}
	m, ok := migrations[plan.Name]
	if !ok {
		return UpgradeNeeded{plan}
	}
	if err := m(ctx); err != nil {
		return fmt.Errorf("gov: upgrade %q: the migration failed: %w", plan.Name, err)
	}
	ctx.KV.Delete(planKey)
	ctx.KV.Set(key(donePrefix, []byte(plan.Name)), module.MustMarshal(plan))
	ctx.Emit("upgrade_done", module.Key("name", plan.Name), module.Val("height", module.U64(uint64(plan.Height))))
	return nil
}
