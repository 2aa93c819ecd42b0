package channelpb

import "github.com/agoranet/agora/internal/chain/module"

// The channel module's queries.
var (
	QueryChannel  = module.Query[*QueryChannelRequest, *Channel]{Path: "/channel/channel"}
	QueryChannels = module.Query[*QueryChannelsRequest, *QueryChannelsResponse]{Path: "/channel/channels"}
	QueryAnchors  = module.Query[*QueryAnchorsRequest, *QueryAnchorsResponse]{Path: "/channel/anchors"}
	QueryParams   = module.Query[*QueryParamsRequest, *Params]{Path: "/channel/params"}
)
