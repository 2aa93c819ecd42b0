package authpb

import "github.com/agoranet/agora/internal/chain/module"

// The auth module's queries.
var (
	QueryAccount = module.Query[*QueryAccountRequest, *Account]{Path: "/auth/account"}
	QueryParams  = module.Query[*QueryParamsRequest, *Params]{Path: "/auth/params"}
	// QueryKey says whether a key is an account's now, or was.
	QueryKey = module.Query[*QueryKeyRequest, *QueryKeyResponse]{Path: "/auth/key"}
)
