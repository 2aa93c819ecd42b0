package auditpb

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/agoranet/agora/internal/chain/commit"

	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/provider/providerpb"
	"github.com/agoranet/agora/internal/receipt"
	"github.com/agoranet/agora/internal/zk"
)

// Name is the module's name and store prefix.
const Name = "audit"

// Limits on what a message may carry. A verifying key holds a point for
// each public input: digits-mlp's is 8,844 bytes for its 256 pixels and
// 10 logits. The limit was 8 KiB when the circuit packed the pixels (keys
// of 940 bytes); a network that ran that binary moves to this one at the
// upgrade upgrades.ZKInputsName, since a block may hold a proposal that
// the old limit refused.
const (
	MaxKeyBytes   = 16 << 10
	MaxProofBytes = 1 << 10
)

// InferenceID names a proven inference: the hash of model, input and output.
func InferenceID(modelID string, input []byte, logits []int32) []byte {
	h := sha256.New()
	h.Write([]byte(modelID))
	h.Write(input)
	for _, l := range logits {
		h.Write(binary.BigEndian.AppendUint32(nil, uint32(l)))
	}
	return h.Sum(nil)
}

// MinContributors is how many distinct staked verifiers a key's setup
// needs: with two, no single party (a provider among them) knows the
// setup's toxic waste unless both collude.
const MinContributors = 2

func (m *MsgProposeModelKey) Signer() string { return m.Proposer }

func (m *MsgProposeModelKey) ValidateBasic() error {
	if _, err := bankpb.ParseAddr("proposer", m.Proposer); err != nil {
		return err
	}
	if err := providerpb.ValidModelID(m.ModelId); err != nil {
		return err
	}
	if len(m.VerifyingKey) == 0 || len(m.VerifyingKey) > MaxKeyBytes {
		return fmt.Errorf("audit: verifying key of %d bytes; want 1 to %d: %w", len(m.VerifyingKey), MaxKeyBytes, codes.ErrInvalidRequest)
	}
	if len(m.TranscriptDigest) != 32 || m.TranscriptUrl == "" || len(m.TranscriptUrl) > 512 {
		return fmt.Errorf("audit: a key proposal needs the transcript's 32-byte digest and a URL of at most 512 bytes (agora zk setup writes both): %w", codes.ErrKeyEvidence)
	}
	if len(m.Contributors) < MinContributors || len(m.Contributors) > 64 {
		return fmt.Errorf("audit: the setup has %d contributors; a key needs %d to 64 distinct staked verifiers: %w", len(m.Contributors), MinContributors, codes.ErrKeyEvidence)
	}
	seen := map[string]bool{}
	for _, c := range m.Contributors {
		if len(c) != 32 {
			return fmt.Errorf("audit: a contributor is an ed25519 public key of 32 bytes, got %d: %w", len(c), codes.ErrKeyEvidence)
		}
		if seen[string(c)] {
			return fmt.Errorf("audit: contributor %x appears twice; the contributors must be distinct: %w", c[:4], codes.ErrKeyEvidence)
		}
		seen[string(c)] = true
	}
	return nil
}

func (m *MsgCommitKeyVote) Signer() string { return m.Verifier }

func (m *MsgCommitKeyVote) ValidateBasic() error {
	if _, err := bankpb.ParseAddr("verifier", m.Verifier); err != nil {
		return err
	}
	if len(m.Commitment) != 32 {
		return fmt.Errorf("audit: a commitment is 32 bytes: %w", codes.ErrInvalidRequest)
	}
	return nil
}

func (m *MsgRevealKeyVote) Signer() string { return m.Verifier }

func (m *MsgRevealKeyVote) ValidateBasic() error {
	if _, err := bankpb.ParseAddr("verifier", m.Verifier); err != nil {
		return err
	}
	if len(m.Verdict) != 32 || len(m.Salt) == 0 || len(m.Salt) > 64 {
		return fmt.Errorf("audit: a key vote reveals a 32-byte verdict and its salt: %w", codes.ErrInvalidRequest)
	}
	return nil
}

