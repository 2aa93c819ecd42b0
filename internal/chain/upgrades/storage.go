package upgrades

import (
	"github.com/agoranet/agora/internal/chain/gov"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/provider/providerpb"
	"github.com/agoranet/agora/internal/chain/staking"
	"github.com/agoranet/agora/internal/chain/storage"
	"github.com/agoranet/agora/internal/chain/storage/storagepb"
)

// StorageName is the upgrade that brought the storage module: storage
// nodes, deals, proofs of storage every epoch, retrieval probes, and
// repair. A chain that started before it has no storage state at all;
// the migration writes the module's default params, as a new chain's
// genesis does. It also moves staking to one required bond per module
// (a provider that is also a storage node backs each with its own
// stake): every bond required before was a provider's.
const StorageName = "storage-v1"

func init() {
	gov.RegisterUpgrade(StorageName, func(ctx *module.Context) error {
		staking.AttributeRequired(ctx, providerpb.Name)
		return storage.Module{}.SetParams(ctx.KV, storagepb.DefaultParams())
	})
}
