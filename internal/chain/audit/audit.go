// Package audit holds what makes answers checkable on chain. For now: the
// verifying keys of models proven in zero knowledge, and the record of
// inferences whose proofs the chain has checked. (Receipt anchors live with
// the payment claims that bring them, in the channel module.)
package audit

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/audit/auditpb"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/gas"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/provider/providerpb"
	"github.com/agoranet/agora/internal/chain/staking/stakingpb"
	"github.com/agoranet/agora/internal/chain/store"
	"github.com/agoranet/agora/internal/zk"
)

var (
	keyPrefix    = []byte("audit/vk/")
	provenPrefix = []byte("audit/proven/")
)

func keyKey(modelID string) []byte { return append(append([]byte(nil), keyPrefix...), modelID...) }

// GetKey returns a model's registered key, or nil.
func GetKey(kv store.Reader, modelID string) *auditpb.ModelKey {
	v := kv.Get(keyKey(modelID))
	if v == nil {
		return nil
	}
	k := &auditpb.ModelKey{}
	module.MustUnmarshal(v, k)
	return k
}

// Module is audit as a chain module.
type Module struct{}

var (
	_ module.Module     = Module{}
	_ module.EndBlocker = Module{}
)

func (Module) Name() string { return auditpb.Name }

func (Module) Msgs() []module.Msg {
	return []module.Msg{&auditpb.MsgProposeModelKey{}, &auditpb.MsgCommitKeyVote{}, &auditpb.MsgRevealKeyVote{}, &auditpb.MsgVerifyInference{}, &auditpb.MsgRegisterVerifier{}, &auditpb.MsgChallenge{}, &auditpb.MsgCommit{}, &auditpb.MsgReveal{}, &auditpb.MsgSettleWithProof{}}
}

func (Module) Handle(ctx *module.Context, msg module.Msg) (proto.Message, error) {
	switch m := msg.(type) {
	case *auditpb.MsgProposeModelKey:
		r, err := ProposeKey(ctx, m)
		if err != nil {
			return nil, err
		}
		return &auditpb.MsgProposeModelKeyResponse{ReviewId: r.Id}, nil
	case *auditpb.MsgCommitKeyVote:
		return nil, CommitKeyVote(ctx, m)
	case *auditpb.MsgRevealKeyVote:
		return nil, RevealKeyVote(ctx, m)
	case *auditpb.MsgVerifyInference:
		k := GetKey(ctx.KV, m.ModelId)
		if k == nil {
			return nil, fmt.Errorf("audit: model %s has no verifying key on chain: %w", m.ModelId, codes.ErrNotFound)
		}
		ctx.ConsumeGas(gas.Groth16Verify, "a Groth16 proof check")
		if err := zk.Verify(k.VerifyingKey, m.Proof, m.Input, m.Logits); err != nil {
			return nil, fmt.Errorf("audit: %v: %w", err, codes.ErrSignature)
		}
		id := auditpb.InferenceID(m.ModelId, m.Input, m.Logits)
		in := sha256.Sum256(m.Input)
		out := auditpb.InferenceID("", nil, m.Logits)
		ctx.KV.Set(append(append([]byte(nil), provenPrefix...), id...), module.MustMarshal(&auditpb.ProvenInference{ModelId: m.ModelId, InputHash: in[:], OutputHash: out, Submitter: m.Submitter, Height: ctx.Height}))
		ctx.Emit("proven_inference", module.Key("model_id", m.ModelId), module.Key("inference", fmt.Sprintf("%x", id)), module.Key("submitter", m.Submitter))
		return nil, nil
	case *auditpb.MsgRegisterVerifier:
		return nil, RegisterVerifier(ctx)
	case *auditpb.MsgChallenge:
		d, err := Challenge(ctx, m)
		if err != nil {
			return nil, err
		}
		return &auditpb.MsgChallengeResponse{DisputeId: d.Id}, nil
	case *auditpb.MsgCommit:
		return nil, Commit(ctx, m)
	case *auditpb.MsgReveal:
		return nil, Reveal(ctx, m)
	case *auditpb.MsgSettleWithProof:
		return nil, SettleWithProof(ctx, m)
	}
	return nil, fmt.Errorf("audit: cannot handle %T: %w", msg, codes.ErrUnknownMsg)
}

