package verifier_test

import "github.com/agoranet/agora/internal/chain/addr"

func bankAddr(pub []byte) string { return addr.FromPubKey(pub).String() }
