//go:build agora_upgrade_demo

package upgrades

import (
	"github.com/agoranet/agora/internal/chain/gov"
	"github.com/agoranet/agora/internal/chain/module"
)

// The demo upgrade's migration rewrites state the way a real one would,
// through a module's checked setter: it doubles gov's voting period.
func init() {
	gov.RegisterUpgrade(DemoName, func(ctx *module.Context) error {
		p := gov.GetParams(ctx.KV)
		p.VotingPeriod *= 2
		return gov.Module{}.SetParams(ctx.KV, p)
	})
}
