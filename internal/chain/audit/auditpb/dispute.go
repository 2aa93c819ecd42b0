package auditpb

import (
	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/commit"
)

// Escrow holds challengers' bonds while their disputes run.
var Escrow = addr.Module("audit/escrow")

// KeyEscrow holds key proposers' bonds while their keys are reviewed.
var KeyEscrow = addr.Module("audit/key_escrow")

// DefaultParams are a new chain's params.
func DefaultParams() *Params {
	return &Params{ChallengeBond: 10_000_000, CommitteeSize: 3, CommitBlocks: 10, RevealBlocks: 10,
		SlashBps: 1000, RewardBps: 5000, MissPenaltyBps: 50, VerifierMinStake: 100_000_000, KeyReviewCommitBlocks: 600}
}

// CommitmentDomain separates audit vote commitments from all others.
const CommitmentDomain = "agora/audit/vote/v1"

// Commitment is what a committee member commits to before revealing: the
// response it computed, bound to the member so nobody can replay it.
func Commitment(responseHash, salt []byte, verifier string) []byte {
	return commit.Hash(CommitmentDomain, responseHash, []byte(verifier), salt)
}
