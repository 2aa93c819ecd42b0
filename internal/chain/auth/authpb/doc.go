// Package authpb holds the auth module's wire types: its messages, queries
// and state records (generated from proto/agora/auth/v1), their stateless
// checks, and the ids, keys and sign bytes that clients compute. A client
// imports this package, never the module's state machine in
// internal/chain/auth.
package authpb
