package chain_test

// The findings of issue 14's review of the chain, one test each (findings
// 3 and 4 are TestAChallengeBondIsASpend and TestAVerifyingKeyNeedsEvidence;
// finding 9, the sandbox, is in internal/sandbox). Each failed on the code
// before the fix.

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"strings"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"
	"google.golang.org/protobuf/proto"

	"github.com/agoranet/agora/internal/chain"
	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/agent"
	"github.com/agoranet/agora/internal/chain/agent/agentpb"
	"github.com/agoranet/agora/internal/chain/audit/auditpb"
	"github.com/agoranet/agora/internal/chain/auth/authpb"
	"github.com/agoranet/agora/internal/chain/bank"
	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/beacon/beaconpb"
	"github.com/agoranet/agora/internal/chain/channel/channelpb"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/gov/govpb"
	"github.com/agoranet/agora/internal/chain/job/jobpb"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/provider/providerpb"
	"github.com/agoranet/agora/internal/chain/staking/stakingpb"
	"github.com/agoranet/agora/internal/chain/storage/storagepb"
	"github.com/agoranet/agora/internal/chain/tx"
	"github.com/agoranet/agora/internal/receipt"
)

// one runs one tx, signed with a gas limit and fee of the caller's choice,
// in a block of its own.
func (h *harness) one(name string, gasLimit, fee uint64, msgs ...module.Msg) *abci.ExecTxResult {
	h.t.Helper()
	raw, err := tx.Sign(key(name), tx.Header{ChainID: testChain, Sequence: h.sequence(name), GasLimit: gasLimit, Fee: coin.New(coin.Native, fee)}, msgs...)
	if err != nil {
		h.t.Fatal(err)
	}
	h.pending = [][]byte{raw}
	resp, _ := h.block()
	return resp.TxResults[0]
}

func (h *harness) send(name string, msgs ...module.Msg) *abci.ExecTxResult {
	h.t.Helper()
	return h.one(name, testGas, authpb.MinFee(authpb.DefaultParams(), testGas), msgs...)
}

func (h *harness) mustSend(name string, msgs ...module.Msg) {
	h.t.Helper()
	if r := h.send(name, msgs...); r.Code != 0 {
		h.t.Fatalf("%s: %s", name, r.Log)
	}
}

// makeAgent makes robot alice's agent with policy p and funds it.
func (h *harness) makeAgent(p *agentpb.Policy, funds ...*coin.Coin) addr.Address {
	h.t.Helper()
	robotKey := key("robot")
	alice := address("alice").String()
	h.mustSend("alice", &agentpb.MsgCreateAgent{Owner: alice, AgentKey: robotKey.Public().(ed25519.PublicKey),
		Consent: ed25519.Sign(robotKey, agentpb.ConsentBytes(testChain, alice)), Policy: p})
	for _, c := range funds { // uagr from dave, who has plenty
		from := "alice"
		if c.Denom == "uagr" {
			from = "dave"
		}
		h.mustSend(from, &bankpb.MsgSend{From: address(from).String(), To: address("robot").String(), Amount: []*coin.Coin{c}})
	}
	return address("robot")
}

// TestGasIsMetered is finding 1: the fee was a flat 10uagr per message, so
// a tx of 64 Groth16 checks (150 ms of work on every node) cost 640uagr,
// and one that failed at its last proof did all the work and paid almost
// nothing. Now every state access and signature check is metered; a tx
// pays for its gas limit, stops when it runs out (its messages undone,
// its fee kept), and a block holds no more gas than its limit.
func TestGasIsMetered(t *testing.T) {
	h := newHarness(t, "")
	defer h.close()
	h.block()
	p := authpb.DefaultParams()
	bob := address("bob").String()
	send := &bankpb.MsgSend{From: address("alice").String(), To: bob, Amount: []*coin.Coin{coin.New("uusdc", 7)}}

	r := h.send("alice", send)
	if r.Code != 0 || r.GasUsed <= 0 || r.GasWanted != testGas {
		t.Fatalf("a transfer: code %d gas %d of %d: %s", r.Code, r.GasUsed, r.GasWanted, r.Log)
	}
	t.Logf("a transfer used %d gas", r.GasUsed)
	transfer := uint64(r.GasUsed)

	// Below the minimum fee for its gas limit: refused, nothing charged.
	before := h.balance(address("alice"), "uagr")
	if r := h.one("alice", testGas, authpb.MinFee(p, testGas)-1, send); r.Code != codes.ErrInsufficientFee.Code {
		t.Errorf("a fee below gas limit x price: code %d %s", r.Code, r.Log)
	}
	if got := h.balance(address("alice"), "uagr"); got != before {
		t.Errorf("a refused tx cost %d", before-got)
	}
	// Out of gas in its messages: the send is undone, the fee is kept.
	limit := transfer - 1_000
	bobBefore := h.balance(address("bob"), "uusdc")
	r = h.one("alice", limit, authpb.MinFee(p, limit), send)
	if r.Code != codes.ErrOutOfGas.Code {
		t.Fatalf("a transfer with %d gas: code %d %s", limit, r.Code, r.Log)
	}
	if got := h.balance(address("bob"), "uusdc"); got != bobBefore {
		t.Error("an out-of-gas transfer moved money")
	}
	if got := h.balance(address("alice"), "uagr"); got != before-authpb.MinFee(p, limit) {
		t.Errorf("an out-of-gas tx paid %d, want its fee %d", before-got, authpb.MinFee(p, limit))
	}
	// Many proofs: each costs its measured time; 64 do not fit in one tx.
	var proofs []module.Msg
	for i := 0; i < 64; i++ {
		proofs = append(proofs, &auditpb.MsgVerifyInference{Submitter: bob, ModelId: strings.Repeat("ab", 32), Input: make([]byte, 256), Logits: make([]int32, 10), Proof: []byte{1}})
	}
	if r := h.one("bob", p.MaxTxGas+1, authpb.MinFee(p, p.MaxTxGas+1), proofs...); r.Code != codes.ErrTxTooLarge.Code {
		t.Errorf("a gas limit above max_tx_gas: code %d %s", r.Code, r.Log)
	}
	// A block takes txs up to its gas limit; the rest do not run and pay
	// nothing (a proposer may include anything).
	var block [][]byte
	n := int(p.BlockGasLimit/p.MaxTxGas) + 1
	for i := 0; i < n; i++ {
		raw, err := tx.Sign(key("dave"), tx.Header{ChainID: testChain, Sequence: uint64(i), GasLimit: p.MaxTxGas, Fee: coin.New(coin.Native, authpb.MinFee(p, p.MaxTxGas))},
			&bankpb.MsgSend{From: address("dave").String(), To: bob, Amount: []*coin.Coin{coin.New("uagr", 1)}})
		if err != nil {
			t.Fatal(err)
		}
		block = append(block, raw)
	}
	daveBefore := h.balance(address("dave"), "uagr")
	h.pending = block
	resp, _ := h.block()
	for i, res := range resp.TxResults[:n-1] {
		if res.Code != 0 {
			t.Errorf("tx %d within the block's gas: %s", i, res.Log)
		}
	}
	if last := resp.TxResults[n-1]; last.Code != codes.ErrBlockGasFull.Code {
		t.Errorf("the tx past the block's gas limit: code %d %s", last.Code, last.Log)
	}
	if paid := daveBefore - h.balance(address("dave"), "uagr"); paid != uint64(n-1)*(authpb.MinFee(p, p.MaxTxGas)+1) {
		t.Errorf("dave paid %d for %d txs that ran", paid, n-1)
	}
}

