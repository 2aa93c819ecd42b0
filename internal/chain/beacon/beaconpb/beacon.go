// Package beaconpb is the wire format of the beacon module: validators'
// commitments and reveals, the beacon they make, and its queries.
package beaconpb

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/module"
)

// Name is the module's name and store prefix.
const Name = "beacon"

// ValueSize is the size of a validator's random value and of the beacon.
const ValueSize = 32

// DefaultParams are a new chain's params: epochs of 10 blocks (2 s on a
// devnet, 10 s at one block a second), so a committee is drawn 10 to 20
// blocks after it is asked for; a missed reveal costs 0.1% and a jail as
// long as downtime's.
func DefaultParams() *Params {
	return &Params{EpochBlocks: 10, MissBps: 10, MissJailBlocks: 0}
}

// The module's queries.
var (
	QueryParams      = module.Query[*QueryParamsRequest, *Params]{Path: "/beacon/params"}
	QueryStatus      = module.Query[*QueryStatusRequest, *QueryStatusResponse]{Path: "/beacon/status"}
	QueryBeacon      = module.Query[*QueryBeaconRequest, *QueryBeaconResponse]{Path: "/beacon/beacon"}
	QueryCommitments = module.Query[*QueryCommitmentsRequest, *QueryCommitmentsResponse]{Path: "/beacon/commitments"}
)

// Commit is what a validator commits to for value in an epoch: bound to
// the chain, the epoch and the validator, so a commitment cannot be
// copied from another validator or replayed from another epoch.
func Commit(chainID string, epoch int64, validator string, value []byte) []byte {
	h := sha256.New()
	h.Write([]byte("agora/beacon/v1\x00"))
	h.Write([]byte(chainID))
	h.Write([]byte{0})
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(epoch)))
	h.Write([]byte(validator))
	h.Write([]byte{0})
	h.Write(value)
	return h.Sum(nil)
}

func (m *MsgCommit) Signer() string { return m.Validator }

func (m *MsgCommit) ValidateBasic() error {
	if _, err := bankpb.ParseAddr("validator", m.Validator); err != nil {
		return err
	}
	if m.Epoch < 0 {
		return fmt.Errorf("beacon: epoch %d is negative: %w", m.Epoch, codes.ErrInvalidRequest)
	}
	if len(m.Commitment) != sha256.Size {
		return fmt.Errorf("beacon: a commitment is %d bytes (beaconpb.Commit), got %d: %w", sha256.Size, len(m.Commitment), codes.ErrInvalidRequest)
	}
	return nil
}

func (m *MsgReveal) Signer() string { return m.Validator }

func (m *MsgReveal) ValidateBasic() error {
	if _, err := bankpb.ParseAddr("validator", m.Validator); err != nil {
		return err
	}
	if m.Epoch < 0 {
		return fmt.Errorf("beacon: epoch %d is negative: %w", m.Epoch, codes.ErrInvalidRequest)
	}
	if len(m.Value) != ValueSize {
		return fmt.Errorf("beacon: a revealed value is %d bytes, got %d: %w", ValueSize, len(m.Value), codes.ErrInvalidRequest)
	}
	return nil
}
