package auditpb

import (
	"crypto/sha256"

	"github.com/agoranet/agora/internal/chain/addr"
)

// Escrow holds challengers' bonds while their disputes run.
var Escrow = addr.Module("audit/escrow")

// DefaultParams are a new chain's params.
func DefaultParams() *Params {
	return &Params{ChallengeBond: 10_000_000, CommitteeSize: 3, CommitBlocks: 10, RevealBlocks: 10,
		SlashBps: 1000, RewardBps: 5000, MissPenaltyBps: 50, VerifierMinStake: 100_000_000}
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// Commitment is what a committee member commits to before revealing.
func Commitment(responseHash, salt []byte, verifier string) []byte {
	h := sha256.Sum256(cat(responseHash, salt, []byte(verifier)))
	return h[:]
}
