package audit

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/agoranet/agora/internal/chain/account"
	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/agenda"
	"github.com/agoranet/agora/internal/chain/audit/auditpb"
	"github.com/agoranet/agora/internal/chain/auth"
	"github.com/agoranet/agora/internal/chain/beacon"
	"github.com/agoranet/agora/internal/chain/channel"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/commit"
	"github.com/agoranet/agora/internal/chain/committee"
	"github.com/agoranet/agora/internal/chain/escrow"
	"github.com/agoranet/agora/internal/chain/gas"
	"github.com/agoranet/agora/internal/chain/module"
	chainprov "github.com/agoranet/agora/internal/chain/provider"
	"github.com/agoranet/agora/internal/chain/staking"
	"github.com/agoranet/agora/internal/chain/store"
	"github.com/agoranet/agora/internal/receipt"
	"github.com/agoranet/agora/internal/zk"
)

// ChallengeWindow is how many blocks after the height it names a receipt
// can be challenged by itself, anchored or not. Buyers take only receipts
// within a few blocks of the chain's height (see docs/verification.md),
// so every receipt they hold stays challengeable for about this long.
const ChallengeWindow = 100_000

var (
	challengedPrefix = []byte("audit/ch/")  // sha256 of a challenged receipt -> dispute id
	disputedReceipt  = []byte("audit/chr/") // open dispute id -> that receipt's id
	verifierPrefix   = []byte("audit/ver/") // verifier -> Verifier
	disputePrefix    = []byte("audit/d/")   // id -> Dispute
	nextDisputeKey   = []byte("audit/next")
	paramsKey        = []byte("audit/params")
	// A dispute's or review's pool, frozen when it waits for its beacon.
	disputePoolPrefix = []byte("audit/pool/d/")
	reviewPoolPrefix  = []byte("audit/pool/r/")

	// deadlines is EndBlock's agenda: each open dispute at its reveal_until.
	deadlines = agenda.New("audit/due/")
	// draws has the disputes and key reviews whose committee waits for
	// its beacon, at the height it is expected final.
	draws       = agenda.New("audit/draw/")
	reviewDraws = agenda.New("audit/rdraw/")
	// bonds holds each open dispute's challenge bond.
	bonds = escrow.New(auditpb.Escrow, "audit/bond/")
)

// GetParams reads the params.
func GetParams(kv store.Reader) *auditpb.Params {
	v := kv.Get(paramsKey)
	if v == nil {
		return auditpb.DefaultParams()
	}
	p := &auditpb.Params{}
	module.MustUnmarshal(v, p)
	return p
}