func (Module) Queries() []module.QueryRoute {
	return []module.QueryRoute{
		module.Serve(auditpb.QueryParams, func(ctx *module.Context, _ *auditpb.QueryParamsRequest) (*auditpb.Params, error) {
			return GetParams(ctx.KV), nil
		}),
		module.Serve(auditpb.QueryKey, func(ctx *module.Context, r *auditpb.QueryKeyRequest) (*auditpb.ModelKey, error) {
			k := GetKey(ctx.KV, r.ModelId)
			if k == nil {
				return nil, fmt.Errorf("audit: no verifying key for %q: %w", r.ModelId, codes.ErrNotFound)
			}
			return k, nil
		}),
		module.Serve(auditpb.QueryReview, func(ctx *module.Context, r *auditpb.QueryKeyReviewRequest) (*auditpb.KeyReview, error) {
			kr := GetReview(ctx.KV, r.Id)
			if kr == nil {
				return nil, fmt.Errorf("audit: no key review %d: %w", r.Id, codes.ErrNotFound)
			}
			return kr, nil
		}),
		module.Serve(auditpb.QueryDispute, func(ctx *module.Context, r *auditpb.QueryDisputeRequest) (*auditpb.QueryDisputeResponse, error) {
			d := GetDispute(ctx.KV, r.Id)
			if d == nil {
				return nil, fmt.Errorf("audit: no dispute %d: %w", r.Id, codes.ErrNotFound)
			}
			return &auditpb.QueryDisputeResponse{Dispute: d}, nil
		}),
		module.Serve(auditpb.QueryProven, func(ctx *module.Context, r *auditpb.QueryProvenRequest) (*auditpb.QueryProvenResponse, error) {
			v := ctx.KV.Get(append(append([]byte(nil), provenPrefix...), r.InferenceId...))
			if v == nil {
				return nil, fmt.Errorf("audit: no proven inference %x: %w", r.InferenceId, codes.ErrNotFound)
			}
			p := &auditpb.ProvenInference{}
			module.MustUnmarshal(v, p)
			return &auditpb.QueryProvenResponse{Proven: p}, nil
		}),
	}
}

func (Module) DefaultGenesis() json.RawMessage { return json.RawMessage(`{}`) }

// InitGenesis loads the keys the network starts with: whoever accepts the
// genesis file accepts them, as governance will approve keys later (on
// top of a committee's review, never instead of it).
func (m Module) InitGenesis(ctx *module.Context, raw json.RawMessage) error {
	var g auditpb.Genesis
	if err := module.DecodeGenesis(raw, m.DefaultGenesis(), &g); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if p := g.Params; p != nil {
		if err := m.SetParams(ctx.KV, p); err != nil {
			return fmt.Errorf("audit: genesis params: %w", err)
		}
	}
	for _, k := range g.ModelKeys {
		if err := providerpb.ValidModelID(k.ModelId); err != nil {
			return fmt.Errorf("audit: genesis key: %w", err)
		}
		if len(k.VerifyingKey) == 0 || len(k.VerifyingKey) > auditpb.MaxKeyBytes || GetKey(ctx.KV, k.ModelId) != nil {
			return fmt.Errorf("audit: genesis key for %s is empty, too large or repeated", k.ModelId)
		}
		ctx.KV.Set(keyKey(k.ModelId), module.MustMarshal(&auditpb.ModelKey{ModelId: k.ModelId, VerifyingKey: k.VerifyingKey, RegisteredAt: ctx.Height}))
	}
	return nil
}

// CheckInvariant verifies that the audit escrow account holds exactly the
// bonds of the open disputes.
func (Module) CheckInvariant(kv store.Reader) error {
	if err := bonds.CheckInvariant(kv); err != nil {
		return err
	}
	return keyBonds.CheckInvariant(kv)
}

// Solvent checks the audit escrow at the end of every block.
func (Module) Solvent(kv store.Reader) error {
	if err := bonds.Solvent(kv); err != nil {
		return err
	}
	return keyBonds.Solvent(kv)
}

// ModuleAccounts lists the module's accounts, which no message may send to.
func (Module) ModuleAccounts() []addr.Address {
	return []addr.Address{auditpb.Escrow, auditpb.KeyEscrow}
}

// Params returns the module's params, for the checks of module.Params.
func (Module) Params(kv store.Reader) proto.Message { return GetParams(kv) }

// ParamRanges are the values each param may take, in genesis and in a
// governance proposal.
// SetParams stores p after checking it (genesis and governance both
// call it).
func (Module) SetParams(kv store.KV, msg proto.Message) error {
	p := msg.(*auditpb.Params)
	if p.CommitteeSize == 0 || p.CommitBlocks < 1 || p.RevealBlocks < 1 || p.KeyReviewCommitBlocks < 0 ||
		p.SlashBps > stakingpb.BPS || p.RewardBps > stakingpb.BPS || p.MissPenaltyBps > stakingpb.BPS {
		return fmt.Errorf("committee_size, commit_blocks and reveal_blocks must be positive and each bps at most %d: %w", stakingpb.BPS, codes.ErrInvalidRequest)
	}
	kv.Set(paramsKey, module.MustMarshal(p))
	return nil
}

func (Module) ParamRanges() map[string]module.Range {
	return map[string]module.Range{
		"challenge_bond":           {Min: 1, Max: 1_000_000_000_000_000},
		"committee_size":           {Min: 1, Max: 101},
		"commit_blocks":            {Min: 1, Max: 100_000},
		"reveal_blocks":            {Min: 1, Max: 100_000},
		"slash_bps":                {Min: 0, Max: 10_000},
		"reward_bps":               {Min: 0, Max: 10_000},
		"miss_penalty_bps":         {Min: 0, Max: 10_000},
		"verifier_min_stake":       {Min: 1, Max: 1_000_000_000_000_000},
		"key_review_commit_blocks": {Min: 1, Max: 1_000_000},
		"keys_need_governance":     {Min: 0, Max: 1},
	}
}
