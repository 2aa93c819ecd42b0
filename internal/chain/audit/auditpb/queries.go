package auditpb

import "github.com/agoranet/agora/internal/chain/module"

// The audit module's queries.
var (
	QueryKey     = module.Query[*QueryKeyRequest, *ModelKey]{Path: "/audit/key"}
	QueryProven  = module.Query[*QueryProvenRequest, *QueryProvenResponse]{Path: "/audit/proven"}
	QueryDispute = module.Query[*QueryDisputeRequest, *QueryDisputeResponse]{Path: "/audit/dispute"}
	QueryReview  = module.Query[*QueryKeyReviewRequest, *KeyReview]{Path: "/audit/key_review"}
	QueryParams  = module.Query[*QueryParamsRequest, *Params]{Path: "/audit/params"}
)