func be(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// GetDispute returns a dispute or nil.
func GetDispute(kv store.Reader, id uint64) *auditpb.Dispute {
	v := kv.Get(cat(disputePrefix, be(id)))
	if v == nil {
		return nil
	}
	d := &auditpb.Dispute{}
	module.MustUnmarshal(v, d)
	return d
}

func putDispute(kv store.KV, d *auditpb.Dispute) {
	kv.Set(cat(disputePrefix, be(d.Id)), module.MustMarshal(d))
}

// Verifiers lists the registered verifiers with enough stake, by address.
func Verifiers(kv store.Reader, min uint64) []addr.Address {
	it := kv.Iterator(verifierPrefix, store.PrefixEnd(verifierPrefix))
	defer it.Close()
	var out []addr.Address
	for ; it.Valid(); it.Next() {
		var a addr.Address
		copy(a[:], it.Key()[len(verifierPrefix):])
		if staking.Bonded(kv, a) >= min {
			out = append(out, a)
		}
	}
	return out
}

// Weigh freezes candidates' bonded stake, the weights a committee is
// drawn by (see committee.Weigh).
func Weigh(kv store.Reader, candidates []addr.Address) []committee.Candidate {
	return committee.Weigh(candidates, func(a addr.Address) uint64 { return staking.Bonded(kv, a) })
}

// DrawMembers draws a committee from a frozen pool by seed and keeps the
// members that are still verifiers with enough stake: one that has left
// since the pool was frozen is dropped (leaving can shrink a committee,
// never choose it).
func DrawMembers(kv store.Reader, p *auditpb.Params, frozen []committee.Candidate, seed []byte) []addr.Address {
	var members []addr.Address
	for _, v := range committee.DrawFrom(frozen, int(p.CommitteeSize), seed) {
		if kv.Get(cat(verifierPrefix, v[:])) != nil && staking.Bonded(kv, v) >= p.VerifierMinStake {
			members = append(members, v)
		}
	}
	return members
}

// Frozen is the pool stored under key, deleted as it is read: a draw
// uses it once.
func Frozen(kv store.KV, key []byte) []committee.Candidate {
	v := kv.Get(key)
	kv.Delete(key)
	return committee.Decode(v)
}

// Challenge opens a dispute over an anchored receipt.
func Challenge(ctx *module.Context, m *auditpb.MsgChallenge) (*auditpb.Dispute, error) {
	// The bond moves through the bank like any spend, so an agent's
	// policy limits it (its denom, its limits, its recipients).
	p := GetParams(ctx.KV)
	ctx.ConsumeGas(gas.Ed25519Verify, "the receipt's signature")
	r, err := receipt.DecodeUnbound(string(m.Receipt))
	if err != nil {
		return nil, fmt.Errorf("audit: %v: %w", err, codes.ErrSignature)
	}
	// Whose key signed it: the provider's current key, or one it rotated
	// away from, for a receipt dated before the rotation (alone, within
	// the window below) or anchored (the provider's own claim put it on
	// chain). So a provider cannot escape a lie by rotating; and whoever
	// stole the old key can forge lies to slash it for only as long as a
	// receipt dated before the rotation is challengeable alone.
	provider, err := addr.Parse(r.Provider)
	if err != nil {
		return nil, fmt.Errorf("audit: the receipt's provider: %v: %w", err, codes.ErrInvalidAddress)
	}
	key := account.Describe(ctx.KV, provider, r.PublicKey)
	switch {
	case key.Current:
	case key.RetiredAt == 0:
		return nil, fmt.Errorf("audit: the receipt is signed by a key that was never provider %s's: %w", provider, codes.ErrSignature)
	case m.ChannelId == 0 && r.Height >= key.RetiredAt:
		return nil, fmt.Errorf("audit: the receipt is signed by a key provider %s retired at height %d, and dated %d, after that; only its anchor could make it the provider's: %w", provider, key.RetiredAt, r.Height, codes.ErrSignature)
	}
	if !bytes.Equal(r.RequestHash, receipt.Hash(m.Request)) {
		return nil, fmt.Errorf("audit: the request does not hash to the receipt's request hash: %w", codes.ErrInvalidRequest)
	}
	if r.ChainId != ctx.ChainID {
		return nil, fmt.Errorf("audit: the receipt is for chain %q, not %q: %w", r.ChainId, ctx.ChainID, codes.ErrInvalidRequest)
	}
	// A signed receipt is evidence by itself: within the window after the
	// height it names, it is challenged alone. Anchoring (a claim's Merkle
	// root) remains the provider's proof of what it claimed, and lets an
	// older receipt be challenged.
	if m.ChannelId == 0 {
		// Buyers take receipts dated up to receipt.MaxLead ahead of the
		// chain: those are challengeable at once too.
		if r.Height > ctx.Height+receipt.MaxLead || r.Height+ChallengeWindow < ctx.Height {
			return nil, fmt.Errorf("audit: the receipt names height %d; alone it can be challenged from then until %d (now %d); challenge it with its anchor: %w",
				r.Height, r.Height+ChallengeWindow, ctx.Height, codes.ErrInvalidRequest)
		}
	} else {
		ch := channel.Get(ctx.KV, m.ChannelId)
		if ch == nil || ch.Payee != r.Provider {
			return nil, fmt.Errorf("audit: channel %d does not pay the receipt's provider %s: %w", m.ChannelId, r.Provider, codes.ErrInvalidRequest)
		}
		anchors := channel.Anchors(ctx.KV, m.ChannelId)
		if int(m.Anchor) >= len(anchors) {
			return nil, fmt.Errorf("audit: channel %d has %d anchored claims, not %d: %w", m.ChannelId, len(anchors), m.Anchor+1, codes.ErrNotFound)
		}
		an := anchors[m.Anchor]
		ctx.ConsumeGas(gas.Sha256Block*2*uint64(len(m.Path)+1), "the receipt's Merkle path")
		if !receipt.VerifyPath(an.Root, receipt.Hash(m.Receipt), int(m.LeafIndex), int(an.Count), m.Path) {
			return nil, fmt.Errorf("audit: the receipt is not anchored: its path does not lead to claim %d's root: %w", m.Anchor, codes.ErrInvalidRequest)
		}
	}
	// One dispute per receipt, by what its provider signed (not by its
	// encoding, which can vary): one lie is slashed once.
	rid, err := receipt.ID(string(m.Receipt))
	if err != nil {
		return nil, fmt.Errorf("audit: %v: %w", err, codes.ErrSignature)
	}
	seen := cat(challengedPrefix, rid)
	if v := ctx.KV.Get(seen); v != nil {
		return nil, fmt.Errorf("audit: this receipt has been challenged already (dispute %d); a receipt is disputed, and a lie slashed, once: %w", binary.BigEndian.Uint64(v), codes.ErrAlreadyDisputed)
	}
	pool := disputePool(ctx.KV, p, r.Provider, m.Challenger)
	if len(pool) < int(p.CommitteeSize) {
		return nil, fmt.Errorf("audit: %d eligible verifiers, a committee needs %d: %w", len(pool), p.CommitteeSize, codes.ErrInvalidRequest)
	}
	id := uint64(1)
	if v := ctx.KV.Get(nextDisputeKey); v != nil {
		id = binary.BigEndian.Uint64(v)
	}
	if err := bonds.Hold(ctx, ctx.Signer, id, coin.New(coin.Native, p.ChallengeBond)); err != nil {
		return nil, fmt.Errorf("audit: the challenge bond: %w", err)
	}
	ctx.KV.Set(nextDisputeKey, be(id+1))
	ctx.KV.Set(seen, be(id))
	ctx.KV.Set(cat(disputedReceipt, be(id)), rid)
	d := &auditpb.Dispute{Id: id, Challenger: m.Challenger, Provider: r.Provider, ModelId: r.ModelId, RequestHash: r.RequestHash,
		ClaimedResponseHash: r.ResponseHash, Request: m.Request, Bond: p.ChallengeBond, Status: auditpb.DisputeStatus_DISPUTE_STATUS_OPEN}
	ctx.ConsumeGas(2*gas.EndBlockStep, "the dispute's draw and settlement")
	ctx.Emit("challenge", module.Key("dispute_id", module.U64(id)), module.Key("provider", d.Provider), module.Key("challenger", d.Challenger))
	// The committee comes from a beacon no one knows yet, so neither the
	// challenger nor a proposer can choose who judges.
	// The pool and its weights are frozen now, before anyone can know
	// the beacon: see committee.Weigh.
	frozen := Weigh(ctx.KV, pool)
	epoch := beacon.Request(ctx)
	if seed, ok := beacon.Seed(ctx, epoch, "audit", id); ok {
		return d, drawDispute(ctx, d, frozen, seed)
	}
	d.BeaconEpoch, d.DrawAt = epoch, beacon.ReadyAt(ctx.KV, ctx.Height, epoch)
	draws.Add(ctx.KV, d.DrawAt, id)
	ctx.KV.Set(cat(disputePoolPrefix, be(id)), committee.Encode(frozen))
	putDispute(ctx.KV, d)
	return d, nil
}

// disputePool is who may judge a dispute: every staked verifier but the
// provider and the challenger.
func disputePool(kv store.Reader, p *auditpb.Params, provider, challenger string) []addr.Address {
	var pool []addr.Address
	for _, v := range Verifiers(kv, p.VerifierMinStake) {
		if s := v.String(); s != provider && s != challenger {
			pool = append(pool, v)
		}
	}
	return pool
}

// drawDispute draws d's committee from its frozen pool and seed and opens
// its vote from this block. Members that left since the challenge are
// dropped; if none is left, the dispute is settled undecided, its bond
// returned.
func drawDispute(ctx *module.Context, d *auditpb.Dispute, frozen []committee.Candidate, seed []byte) error {
	p := GetParams(ctx.KV)
	d.DrawAt = 0
	members := DrawMembers(ctx.KV, p, frozen, seed)
	if len(members) == 0 {
		return settle(ctx, d)
	}
	d.CommitUntil = ctx.Height + p.CommitBlocks
	d.RevealUntil = d.CommitUntil + p.RevealBlocks
	attrs := []module.Attr{module.Key("dispute_id", module.U64(d.Id))}
	for _, v := range members {
		d.Votes = append(d.Votes, &auditpb.Vote{Verifier: v.String()})
		staking.HoldUntil(ctx, v, d.RevealUntil+MaxDueDelay) // a missed vote is slashed at settlement
		attrs = append(attrs, module.Key("member", v.String()))
	}
	putDispute(ctx.KV, d)
	deadlines.Add(ctx.KV, d.RevealUntil, d.Id)
	ctx.Emit("committee", attrs...)
	return nil
}

// AfterDeregister holds a provider's stake, once it deregisters, for as
// long as a receipt it signed while registered can still be challenged
// and its dispute settled: unbonding sooner would leave a proven lie
// nothing to slash.
func AfterDeregister(ctx *module.Context, operator addr.Address) {
	p := GetParams(ctx.KV)
	staking.HoldUntil(ctx, operator, ctx.Height+receipt.MaxLead+ChallengeWindow+beacon.MaxDrawDelay+p.CommitBlocks+p.RevealBlocks+MaxDueDelay)
}

// MaxDueDelay is how many blocks past its deadline a settlement may wait
// for its EndBlock (see agenda.PerBlock); holds of stake allow for it.
const MaxDueDelay = 100

// memberVote finds the signer's vote on an open dispute.
func memberVote(ctx *module.Context, id uint64) (*auditpb.Dispute, *auditpb.Vote, error) {
	d := GetDispute(ctx.KV, id)
	if d == nil || d.Status != auditpb.DisputeStatus_DISPUTE_STATUS_OPEN {
		return nil, nil, fmt.Errorf("audit: no open dispute %d: %w", id, codes.ErrNotFound)
	}
	for _, v := range d.Votes {
		if v.Verifier == ctx.Signer.String() {
			return d, v, nil
		}
	}
	return nil, nil, fmt.Errorf("audit: %s is not on dispute %d's committee: %w", ctx.Signer, id, codes.ErrUnauthorized)
}

// Commit records a member's hidden vote.
func Commit(ctx *module.Context, m *auditpb.MsgCommit) error {
	d, v, err := memberVote(ctx, m.DisputeId)
	if err != nil {
		return err
	}
	if err := castCommit(ctx, fmt.Sprintf("dispute %d", d.Id), d.CommitUntil, v, m.Commitment); err != nil {
		return err
	}
	putDispute(ctx.KV, d)
	ctx.Emit("commit_vote", module.Key("dispute_id", module.U64(d.Id)), module.Key("member", ctx.Signer.String()))
	return nil
}

// Reveal opens a member's vote.
func Reveal(ctx *module.Context, m *auditpb.MsgReveal) error {
	d, v, err := memberVote(ctx, m.DisputeId)
	if err != nil {
		return err
	}
	if err := castReveal(ctx, fmt.Sprintf("dispute %d", d.Id), d.CommitUntil, d.RevealUntil, v, auditpb.CommitmentDomain, m.ResponseHash, m.Salt); err != nil {
		return err
	}
	putDispute(ctx.KV, d)
	ctx.Emit("reveal_vote", module.Key("dispute_id", module.U64(d.Id)), module.Key("member", ctx.Signer.String()))
	return nil
}

// castCommit records a committee member's hidden vote on what (a dispute,
// a key review) while commitments are open.
func castCommit(ctx *module.Context, what string, commitUntil int64, v *auditpb.Vote, commitment []byte) error {
	switch {
	case ctx.Height > commitUntil:
		return fmt.Errorf("audit: %s took commitments until height %d: %w", what, commitUntil, codes.ErrInvalidRequest)
	case len(v.Commitment) != 0:
		return fmt.Errorf("audit: %s has already committed on %s: %w", ctx.Signer, what, codes.ErrInvalidRequest)
	case len(commitment) != 32:
		return fmt.Errorf("audit: a commitment is 32 bytes: %w", codes.ErrInvalidRequest)
	}
	v.Commitment = commitment
	return nil
}

// castReveal opens a member's vote (a response hash, a verdict) while
// reveals are open, if it matches the member's commitment.
func castReveal(ctx *module.Context, what string, commitUntil, revealUntil int64, v *auditpb.Vote, domain string, value, salt []byte) error {
	switch {
	case ctx.Height <= commitUntil:
		return fmt.Errorf("audit: %s reveals after height %d: %w", what, commitUntil, codes.ErrInvalidRequest)
	case ctx.Height > revealUntil:
		return fmt.Errorf("audit: %s took reveals until height %d: %w", what, revealUntil, codes.ErrInvalidRequest)
	case len(v.ResponseHash) != 0:
		return fmt.Errorf("audit: %s has already revealed on %s: %w", ctx.Signer, what, codes.ErrInvalidRequest)
	case !commit.Opens(v.Commitment, domain, value, []byte(ctx.Signer.String()), salt):
		return fmt.Errorf("audit: the reveal does not match %s's commitment: %w", ctx.Signer, codes.ErrInvalidRequest)
	}
	v.ResponseHash = value
	return nil
}

// EndBlock settles the disputes and key reviews whose reveal window has
// closed, earliest first, at most agenda.PerBlock of each.
func (Module) EndBlock(ctx *module.Context) error {
	perBlock := agenda.PerBlock(auth.GetParams(ctx.KV).BlockGasLimit)
	if err := drawDue(ctx, perBlock); err != nil {
		return err
	}
	for _, id := range deadlines.Due(ctx.KV, ctx.Height, perBlock) {
		if err := settle(ctx, GetDispute(ctx.KV, id)); err != nil {
			return err
		}
	}
	for _, id := range reviewDeadline.Due(ctx.KV, ctx.Height, perBlock) {
		if err := settleReview(ctx, GetReview(ctx.KV, id)); err != nil {
			return err
		}
	}
	return nil
}

// drawDue draws the committees whose beacon is final, or puts them off
// to the height it is now expected (a new epoch_blocks moves it).
func drawDue(ctx *module.Context, perBlock int) error {
	for _, id := range draws.Due(ctx.KV, ctx.Height, perBlock) {
		d := GetDispute(ctx.KV, id)
		if d.Status != auditpb.DisputeStatus_DISPUTE_STATUS_OPEN || d.DrawAt == 0 {
			ctx.KV.Delete(cat(disputePoolPrefix, be(id)))
			continue // settled by a proof before its committee was drawn
		}
		seed, ok := beacon.Seed(ctx, d.BeaconEpoch, "audit", id)
		if !ok {
			d.DrawAt = max(ctx.Height+1, beacon.ReadyAt(ctx.KV, ctx.Height, d.BeaconEpoch))
			draws.Add(ctx.KV, d.DrawAt, id)
			putDispute(ctx.KV, d)
			continue
		}
		if err := drawDispute(ctx, d, Frozen(ctx.KV, cat(disputePoolPrefix, be(id))), seed); err != nil {
			return err
		}
	}
	for _, id := range reviewDraws.Due(ctx.KV, ctx.Height, perBlock) {
		r := GetReview(ctx.KV, id)
		if r.Status != auditpb.ReviewStatus_REVIEW_STATUS_OPEN || r.DrawAt == 0 {
			ctx.KV.Delete(cat(reviewPoolPrefix, be(id)))
			continue
		}
		seed, ok := beacon.Seed(ctx, r.BeaconEpoch, "audit-key", id)
		if !ok {
			r.DrawAt = max(ctx.Height+1, beacon.ReadyAt(ctx.KV, ctx.Height, r.BeaconEpoch))
			reviewDraws.Add(ctx.KV, r.DrawAt, id)
			putReview(ctx.KV, r)
			continue
		}
		if err := drawReview(ctx, r, Frozen(ctx.KV, cat(reviewPoolPrefix, be(id))), seed); err != nil {
			return err
		}
	}
	return nil
}

// settle decides a dispute by the committee's majority: a lying provider
// is slashed and its challenger rewarded; a frivolous challenger loses the
// bond to the committee; members who did not vote, or voted against the
// majority, lose a little stake.
func settle(ctx *module.Context, d *auditpb.Dispute) error {
	p := GetParams(ctx.KV)
	counts := map[string]int{}
	var hashes []string
	for _, v := range d.Votes {
		if len(v.ResponseHash) == 0 {
			continue
		}
		h := string(v.ResponseHash)
		if counts[h] == 0 {
			hashes = append(hashes, h)
		}
		counts[h]++
	}
	majority := ""
	for _, h := range hashes {
		if counts[h]*2 > len(d.Votes) {
			majority = h
		}
	}
	provider, challenger := addr.MustParse(d.Provider), addr.MustParse(d.Challenger)
	rid := cat(disputedReceipt, be(d.Id))
	switch {
	case majority == "":
		// Nothing was judged, so the receipt may be challenged again:
		// otherwise a liar's sybil could challenge first, split the vote
		// and make the lie immune.
		d.Status = auditpb.DisputeStatus_DISPUTE_STATUS_UNDECIDED
		if v := ctx.KV.Get(rid); v != nil {
			ctx.KV.Delete(cat(challengedPrefix, v))
		}
		if _, err := bonds.Close(ctx, d.Id, challenger); err != nil {
			return err
		}
	case majority == string(d.ClaimedResponseHash):
		d.Status = auditpb.DisputeStatus_DISPUTE_STATUS_PROVIDER_HONEST
		// The bond pays the members who did the work and voted right.
		var right []addr.Address
		for _, v := range d.Votes {
			if string(v.ResponseHash) == majority {
				right = append(right, addr.MustParse(v.Verifier))
			}
		}
		share := d.Bond / uint64(len(right))
		for _, a := range right {
			if err := bonds.Pay(ctx, d.Id, a, share); err != nil {
				return err
			}
		}
		if err := bonds.Burn(ctx, d.Id, d.Bond-share*uint64(len(right))); err != nil {
			return err
		}
		if _, err := bonds.Close(ctx, d.Id, challenger); err != nil { // nothing is left
			return err
		}
		chainprov.AddAuditPassed(ctx, provider)
	default:
		d.Status = auditpb.DisputeStatus_DISPUTE_STATUS_PROVIDER_LIED
		if _, err := bonds.Close(ctx, d.Id, challenger); err != nil {
			return err
		}
		if _, err := staking.SlashTo(ctx, provider, p.SlashBps, 0, "lied in a receipt", challenger, p.RewardBps); err != nil {
			return err
		}
		chainprov.AddDisputeLost(ctx, provider)
	}
	ctx.KV.Delete(rid)
	d.MajorityHash = []byte(majority)
	for _, v := range d.Votes {
		if majority != "" && string(v.ResponseHash) == majority {
			continue
		}
		if majority == "" && len(v.ResponseHash) != 0 {
			continue // no majority: only the silent are at fault
		}
		if _, err := staking.Slash(ctx, addr.MustParse(v.Verifier), p.MissPenaltyBps, 0, "audit vote missed or overruled"); err != nil {
			return err
		}
	}
	putDispute(ctx.KV, d)
	ctx.Emit("dispute_settled", module.Key("dispute_id", module.U64(d.Id)), module.Key("provider", d.Provider), module.Val("status", d.Status.String()))
	return nil
}

// RegisterVerifier adds a staked verifier.
func RegisterVerifier(ctx *module.Context) error {
	p := GetParams(ctx.KV)
	if have := staking.Bonded(ctx.KV, ctx.Signer); have < p.VerifierMinStake {
		return fmt.Errorf("audit: %s has %duagr bonded, a verifier needs %d: %w", ctx.Signer, have, p.VerifierMinStake, codes.ErrInsufficientStake)
	}
	ctx.KV.Set(cat(verifierPrefix, ctx.Signer[:]), module.MustMarshal(&auditpb.Verifier{Address: ctx.Signer.String(), RegisteredAt: ctx.Height}))
	ctx.Emit("register_verifier", module.Key("verifier", ctx.Signer.String()))
	return nil
}

// SettleWithProof settles a dispute over a proven digits-mlp answer.
func SettleWithProof(ctx *module.Context, m *auditpb.MsgSettleWithProof) error {
	d := GetDispute(ctx.KV, m.DisputeId)
	if d == nil || d.Status != auditpb.DisputeStatus_DISPUTE_STATUS_OPEN {
		return fmt.Errorf("audit: no open dispute %d: %w", m.DisputeId, codes.ErrNotFound)
	}
	k := GetKey(ctx.KV, d.ModelId)
	if k == nil {
		return fmt.Errorf("audit: model %s has no verifying key: %w", d.ModelId, codes.ErrNotFound)
	}
	var req struct {
		Endpoint string `json:"endpoint"`
		Model    string `json:"model"`
		Input    []int  `json:"input"`
		Proof    bool   `json:"proof"`
	}
	if err := json.Unmarshal(d.Request, &req); err != nil || req.Endpoint != "infer" || !req.Proof || len(req.Input) != zk.Pixels {
		return fmt.Errorf("audit: dispute %d is not over a proven digits-mlp answer: %w", d.Id, codes.ErrInvalidRequest)
	}
	pixels := make([]byte, len(req.Input))
	for i, v := range req.Input {
		if v < 0 || v > 255 {
			return fmt.Errorf("audit: input out of range: %w", codes.ErrInvalidRequest)
		}
		pixels[i] = byte(v)
	}
	ctx.ConsumeGas(gas.Groth16Verify, "a Groth16 proof check")
	if err := zk.Verify(k.VerifyingKey, m.Proof, pixels, m.Logits); err != nil {
		return fmt.Errorf("audit: %v: %w", err, codes.ErrSignature)
	}
	// The proof covers the logits; the class users read is their argmax
	// (the first, on a tie, as the model computes it). A receipt that
	// lies about it is not settled by proving the logits.
	class := 0
	for k, l := range m.Logits {
		if l > m.Logits[class] {
			class = k
		}
	}
	if int(m.Class) != class {
		return fmt.Errorf("audit: the proven logits give class %d, the answer says %d; a proof does not settle a lie about the class: %w", class, m.Class, codes.ErrInvalidRequest)
	}
	// The answer as the provider sent it: the same JSON its /v1/infer
	// writes, under the model name the provider registered.
	name := ""
	if svc := chainprov.GetService(ctx.KV, addr.MustParse(d.Provider), d.ModelId); svc != nil {
		name = svc.ModelName
	}
	body, err := json.Marshal(struct {
		Model  string  `json:"model"`
		Class  int     `json:"class"`
		Logits []int32 `json:"logits"`
		Proof  string  `json:"proof,omitempty"`
	}{name, int(m.Class), m.Logits, base64.StdEncoding.EncodeToString(m.Proof)})
	if err != nil {
		return err
	}
	if !bytes.Equal(receipt.Hash(append(body, '\n')), d.ClaimedResponseHash) {
		return fmt.Errorf("audit: the proven answer is not the one the receipt signed: %w", codes.ErrInvalidRequest)
	}
	// Proven honest: the challenge fails at once; the committee is
	// released without penalty.
	d.Status = auditpb.DisputeStatus_DISPUTE_STATUS_PROVIDER_HONEST
	d.MajorityHash = d.ClaimedResponseHash
	if err := bonds.Burn(ctx, d.Id, d.Bond); err != nil {
		return err
	}
	if _, err := bonds.Close(ctx, d.Id, addr.MustParse(d.Challenger)); err != nil { // nothing is left
		return err
	}
	deadlines.Remove(ctx.KV, d.RevealUntil, d.Id)
	ctx.KV.Delete(cat(disputedReceipt, be(d.Id)))
	putDispute(ctx.KV, d)
	chainprov.AddAuditPassed(ctx, addr.MustParse(d.Provider))
	ctx.Emit("dispute_settled", module.Key("dispute_id", module.U64(d.Id)), module.Key("provider", d.Provider), module.Val("status", d.Status.String()), module.Val("by", "proof"))
	return nil
}