// TestAnExpensiveFailureIsPaidFor is the rest of finding 1: a tx whose
// last message fails after all the work of the others (a bad last proof)
// was refused by CheckTx, so the node did the work for nothing, as often
// as anyone sent it. Now it is admitted with its fee, and the block
// charges for the work; a failure that costs little is still refused free.
func TestAnExpensiveFailureIsPaidFor(t *testing.T) {
	h := newHarness(t, "")
	defer h.close()
	h.block()
	p := authpb.DefaultParams()
	alice, bob := address("alice").String(), address("bob").String()
	var msgs []module.Msg
	for i := 0; i < 4; i++ {
		m := &bankpb.MsgMultiSend{From: alice}
		for j := 0; j < 50; j++ {
			m.Outputs = append(m.Outputs, &bankpb.Output{To: address(fmt.Sprint("payee", i, j)).String(), Amount: []*coin.Coin{coin.New("uusdc", 1)}})
		}
		msgs = append(msgs, m)
	}
	msgs = append(msgs, &bankpb.MsgSend{From: alice, To: bob, Amount: []*coin.Coin{coin.New("uusdc", 1<<60)}})
	const limit = 10_000_000
	sign := func(seq uint64, msgs ...module.Msg) []byte {
		raw, err := tx.Sign(key("alice"), tx.Header{ChainID: testChain, Sequence: seq, GasLimit: limit, Fee: coin.New(coin.Native, authpb.MinFee(p, limit))}, msgs...)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	check := func(raw []byte) *abci.ResponseCheckTx {
		r, _ := h.app.CheckTx(context.Background(), &abci.RequestCheckTx{Tx: raw, Type: abci.CheckTxType_New})
		return r
	}
	seq := h.sequence("alice")
	if r := check(sign(seq, msgs[len(msgs)-1])); r.Code != codes.ErrInsufficientFunds.Code {
		t.Errorf("a cheap failure: CheckTx code %d %s; want it refused for free", r.Code, r.Log)
	}
	expensive := sign(seq, msgs...)
	r := check(expensive)
	if r.Code != 0 || r.GasUsed <= 1_000_000 {
		t.Fatalf("a failure after %d gas of work: CheckTx code %d %s; want it admitted to pay its fee", r.GasUsed, r.Code, r.Log)
	}
	// A sender may have at most max_tx_gas of such txs pending, so that
	// it cannot queue many and then drain the fee they need.
	admitted := uint64(r.GasWanted)
	for i := uint64(1); ; i++ {
		r := check(sign(seq+i, msgs...))
		if r.Code != 0 {
			if admitted+limit <= p.MaxTxGas {
				t.Errorf("a failing tx refused with %d gas of them pending: %s", admitted, r.Log)
			}
			break
		}
		admitted += limit
		if admitted > p.MaxTxGas {
			t.Fatalf("%d gas of failing txs pending from one sender, more than max_tx_gas", admitted)
		}
	}
	before, bobBefore := h.balance(address("alice"), "uagr"), h.balance(address("bob"), "uusdc")
	h.pending = [][]byte{expensive}
	resp, _ := h.block()
	if res := resp.TxResults[0]; res.Code != codes.ErrInsufficientFunds.Code {
		t.Fatalf("in the block: code %d %s", res.Code, res.Log)
	}
	if paid := before - h.balance(address("alice"), "uagr"); paid != authpb.MinFee(p, limit) {
		t.Errorf("the failed tx paid %d, want its fee %d", paid, authpb.MinFee(p, limit))
	}
	if h.balance(address("bob"), "uusdc") != bobBefore {
		t.Error("a failed tx moved money")
	}
}

// TestFeesAreHeldToTheAgentsPolicy is finding 2: an agent limited to
// 1uusdc per tx and for life, paying only bob, sent 1uusdc with a
// 40,000,000uagr fee, and its owner's money was gone; frozen and revoked
// agents still paid fees when a proposer included their txs. Now fees
// count against a fee allowance in the policy, and a stopped agent's tx is
// refused before it pays anything.
func TestFeesAreHeldToTheAgentsPolicy(t *testing.T) {
	h := newHarness(t, "")
	defer h.close()
	h.block()
	robot := h.makeAgent(&agentpb.Policy{Denom: "uusdc", MaxPerTx: 1, MaxLifetime: 1, AllowedRecipients: []string{address("bob").String()}, FeeAllowance: 10_000},
		coin.New("uusdc", 100), coin.New("uagr", 50_000_000))
	send := &bankpb.MsgSend{From: robot.String(), To: address("bob").String(), Amount: []*coin.Coin{coin.New("uusdc", 1)}}
	before := h.balance(robot, "uagr")
	if r := h.one("robot", testGas, 40_000_000, send); r.Code != codes.ErrFeeAllowance.Code {
		t.Fatalf("a 40,000,000uagr fee from an agent allowed 10,000: code %d %s", r.Code, r.Log)
	}
	if got := h.balance(robot, "uagr"); got != before {
		t.Fatalf("the agent lost %duagr", before-got)
	}
	if r := h.send("robot", send); r.Code != 0 {
		t.Fatalf("a fee within the allowance: %s", r.Log)
	}
	ag, _ := ask(h, agentpb.QueryAgent, &agentpb.QueryAgentRequest{Address: robot.String()})
	if ag.Agent.FeesTotal != authpb.MinFee(authpb.DefaultParams(), testGas) {
		t.Errorf("fees counted %d", ag.Agent.FeesTotal)
	}
	// Frozen, its tx is refused before the fee, even inside a block.
	h.mustSend("alice", &agentpb.MsgFreezeAgent{Owner: address("alice").String(), Agent: robot.String()})
	before = h.balance(robot, "uagr")
	seq := h.sequence("robot")
	if r := h.send("robot", &bankpb.MsgBurn{From: robot.String(), Amount: coin.New("uusdc", 1)}); r.Code != codes.ErrAgentDisabled.Code {
		t.Errorf("a frozen agent's tx in a block: code %d %s", r.Code, r.Log)
	}
	if got := h.balance(robot, "uagr"); got != before || h.sequence("robot") != seq {
		t.Errorf("a frozen agent's refused tx paid %duagr or used its sequence", before-got)
	}
	raw, _ := signTx(key("robot"), seq, &bankpb.MsgBurn{From: robot.String(), Amount: coin.New("uusdc", 1)})
	if r, _ := h.app.CheckTx(t.Context(), &abci.RequestCheckTx{Tx: raw}); r.Code != codes.ErrAgentDisabled.Code {
		t.Errorf("CheckTx of a frozen agent's tx: code %d %s", r.Code, r.Log)
	}
}

// TestALieIsSlashedOnce is finding 5: nothing deduplicated disputes over
// one receipt, so one lie could be slashed again and again. (Issue 13 keyed
// challenges by the receipt's signed body; this pins it down.) A receipt
// is disputed once, whether its dispute is open or judged, and the liar is
// slashed once.
func TestALieIsSlashedOnce(t *testing.T) {
	d := newDisputes(t)
	defer d.close()
	if r := d.challenge(1, receipt.Path(d.leaves(), 1)); r.Code != 0 {
		t.Fatalf("challenge: %s", r.Log)
	}
	if r := d.challenge(1, receipt.Path(d.leaves(), 1)); r.Code != codes.ErrAlreadyDisputed.Code {
		t.Errorf("a second dispute of an open one's receipt: code %d %s", r.Code, r.Log)
	}
	d.vote(1, map[string][]byte{"v1": d.truth[1], "v2": d.truth[1], "v3": d.truth[1]})
	if got := d.dispute(1).Status; got != auditpb.DisputeStatus_DISPUTE_STATUS_PROVIDER_LIED {
		t.Fatalf("status %v", got)
	}
	stake := d.stake("dave")
	// Alone, as the same receipt, after the verdict.
	if r := d.send("v4", &auditpb.MsgChallenge{Challenger: address("v4").String(), Receipt: []byte(d.receipts[1]), Request: d.requests[1]}); r.Code != codes.ErrAlreadyDisputed.Code {
		t.Errorf("a judged receipt challenged again: code %d %s", r.Code, r.Log)
	}
	if got := d.stake("dave"); got != stake {
		t.Errorf("dave's stake went from %d to %d after the verdict", stake, got)
	}
}

// TestStakeBacksService is finding 6: the minimum stake was checked at
// registration only; a provider that unbonded everything stayed online
// and routable with nothing to slash. Now a registered provider cannot
// unbond below the minimum, and one a slash takes below it goes offline
// in the same block, cannot come back by heartbeat, and leaves the routes.
func TestStakeBacksService(t *testing.T) {
	d := newDisputes(t)
	defer d.close()
	dave := address("dave").String()
	online := func() bool {
		r, err := ask(d.harness, providerpb.QueryProviders, &providerpb.QueryProvidersRequest{OnlineOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range r.Providers {
			if p.Provider.Operator == dave {
				return true
			}
		}
		return false
	}
	if r := d.send("dave", &stakingpb.MsgUnbond{Staker: dave, Amount: coin.New("uagr", 100_000_001)}); r.Code != codes.ErrStakeBacksService.Code {
		t.Fatalf("unbonding below the minimum while registered: code %d %s", r.Code, r.Log)
	}
	if r := d.send("dave", &stakingpb.MsgUnbond{Staker: dave, Amount: coin.New("uagr", 100_000_000)}); r.Code != 0 {
		t.Fatalf("unbonding down to the minimum: %s", r.Log)
	}
	if !online() {
		t.Fatal("dave is not routable at the minimum stake")
	}
	// A proven lie takes 10%: below the minimum.
	if r := d.challenge(1, receipt.Path(d.leaves(), 1)); r.Code != 0 {
		t.Fatalf("challenge: %s", r.Log)
	}
	d.vote(1, map[string][]byte{"v1": d.truth[1], "v2": d.truth[1], "v3": d.truth[1]})
	if online() {
		t.Error("a provider slashed below the minimum stake is still routable")
	}
	if r := d.send("dave", &providerpb.MsgHeartbeat{Operator: dave}); r.Code != codes.ErrInsufficientStake.Code {
		t.Errorf("a heartbeat below the minimum stake: code %d %s", r.Code, r.Log)
	}
	// Deregistered, it may take everything back.
	d.send("dave", &providerpb.MsgDeregister{Operator: dave})
	if r := d.send("dave", &stakingpb.MsgUnbond{Staker: dave, Amount: coin.New("uagr", d.stake("dave"))}); r.Code != 0 {
		t.Errorf("unbonding after deregistering: %s", r.Log)
	}
}

// TestRevokingRecoversEverything is finding 7: revoking swept the agent's
// liquid balances only; its bonded stake and channel deposits were lost to
// the owner. Now revoking unbonds the stake to the owner and the owner
// settles the agent's expired channels, the refund reaching the owner.
func TestRevokingRecoversEverything(t *testing.T) {
	h := newHarness(t, "")
	defer h.close()
	h.block()
	robot := h.makeAgent(&agentpb.Policy{Denom: "uagr", FeeAllowance: 1_000_000}, coin.New("uagr", 5_000_000))
	h.mustSend("robot", &stakingpb.MsgBond{Staker: robot.String(), Amount: coin.New("uagr", 3_000_000)})
	h.mustSend("robot", &channelpb.MsgOpenChannel{Payer: robot.String(), Payee: address("bob").String(), Deposit: coin.New("uagr", 1_000_000),
		ExpiresAt: h.height + 5, PayerKey: key("robot").Public().(ed25519.PublicKey)})
	alice := address("alice")
	before := h.balance(alice, "uagr")
	liquid := h.balance(robot, "uagr")
	h.mustSend("alice", &agentpb.MsgRevokeAgent{Owner: alice.String(), Agent: robot.String()})
	fee := authpb.MinFee(authpb.DefaultParams(), testGas)
	if got := h.balance(alice, "uagr"); got != before-fee+liquid {
		t.Fatalf("the sweep paid alice %d, want %d", got-(before-fee), liquid)
	}
	for i := int64(0); i < stakingpb.DefaultParams().UnbondingBlocks+1; i++ {
		h.block()
	}
	if got := h.balance(alice, "uagr"); got != before-fee+liquid+3_000_000 {
		t.Errorf("the agent's stake did not reach its owner: alice has %d more, want %d", got-(before-fee+liquid), 3_000_000)
	}
	h.mustSend("alice", &channelpb.MsgSettleExpired{Payer: alice.String(), ChannelId: 1})
	if got := h.balance(alice, "uagr"); got != before-2*fee+liquid+4_000_000 {
		t.Errorf("the agent's channel refund did not reach its owner: alice has %d more, want %d", got-(before-2*fee+liquid), 4_000_000)
	}
	if got := h.balance(robot, "uagr"); got != 0 {
		t.Errorf("the revoked agent holds %duagr", got)
	}
	if err := checkInvariant(h); err != nil {
		t.Error(err)
	}
}

// TestABrokenInvariantHaltsTheNode is finding 8: supply and the module
// accounts' solvency were checked at genesis and in tests only; a node
// would commit a state with coins out of thin air. Now the end of every
// block checks them, and a block that breaks one is not committed. The bug
// is played by a bank restriction that credits coins it never debited.
func TestABrokenInvariantHaltsTheNode(t *testing.T) {
	for _, c := range []struct {
		name string
		bug  func(ctx *module.Context)
	}{
		{"coins from nowhere", func(ctx *module.Context) {
			ctx.KV.Set(bankpb.BalanceKey(address("carol"), "uusdc"), []byte{0, 0, 0, 0, 0, 0, 0, 9})
		}},
		{"an escrow short of what it owes", func(ctx *module.Context) {
			ctx.KV.Set([]byte("channel/owed/uusdc"), []byte{0, 0, 0, 0, 0, 0, 1, 0})
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, "")
			defer h.close()
			h.block()
			bank.SetRestriction(func(ctx *module.Context, tr *bank.Transfer, co *coin.Coin) (addr.Address, error) {
				c.bug(ctx)
				return agent.Restrict(ctx, tr, co)
			})
			defer bank.SetRestriction(agent.Restrict)
			raw, _ := signTx(key("alice"), 0, &bankpb.MsgSend{From: address("alice").String(), To: address("bob").String(), Amount: []*coin.Coin{coin.New("uusdc", 1)}})
			_, err := h.app.FinalizeBlock(t.Context(), &abci.RequestFinalizeBlock{Height: 2, Time: genesisTime, Txs: [][]byte{raw}})
			if err == nil || !strings.Contains(err.Error(), "invariant") {
				t.Fatalf("a block that breaks an invariant: %v", err)
			}
			t.Log(err)
		})
	}
}

// TestAuthorizationsAndRoyaltiesAreHeldToThePolicy is finding 10: an
// agent's allowed_msgs did not apply to the transfer authorizations it
// signs, and a payee could change its royalty recipients at any time,
// redirecting an agent's channel payments outside its allowed list.
func TestAuthorizationsAndRoyaltiesAreHeldToThePolicy(t *testing.T) {
	h := newHarness(t, "")
	defer h.close()
	h.block()
	bob, dave := address("bob").String(), address("dave").String()
	robot := h.makeAgent(&agentpb.Policy{Denom: "uusdc", AllowedMsgs: []string{"agora.bank.v1.MsgSend", "agora.channel.v1.MsgOpenChannel"},
		AllowedRecipients: []string{bob, dave}, FeeAllowance: 1_000_000}, coin.New("uusdc", 10_000), coin.New("uagr", 1_000_000))
	n := make([]byte, 32)
	n[31] = 1
	a := &bankpb.Authorization{From: robot.String(), To: bob, Amount: coin.New("uusdc", 5), ValidBefore: 1_900_000_000, Nonce: n}
	bankpb.SignAuthorization(key("robot"), testChain, a)
	if r := h.send("bob", &bankpb.MsgTransferWithAuthorization{Submitter: bob, Authorization: a}); r.Code != codes.ErrUnauthorized.Code || !strings.Contains(r.Log, "MsgTransferWithAuthorization") {
		t.Errorf("an authorization from an agent whose policy allows only sends and channels: code %d %s", r.Code, r.Log)
	}
	// dave sells a model with a royalty to bob, whom the agent may pay.
	const model = "abababababababababababababababababababababababababababababababab"
	h.mustSend("dave", &stakingpb.MsgBond{Staker: dave, Amount: coin.New("uagr", 200_000_000)})
	h.mustSend("dave", &providerpb.MsgRegisterProvider{Operator: dave, Endpoint: "http://127.0.0.1:1"})
	h.mustSend("dave", &providerpb.MsgRegisterService{Operator: dave, ModelId: model, ModelName: "m", MaxConcurrency: 1, PricePerRequest: coin.New("uusdc", 1),
		Royalties: []*providerpb.Royalty{{Recipient: bob, Bps: 1000}}})
	h.mustSend("robot", &channelpb.MsgOpenChannel{Payer: robot.String(), Payee: dave, ModelId: model, Deposit: coin.New("uusdc", 1000), ExpiresAt: h.height + 100,
		PayerKey: key("robot").Public().(ed25519.PublicKey)})
	// Then redirects the royalty to carol, whom the agent may not pay.
	carol := address("carol")
	h.mustSend("dave", &providerpb.MsgRegisterService{Operator: dave, ModelId: model, ModelName: "m", MaxConcurrency: 1, PricePerRequest: coin.New("uusdc", 1),
		Royalties: []*providerpb.Royalty{{Recipient: carol.String(), Bps: 9000}}})
	h.mustSend("dave", &channelpb.MsgClaim{Payee: dave, Claims: []*channelpb.Claim{{Voucher: channelpb.SignVoucher(key("robot"), testChain, 1, 100), Amount: 100, ReceiptsRoot: make([]byte, 32), ReceiptsCount: 1}}})
	if got := h.balance(carol, "uusdc"); got != 0 {
		t.Errorf("a royalty set after the channel opened took %duusdc of the agent's payment", got)
	}
	if got := h.balance(address("bob"), "uusdc"); got != 1_000_000+10 {
		t.Errorf("the royalty agreed at opening paid bob %d, want 10", got-1_000_000)
	}
}

// TestEveryFundMoveIsSeenByThePolicy enumerates every message type the
// chain handles, runs one from an agent, and fails if the agent's balance
// changed by more than the transfers the bank's restriction (the agent
// policy's one choke point) was shown. A message type without an entry
// fails the test, so a later module's messages must be added here.
func TestEveryFundMoveIsSeenByThePolicy(t *testing.T) {
	d := newDisputes(t, withValidators(nil)) // staking chooses the set, so validators may join
	defer d.close()
	h := d.harness
	for _, v := range []string{"v4", "erin", "frank"} {
		d.send(v, &stakingpb.MsgBond{Staker: address(v).String(), Amount: coin.New("uagr", 200_000_000)})
		d.send(v, &auditpb.MsgRegisterVerifier{Verifier: address(v).String()})
	}
	robot := h.makeAgent(&agentpb.Policy{Denom: "uagr", FeeAllowance: 100_000_000}, coin.New("uagr", 400_000_000))
	r, bob, dave := robot.String(), address("bob").String(), address("dave").String()
	h.mustSend("dave", &stakingpb.MsgCreateValidator{Operator: dave, ConsensusPubkey: pub("dave-cons"), SelfBond: coin.New("uagr", 5_000_000)})
	nonce := make([]byte, 32)
	nonce[0] = 7
	authz := &bankpb.Authorization{From: r, To: bob, Amount: coin.New("uagr", 5), ValidBefore: 1_900_000_000, Nonce: nonce}
	bankpb.SignAuthorization(key("robot"), testChain, authz)
	hash := make([]byte, 32)
	type entry struct {
		by    string // the signer, if not the agent
		msg   module.Msg
		moves bool // moves the agent's money: it must succeed
	}
	entries := map[string]entry{
		// Moves nothing; its proof is not the new key's, so the robot keeps
		// signing with its key for the entries that follow.
		"agora.auth.v1.MsgRotateKey":                 {msg: &authpb.MsgRotateKey{Account: r, NewPublicKey: pub("robot-2"), Proof: make([]byte, 64)}},
		"agora.bank.v1.MsgSend":                      {msg: &bankpb.MsgSend{From: r, To: bob, Amount: []*coin.Coin{coin.New("uagr", 3)}}, moves: true},
		"agora.bank.v1.MsgMultiSend":                 {msg: &bankpb.MsgMultiSend{From: r, Outputs: []*bankpb.Output{{To: bob, Amount: []*coin.Coin{coin.New("uagr", 2)}}, {To: dave, Amount: []*coin.Coin{coin.New("uagr", 4)}}}}, moves: true},
		"agora.bank.v1.MsgMint":                      {msg: &bankpb.MsgMint{Issuer: r, To: r, Amount: coin.New("uusdc", 1)}},
		"agora.bank.v1.MsgBurn":                      {msg: &bankpb.MsgBurn{From: r, Amount: coin.New("uagr", 1)}, moves: true},
		"agora.bank.v1.MsgTransferWithAuthorization": {by: "bob", msg: &bankpb.MsgTransferWithAuthorization{Submitter: bob, Authorization: authz}, moves: true},
		"agora.staking.v1.MsgBond":                   {msg: &stakingpb.MsgBond{Staker: r, Amount: coin.New("uagr", 150_000_000)}, moves: true},
		"agora.staking.v1.MsgUnbond":                 {msg: &stakingpb.MsgUnbond{Staker: r, Amount: coin.New("uagr", 1)}},
		"agora.staking.v1.MsgCreateValidator":        {msg: &stakingpb.MsgCreateValidator{Operator: r, ConsensusPubkey: pub("robot-cons"), SelfBond: coin.New("uagr", 2_000_000), CommissionBps: 500}, moves: true},
		"agora.staking.v1.MsgEditValidator":          {msg: &stakingpb.MsgEditValidator{Operator: r, CommissionBps: 400}},
		"agora.staking.v1.MsgDelegate":               {msg: &stakingpb.MsgDelegate{Delegator: r, Validator: dave, Amount: coin.New("uagr", 1_000_000)}, moves: true},
		"agora.staking.v1.MsgUndelegate":             {msg: &stakingpb.MsgUndelegate{Delegator: r, Validator: r, Amount: coin.New("uagr", 500_000)}, moves: true},
		"agora.staking.v1.MsgRedelegate":             {msg: &stakingpb.MsgRedelegate{Delegator: r, Src: dave, Dst: r, Amount: coin.New("uagr", 400_000)}, moves: true},
		"agora.staking.v1.MsgWithdrawRewards":        {msg: &stakingpb.MsgWithdrawRewards{Delegator: r, Validator: r}, moves: true},
		"agora.staking.v1.MsgUnjail":                 {msg: &stakingpb.MsgUnjail{Operator: r}},
		"agora.staking.v1.MsgRotateConsensusKey":     {msg: &stakingpb.MsgRotateConsensusKey{Operator: r, NewConsensusPubkey: pub("robot-cons-2")}},
		"agora.beacon.v1.MsgCommit":                  {msg: &beaconpb.MsgCommit{Validator: r, Commitment: make([]byte, 32)}},
		"agora.beacon.v1.MsgReveal":                  {msg: &beaconpb.MsgReveal{Validator: r, Value: make([]byte, 32)}},
		"agora.gov.v1.MsgSubmitProposal": {msg: &govpb.MsgSubmitProposal{Proposer: r, Title: "t", Content: &govpb.Content{Kind: &govpb.Content_Text{Text: &govpb.Text{}}},
			InitialDeposit: coin.New("uagr", 1_000_000)}, moves: true},
		"agora.gov.v1.MsgDeposit":               {msg: &govpb.MsgDeposit{Depositor: r, ProposalId: 1, Amount: coin.New("uagr", 2_000_000)}, moves: true},
		"agora.gov.v1.MsgVote":                  {msg: &govpb.MsgVote{Voter: r, ProposalId: 1, Option: govpb.Option_OPTION_YES}},
		"agora.provider.v1.MsgRegisterProvider": {msg: &providerpb.MsgRegisterProvider{Operator: r, Endpoint: "http://127.0.0.1:2"}},
		"agora.provider.v1.MsgRegisterService":  {msg: &providerpb.MsgRegisterService{Operator: r, ModelId: strings.Repeat("cd", 32), ModelName: "x", MaxConcurrency: 1}},
		"agora.provider.v1.MsgRemoveService":    {msg: &providerpb.MsgRemoveService{Operator: r, ModelId: strings.Repeat("cd", 32)}},
		"agora.provider.v1.MsgHeartbeat":        {msg: &providerpb.MsgHeartbeat{Operator: r}},
		"agora.provider.v1.MsgDeregister":       {msg: &providerpb.MsgDeregister{Operator: r}},
		"agora.channel.v1.MsgOpenChannel": {msg: &channelpb.MsgOpenChannel{Payer: r, Payee: dave, Deposit: coin.New("uagr", 1000), ExpiresAt: 10_000,
			PayerKey: key("robot").Public().(ed25519.PublicKey)}, moves: true},
		"agora.channel.v1.MsgFundChannel":      {msg: &channelpb.MsgFundChannel{Payer: r, ChannelId: 2, Amount: coin.New("uagr", 500)}, moves: true},
		"agora.channel.v1.MsgExtendChannel":    {msg: &channelpb.MsgExtendChannel{Payer: r, ChannelId: 2, ExpiresAt: 20_000}},
		"agora.channel.v1.MsgClaim":            {by: "dave", msg: &channelpb.MsgClaim{Payee: dave, Claims: []*channelpb.Claim{{Voucher: channelpb.SignVoucher(key("robot"), testChain, 2, 100), Amount: 100, ReceiptsRoot: hash, ReceiptsCount: 1}}}},
		"agora.channel.v1.MsgCloseChannel":     {by: "dave", msg: &channelpb.MsgCloseChannel{Payee: dave, ChannelId: 2}},
		"agora.channel.v1.MsgSettleExpired":    {msg: &channelpb.MsgSettleExpired{Payer: r, ChannelId: 2}},
		"agora.channel.v1.MsgRevokeSessionKey": {msg: &channelpb.MsgRevokeSessionKey{Payer: r, ChannelId: 2}},
		"agora.agent.v1.MsgCreateAgent":        {msg: &agentpb.MsgCreateAgent{Owner: r, AgentKey: key("carol").Public().(ed25519.PublicKey), Consent: ed25519.Sign(key("carol"), agentpb.ConsentBytes(testChain, r)), Policy: &agentpb.Policy{Denom: "uagr"}}},
		"agora.agent.v1.MsgSetPolicy":          {msg: &agentpb.MsgSetPolicy{Owner: r, Agent: r, Policy: &agentpb.Policy{Denom: "uagr"}}},
		"agora.agent.v1.MsgFreezeAgent":        {msg: &agentpb.MsgFreezeAgent{Owner: r, Agent: r}},
		"agora.agent.v1.MsgUnfreezeAgent":      {msg: &agentpb.MsgUnfreezeAgent{Owner: r, Agent: r}},
		"agora.agent.v1.MsgRevokeAgent":        {msg: &agentpb.MsgRevokeAgent{Owner: r, Agent: r}},
		"agora.job.v1.MsgCreateOrder": {msg: &jobpb.MsgCreateOrder{Tenant: r, ModuleHash: hash, ModuleUrl: "http://127.0.0.1:9001/m", InputHash: hash, InputUrl: "http://127.0.0.1:9001/i",
			Fuel: 1000, MemoryMib: 16, MaxPrice: coin.New("uagr", 700)}, moves: true},
		"agora.job.v1.MsgCancelOrder":        {msg: &jobpb.MsgCancelOrder{Tenant: r, OrderId: 1}},
		"agora.job.v1.MsgBid":                {msg: &jobpb.MsgBid{Provider: r, OrderId: 1, Price: coin.New("uagr", 1)}},
		"agora.job.v1.MsgCommitResult":       {msg: &jobpb.MsgCommitResult{Provider: r, OrderId: 1, Commitment: hash}},
		"agora.job.v1.MsgRevealResult":       {msg: &jobpb.MsgRevealResult{Provider: r, OrderId: 1, Result: jobResult("o", "ok"), Salt: hash, OutputUrl: "http://127.0.0.1:9001/o"}},
		"agora.job.v1.MsgCommitVote":         {msg: &jobpb.MsgCommitVote{Verifier: r, OrderId: 1, Commitment: hash}},
		"agora.job.v1.MsgRevealVote":         {msg: &jobpb.MsgRevealVote{Verifier: r, OrderId: 1, Result: jobResult("o", "ok"), Salt: hash}},
		"agora.storage.v1.MsgRegisterNode":   {msg: &storagepb.MsgRegisterNode{Operator: r, Endpoint: "http://127.0.0.1:3", Capacity: 1 << 20}},
		"agora.storage.v1.MsgCreateDeal":     {msg: &storagepb.MsgCreateDeal{Owner: r, Manifest: encodeFor(t, 1, 1), DurationEpochs: 2, Denom: "uagr", PricePerGibEpoch: 1 << 20}, moves: true},
		"agora.storage.v1.MsgProve":          {msg: &storagepb.MsgProve{Node: r, Epoch: 1, Answers: []*storagepb.Answer{{Deal: 1, Leaf: []byte{1}}}}},
		"agora.storage.v1.MsgReportProbes":   {msg: &storagepb.MsgReportProbes{Prober: r, Results: []*storagepb.ProbeResult{{Probe: 1}}}},
		"agora.storage.v1.MsgRebut":          {msg: &storagepb.MsgRebut{Node: r, Probe: 1, Leaf: []byte{1}}},
		"agora.audit.v1.MsgRegisterVerifier": {msg: &auditpb.MsgRegisterVerifier{Verifier: r}},
		"agora.audit.v1.MsgChallenge": {msg: &auditpb.MsgChallenge{Challenger: r, Receipt: []byte(d.receipts[1]), ChannelId: 1, LeafIndex: 1,
			Path: receipt.Path(d.leaves(), 1), Request: d.requests[1]}, moves: true},
		"agora.audit.v1.MsgCommit":          {msg: &auditpb.MsgCommit{Verifier: r, DisputeId: 1, Commitment: hash}},
		"agora.audit.v1.MsgReveal":          {msg: &auditpb.MsgReveal{Verifier: r, DisputeId: 1, ResponseHash: hash, Salt: hash}},
		"agora.audit.v1.MsgSettleWithProof": {msg: &auditpb.MsgSettleWithProof{Submitter: r, DisputeId: 1, Logits: make([]int32, 10), Proof: []byte{1}}},
		"agora.audit.v1.MsgVerifyInference": {msg: &auditpb.MsgVerifyInference{Submitter: r, ModelId: strings.Repeat("ab", 32), Input: make([]byte, 256), Logits: make([]int32, 10), Proof: []byte{1}}},
		"agora.audit.v1.MsgProposeModelKey": {msg: &auditpb.MsgProposeModelKey{Proposer: r, ModelId: strings.Repeat("ef", 32), VerifyingKey: []byte{1}, TranscriptDigest: hash,
			TranscriptUrl: "http://127.0.0.1:1/t", Contributors: [][]byte{pub("v1"), pub("v2")}}, moves: true},
		"agora.audit.v1.MsgCommitKeyVote": {msg: &auditpb.MsgCommitKeyVote{Verifier: r, ReviewId: 1, Commitment: hash}},
		"agora.audit.v1.MsgRevealKeyVote": {msg: &auditpb.MsgRevealKeyVote{Verifier: r, ReviewId: 1, Verdict: hash, Salt: hash}},
	}
	// The restriction, recording what it is shown of the agent's money.
	var out, in uint64
	bank.SetRestriction(func(ctx *module.Context, tr *bank.Transfer, c *coin.Coin) (addr.Address, error) {
		to, err := agent.Restrict(ctx, tr, c)
		if err == nil && c.Denom == "uagr" && !tr.Fee {
			if tr.From == robot {
				out += c.Amount
			}
			if to == robot {
				in += c.Amount
			}
		}
		return to, err
	})
	defer bank.SetRestriction(agent.Restrict)
	var order []string
	for _, m := range chain.Modules() {
		for _, msg := range m.Msgs() {
			order = append(order, string(proto.MessageName(msg)))
		}
	}
	// The revocation last: it ends the agent.
	for i, name := range order {
		if name == "agora.agent.v1.MsgRevokeAgent" {
			order = append(append(order[:i:i], order[i+1:]...), name)
			break
		}
	}
	for _, name := range order {
		e, ok := entries[name]
		if !ok {
			t.Errorf("%s has no entry: add one, so that its moves of an agent's money are checked", name)
			continue
		}
		by := e.by
		if by == "" {
			by = "robot"
		}
		out, in = 0, 0
		before := h.balance(robot, "uagr")
		res := d.send(by, e.msg)
		after := h.balance(robot, "uagr")
		fee := uint64(0)
		if by == "robot" && res.Code != codes.ErrAgentDisabled.Code {
			fee = disputeFee
		}
		if e.moves && res.Code != 0 {
			t.Errorf("%s, which moves an agent's money, failed: %s", name, res.Log)
			continue
		}
		if before+in != after+out+fee {
			t.Errorf("%s: the agent's balance went from %d to %d, but the policy saw %d leave and %d arrive (fee %d)", name, before, after, out, in, fee)
		}
	}
}

// TestGasOfAClaim measures what a provider's claim of 1,000 vouchers
// (1,000 channels, in as few txs as fit in 64 KiB) costs in gas, for the
// gas table in docs/chain.md.
func TestGasOfAClaim(t *testing.T) {
	h := newHarness(t, "")
	defer h.close()
	h.block()
	alice, bob := address("alice").String(), address("bob").String()
	const channels = 1000
	var open []module.Msg
	for i := 0; i < channels; i++ {
		open = append(open, &channelpb.MsgOpenChannel{Payer: alice, Payee: bob, Deposit: coin.New("uusdc", 100), ExpiresAt: 10_000, PayerKey: key("alice").Public().(ed25519.PublicKey)})
		if len(open) == 50 || i == channels-1 {
			if r := h.one("alice", 50_000_000, 50_000, open...); r.Code != 0 {
				t.Fatal(r.Log)
			}
			open = nil
		}
	}
	var claims []*channelpb.Claim
	var used uint64
	txs := 0
	flush := func() {
		r := h.one("bob", 100_000_000, 100_000, &channelpb.MsgClaim{Payee: bob, Claims: claims})
		if r.Code != 0 {
			t.Fatal(r.Log)
		}
		used += uint64(r.GasUsed)
		txs++
		claims = nil
	}
	for id := uint64(1); id <= channels; id++ {
		claims = append(claims, &channelpb.Claim{Voucher: channelpb.SignVoucher(key("alice"), testChain, id, 10), Amount: 10, ReceiptsRoot: make([]byte, 32), ReceiptsCount: 1})
		if len(claims) == 250 {
			flush()
		}
	}
	t.Logf("a claim of %d vouchers used %d gas in %d txs (%d a voucher)", channels, used, txs, used/channels)
}

// TestNoOneSendsToAModuleAccount: a module account's balance is what its
// module owes, and the end of every block checks it. Coins sent to one from
// outside its module are refused, so no one can break the check (and, were
// it exact, halt the chain) with a 1uagr send.
func TestNoOneSendsToAModuleAccount(t *testing.T) {
	h := newHarness(t, "")
	defer h.close()
	h.block()
	alice := address("alice").String()
	for _, to := range []addr.Address{channelpb.Escrow, stakingpb.BondedPool, authpb.FeePool, auditpb.Escrow} {
		if r := h.send("alice", &bankpb.MsgSend{From: alice, To: to.String(), Amount: []*coin.Coin{coin.New("uagr", 1)}}); r.Code != codes.ErrUnauthorized.Code {
			t.Errorf("a send to module account %s: code %d %s", to, r.Code, r.Log)
		}
		if r := h.send("alice", &bankpb.MsgMultiSend{From: alice, Outputs: []*bankpb.Output{{To: to.String(), Amount: []*coin.Coin{coin.New("uagr", 1)}}}}); r.Code != codes.ErrUnauthorized.Code {
			t.Errorf("a multi-send to module account %s: code %d %s", to, r.Code, r.Log)
		}
	}
	if err := checkInvariant(h); err != nil {
		t.Error(err)
	}
}
