// Package gov is on-chain governance: proposals backed by a deposit,
// voted on by bonded stake (delegators inherit their validator's vote
// unless they vote themselves), and executed when they pass: a change of
// module params, a text, or a software upgrade at a height. See
// docs/governance.md.
package gov

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"strconv"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/audit"
	"github.com/agoranet/agora/internal/chain/bank"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/escrow"
	"github.com/agoranet/agora/internal/chain/gov/govpb"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/staking"
	"github.com/agoranet/agora/internal/chain/staking/stakingpb"
	"github.com/agoranet/agora/internal/chain/store"
)

var (
	paramsKey      = []byte("gov/params")
	nextKey        = []byte("gov/next")
	proposalPrefix = []byte("gov/p/") // id -> Proposal
	activePrefix   = []byte("gov/a/") // id -> nil: in deposit or voting
	votePrefix     = []byte("gov/v/") // id | voter -> Vote
	depositPrefix  = []byte("gov/d/") // id | depositor -> amount
	planKey        = []byte("gov/plan")
	donePrefix     = []byte("gov/done/") // name -> UpgradePlan
	depositsOwed   = escrow.NewOwed("gov/deposits_owed/")
)

func be(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

func key(prefix []byte, parts ...[]byte) []byte {
	k := append([]byte(nil), prefix...)
	for _, p := range parts {
		k = append(k, p...)
	}
	return k
}

// ParamsModule is a module whose params governance may change: it
// reads them, declares their ranges and stores a changed set after its
// own checks of how they relate.
type ParamsModule interface {
	module.Params
	SetParams(kv store.KV, p proto.Message) error
}

// paramModules are the modules governance can change, by name. The app
// installs them at start-up (gov cannot import the modules that import
// it).
var paramModules = map[string]ParamsModule{}

// SetParamModules installs the modules whose params proposals may change.
func SetParamModules(mods map[string]ParamsModule) { paramModules = mods }

// GetParams reads the params.
func GetParams(kv store.Reader) *govpb.Params {
	p := govpb.DefaultParams()
	if v := kv.Get(paramsKey); v != nil {
		p = &govpb.Params{}
		module.MustUnmarshal(v, p)
	}
	return p
}

// GetProposal returns proposal id.
func GetProposal(kv store.Reader, id uint64) (*govpb.Proposal, bool) {
	v := kv.Get(key(proposalPrefix, be(id)))
	if v == nil {
		return nil, false
	}
	p := &govpb.Proposal{}
	module.MustUnmarshal(v, p)
	return p, true
}

func putProposal(kv store.KV, p *govpb.Proposal) {
	kv.Set(key(proposalPrefix, be(p.Id)), module.MustMarshal(p))
	switch p.Status {
	case govpb.Status_STATUS_DEPOSIT, govpb.Status_STATUS_VOTING:
		kv.Set(key(activePrefix, be(p.Id)), []byte{})
	default:
		kv.Delete(key(activePrefix, be(p.Id)))
	}
}

// Proposals lists every proposal, oldest first.
func Proposals(kv store.Reader) []*govpb.Proposal {
	it := kv.Iterator(proposalPrefix, store.PrefixEnd(proposalPrefix))
	defer it.Close()
	var out []*govpb.Proposal
	for ; it.Valid(); it.Next() {
		p := &govpb.Proposal{}
		module.MustUnmarshal(it.Value(), p)
		out = append(out, p)
	}
	return out
}

// Submit opens a proposal with its initial deposit, after checking its
// content against the state now: a params change must be valid for its
// module, an upgrade must be in the future.
func Submit(ctx *module.Context, proposer addr.Address, m *govpb.MsgSubmitProposal) (uint64, error) {
	p := GetParams(ctx.KV)
	if m.InitialDeposit.Amount < p.MinInitialDeposit {
		return 0, fmt.Errorf("gov: a proposal needs an initial deposit of at least %duagr, got %s; it is burned if the proposal never reaches voting: %w",
			p.MinInitialDeposit, coin.String(m.InitialDeposit), codes.ErrInsufficientFunds)
	}
	if err := checkContent(ctx, m.Content); err != nil {
		return 0, err
	}
	var id uint64 = 1
	if v := ctx.KV.Get(nextKey); v != nil {
		id = binary.BigEndian.Uint64(v)
	}
	ctx.KV.Set(nextKey, be(id+1))
	prop := &govpb.Proposal{Id: id, Proposer: proposer.String(), Title: m.Title, Summary: m.Summary, Content: m.Content,
		Status: govpb.Status_STATUS_DEPOSIT, SubmittedAt: ctx.Height, DepositEnd: ctx.Height + p.DepositPeriod}
	putProposal(ctx.KV, prop)
	ctx.Emit("submit_proposal", module.Key("proposal_id", module.U64(id)), module.Key("proposer", proposer.String()), module.Val("title", m.Title))
	return id, deposit(ctx, prop, proposer, m.InitialDeposit.Amount)
}

// Deposit adds to a proposal's deposit, in its deposit or voting period.
func Deposit(ctx *module.Context, depositor addr.Address, id, amount uint64) error {
	prop, ok := GetProposal(ctx.KV, id)
	if !ok {
		return fmt.Errorf("gov: no proposal %d: %w", id, codes.ErrNotFound)
	}
	if prop.Status != govpb.Status_STATUS_DEPOSIT && prop.Status != govpb.Status_STATUS_VOTING {
		return fmt.Errorf("gov: proposal %d is %s; deposits are taken only before its vote ends: %w", id, prop.Status, codes.ErrInvalidRequest)
	}
	return deposit(ctx, prop, depositor, amount)
}

func deposit(ctx *module.Context, prop *govpb.Proposal, depositor addr.Address, amount uint64) error {
	if err := bank.Send(ctx, depositor, govpb.Deposits, []*coin.Coin{coin.New(coin.Native, amount)}); err != nil {
		return fmt.Errorf("gov: deposit: %w", err)
	}
	if err := depositsOwed.Add(ctx.KV, coin.Native, amount); err != nil {
		return err
	}
	k := key(depositPrefix, be(prop.Id), depositor[:])
	var had uint64
	if v := ctx.KV.Get(k); v != nil {
		had = binary.BigEndian.Uint64(v)
	}
	total, err := coin.Add(had, amount)
	if err != nil {
		return err
	}
	ctx.KV.Set(k, be(total))
	if prop.Deposit, err = coin.Add(prop.Deposit, amount); err != nil {
		return err
	}
	p := GetParams(ctx.KV)
	if prop.Status == govpb.Status_STATUS_DEPOSIT && prop.Deposit >= p.MinDeposit {
		prop.Status = govpb.Status_STATUS_VOTING
		prop.VotingStart, prop.VotingEnd = ctx.Height, ctx.Height+p.VotingPeriod
		ctx.Emit("proposal_voting", module.Key("proposal_id", module.U64(prop.Id)), module.Val("voting_end", strconv.FormatInt(prop.VotingEnd, 10)))
	}
	putProposal(ctx.KV, prop)
	ctx.Emit("proposal_deposit", module.Key("proposal_id", module.U64(prop.Id)), module.Key("depositor", depositor.String()),
		module.Val("amount", module.U64(amount)+coin.Native))
	return nil
}

// CastVote records (or replaces) voter's vote on a proposal in voting.
func CastVote(ctx *module.Context, voter addr.Address, id uint64, opt govpb.Option) error {
	prop, ok := GetProposal(ctx.KV, id)
	if !ok {
		return fmt.Errorf("gov: no proposal %d: %w", id, codes.ErrNotFound)
	}
	if prop.Status != govpb.Status_STATUS_VOTING {
		return fmt.Errorf("gov: proposal %d is %s, not in its voting period: %w", id, prop.Status, codes.ErrInvalidRequest)
	}
	if ctx.Height > prop.VotingEnd {
		return fmt.Errorf("gov: voting on proposal %d ended at height %d: %w", id, prop.VotingEnd, codes.ErrInvalidRequest)
	}
	ctx.KV.Set(key(votePrefix, be(id), voter[:]), module.MustMarshal(&govpb.Vote{ProposalId: id, Voter: voter.String(), Option: opt}))
	ctx.Emit("vote", module.Key("proposal_id", module.U64(id)), module.Key("voter", voter.String()), module.Val("option", opt.String()))
	return nil
}

// Votes lists the votes on proposal id, by voter.
func Votes(kv store.Reader, id uint64) []*govpb.Vote {
	p := key(votePrefix, be(id))
	it := kv.Iterator(p, store.PrefixEnd(p))
	defer it.Close()
	var out []*govpb.Vote
	for ; it.Valid(); it.Next() {
		v := &govpb.Vote{}
		module.MustUnmarshal(it.Value(), v)
		out = append(out, v)
	}
	return out
}

// Tally counts the votes on id by stake now. Only stake delegated to the
// active set counts, less any validator jailed since consensus was last
// told (its power is cleared only at the end of the block). A delegator who voted counts its delegations with
// its own option; the rest of a validator's tokens count with the
// validator's (its operator's) vote, or not at all if it did not vote.
func Tally(kv store.Reader, id uint64) *govpb.Tally {
	var t govpb.Tally
	add := func(opt govpb.Option, n uint64) {
		switch opt {
		case govpb.Option_OPTION_YES:
			t.Yes += n
		case govpb.Option_OPTION_ABSTAIN:
			t.Abstain += n
		case govpb.Option_OPTION_NO:
			t.No += n
		case govpb.Option_OPTION_VETO:
			t.Veto += n
		}
	}
	counts := func(val *stakingpb.Validator) bool { return val.Power > 0 && !val.Jailed && !val.Tombstoned }
	votes := Votes(kv, id)
	deducted := map[addr.Address]uint64{}
	for _, v := range votes {
		voter := addr.MustParse(v.Voter)
		for _, del := range staking.Delegations(kv, voter) {
			val, ok := staking.GetValidator(kv, addr.MustParse(del.Validator))
			if !ok || !counts(val) {
				continue
			}
			n := staking.TokensOf(val, del.Shares)
			deducted[addr.MustParse(del.Validator)] += n
			add(v.Option, n)
		}
	}
	for _, v := range votes {
		op := addr.MustParse(v.Voter)
		val, ok := staking.GetValidator(kv, op)
		if !ok || !counts(val) {
			continue
		}
		add(v.Option, val.Tokens-min(val.Tokens, deducted[op]))
	}
	for _, val := range staking.Validators(kv) {
		if counts(val) {
			t.Total += val.Tokens
		}
	}
	return &t
}

func quorum(p *govpb.Params, t *govpb.Tally) bool {
	voted := t.Yes + t.Abstain + t.No + t.Veto
	return t.Total > 0 && mulGE(voted, govpbBPS, t.Total, uint64(p.QuorumBps))
}

const govpbBPS = 10_000

// mulGE is a*b >= c*d without overflow.
func mulGE(a, b, c, d uint64) bool {
	hi1, lo1 := bits.Mul64(a, b)
	hi2, lo2 := bits.Mul64(c, d)
	return hi1 > hi2 || (hi1 == hi2 && lo1 >= lo2)
}

// EndBlock moves proposals along: deposit periods that end without the
// minimum expire, late quorum extends voting, and voting periods that
// end are tallied and, if they pass, executed.
func (Module) EndBlock(ctx *module.Context) error {
	var ids []uint64
	it := ctx.KV.Iterator(activePrefix, store.PrefixEnd(activePrefix))
	for ; it.Valid(); it.Next() {
		ids = append(ids, binary.BigEndian.Uint64(it.Key()[len(activePrefix):]))
	}
	it.Close()
	p := GetParams(ctx.KV)
	for _, id := range ids {
		prop, _ := GetProposal(ctx.KV, id)
		switch {
		case prop.Status == govpb.Status_STATUS_DEPOSIT && ctx.Height >= prop.DepositEnd:
			prop.Status = govpb.Status_STATUS_EXPIRED
			if err := settleDeposits(ctx, prop, false); err != nil {
				return err
			}
			putProposal(ctx.KV, prop)
			ctx.Emit("proposal_expired", module.Key("proposal_id", module.U64(id)), module.Val("burned", module.U64(prop.Deposit)+coin.Native))
		case prop.Status == govpb.Status_STATUS_VOTING:
			if err := endVoting(ctx, p, prop); err != nil {
				return err
			}
		}
	}
	return nil
}

func endVoting(ctx *module.Context, p *govpb.Params, prop *govpb.Proposal) error {
	// Quorum is looked at when the late window opens and when voting
	// ends, not in every block (each look tallies every vote). Quorum at
	// the end that was not there when the window opened came late: voting
	// is extended once, so that nobody swings it at the last block.
	if ctx.Height == prop.VotingEnd-p.LateWindowBlocks && !prop.Extended && quorum(p, Tally(ctx.KV, prop.Id)) {
		prop.QuorumEarly = true
		putProposal(ctx.KV, prop)
	}
	if ctx.Height < prop.VotingEnd {
		return nil
	}
	if !prop.QuorumEarly && !prop.Extended && p.ExtensionBlocks > 0 && quorum(p, Tally(ctx.KV, prop.Id)) {
		prop.Extended = true
		prop.VotingEnd += p.ExtensionBlocks
		putProposal(ctx.KV, prop)
		ctx.Emit("proposal_extended", module.Key("proposal_id", module.U64(prop.Id)), module.Val("voting_end", strconv.FormatInt(prop.VotingEnd, 10)))
		return nil
	}
	t := Tally(ctx.KV, prop.Id)
	prop.Tally = t
	voted := t.Yes + t.Abstain + t.No + t.Veto
	refund := true
	switch {
	case !quorum(p, t):
		prop.Status = govpb.Status_STATUS_REJECTED
	case voted > 0 && !mulGE(uint64(p.VetoBps), voted, t.Veto, govpbBPS):
		// veto/voted > veto_bps: the deposits burn.
		prop.Status, refund = govpb.Status_STATUS_VETOED, false
	case voted-t.Abstain == 0 || mulGE(uint64(p.ThresholdBps), voted-t.Abstain, t.Yes, govpbBPS):
		// yes/(voted - abstain) must be over the threshold.
		prop.Status = govpb.Status_STATUS_REJECTED
	default:
		prop.Status = govpb.Status_STATUS_PASSED
		if err := execute(ctx, prop); err != nil {
			prop.Status, prop.Failure = govpb.Status_STATUS_FAILED, err.Error()
		}
	}
	if err := settleDeposits(ctx, prop, refund); err != nil {
		return err
	}
	putProposal(ctx.KV, prop)
	ctx.Emit("proposal_decided", module.Key("proposal_id", module.U64(prop.Id)), module.Key("status", prop.Status.String()),
		module.Val("yes", module.U64(t.Yes)), module.Val("no", module.U64(t.No)), module.Val("abstain", module.U64(t.Abstain)),
		module.Val("veto", module.U64(t.Veto)), module.Val("total", module.U64(t.Total)), module.Val("failure", prop.Failure))
	return nil
}

// settleDeposits returns each deposit to its depositor, or burns them all.
func settleDeposits(ctx *module.Context, prop *govpb.Proposal, refund bool) error {
	pfx := key(depositPrefix, be(prop.Id))
	type dep struct {
		who    addr.Address
		amount uint64
		k      []byte
	}
	var deps []dep
	it := ctx.KV.Iterator(pfx, store.PrefixEnd(pfx))
	for ; it.Valid(); it.Next() {
		var a addr.Address
		copy(a[:], it.Key()[len(pfx):])
		deps = append(deps, dep{a, binary.BigEndian.Uint64(it.Value()), append([]byte(nil), it.Key()...)})
	}
	it.Close()
	var total uint64
	for _, d := range deps {
		ctx.KV.Delete(d.k)
		depositsOwed.Sub(ctx.KV, coin.Native, d.amount)
		total += d.amount
		if refund {
			if err := bank.Send(ctx, govpb.Deposits, d.who, []*coin.Coin{coin.New(coin.Native, d.amount)}); err != nil {
				return fmt.Errorf("gov: refund deposit: %w", err)
			}
		}
	}
	if !refund && total > 0 {
		return bank.Burn(ctx, govpb.Deposits, coin.New(coin.Native, total))
	}
	return nil
}

// execute applies a passed proposal, all of it or nothing.
func execute(ctx *module.Context, prop *govpb.Proposal) error {
	cache := store.NewCache(ctx.KV)
	cctx := ctx.With(cache)
	if err := apply(cctx, prop.Content, true); err != nil {
		return err
	}
	cache.Write()
	for _, e := range cctx.Events() {
		ctx.Emit(e.Type, e.Attributes...)
	}
	return nil
}

// checkContent checks what a proposal would do against the state now,
// without keeping anything.
func checkContent(ctx *module.Context, c *govpb.Content) error {
	return apply(ctx.With(store.NewCache(ctx.KV)), c, false)
}

func apply(ctx *module.Context, c *govpb.Content, emit bool) error {
	switch k := c.Kind.(type) {
	case *govpb.Content_Text:
		return nil
	case *govpb.Content_Params:
		for _, ch := range k.Params.Changes {
			if err := setParam(ctx, ch); err != nil {
				return err
			}
			if emit {
				ctx.Emit("param_change", module.Key("module", ch.Module), module.Key("param", ch.Param), module.Val("value", ch.Value))
			}
		}
		return nil
	case *govpb.Content_Upgrade:
		return schedule(ctx, k.Upgrade)
	case *govpb.Content_ApproveModelKey:
		return audit.ApproveKey(ctx, k.ApproveModelKey.ReviewId)
	}
	return fmt.Errorf("gov: unknown proposal content %T: %w", c.Kind, codes.ErrInvalidRequest)
}

// setParam changes one numeric param, checked against its module's
// ranges and rules.
func setParam(ctx *module.Context, ch *govpb.ParamChange) error {
	m, ok := paramModules[ch.Module]
	if !ok {
		return fmt.Errorf("gov: module %q has no params governance can change: %w", ch.Module, codes.ErrInvalidRequest)
	}
	p := proto.Clone(m.Params(ctx.KV))
	f := p.ProtoReflect().Descriptor().Fields().ByName(protoreflect.Name(ch.Param))
	if f == nil || f.IsList() || f.IsMap() {
		return fmt.Errorf("gov: %s has no param %q: %w", ch.Module, ch.Param, codes.ErrInvalidRequest)
	}
	var v protoreflect.Value
	switch f.Kind() {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		n, err := strconv.ParseInt(ch.Value, 10, 32)
		if err != nil {
			return fmt.Errorf("gov: %s.%s = %q: %v: %w", ch.Module, ch.Param, ch.Value, err, codes.ErrInvalidRequest)
		}
		v = protoreflect.ValueOfInt32(int32(n))
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		n, err := strconv.ParseInt(ch.Value, 10, 64)
		if err != nil {
			return fmt.Errorf("gov: %s.%s = %q: %v: %w", ch.Module, ch.Param, ch.Value, err, codes.ErrInvalidRequest)
		}
		v = protoreflect.ValueOfInt64(n)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		n, err := strconv.ParseUint(ch.Value, 10, 32)
		if err != nil {
			return fmt.Errorf("gov: %s.%s = %q: %v: %w", ch.Module, ch.Param, ch.Value, err, codes.ErrInvalidRequest)
		}
		v = protoreflect.ValueOfUint32(uint32(n))
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		n, err := strconv.ParseUint(ch.Value, 10, 64)
		if err != nil {
			return fmt.Errorf("gov: %s.%s = %q: %v: %w", ch.Module, ch.Param, ch.Value, err, codes.ErrInvalidRequest)
		}
		v = protoreflect.ValueOfUint64(n)
	default:
		return fmt.Errorf("gov: %s.%s is not a numeric param; governance changes numeric params: %w", ch.Module, ch.Param, codes.ErrInvalidRequest)
	}
	p.ProtoReflect().Set(f, v)
	if err := module.CheckParams(ch.Module, p, m.ParamRanges()); err != nil {
		return fmt.Errorf("gov: %w", err)
	}
	if err := m.SetParams(ctx.KV, p); err != nil {
		return fmt.Errorf("gov: %s refuses %s = %s: %w", ch.Module, ch.Param, ch.Value, err)
	}
	return nil
}

// Solvent checks that the deposits account holds what is deposited.
func Solvent(kv store.Reader) error {
	return depositsOwed.Covered(kv, govpb.Deposits, "gov deposits")
}

// CheckInvariant is the full check (for tests): the deposit records add up
// to the running total, which the account holds.
func CheckInvariant(kv store.Reader) error {
	var sum uint64
	it := kv.Iterator(depositPrefix, store.PrefixEnd(depositPrefix))
	for ; it.Valid(); it.Next() {
		sum += binary.BigEndian.Uint64(it.Value())
	}
	it.Close()
	if sum != depositsOwed.Of(kv, coin.Native) {
		return fmt.Errorf("gov: deposit records hold %d, the running total says %d", sum, depositsOwed.Of(kv, coin.Native))
	}
	return depositsOwed.Exact(kv, govpb.Deposits, "gov deposits")
}
