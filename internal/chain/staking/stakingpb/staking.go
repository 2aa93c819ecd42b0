package stakingpb

import (
	"github.com/agoranet/agora/internal/chain/addr"
)

// Name is the module's name and store prefix.
const Name = "staking"

// Module accounts holding the stake. Providers' stake and validators'
// stake are separate roles, in separate pools, so that each pool's
// invariant is one comparison.
var (
	BondedPool    = addr.Module("staking/bonded")
	UnbondingPool = addr.Module("staking/unbonding")
	// DelegatedPool holds every validator's tokens, UndelegatingPool the
	// undelegations on their way back, RewardsPool the rewards and
	// commission not yet withdrawn.
	DelegatedPool    = addr.Module("staking/delegated")
	UndelegatingPool = addr.Module("staking/undelegating")
	RewardsPool      = addr.Module("staking/rewards")
)

// DefaultParams are a new chain's params.
func DefaultParams() *Params {
	return &Params{
		UnbondingBlocks:    100,
		MaxValidators:      100,
		MinSelfDelegation:  1_000_000,
		IssuancePerBlock:   1_000_000,
		ProposerBonusBps:   500,
		DoubleSignBps:      500,
		SignedBlocksWindow: 100,
		MinSignedBps:       5_000,
		DowntimeBps:        1,
		DowntimeJailBlocks: 100,
	}
}

// PowerReduction is the uagr per unit of consensus voting power.
const PowerReduction = 1_000_000

// MaxCommissionBps is a commission of 100%.
const MaxCommissionBps = BPS

// BPS is the basis-point denominator of slashing fractions.
const BPS = 10_000
