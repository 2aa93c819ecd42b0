package jobpb

import "github.com/agoranet/agora/internal/chain/module"

// The job module's queries. QueryOrders answers at most 500 orders.
var (
	QueryOrder  = module.Query[*QueryOrderRequest, *QueryOrderResponse]{Path: "/job/order"}
	QueryOrders = module.Query[*QueryOrdersRequest, *QueryOrdersResponse]{Path: "/job/orders"}
	QueryParams = module.Query[*QueryParamsRequest, *Params]{Path: "/job/params"}
)
