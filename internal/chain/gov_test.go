package chain_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"

	"github.com/agoranet/agora/internal/chain/audit/auditpb"
	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/gov"
	"github.com/agoranet/agora/internal/chain/gov/govpb"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/provider/providerpb"
	"github.com/agoranet/agora/internal/chain/staking/stakingpb"
	"github.com/agoranet/agora/internal/model"
	"github.com/agoranet/agora/internal/node"
	"github.com/agoranet/agora/internal/zk"
)

// govParams are short periods for tests: 5 blocks to deposit, 10 to
// vote, a late window and extension of 3.
func govParams() *govpb.Params {
	p := govpb.DefaultParams()
	p.DepositPeriod, p.VotingPeriod, p.LateWindowBlocks, p.ExtensionBlocks = 5, 10, 3, 3
	return p
}

// newGov is a chain with validators v1 (50 agr, commission 10%) and v2
// (30 agr), dave delegating 10 agr to v2, and short gov periods.
func newGov(t *testing.T) *harness { return newGovIn(t, "") }

// newGovIn is newGov with its state in dir ("" for memory).
func newGovIn(t *testing.T, dir string) *harness {
	h := newHarness(t, dir, withValidators(nil), func(g *node.Genesis) { g.Gov = govParams() })
	h.block()
	h.mustSend("dave", &stakingpb.MsgDelegate{Delegator: address("dave").String(), Validator: address("v2").String(), Amount: coin.New(coin.Native, 10_000_000)})
	return h
}

func offlineAfter(value string) *govpb.Content {
	return &govpb.Content{Kind: &govpb.Content_Params{Params: &govpb.ParamsChange{Changes: []*govpb.ParamChange{{Module: "provider", Param: "offline_after_blocks", Value: value}}}}}
}

// propose submits a proposal with the full deposit and returns its id.
func (h *harness) propose(by string, c *govpb.Content) uint64 {
	h.t.Helper()
	r := h.send(by, &govpb.MsgSubmitProposal{Proposer: address(by).String(), Title: "change", Content: c, InitialDeposit: coin.New(coin.Native, govpb.DefaultParams().MinDeposit)})
	if r.Code != 0 {
		h.t.Fatal(r.Log)
	}
	ps, err := ask(h, govpb.QueryProposals, &govpb.QueryProposalsRequest{})
	if err != nil {
		h.t.Fatal(err)
	}
	return ps.Proposals[len(ps.Proposals)-1].Id
}

func (h *harness) proposal(id uint64) *govpb.Proposal {
	h.t.Helper()
	r, err := ask(h, govpb.QueryProposal, &govpb.QueryProposalRequest{Id: id})
	if err != nil {
		h.t.Fatal(err)
	}
	return r.Proposal
}

func (h *harness) vote(who string, id uint64, opt govpb.Option) {
	h.t.Helper()
	h.mustSend(who, &govpb.MsgVote{Voter: address(who).String(), ProposalId: id, Option: opt})
}

// decide runs blocks until proposal id is decided.
func (h *harness) decide(id uint64) *govpb.Proposal {
	h.t.Helper()
	for i := 0; i < 50; i++ {
		if p := h.proposal(id); p.Status != govpb.Status_STATUS_VOTING && p.Status != govpb.Status_STATUS_DEPOSIT {
			return p
		}
		h.block()
	}
	h.t.Fatalf("proposal %d undecided after 50 blocks", id)
	return nil
}

func (h *harness) supply() uint64 {
	h.t.Helper()
	r, err := ask(h, bankpb.QuerySupply, &bankpb.QuerySupplyRequest{})
	if err != nil {
		h.t.Fatal(err)
	}
	for _, c := range r.Supply {
		if c.Denom == coin.Native {
			return c.Amount
		}
	}
	return 0
}

