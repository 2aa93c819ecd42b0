package providerpb

import "github.com/agoranet/agora/internal/chain/module"

// The provider module's queries.
var (
	QueryProviders = module.Query[*QueryProvidersRequest, *QueryProvidersResponse]{Path: "/provider/providers"}
	QueryProvider  = module.Query[*QueryProviderRequest, *ProviderInfo]{Path: "/provider/provider"}
	QueryParams    = module.Query[*QueryParamsRequest, *Params]{Path: "/provider/params"}
)
