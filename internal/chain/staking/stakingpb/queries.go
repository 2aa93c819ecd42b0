package stakingpb

import "github.com/agoranet/agora/internal/chain/module"

// The staking module's queries.
var (
	QueryStake  = module.Query[*QueryStakeRequest, *QueryStakeResponse]{Path: "/staking/stake"}
	QueryParams = module.Query[*QueryParamsRequest, *Params]{Path: "/staking/params"}

	QueryValidators  = module.Query[*QueryValidatorsRequest, *QueryValidatorsResponse]{Path: "/staking/validators"}
	QueryValidator   = module.Query[*QueryValidatorRequest, *QueryValidatorResponse]{Path: "/staking/validator"}
	QueryDelegations = module.Query[*QueryDelegationsRequest, *QueryDelegationsResponse]{Path: "/staking/delegations"}
)
