package chain_test

// Attacks that an adversarial review of issue 14's first implementation
// found, one test each; each failed before its fix.

import (
	"context"
	"crypto/ed25519"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	"google.golang.org/protobuf/proto"

	"github.com/agoranet/agora/internal/chain/agenda"
	"github.com/agoranet/agora/internal/chain/agent/agentpb"
	"github.com/agoranet/agora/internal/chain/audit/auditpb"
	"github.com/agoranet/agora/internal/chain/auth/authpb"
	"github.com/agoranet/agora/internal/chain/channel/channelpb"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/job/jobpb"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/provider/providerpb"
	"github.com/agoranet/agora/internal/chain/staking/stakingpb"
	"github.com/agoranet/agora/internal/chain/tx"
	"github.com/agoranet/agora/internal/model"
	"github.com/agoranet/agora/internal/receipt"
	"github.com/agoranet/agora/internal/zk"
)

// TestReviewProposerPicksTheCommittee: a key proposal names its
// contributors by public key alone, and each named contributor was left
// out of the review committee, so a proposer could name every honest
// verifier and leave only its own sybils to approve a key no one checked
// (keys are final). Now the committee is drawn from every verifier but the
// proposer. Here the only verifiers are the proposer and three honest
// ones, two of whom it names: before, no committee could be drawn; now
// the three honest verifiers review, and reject, its made-up key, and the
// bond pays them.
func TestReviewProposerPicksTheCommittee(t *testing.T) {
	m, _ := model.Lookup(model.DigitsName)
	k := &keyChain{harness: newHarness(t, "", shortKeyReviews), t: t, id: m.Manifest.ID}
	defer k.close()
	honest := map[string]bool{}
	for _, v := range []string{"v1", "erin", "frank", "v2"} {
		k.send(v, &stakingpb.MsgBond{Staker: address(v).String(), Amount: coin.New("uagr", 200_000_000)})
		k.send(v, &auditpb.MsgRegisterVerifier{Verifier: address(v).String()})
		honest[address(v).String()] = v != "v1"
	}
	bogus := []byte("a key from a setup whose toxic waste the proposer kept")
	if r := k.propose("v1", bogus, "erin", "frank"); r.Code != 0 {
		t.Fatalf("a proposal naming two of the three other verifiers: %s", r.Log)
	}
	rev, err := ask(k.harness, auditpb.QueryReview, &auditpb.QueryKeyReviewRequest{Id: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range rev.Votes {
		if !honest[v.Verifier] {
			t.Errorf("committee member %s is the proposer", v.Verifier)
		}
	}
	before := k.balance("erin")
	k.vote(1, make([]byte, 32)) // the honest verdict: the transcript does not check out
	if _, err := ask(k.harness, auditpb.QueryKey, &auditpb.QueryKeyRequest{ModelId: k.id}); err == nil {
		t.Error("a key its committee rejected is the model's key")
	}
	if k.balance("erin") <= before {
		t.Error("the proposer's bond did not pay the members who voted its key down")
	}
}

// TestASplitKeyReviewJudgesNothing: with one member for a key, one
// against and one silent, the review was "rejected", the one against took
// the whole bond and the one for was slashed as overruled: a colluder
// plus an offline member could punish an honest vote. Now a review
// without a majority either way returns the bond and slashes only the
// silent.
func TestASplitKeyReviewJudgesNothing(t *testing.T) {
	k := newKeyChain(t)
	defer k.close()
	vk := []byte("a key")
	if r := k.propose("v1", vk, "erin", "frank"); r.Code != 0 {
		t.Fatalf("propose: %s", r.Log)
	}
	rev, err := ask(k.harness, auditpb.QueryReview, &auditpb.QueryKeyReviewRequest{Id: 1})
	if err != nil {
		t.Fatal(err)
	}
	role := map[string]string{}
	for i, v := range rev.Votes {
		role[k.name(v.Verifier)] = []string{"yes", "no", "silent"}[i]
	}
	stake := func(name string) uint64 {
		r, _ := ask(k.harness, stakingpb.QueryStake, &stakingpb.QueryStakeRequest{Address: address(name).String()})
		return r.Stake.Bonded
	}
	before := map[string]uint64{}
	for n := range role {
		before[n] = stake(n)
	}
	proposer := k.balance("v1")
	want := auditpb.KeyVerdict(k.id, vk, [][]byte{pub("erin"), pub("frank")})
	k.voteEach(1, func(member string) []byte {
		switch role[member] {
		case "yes":
			return want
		case "no":
			return make([]byte, 32)
		}
		return nil
	})
	for n, r := range role {
		slashed := stake(n) < before[n]
		if slashed != (r == "silent") {
			t.Errorf("the member who voted %s: slashed %v", r, slashed)
		}
	}
	if got := k.balance("v1"); got != proposer+auditpb.DefaultParams().ChallengeBond {
		t.Errorf("the proposer got %d back of its %d bond from a review that judged nothing", int64(got)-int64(proposer), auditpb.DefaultParams().ChallengeBond)
	}
	if _, err := ask(k.harness, auditpb.QueryKey, &auditpb.QueryKeyRequest{ModelId: k.id}); err == nil {
		t.Error("a key without a majority is the model's key")
	}
}

// TestAProofSettlesALieAboutTheClass: MsgSettleWithProof proves the
// logits but takes the class from the message. A provider that answers
// with the true logits and a false class ({"class": wrong}) signs a lying
// receipt; when challenged it settles with Class = the lie, the body hash
// matches, and the challenge fails at once with the challenger's bond
// burned: a lie about the one field users read is unslashable.
func TestAProofSettlesALieAboutTheClass(t *testing.T) {
	d := provenDispute(t, func(class int) int { return (class + 1) % 10 })
	defer d.close()
	lie := (d.class + 1) % 10
	r := d.send("dave", &auditpb.MsgSettleWithProof{Submitter: address("dave").String(), DisputeId: 1, Class: int32(lie), Logits: d.logits, Proof: d.proof})
	if r.Code == 0 {
		t.Errorf("a receipt that lied about the class (said %d, the logits say %d) was settled honest by a proof", lie, d.class)
	}
}

// TestStakeLeavesBeforeItsReceiptsExpire: a receipt alone is challengeable
// for ChallengeWindow (100,000) blocks, but stake unbonded in 100. A
// provider that lied, deregistered and unbonded at once had nothing left to
// slash by the time the lie was challenged. Now a deregistered provider's
// unbonding completes only after its receipts' window and their disputes,
// and the slash takes it from the unbonding stake.
func TestStakeLeavesBeforeItsReceiptsExpire(t *testing.T) {
	d := newDisputes(t)
	defer d.close()
	dave := address("dave").String()
	d.send("dave", &providerpb.MsgDeregister{Operator: dave})
	if r := d.send("dave", &stakingpb.MsgUnbond{Staker: dave, Amount: coin.New("uagr", 200_000_000)}); r.Code != 0 {
		t.Fatalf("unbond: %s", r.Log)
	}
	for i := int64(0); i <= stakingpb.DefaultParams().UnbondingBlocks; i++ {
		d.block()
	}
	// Well inside the receipt's window.
	if r := d.challenge(1, receipt.Path(d.leaves(), 1)); r.Code != 0 {
		t.Fatalf("challenge: %s", r.Log)
	}
	before := d.balanceOf("v4")
	d.vote(1, map[string][]byte{"v1": d.truth[1], "v2": d.truth[1], "v3": d.truth[1]})
	if got := d.dispute(1).Status; got != auditpb.DisputeStatus_DISPUTE_STATUS_PROVIDER_LIED {
		t.Fatalf("status %v", got)
	}
	r, _ := ask(d.harness, stakingpb.QueryStake, &stakingpb.QueryStakeRequest{Address: dave})
	if r.Stake.Slashed == 0 {
		t.Errorf("a proven lie %d blocks old slashed nothing: the stake left after %d blocks, the receipt is challengeable for %d (challenger got %d back)",
			d.height, stakingpb.DefaultParams().UnbondingBlocks, 100_000, d.balanceOf("v4")-before)
	}
}

func (d *disputes) balanceOf(name string) uint64 { return d.harness.balance(address(name), "uagr") }

// TestAnUndecidedDisputeShieldsTheLie: dedupe marks a receipt as challenged
// for ever when its dispute opens, whatever the outcome. A dispute that
// ends UNDECIDED (members silent, or split: the provider's own verifiers
// need only break the majority) judged nothing, yet the lie can never be
// challenged again. A liar pre-empts with a self-challenge from a sybil
// (bond refunded on UNDECIDED) and its receipt is immune.
func TestAnUndecidedDisputeShieldsTheLie(t *testing.T) {
	d := newDisputes(t)
	defer d.close()
	if r := d.challenge(1, receipt.Path(d.leaves(), 1)); r.Code != 0 {
		t.Fatalf("challenge: %s", r.Log)
	}
	// Split votes: no majority.
	d.vote(1, map[string][]byte{"v1": d.truth[1], "v2": receipt.Hash([]byte("x")), "v3": receipt.Hash([]byte("y"))})
	if got := d.dispute(1).Status; got != auditpb.DisputeStatus_DISPUTE_STATUS_UNDECIDED {
		t.Fatalf("status %v", got)
	}
	if r := d.challenge(1, receipt.Path(d.leaves(), 1)); r.Code != 0 {
		t.Errorf("an undecided dispute judged nothing, yet the lie cannot be challenged again: %s", r.Log)
	}
}

// TestARoyaltyCanPayAModuleAccount: sends to module accounts are refused
// because coins there are owed to no one and break the exact solvency
// check; a service's royalty recipient (or a channel's payee) could still
// be one, and every claim on a channel for it paid it. Now both are
// refused when they are named.
func TestARoyaltyCanPayAModuleAccount(t *testing.T) {
	h := newHarness(t, "")
	defer h.close()
	h.block()
	dave := address("dave").String()
	model := "abababababababababababababababababababababababababababababababab"
	h.mustSend("dave", &stakingpb.MsgBond{Staker: dave, Amount: coin.New("uagr", 200_000_000)})
	h.mustSend("dave", &providerpb.MsgRegisterProvider{Operator: dave, Endpoint: "http://127.0.0.1:1"})
	r := h.send("dave", &providerpb.MsgRegisterService{Operator: dave, ModelId: model, ModelName: "m", MaxConcurrency: 1,
		Royalties: []*providerpb.Royalty{{Recipient: stakingpb.BondedPool.String(), Bps: 5000}}})
	if r.Code != codes.ErrUnauthorized.Code {
		t.Errorf("a service paying royalties to the staking pool: code %d %s", r.Code, r.Log)
	}
	r = h.send("alice", &channelpb.MsgOpenChannel{Payer: address("alice").String(), Payee: stakingpb.BondedPool.String(), Deposit: coin.New("uagr", 1000), ExpiresAt: 1000, PayerKey: key("alice").Public().(ed25519.PublicKey)})
	if r.Code != codes.ErrUnauthorized.Code {
		t.Errorf("a channel paying the staking pool: code %d %s", r.Code, r.Log)
	}
	if err := checkInvariant(h); err != nil {
		t.Error(err)
	}
}

// TestOrdersPileUpOnOneHeight: a tenant chooses each order's bid window,
// so orders created over many blocks can all fall due at one height, and
// that height's EndBlock did, unmetered, the work of all of them (with
// MaxBidWindow = 1000, 1000 blocks' worth on one). Orders cost 1uagr of
// escrow each (refunded). Now an EndBlock moves at most as many orders as
// one block's txs can schedule (agenda.PerBlock), and the rest follow in
// the next blocks.
func TestOrdersPileUpOnOneHeight(t *testing.T) {
	h := newHarness(t, "")
	defer h.close()
	h.block()
	const blocks, txsPerBlock, perTx = 4, 40, 45
	perBlock := agenda.PerBlock(authpb.DefaultParams().BlockGasLimit)
	due := h.height + blocks + 2
	seq := map[string]uint64{}
	hash := make([]byte, 32)
	created := 0
	for b := 0; b < blocks; b++ {
		var txs [][]byte
		for i := 0; i < txsPerBlock; i++ {
			name := []string{"dave", "erin", "frank", "v1"}[i%4]
			if _, ok := seq[name]; !ok {
				seq[name] = h.sequence(name)
			}
			var msgs []module.Msg
			for j := 0; j < perTx; j++ {
				msgs = append(msgs, &jobpb.MsgCreateOrder{Tenant: address(name).String(), ModuleHash: hash, ModuleUrl: "http://127.0.0.1:9001/m", InputHash: hash,
					InputUrl: "http://127.0.0.1:9001/i", Fuel: 1, MemoryMib: 1, MaxPrice: coin.New("uagr", 1), Redundancy: 1, BidWindow: due - (h.height + 1)})
			}
			raw, err := signTxGas(key(name), seq[name], 7_000_000, msgs...)
			if err != nil {
				t.Fatal(err)
			}
			seq[name]++
			txs = append(txs, raw)
		}
		h.pending = txs
		resp, _ := h.block()
		for _, r := range resp.TxResults {
			if r.Code != 0 {
				t.Fatalf("order tx: %s", r.Log)
			}
			created += perTx
		}
	}
	if created <= perBlock {
		t.Fatalf("%d orders do not test a bound of %d", created, perBlock)
	}
	for h.height < due-1 {
		h.block()
	}
	bidding := func() int {
		n := 0
		for id := uint64(1); id <= uint64(created); id++ {
			o, err := ask(h, jobpb.QueryOrder, &jobpb.QueryOrderRequest{Id: id})
			if err != nil {
				t.Fatal(err)
			}
			if o.Order.Status == jobpb.OrderStatus_ORDER_STATUS_BIDDING {
				n++
			}
		}
		return n
	}
	h.block() // height due: every order's bidding ends
	if moved := created - bidding(); moved != perBlock {
		t.Errorf("the EndBlock where %d orders fell due moved %d of them; want the bound, %d", created, moved, perBlock)
	}
	for i := 0; i < created/perBlock; i++ {
		h.block()
	}
	if n := bidding(); n != 0 {
		t.Errorf("%d orders still bidding after their bid window, past the blocks the bound needs", n)
	}
	if err := checkInvariant(h); err != nil {
		t.Error(err)
	}
}

// TestUnpaidWork: CheckTx ran every message, and a tx whose last message
// failed was refused with nothing charged, so a mempool did up to
// max_tx_gas (~0.1 s) of Groth16 checks per junk tx for free; and
// /app/simulate did the same for any signer, even one with no account,
// under CometBFT's one ABCI mutex. Now the junk tx is admitted and pays in
// its block, and a simulation runs only as much gas as its signer could
// pay for.
func TestUnpaidWork(t *testing.T) {
	m, _ := model.Lookup(model.DigitsName)
	sys, err := zk.Setup(m.MLP)
	if err != nil {
		t.Fatal(err)
	}
	vk, _ := sys.VerifyingKey()
	h := newHarness(t, "", withModelKey(m.Manifest.ID, vk))
	defer h.close()
	h.block()
	px, _ := model.GenerateDigit(3, 3)
	logits, proof, err := sys.Prove(px)
	if err != nil {
		t.Fatal(err)
	}
	msgs := func(signer string, n int, bad bool) []module.Msg {
		var out []module.Msg
		for i := 0; i < n; i++ {
			out = append(out, &auditpb.MsgVerifyInference{Submitter: address(signer).String(), ModelId: m.Manifest.ID, Input: px, Logits: logits, Proof: proof})
		}
		if bad {
			wrong := append([]int32(nil), logits...)
			wrong[0]++
			out = append(out, &auditpb.MsgVerifyInference{Submitter: address(signer).String(), ModelId: m.Manifest.ID, Input: px, Logits: wrong, Proof: proof})
		}
		return out
	}
	before := h.balance(address("alice"), "uagr")
	raw, err := signTxGas(key("alice"), h.sequence("alice"), 100_000_000, msgs("alice", 52, true)...)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := h.app.CheckTx(context.Background(), &abci.RequestCheckTx{Tx: raw, Type: abci.CheckTxType_New})
	if r.Code != 0 {
		t.Fatalf("CheckTx refused, for free, a tx that failed after %d gas of proof checks: %s", r.GasUsed, r.Log)
	}
	h.pending = [][]byte{raw}
	resp, _ := h.block()
	if resp.TxResults[0].Code == 0 {
		t.Fatal("the junk tx succeeded in its block")
	}
	if got := h.balance(address("alice"), "uagr"); got == before {
		t.Errorf("a tx that made every node do %d gas of proof checks paid nothing", r.GasUsed)
	}
	// Simulation by an account that has never existed and holds nothing.
	sim, err := tx.Sign(key("nobody"), tx.Header{ChainID: testChain, GasLimit: 1}, msgs("nobody", 52, false)...)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	q, _ := h.app.Query(context.Background(), &abci.RequestQuery{Path: authpb.SimulatePath, Data: sim})
	took := time.Since(start)
	var out authpb.SimulateResponse
	if q.Code == 0 && proto.Unmarshal(q.Value, &out) == nil && out.GasUsed > 1_000_000 {
		t.Errorf("an unfunded key had the node do %d gas (%v) of work in /app/simulate, free", out.GasUsed, took)
	}
	// A funded signer still estimates what it can pay for.
	sim, err = tx.Sign(key("alice"), tx.Header{ChainID: testChain, GasLimit: 1}, msgs("alice", 2, false)...)
	if err != nil {
		t.Fatal(err)
	}
	q, _ = h.app.Query(context.Background(), &abci.RequestQuery{Path: authpb.SimulatePath, Data: sim})
	if q.Code != 0 || proto.Unmarshal(q.Value, &out) != nil || out.GasUsed < 2*1_800_000 {
		t.Errorf("a funded signer's simulation of two proofs: code %d %s, %d gas", q.Code, q.Log, out.GasUsed)
	}
}

// TestAnAgentsStakeLeaksThroughSlashRewards: an agent whose policy lets it
// pay only the staking pool (it may stake, nothing else) signs, off chain,
// a receipt that lies; an accomplice outside its allowed recipients
// challenges it, and half of the 10% slash is paid to the accomplice. No
// policy sees it: the slash reward moves the agent's money from the pool,
// not from the agent. Repeated over many signed lies, about half the
// agent's stake reaches the accomplice.
func TestAnAgentsStakeLeaksThroughSlashRewards(t *testing.T) {
	h := newHarness(t, "")
	defer h.close()
	h.block()
	for _, v := range []string{"v1", "v2", "v3"} {
		h.mustSend(v, &stakingpb.MsgBond{Staker: address(v).String(), Amount: coin.New("uagr", 200_000_000)})
		h.mustSend(v, &auditpb.MsgRegisterVerifier{Verifier: address(v).String()})
	}
	robot := h.makeAgent(&agentpb.Policy{Denom: "uagr", FeeAllowance: 10_000_000, AllowedRecipients: []string{stakingpb.BondedPool.String()}},
		coin.New("uagr", 101_000_000))
	h.mustSend("robot", &stakingpb.MsgBond{Staker: robot.String(), Amount: coin.New("uagr", 100_000_000)})
	// A receipt "robot" signs: no message, no policy.
	req := []byte("any request")
	enc, err := receipt.Sign(key("robot"), &receipt.Receipt{ChainId: testChain, ModelId: "abababababababababababababababababababababababababababababababab",
		RequestHash: receipt.Hash(req), ResponseHash: receipt.Hash([]byte("a lie")), Height: h.height})
	if err != nil {
		t.Fatal(err)
	}
	accomplice := address("v4")
	before := h.balance(accomplice, "uagr")
	r := h.one("v4", disputeGas, disputeFee, &auditpb.MsgChallenge{Challenger: accomplice.String(), Receipt: []byte(enc), Request: req})
	if r.Code != 0 {
		t.Fatalf("challenge: %s", r.Log)
	}
	dis, _ := ask(h, auditpb.QueryDispute, &auditpb.QueryDisputeRequest{Id: 1})
	truth, salt := receipt.Hash([]byte("the true answer")), []byte("s")
	for _, v := range dis.Dispute.Votes {
		n := h.name(v.Verifier)
		h.one(n, disputeGas, disputeFee, &auditpb.MsgCommit{Verifier: v.Verifier, DisputeId: 1, Commitment: auditpb.Commitment(truth, salt, v.Verifier)})
	}
	for h.height <= dis.Dispute.CommitUntil {
		h.block()
	}
	for _, v := range dis.Dispute.Votes {
		h.one(h.name(v.Verifier), disputeGas, disputeFee, &auditpb.MsgReveal{Verifier: v.Verifier, DisputeId: 1, ResponseHash: truth, Salt: salt})
	}
	for h.height <= dis.Dispute.RevealUntil {
		h.block()
	}
	gain := int64(h.balance(accomplice, "uagr")) - int64(before) + int64(disputeFee)
	if gain > 0 {
		t.Errorf("an agent allowed to pay only the staking pool paid %duagr of its stake to %s, an address its policy does not allow", gain, accomplice)
	}
}
