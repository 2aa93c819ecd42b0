// Package auditpb holds the audit module's wire types: its messages, queries
// and state records (generated from proto/agora/audit/v1), their stateless
// checks, and the ids, keys and sign bytes that clients compute. A client
// imports this package, never the module's state machine in
// internal/chain/audit.
package auditpb
