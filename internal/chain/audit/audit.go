// Package audit holds what makes answers checkable on chain. For now: the
// verifying keys of models proven in zero knowledge, and the record of
// inferences whose proofs the chain has checked. (Receipt anchors live with
// the payment claims that bring them, in the channel module.)
package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/agoranet/agora/internal/chain/bank"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/module"
	chainprov "github.com/agoranet/agora/internal/chain/provider"
	"github.com/agoranet/agora/internal/chain/store"
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

var (
	keyPrefix    = []byte("audit/vk/")
	provenPrefix = []byte("audit/proven/")
)

func keyKey(modelID string) []byte { return append(append([]byte(nil), keyPrefix...), modelID...) }

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

// GetKey returns a model's registered key, or nil.
func GetKey(kv store.Reader, modelID string) *ModelKey {
	v := kv.Get(keyKey(modelID))
	if v == nil {
		return nil
	}
	k := &ModelKey{}
	module.MustUnmarshal(v, k)
	return k
}

func (m *MsgRegisterModelKey) Signer() string { return m.Owner }

func (m *MsgRegisterModelKey) ValidateBasic() error {
	if _, err := bank.ParseAddr("owner", m.Owner); err != nil {
		return err
	}
	if err := chainprov.ValidModelID(m.ModelId); err != nil {
		return err
	}
	if len(m.VerifyingKey) == 0 || len(m.VerifyingKey) > MaxKeyBytes {
		return fmt.Errorf("audit: verifying key of %d bytes; want 1 to %d: %w", len(m.VerifyingKey), MaxKeyBytes, codes.ErrInvalidRequest)
	}
	return nil
}

func (m *MsgVerifyInference) Signer() string { return m.Submitter }

func (m *MsgVerifyInference) ValidateBasic() error {
	if _, err := bank.ParseAddr("submitter", m.Submitter); err != nil {
		return err
	}
	if err := chainprov.ValidModelID(m.ModelId); err != nil {
		return err
	}
	if len(m.Input) != zk.Pixels || len(m.Logits) != zk.Classes || len(m.Proof) == 0 || len(m.Proof) > MaxProofBytes {
		return fmt.Errorf("audit: a digits-mlp proof takes %d input bytes, %d logits and a proof of at most %d bytes: %w", zk.Pixels, zk.Classes, MaxProofBytes, codes.ErrInvalidRequest)
	}
	return nil
}

// Module is audit as a chain module.
type Module struct{}

var (
	_ module.Module     = Module{}
	_ module.EndBlocker = Module{}
)

func (Module) Name() string { return Name }

func (Module) Msgs() []module.Msg {
	return []module.Msg{&MsgRegisterModelKey{}, &MsgVerifyInference{}, &MsgRegisterVerifier{}, &MsgChallenge{}, &MsgCommit{}, &MsgReveal{}, &MsgSettleWithProof{}}
}

func (Module) Handle(ctx *module.Context, msg module.Msg) error {
	switch m := msg.(type) {
	case *MsgRegisterModelKey:
		if old := GetKey(ctx.KV, m.ModelId); old != nil {
			return fmt.Errorf("audit: model %s already has a verifying key (registered by %s at %d); keys are final: %w", m.ModelId, old.Owner, old.RegisteredAt, codes.ErrInvalidRequest)
		}
		ctx.KV.Set(keyKey(m.ModelId), module.MustMarshal(&ModelKey{ModelId: m.ModelId, Owner: m.Owner, VerifyingKey: m.VerifyingKey, RegisteredAt: ctx.Height}))
		ctx.Emit("register_model_key", module.Key("model_id", m.ModelId), module.Key("owner", m.Owner))
		return nil
	case *MsgVerifyInference:
		k := GetKey(ctx.KV, m.ModelId)
		if k == nil {
			return fmt.Errorf("audit: model %s has no verifying key on chain: %w", m.ModelId, codes.ErrNotFound)
		}
		if err := zk.Verify(k.VerifyingKey, m.Proof, m.Input, m.Logits); err != nil {
			return fmt.Errorf("audit: %v: %w", err, codes.ErrSignature)
		}
		id := InferenceID(m.ModelId, m.Input, m.Logits)
		in := sha256.Sum256(m.Input)
		out := InferenceID("", nil, m.Logits)
		ctx.KV.Set(append(append([]byte(nil), provenPrefix...), id...), module.MustMarshal(&ProvenInference{ModelId: m.ModelId, InputHash: in[:], OutputHash: out, Submitter: m.Submitter, Height: ctx.Height}))
		ctx.Emit("proven_inference", module.Key("model_id", m.ModelId), module.Key("inference", fmt.Sprintf("%x", id)), module.Key("submitter", m.Submitter))
		return nil
	case *MsgRegisterVerifier:
		return RegisterVerifier(ctx)
	case *MsgChallenge:
		_, err := Challenge(ctx, m)
		return err
	case *MsgCommit:
		return Commit(ctx, m)
	case *MsgReveal:
		return Reveal(ctx, m)
	case *MsgSettleWithProof:
		return SettleWithProof(ctx, m)
	}
	return fmt.Errorf("audit: cannot handle %T: %w", msg, codes.ErrUnknownMsg)
}

