package bankpb

import "github.com/agoranet/agora/internal/chain/module"

// The bank module's queries.
var (
	QueryBalance = module.Query[*QueryBalanceRequest, *QueryBalanceResponse]{Path: "/bank/balance"}
	QuerySupply  = module.Query[*QuerySupplyRequest, *QuerySupplyResponse]{Path: "/bank/supply"}
	QueryParams  = module.Query[*QueryParamsRequest, *Params]{Path: "/bank/params"}
	QueryNonce   = module.Query[*QueryNonceRequest, *QueryNonceResponse]{Path: "/bank/nonce"}
)