// KeyVoteDomain separates key-review commitments from dispute ones.
const KeyVoteDomain = "agora/audit/key-vote/v1"

// KeyCommitment is what a key-review member commits to: its verdict,
// bound to it and hidden by salt.
func KeyCommitment(verdict, salt []byte, member string) []byte {
	return commit.Hash(KeyVoteDomain, verdict, []byte(member), salt)
}

// KeyVerdict is what a committee member votes when its own check of the
// transcript, against the circuit it compiled from the model's weights,
// yields this verifying key and these contributors. A member whose check
// fails votes 32 zero bytes.
func KeyVerdict(modelID string, vk []byte, contributors [][]byte) []byte {
	h := sha256.New()
	h.Write([]byte(KeyVoteDomain))
	h.Write([]byte(modelID))
	h.Write([]byte{0})
	vh := sha256.Sum256(vk)
	h.Write(vh[:])
	for _, c := range contributors {
		h.Write(c)
	}
	return h.Sum(nil)
}

func (m *MsgVerifyInference) Signer() string { return m.Submitter }

func (m *MsgVerifyInference) ValidateBasic() error {
	if _, err := bankpb.ParseAddr("submitter", m.Submitter); err != nil {
		return err
	}
	if err := providerpb.ValidModelID(m.ModelId); err != nil {
		return err
	}
	if len(m.Input) != zk.Pixels || len(m.Logits) != zk.Classes || len(m.Proof) == 0 || len(m.Proof) > MaxProofBytes {
		return fmt.Errorf("audit: a digits-mlp proof takes %d input bytes, %d logits and a proof of at most %d bytes: %w", zk.Pixels, zk.Classes, MaxProofBytes, codes.ErrInvalidRequest)
	}
	return nil
}

func (m *MsgRegisterVerifier) Signer() string { return m.Verifier }

func (m *MsgRegisterVerifier) ValidateBasic() error {
	_, err := bankpb.ParseAddr("verifier", m.Verifier)
	return err
}

func (m *MsgChallenge) Signer() string { return m.Challenger }

func (m *MsgChallenge) ValidateBasic() error {
	if _, err := bankpb.ParseAddr("challenger", m.Challenger); err != nil {
		return err
	}
	if len(m.Receipt) == 0 || len(m.Receipt) > receipt.MaxEncoded || len(m.Request) == 0 || len(m.Request) > 1<<20 || len(m.Path) > 64 {
		return fmt.Errorf("audit: a challenge needs the receipt, the request and a path of at most 64 hashes: %w", codes.ErrInvalidRequest)
	}
	return nil
}

func (m *MsgCommit) Signer() string { return m.Verifier }

func (m *MsgCommit) ValidateBasic() error {
	_, err := bankpb.ParseAddr("verifier", m.Verifier)
	return err
}

func (m *MsgReveal) Signer() string { return m.Verifier }

func (m *MsgReveal) ValidateBasic() error {
	if _, err := bankpb.ParseAddr("verifier", m.Verifier); err != nil {
		return err
	}
	if len(m.ResponseHash) != 32 || len(m.Salt) > 64 {
		return fmt.Errorf("audit: a reveal is a 32-byte response hash and a salt of at most 64 bytes: %w", codes.ErrInvalidRequest)
	}
	return nil
}

func (m *MsgSettleWithProof) Signer() string { return m.Submitter }

func (m *MsgSettleWithProof) ValidateBasic() error {
	if _, err := bankpb.ParseAddr("submitter", m.Submitter); err != nil {
		return err
	}
	if len(m.Logits) != zk.Classes || len(m.Proof) == 0 || len(m.Proof) > MaxProofBytes {
		return fmt.Errorf("audit: a settlement carries %d logits and a proof: %w", zk.Classes, codes.ErrInvalidRequest)
	}
	return nil
}
