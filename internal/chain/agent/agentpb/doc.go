// Package agentpb holds the agent module's wire types: its messages, queries
// and state records (generated from proto/agora/agent/v1), their stateless
// checks, and the ids, keys and sign bytes that clients compute. A client
// imports this package, never the module's state machine in
// internal/chain/agent.
package agentpb
