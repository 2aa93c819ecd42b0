package jobpb

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/commit"
)

// Name is the module's name and store prefix.
const Name = "job"

// Escrow holds the orders' escrowed payments.
var Escrow = addr.Module("job/escrow")

// DefaultParams are a new chain's params. With 200 ms blocks, bidding
// lasts 2 s and a lessee has 20 s to commit.
func DefaultParams() *Params {
	return &Params{MaxRedundancy: 5, DefaultBidWindow: 10, MaxBidWindow: 1000, DefaultDeadlineBlocks: 100, MaxDeadlineBlocks: 100_000,
		RevealBlocks: 20, MaxBids: 32, MaxReleases: 4, MinReputationBps: 3000, MissPenaltyBps: 100, WrongResultSlashBps: 1000,
		MaxMemoryMib: 1024, MaxFuel: 1 << 42}
}

func be(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// ResultCommitment is what a lessee (or committee member) commits to
// before revealing result: it binds the order and the committer, so a
// commitment cannot be replayed by anyone else.
func ResultCommitment(orderID uint64, committer string, r *Result, salt []byte) []byte {
	return commit.Hash(ResultCommitmentDomain, commit.U64(orderID), []byte(committer), resultKey(r), salt)
}

// ResultCommitmentDomain separates job result commitments from all others.
const ResultCommitmentDomain = "agora/job/result/v1"

// resultKey encodes what two results must share to agree.
func resultKey(r *Result) []byte {
	if r == nil {
		return nil
	}
	return cat(be(uint64(r.Code)), be(uint64(r.ExitCode)), be(r.OutputSize), r.OutputHash)
}

// Same reports whether two results agree.
func Same(a, b *Result) bool { return bytes.Equal(resultKey(a), resultKey(b)) }

func validResult(r *Result) error {
	if r == nil || r.Code == ResultCode_RESULT_CODE_UNSPECIFIED || r.Code > ResultCode_RESULT_CODE_UNAVAILABLE {
		return fmt.Errorf("job: a result needs a known code: %w", codes.ErrInvalidRequest)
	}
	if len(r.OutputHash) != 32 {
		return fmt.Errorf("job: a result's output_hash is a 32-byte sha256: %w", codes.ErrInvalidRequest)
	}
	return nil
}