func TestParamChangeWithQuorumTakesEffect(t *testing.T) {
	h := newGov(t)
	defer h.close()
	id := h.propose("erin", offlineAfter("7"))
	h.vote("v1", id, govpb.Option_OPTION_YES)
	before := h.balanceOf(address("erin"))
	p := h.decide(id)
	if p.Status != govpb.Status_STATUS_PASSED {
		t.Fatalf("proposal: %v", p)
	}
	if p.Tally.Yes != 50_000_000 || p.Tally.Total != 90_000_000 {
		t.Errorf("tally %v: want v1's 50 agr yes of 90", p.Tally)
	}
	pp, err := ask(h, providerpb.QueryParams, &providerpb.QueryParamsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if pp.OfflineAfterBlocks != 7 {
		t.Errorf("offline_after_blocks is %d after the proposal passed", pp.OfflineAfterBlocks)
	}
	if got := h.balanceOf(address("erin")) - before; got != govpb.DefaultParams().MinDeposit {
		t.Errorf("a passed proposal's deposit came back as %d", got)
	}
}

func TestProposalWithoutQuorumIsRejectedAndRefunded(t *testing.T) {
	h := newGov(t)
	defer h.close()
	id := h.propose("erin", offlineAfter("7"))
	h.vote("dave", id, govpb.Option_OPTION_YES) // 10 of 90 agr: under a third
	before := h.balanceOf(address("erin"))
	p := h.decide(id)
	if p.Status != govpb.Status_STATUS_REJECTED || p.Tally.Yes != 10_000_000 {
		t.Fatalf("proposal without quorum: %v", p)
	}
	if got := h.balanceOf(address("erin")) - before; got != govpb.DefaultParams().MinDeposit {
		t.Errorf("the deposit of a proposal without quorum: %d came back, want all of it", got)
	}
	if pp, _ := ask(h, providerpb.QueryParams, &providerpb.QueryParamsRequest{}); pp.OfflineAfterBlocks == 7 {
		t.Error("a rejected proposal changed the param")
	}
}

func TestVetoBurnsTheDeposit(t *testing.T) {
	h := newGov(t)
	defer h.close()
	id := h.propose("erin", offlineAfter("7"))
	h.vote("v1", id, govpb.Option_OPTION_VETO)
	h.vote("v2", id, govpb.Option_OPTION_YES)
	supply := h.supply()
	before := h.balanceOf(address("erin"))
	p := h.decide(id)
	if p.Status != govpb.Status_STATUS_VETOED {
		t.Fatalf("vetoed proposal: %v", p)
	}
	if h.balanceOf(address("erin")) != before {
		t.Error("a vetoed proposal's deposit came back")
	}
	// The blocks issued rewards; the deposit was burned out of the rest.
	if issued := h.supply() + govpb.DefaultParams().MinDeposit - supply; issued > 10*1000 {
		t.Errorf("supply went from %d to %d: the deposit was not burned", supply, h.supply())
	}
}

func TestDelegatorsInheritUnlessTheyVote(t *testing.T) {
	h := newGov(t)
	defer h.close()
	id := h.propose("erin", offlineAfter("9"))
	h.vote("v2", id, govpb.Option_OPTION_NO)
	h.vote("dave", id, govpb.Option_OPTION_YES)
	h.vote("v1", id, govpb.Option_OPTION_YES)
	p := h.decide(id)
	// dave's 10 agr in v2 count as his yes; v2's other 30 as its no.
	if p.Tally.Yes != 60_000_000 || p.Tally.No != 30_000_000 || p.Status != govpb.Status_STATUS_PASSED {
		t.Errorf("tally %v, status %v", p.Tally, p.Status)
	}
}

func TestLateQuorumExtendsVoting(t *testing.T) {
	h := newGov(t)
	defer h.close()
	id := h.propose("erin", offlineAfter("8"))
	end := h.proposal(id).VotingEnd
	// Nobody votes until the last block of the period; then v1 alone
	// would carry it.
	for h.height < end-1 {
		h.block()
	}
	h.vote("v1", id, govpb.Option_OPTION_YES)
	p := h.proposal(id)
	if !p.Extended || p.VotingEnd != end+govParams().ExtensionBlocks || p.Status != govpb.Status_STATUS_VOTING {
		t.Fatalf("a quorum reached at height %d (voting ends %d) did not extend voting: %v", h.height, end, p)
	}
	// The others answer in the extension.
	h.vote("v2", id, govpb.Option_OPTION_NO)
	h.vote("dave", id, govpb.Option_OPTION_NO)
	if p := h.decide(id); p.Status != govpb.Status_STATUS_PASSED || p.Tally.No != 40_000_000 {
		t.Errorf("after the extension: %v", p)
	}
	// A quorum before the late window extends nothing.
	id2 := h.propose("erin", offlineAfter("9"))
	h.vote("v1", id2, govpb.Option_OPTION_YES)
	if p := h.decide(id2); p.Extended || p.Status != govpb.Status_STATUS_PASSED {
		t.Errorf("an early quorum: %v", p)
	}
}

func TestProposalNeverReachingVotingBurnsItsDeposit(t *testing.T) {
	h := newGov(t)
	defer h.close()
	r := h.send("erin", &govpb.MsgSubmitProposal{Proposer: address("erin").String(), Title: "spam", Content: &govpb.Content{Kind: &govpb.Content_Text{Text: &govpb.Text{}}},
		InitialDeposit: coin.New(coin.Native, 1_000_000)})
	if r.Code != 0 {
		t.Fatal(r.Log)
	}
	before := h.balanceOf(address("erin"))
	if p := h.decide(1); p.Status != govpb.Status_STATUS_EXPIRED {
		t.Fatalf("a proposal short of its deposit: %v", p)
	}
	if h.balanceOf(address("erin")) != before {
		t.Error("an expired proposal's deposit came back")
	}
	if err := checkInvariant(h); err != nil {
		t.Fatal(err)
	}
}

func TestProposalBadInput(t *testing.T) {
	h := newGov(t)
	defer h.close()
	erin := address("erin").String()
	text := &govpb.Content{Kind: &govpb.Content_Text{Text: &govpb.Text{}}}
	params := func(mod, param, value string) *govpb.Content {
		return &govpb.Content{Kind: &govpb.Content_Params{Params: &govpb.ParamsChange{Changes: []*govpb.ParamChange{{Module: mod, Param: param, Value: value}}}}}
	}
	submit := func(c *govpb.Content, dep uint64) module.Msg {
		return &govpb.MsgSubmitProposal{Proposer: erin, Title: "t", Content: c, InitialDeposit: coin.New(coin.Native, dep)}
	}
	for _, tc := range []struct {
		name string
		msg  module.Msg
		code uint32
		log  string
	}{
		{"a param outside its range", submit(params("provider", "offline_after_blocks", "0"), 10_000_000), codes.ErrInvalidRequest.Code, "outside its valid range"},
		{"a param its module refuses", submit(params("provider", "offline_after_blocks", "10000"), 10_000_000), codes.ErrInvalidRequest.Code, "jail_after_blocks"},
		{"an unknown module", submit(params("nope", "x", "1"), 10_000_000), codes.ErrInvalidRequest.Code, "no params"},
		{"an unknown param", submit(params("staking", "nope", "1"), 10_000_000), codes.ErrInvalidRequest.Code, "no param"},
		{"not an integer", submit(params("staking", "unbonding_blocks", "ten"), 10_000_000), codes.ErrInvalidRequest.Code, "not an integer"},
		{"an upgrade in the past", submit(&govpb.Content{Kind: &govpb.Content_Upgrade{Upgrade: &govpb.UpgradePlan{Name: "v2", Height: 2}}}, 10_000_000), codes.ErrInvalidRequest.Code, "not in the future"},
		{"no initial deposit", submit(text, 0), codes.ErrInvalidAmount.Code, "positive"},
		{"too small an initial deposit", submit(text, 999_999), codes.ErrInsufficientFunds.Code, "initial deposit"},
		{"no content", &govpb.MsgSubmitProposal{Proposer: erin, Title: "t", InitialDeposit: coin.New(coin.Native, 10_000_000)}, codes.ErrInvalidRequest.Code, "content"},
		{"a vote on no proposal", &govpb.MsgVote{Voter: erin, ProposalId: 99, Option: govpb.Option_OPTION_YES}, codes.ErrNotFound.Code, "no proposal"},
	} {
		r := h.send("erin", tc.msg)
		if r.Code != tc.code || !strings.Contains(r.Log, tc.log) {
			t.Errorf("%s: code %d %q, want %d with %q", tc.name, r.Code, r.Log, tc.code, tc.log)
		}
	}
	if ps, _ := ask(h, govpb.QueryProposals, &govpb.QueryProposalsRequest{}); len(ps.Proposals) != 0 {
		t.Errorf("refused submissions left proposals: %v", ps.Proposals)
	}
	// A vote after the period is refused.
	id := h.propose("erin", text)
	h.decide(id)
	if r := h.send("v1", &govpb.MsgVote{Voter: address("v1").String(), ProposalId: id, Option: govpb.Option_OPTION_YES}); r.Code != codes.ErrInvalidRequest.Code {
		t.Errorf("a vote after the period: code %d %s", r.Code, r.Log)
	}
}

// TestUpgradeHaltsThenMigrates: a passed upgrade halts a binary without
// its migration at the plan's height, and the block replayed by one that
// has it migrates and goes on.
func TestUpgradeHaltsThenMigrates(t *testing.T) {
	h := newGovIn(t, t.TempDir())
	defer h.close()
	at := h.height + 40
	id := h.propose("erin", &govpb.Content{Kind: &govpb.Content_Upgrade{Upgrade: &govpb.UpgradePlan{Name: "test-halt", Height: at, Info: "agora v2"}}})
	h.vote("v1", id, govpb.Option_OPTION_YES)
	if p := h.decide(id); p.Status != govpb.Status_STATUS_PASSED {
		t.Fatalf("upgrade proposal: %v", p)
	}
	for h.height < at-1 {
		h.block()
	}
	bob := h.balanceOf(address("bob"))
	req := &abci.RequestFinalizeBlock{Height: at, Time: genesisTime.Add(time.Duration(at) * time.Second)}
	_, err := h.app.FinalizeBlock(context.Background(), req)
	var need gov.UpgradeNeeded
	if !errors.As(err, &need) || need.Plan.Name != "test-halt" || !strings.Contains(err.Error(), "agora v2") {
		t.Fatalf("at the upgrade height: %v", err)
	}
	// The new binary: the same state, a migration registered.
	migrated := false
	t.Cleanup(gov.RegisterUpgrade("test-halt", func(ctx *module.Context) error { migrated = true; return nil }))
	h.restart()
	h.block()
	if !migrated || h.height != at {
		t.Fatalf("migrated %v at height %d", migrated, h.height)
	}
	u, err := ask(h, govpb.QueryUpgrade, &govpb.QueryUpgradeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if u.Plan != nil || len(u.Done) != 1 || u.Done[0].Name != "test-halt" {
		t.Errorf("after the upgrade: %v", u)
	}
	if h.balanceOf(address("bob")) != bob {
		t.Error("the upgrade changed a balance")
	}
}

// Regression (review): a validator tombstoned in the block that ends a
// vote still counted with its whole stake (its power is cleared only
// after gov's EndBlock).
func TestATombstonedValidatorDoesNotDecideAVote(t *testing.T) {
	h := newHarness(t, "", withValidators(nil), func(g *node.Genesis) { g.Gov = govParams() })
	defer h.close()
	h.block()
	h.mustSend("dave", &stakingpb.MsgDelegate{Delegator: address("dave").String(), Validator: address("v2").String(), Amount: coin.New(coin.Native, 10_000_000)})
	id := h.propose("erin", offlineAfter("7"))
	h.vote("v1", id, govpb.Option_OPTION_YES)
	end := h.proposal(id).VotingEnd
	for h.height < end-1 {
		h.block()
	}
	doubleSignAt(h, "v1", 50, h.height) // in block `end`, v1 is tombstoned before the tally
	p := h.proposal(id)
	if p.Status == govpb.Status_STATUS_PASSED || p.Tally.Yes != 0 {
		t.Errorf("v1, tombstoned in the deciding block, still counted: %s, tally %v", p.Status, p.Tally)
	}
}

// On a chain whose audit param keys_need_governance is 1, a verifying key
// the committee's transcript check approves waits for governance: an
// approve_model_key proposal registers it when it passes, and a proposal
// for a review the committee did not approve is refused at submission.
func TestGovernanceApprovesACheckedModelKey(t *testing.T) {
	k := newKeyChain(t, withValidators(nil), func(g *node.Genesis) {
		g.Audit.KeysNeedGovernance = 1
		g.Gov = govParams()
	})
	defer k.close()
	m, _ := model.Lookup(model.DigitsName)
	sys, err := zk.Setup(m.MLP)
	if err != nil {
		t.Fatal(err)
	}
	vk, _ := sys.VerifyingKey()
	approve := func(review uint64) *govpb.Content {
		return &govpb.Content{Kind: &govpb.Content_ApproveModelKey{ApproveModelKey: &govpb.ApproveModelKey{ReviewId: review}}}
	}
	if r := k.propose("v4", vk, "erin", "frank"); r.Code != 0 {
		t.Fatalf("propose: %s", r.Log)
	}
	if r := k.harness.send("v1", &govpb.MsgSubmitProposal{Proposer: address("v1").String(), Title: "too early", Content: approve(1),
		InitialDeposit: coin.New(coin.Native, govpb.DefaultParams().MinDeposit)}); r.Code != codes.ErrInvalidRequest.Code {
		t.Errorf("approving a key still under review: code %d %s", r.Code, r.Log)
	}
	k.vote(1, auditpb.KeyVerdict(k.id, vk, [][]byte{pub("erin"), pub("frank")}))
	r, err := ask(k.harness, auditpb.QueryReview, &auditpb.QueryKeyReviewRequest{Id: 1})
	if err != nil || r.Status != auditpb.ReviewStatus_REVIEW_STATUS_CHECKED {
		t.Fatalf("the checked review: %v %v", r, err)
	}
	if _, err := ask(k.harness, auditpb.QueryKey, &auditpb.QueryKeyRequest{ModelId: k.id}); err == nil {
		t.Fatal("the committee's check alone registered the key")
	}
	id := k.harness.propose("v1", approve(1))
	k.harness.vote("v1", id, govpb.Option_OPTION_YES)
	if p := k.harness.decide(id); p.Status != govpb.Status_STATUS_PASSED {
		t.Fatalf("the approval: %s %s", p.Status, p.Failure)
	}
	got, err := ask(k.harness, auditpb.QueryKey, &auditpb.QueryKeyRequest{ModelId: k.id})
	if err != nil || string(got.VerifyingKey) != string(vk) {
		t.Fatalf("the approved key: %v %v", got, err)
	}
	if r := k.harness.send("v1", &govpb.MsgSubmitProposal{Proposer: address("v1").String(), Title: "again", Content: approve(1),
		InitialDeposit: coin.New(coin.Native, govpb.DefaultParams().MinDeposit)}); r.Code != codes.ErrInvalidRequest.Code {
		t.Errorf("approving an approved review again: code %d %s", r.Code, r.Log)
	}
	if err := checkInvariant(k.harness); err != nil {
		t.Fatal(err)
	}
}
