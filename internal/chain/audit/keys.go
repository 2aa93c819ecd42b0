package audit

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/agoranet/agora/internal/chain/account"
	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/agenda"
	"github.com/agoranet/agora/internal/chain/audit/auditpb"
	"github.com/agoranet/agora/internal/chain/beacon"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/committee"
	"github.com/agoranet/agora/internal/chain/escrow"
	"github.com/agoranet/agora/internal/chain/gas"
	"github.com/agoranet/agora/internal/chain/module"
	chainprov "github.com/agoranet/agora/internal/chain/provider"
	"github.com/agoranet/agora/internal/chain/staking"
	"github.com/agoranet/agora/internal/chain/store"
)

// A verifying key is bound to its model by evidence, not by whoever
// registers it first. Compiling a circuit is far too heavy for a block, so
// the chain checks what it can (who contributed to the setup) and a
// committee of verifiers checks the rest off chain, as disputes are
// settled: each member rebuilds the circuit from the model's weights,
// verifies the transcript against it, and votes on the key and the
// contributors it derived. The trust assumption is in docs/verification.md.

var (
	reviewPrefix   = []byte("audit/kr/")  // id -> KeyReview
	reviewByModel  = []byte("audit/krm/") // model id -> open review id
	nextReviewKey  = []byte("audit/krnext")
	reviewDeadline = agenda.New("audit/krdue/")
	keyBonds       = escrow.New(auditpb.KeyEscrow, "audit/kbond/")
)

// GetReview returns a key review or nil.
func GetReview(kv store.Reader, id uint64) *auditpb.KeyReview {
	v := kv.Get(cat(reviewPrefix, be(id)))
	if v == nil {
		return nil
	}
	r := &auditpb.KeyReview{}
	module.MustUnmarshal(v, r)
	return r
}

func putReview(kv store.KV, r *auditpb.KeyReview) {
	kv.Set(cat(reviewPrefix, be(r.Id)), module.MustMarshal(r))
}

// ProposeKey opens a committee review of a proposed verifying key.
func ProposeKey(ctx *module.Context, m *auditpb.MsgProposeModelKey) (*auditpb.KeyReview, error) {
	if old := GetKey(ctx.KV, m.ModelId); old != nil {
		return nil, fmt.Errorf("audit: model %s already has a verifying key (since height %d); keys are final: %w", m.ModelId, old.RegisteredAt, codes.ErrInvalidRequest)
	}
	if v := ctx.KV.Get(cat(reviewByModel, []byte(m.ModelId))); v != nil {
		return nil, fmt.Errorf("audit: a key for model %s is under review already (review %d); wait for its verdict: %w", m.ModelId, binary.BigEndian.Uint64(v), codes.ErrInvalidRequest)
	}
	p := GetParams(ctx.KV)
	// Each contributor is a staked verifier, so a fake second contributor
	// costs stake; and none is the model's only provider, who could then
	// forge proofs for every answer it sells.
	providers := chainprov.List(ctx.KV, m.ModelId, false)
	for _, pk := range m.Contributors {
		a := addr.FromPubKey(pk)
		if !account.Holds(ctx.KV, a, pk) {
			return nil, fmt.Errorf("audit: contributor %s rotated away from the key that signed its contribution; contributions count by their account's current key: %w", a, codes.ErrKeyEvidence)
		}
		if ctx.KV.Get(cat(verifierPrefix, a[:])) == nil || staking.Bonded(ctx.KV, a) < p.VerifierMinStake {
			return nil, fmt.Errorf("audit: contributor %s is not a registered verifier with %duagr bonded; only staked verifiers' contributions count: %w", a, p.VerifierMinStake, codes.ErrKeyEvidence)
		}
		if len(providers) == 1 && providers[0].Provider.Operator == a.String() {
			return nil, fmt.Errorf("audit: contributor %s is the only provider of model %s; its setup would let it forge proofs of its own answers: %w", a, m.ModelId, codes.ErrKeyEvidence)
		}
	}
	// The committee is drawn from every verifier but the proposer.
	pool := reviewPool(ctx.KV, p, m.Proposer)
	if len(pool) < int(p.CommitteeSize) {
		return nil, fmt.Errorf("audit: %d verifiers besides the proposer; a review committee needs %d: %w", len(pool), p.CommitteeSize, codes.ErrKeyEvidence)
	}
	id := uint64(1)
	if v := ctx.KV.Get(nextReviewKey); v != nil {
		id = binary.BigEndian.Uint64(v)
	}
	if err := keyBonds.Hold(ctx, ctx.Signer, id, coin.New(coin.Native, p.ChallengeBond)); err != nil {
		return nil, fmt.Errorf("audit: the key proposal's bond: %w", err)
	}
	ctx.KV.Set(nextReviewKey, be(id+1))
	ctx.KV.Set(cat(reviewByModel, []byte(m.ModelId)), be(id))
	r := &auditpb.KeyReview{Id: id, Proposer: m.Proposer, ModelId: m.ModelId, VerifyingKey: m.VerifyingKey, TranscriptDigest: m.TranscriptDigest,
		TranscriptUrl: m.TranscriptUrl, Contributors: m.Contributors, Bond: p.ChallengeBond, Status: auditpb.ReviewStatus_REVIEW_STATUS_OPEN}
	ctx.ConsumeGas(2*gas.EndBlockStep, "the review's draw and settlement")
	ctx.Emit("key_review", module.Key("review_id", module.U64(id)), module.Key("model_id", m.ModelId), module.Key("proposer", m.Proposer))
	frozen := Weigh(ctx.KV, pool)
	epoch := beacon.Request(ctx)
	if seed, ok := beacon.Seed(ctx, epoch, "audit-key", id); ok {
		return r, drawReview(ctx, r, frozen, seed)
	}
	r.BeaconEpoch, r.DrawAt = epoch, beacon.ReadyAt(ctx.KV, ctx.Height, epoch)
	reviewDraws.Add(ctx.KV, r.DrawAt, id)
	ctx.KV.Set(cat(reviewPoolPrefix, be(id)), committee.Encode(frozen))
	putReview(ctx.KV, r)
	return r, nil
}

