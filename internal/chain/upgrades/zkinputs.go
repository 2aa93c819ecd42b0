package upgrades

import (
	"github.com/agoranet/agora/internal/chain/gov"
	"github.com/agoranet/agora/internal/chain/module"
)

// ZKInputsName is the upgrade that brought per-pixel zk circuits: the
// digits-mlp circuit takes each pixel as a public input of its own, so a
// verifying key is a G1 point per pixel and logit (8,844 bytes), and a
// key proposal may carry up to 16 KiB instead of 8. That is a change of
// the rules, not of the state, so the migration has nothing to do; what
// needs the upgrade height is that the old binary refused a proposal of
// 8 to 16 KiB and this one takes it, and every node must switch at the
// same block. Keys registered before it, of the packed circuit, verify
// and prove as they did (internal/zk packed.go).
const ZKInputsName = "zk-per-pixel-inputs"

func init() {
	gov.RegisterUpgrade(ZKInputsName, func(*module.Context) error { return nil })
}
