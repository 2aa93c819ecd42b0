package stakingpb

import "github.com/agoranet/agora/internal/chain/module"

// The staking module's queries.
var (
	QueryStake  = module.Query[*QueryStakeRequest, *QueryStakeResponse]{Path: "/staking/stake"}
	QueryParams = module.Query[*QueryParamsRequest, *Params]{Path: "/staking/params"}
)