// reviewPool is who may review a key: every staked verifier but its
// proposer. Contributors are named by public key alone, without their
// consent, so leaving them out would let a proposer name every honest
// verifier and leave only its own to review its key; a contributor on
// the committee checks the transcript like anyone else.
func reviewPool(kv store.Reader, p *auditpb.Params, proposer string) []addr.Address {
	var pool []addr.Address
	for _, v := range Verifiers(kv, p.VerifierMinStake) {
		if v.String() != proposer {
			pool = append(pool, v)
		}
	}
	return pool
}

// drawReview draws r's committee from its frozen pool and seed and opens
// its vote from this block; members that left since the proposal are
// dropped, and with none left it is settled at once (no verdict: the
// proposer may propose again).
func drawReview(ctx *module.Context, r *auditpb.KeyReview, frozen []committee.Candidate, seed []byte) error {
	p := GetParams(ctx.KV)
	r.DrawAt = 0
	members := DrawMembers(ctx.KV, p, frozen, seed)
	if len(members) == 0 {
		return settleReview(ctx, r)
	}
	// Members check a transcript, tens of seconds of work: a window of
	// its own, the disputes' when genesis sets none.
	commitBlocks := p.KeyReviewCommitBlocks
	if commitBlocks <= 0 {
		commitBlocks = p.CommitBlocks
	}
	r.CommitUntil = ctx.Height + commitBlocks
	r.RevealUntil = r.CommitUntil + p.RevealBlocks
	attrs := []module.Attr{module.Key("review_id", module.U64(r.Id))}
	for _, v := range members {
		r.Votes = append(r.Votes, &auditpb.Vote{Verifier: v.String()})
		staking.HoldUntil(ctx, v, r.RevealUntil+MaxDueDelay)
		attrs = append(attrs, module.Key("member", v.String()))
	}
	putReview(ctx.KV, r)
	reviewDeadline.Add(ctx.KV, r.RevealUntil, r.Id)
	ctx.Emit("committee", attrs...)
	return nil
}

func reviewVote(ctx *module.Context, id uint64) (*auditpb.KeyReview, *auditpb.Vote, error) {
	r := GetReview(ctx.KV, id)
	if r == nil || r.Status != auditpb.ReviewStatus_REVIEW_STATUS_OPEN {
		return nil, nil, fmt.Errorf("audit: no open key review %d: %w", id, codes.ErrNotFound)
	}
	for _, v := range r.Votes {
		if v.Verifier == ctx.Signer.String() {
			return r, v, nil
		}
	}
	return nil, nil, fmt.Errorf("audit: %s is not on key review %d's committee: %w", ctx.Signer, id, codes.ErrUnauthorized)
}

// CommitKeyVote records a member's hidden verdict.
func CommitKeyVote(ctx *module.Context, m *auditpb.MsgCommitKeyVote) error {
	r, v, err := reviewVote(ctx, m.ReviewId)
	if err != nil {
		return err
	}
	if err := castCommit(ctx, fmt.Sprintf("key review %d", r.Id), r.CommitUntil, v, m.Commitment); err != nil {
		return err
	}
	putReview(ctx.KV, r)
	ctx.Emit("commit_key_vote", module.Key("review_id", module.U64(r.Id)), module.Key("member", ctx.Signer.String()))
	return nil
}

// RevealKeyVote opens a member's verdict.
func RevealKeyVote(ctx *module.Context, m *auditpb.MsgRevealKeyVote) error {
	r, v, err := reviewVote(ctx, m.ReviewId)
	if err != nil {
		return err
	}
	if err := castReveal(ctx, fmt.Sprintf("key review %d", r.Id), r.CommitUntil, r.RevealUntil, v, auditpb.KeyVoteDomain, m.Verdict, m.Salt); err != nil {
		return err
	}
	putReview(ctx.KV, r)
	ctx.Emit("reveal_key_vote", module.Key("review_id", module.U64(r.Id)), module.Key("member", ctx.Signer.String()))
	return nil
}