func (m *MsgRegisterVerifier) Signer() string { return m.Verifier }

func (m *MsgRegisterVerifier) ValidateBasic() error {
	_, err := bank.ParseAddr("verifier", m.Verifier)
	return err
}

func (m *MsgChallenge) Signer() string { return m.Challenger }

func (m *MsgChallenge) ValidateBasic() error {
	if _, err := bank.ParseAddr("challenger", m.Challenger); err != nil {
		return err
	}
	if len(m.Receipt) == 0 || len(m.Receipt) > receipt.MaxEncoded || len(m.Request) == 0 || len(m.Request) > 1<<20 || len(m.Path) > 64 {
		return fmt.Errorf("audit: a challenge needs the receipt, the request and a path of at most 64 hashes: %w", codes.ErrInvalidRequest)
	}
	return nil
}

func (m *MsgCommit) Signer() string { return m.Verifier }

func (m *MsgCommit) ValidateBasic() error {
	_, err := bank.ParseAddr("verifier", m.Verifier)
	return err
}

func (m *MsgReveal) Signer() string { return m.Verifier }

func (m *MsgReveal) ValidateBasic() error {
	if _, err := bank.ParseAddr("verifier", m.Verifier); err != nil {
		return err
	}
	if len(m.ResponseHash) != 32 || len(m.Salt) > 64 {
		return fmt.Errorf("audit: a reveal is a 32-byte response hash and a salt of at most 64 bytes: %w", codes.ErrInvalidRequest)
	}
	return nil
}

// Query paths: "key" (data: model id), "proven" (data: an InferenceID),
// "dispute" (data: 8-byte id).
func (Module) Query(ctx *module.Context, path string, data []byte) (proto.Message, error) {
	switch path {
	case "key":
		k := GetKey(ctx.KV, string(data))
		if k == nil {
			return nil, fmt.Errorf("audit: no verifying key for %q: %w", data, codes.ErrNotFound)
		}
		return k, nil
	case "dispute":
		if len(data) != 8 {
			return nil, fmt.Errorf("audit: query dispute takes an 8-byte id: %w", codes.ErrInvalidRequest)
		}
		d := GetDispute(ctx.KV, binary.BigEndian.Uint64(data))
		if d == nil {
			return nil, fmt.Errorf("audit: no dispute %x: %w", data, codes.ErrNotFound)
		}
		return &QueryDisputeResponse{Dispute: d}, nil
	case "proven":
		v := ctx.KV.Get(append(append([]byte(nil), provenPrefix...), data...))
		if v == nil {
			return nil, fmt.Errorf("audit: no proven inference %x: %w", data, codes.ErrNotFound)
		}
		p := &ProvenInference{}
		module.MustUnmarshal(v, p)
		return &QueryProvenResponse{Proven: p}, nil
	}
	return nil, fmt.Errorf("audit: no query %q (try key, proven): %w", path, codes.ErrInvalidRequest)
}

func (Module) DefaultGenesis() json.RawMessage { return json.RawMessage(`{}`) }

func (Module) InitGenesis(*module.Context, json.RawMessage) error { return nil }

func (m *MsgSettleWithProof) Signer() string { return m.Submitter }

func (m *MsgSettleWithProof) ValidateBasic() error {
	if _, err := bank.ParseAddr("submitter", m.Submitter); err != nil {
		return err
	}
	if len(m.Logits) != zk.Classes || len(m.Proof) == 0 || len(m.Proof) > MaxProofBytes {
		return fmt.Errorf("audit: a settlement carries %d logits and a proof: %w", zk.Classes, codes.ErrInvalidRequest)
	}
	return nil
}
