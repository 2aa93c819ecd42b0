package stakingpb

import (
	"github.com/agoranet/agora/internal/chain/addr"
)

// Name is the module's name and store prefix.
const Name = "staking"

// Module accounts holding the stake.
var (
	BondedPool    = addr.Module("staking/bonded")
	UnbondingPool = addr.Module("staking/unbonding")
)

// DefaultParams are a new chain's params.
func DefaultParams() *Params { return &Params{UnbondingBlocks: 100} }

// BPS is the basis-point denominator of slashing fractions.
const BPS = 10_000
