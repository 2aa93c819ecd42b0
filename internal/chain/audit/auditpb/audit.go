package auditpb

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/provider/providerpb"
	"github.com/agoranet/agora/internal/receipt"
	"github.com/agoranet/agora/internal/zk"
)

// Name is the module's name and store prefix.
const Name = "audit"

// Limits on what a message may carry.
const (
	MaxKeyBytes   = 8 << 10
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

func (m *MsgRegisterModelKey) Signer() string { return m.Owner }

func (m *MsgRegisterModelKey) ValidateBasic() error {
	if _, err := bankpb.ParseAddr("owner", m.Owner); err != nil {
		return err
	}
	if err := providerpb.ValidModelID(m.ModelId); err != nil {
		return err
	}
	if len(m.VerifyingKey) == 0 || len(m.VerifyingKey) > MaxKeyBytes {
		return fmt.Errorf("audit: verifying key of %d bytes; want 1 to %d: %w", len(m.VerifyingKey), MaxKeyBytes, codes.ErrInvalidRequest)
	}
	return nil
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
