package agentpb

import "github.com/agoranet/agora/internal/chain/module"

// The agent module's queries.
var QueryAgent = module.Query[*QueryAgentRequest, *QueryAgentResponse]{Path: "/agent/agent"}
