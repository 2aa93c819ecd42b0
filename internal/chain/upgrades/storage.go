package upgrades

import (
	"github.com/agoranet/agora/internal/chain/gov"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/storage"
	"github.com/agoranet/agora/internal/chain/storage/storagepb"
)

// StorageName is the upgrade that brought the storage module: storage
// nodes, deals, proofs of storage every epoch, and repair. A chain that
// started before it has no storage state at all; the migration writes
// the module's default params, as a new chain's genesis does.
const StorageName = "storage-v1"

func init() {
	gov.RegisterUpgrade(StorageName, func(ctx *module.Context) error {
		return storage.Module{}.SetParams(ctx.KV, storagepb.DefaultParams())
	})
}