func registerKey(ctx *module.Context, r *auditpb.KeyReview) {
	ctx.KV.Set(keyKey(r.ModelId), module.MustMarshal(&auditpb.ModelKey{ModelId: r.ModelId, Owner: r.Proposer, VerifyingKey: r.VerifyingKey,
		RegisteredAt: ctx.Height, Contributors: r.Contributors, TranscriptDigest: r.TranscriptDigest, ReviewId: r.Id}))
}

// ApproveKey registers the key of a review the committee has checked, on
// a governance proposal's passing (audit param keys_need_governance = 1).
func ApproveKey(ctx *module.Context, reviewID uint64) error {
	r := GetReview(ctx.KV, reviewID)
	if r == nil {
		return fmt.Errorf("audit: no key review %d: %w", reviewID, codes.ErrNotFound)
	}
	if r.Status != auditpb.ReviewStatus_REVIEW_STATUS_CHECKED {
		return fmt.Errorf("audit: key review %d is %s; governance approves only a key the committee's check approved (REVIEW_STATUS_CHECKED): %w",
			reviewID, r.Status, codes.ErrInvalidRequest)
	}
	if old := GetKey(ctx.KV, r.ModelId); old != nil {
		return fmt.Errorf("audit: model %s already has a verifying key (since height %d); keys are final: %w", r.ModelId, old.RegisteredAt, codes.ErrInvalidRequest)
	}
	r.Status = auditpb.ReviewStatus_REVIEW_STATUS_APPROVED
	putReview(ctx.KV, r)
	registerKey(ctx, r)
	ctx.Emit("model_key_approved", module.Key("model_id", r.ModelId), module.Key("review_id", module.U64(r.Id)))
	return nil
}

// settleReview decides a key review when its reveals close. A strict
// majority of the committee for the verdict the proposal implies approves
// the key and returns the bond; a strict majority against it rejects the
// key, and the bond pays the members who voted it down. Without either
// (members silent or split), the key is not accepted and the bond goes
// back: nothing was judged, and a few silent members must not let one
// colluder take the bond. Silent members lose a little stake, and so do
// those who voted against a majority; no vote is "overruled" without one.
func settleReview(ctx *module.Context, r *auditpb.KeyReview) error {
	p := GetParams(ctx.KV)
	want := auditpb.KeyVerdict(r.ModelId, r.VerifyingKey, r.Contributors)
	var yes, no []addr.Address
	for _, v := range r.Votes {
		switch {
		case len(v.ResponseHash) == 0:
		case bytes.Equal(v.ResponseHash, want):
			yes = append(yes, addr.MustParse(v.Verifier))
		default:
			no = append(no, addr.MustParse(v.Verifier))
		}
	}
	proposer := addr.MustParse(r.Proposer)
	n := len(r.Votes)
	approved := len(yes)*2 > n && GetKey(ctx.KV, r.ModelId) == nil
	rejected := len(no)*2 > n
	var overruled []addr.Address
	switch {
	case approved:
		if _, err := keyBonds.Close(ctx, r.Id, proposer); err != nil {
			return err
		}
		if p.KeysNeedGovernance == 1 {
			// The committee's check is done; the key waits for a
			// governance proposal to approve it (ApproveKey).
			r.Status = auditpb.ReviewStatus_REVIEW_STATUS_CHECKED
		} else {
			r.Status = auditpb.ReviewStatus_REVIEW_STATUS_APPROVED
			registerKey(ctx, r)
		}
		overruled = no
	case rejected:
		r.Status = auditpb.ReviewStatus_REVIEW_STATUS_REJECTED
		share := r.Bond / uint64(len(no))
		for _, a := range no {
			if err := keyBonds.Pay(ctx, r.Id, a, share); err != nil {
				return err
			}
		}
		if h := keyBonds.Held(ctx.KV, r.Id); h != nil {
			if err := keyBonds.Burn(ctx, r.Id, h.Amount); err != nil {
				return err
			}
		}
		if _, err := keyBonds.Close(ctx, r.Id, proposer); err != nil { // nothing is left
			return err
		}
		overruled = yes
	default:
		r.Status = auditpb.ReviewStatus_REVIEW_STATUS_REJECTED
		if _, err := keyBonds.Close(ctx, r.Id, proposer); err != nil {
			return err
		}
	}
	penalised := slices.Clone(overruled)
	for _, v := range r.Votes {
		if len(v.ResponseHash) == 0 {
			penalised = append(penalised, addr.MustParse(v.Verifier))
		}
	}
	for _, a := range penalised {
		if _, err := staking.Slash(ctx, a, p.MissPenaltyBps, 0, "key review vote missed or overruled"); err != nil {
			return err
		}
	}
	ctx.KV.Delete(cat(reviewByModel, []byte(r.ModelId)))
	putReview(ctx.KV, r)
	ctx.Emit("key_review_settled", module.Key("review_id", module.U64(r.Id)), module.Key("model_id", r.ModelId), module.Val("status", r.Status.String()))
	return nil
}
