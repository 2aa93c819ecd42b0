package chain_test

import (
	"crypto/ed25519"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"

	"github.com/agoranet/agora/internal/chain/audit/auditpb"
	"github.com/agoranet/agora/internal/chain/channel/channelpb"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/provider/providerpb"
	"github.com/agoranet/agora/internal/chain/staking/stakingpb"
	"github.com/agoranet/agora/internal/node"
	"github.com/agoranet/agora/internal/receipt"
)

// disputes is a chain with provider dave, a channel from alice whose claim
// anchored three of dave's receipts, and verifiers v1..v3.
type disputes struct {
	*harness
	t        *testing.T
	seq      map[string]uint64
	receipts []string // encoded, as anchored
	requests [][]byte
	truth    [][]byte // the true response hashes
}

func newDisputes(t *testing.T, opts ...func(*node.Genesis)) *disputes {
	d := &disputes{harness: newHarness(t, "", opts...), t: t, seq: map[string]uint64{}}
	const model = "abababababababababababababababababababababababababababababababab"
	dave := address("dave").String()
	d.send("dave", &stakingpb.MsgBond{Staker: dave, Amount: coin.New("uagr", 200_000_000)})
	d.send("dave", &providerpb.MsgRegisterProvider{Operator: dave, Endpoint: "http://127.0.0.1:1"})
	for _, v := range []string{"v1", "v2", "v3"} {
		d.send(v, &stakingpb.MsgBond{Staker: address(v).String(), Amount: coin.New("uagr", 200_000_000)})
		d.send(v, &auditpb.MsgRegisterVerifier{Verifier: address(v).String()})
	}
	d.send("alice", &channelpb.MsgOpenChannel{Payer: address("alice").String(), Payee: dave, Deposit: coin.New("uusdc", 1000), ExpiresAt: 1000, PayerKey: key("alice").Public().(ed25519.PublicKey)})
	// Three answers; dave's receipt for the second lies about its response.
	var leaves [][]byte
	for i := 0; i < 3; i++ {
		req := []byte{'r', byte(i)}
		truth := receipt.Hash([]byte{'a', byte(i)})
		claimed := truth
		if i == 1 {
			claimed = receipt.Hash([]byte("a lie"))
		}
		enc, err := receipt.Sign(key("dave"), &receipt.Receipt{ChainId: testChain, ModelId: model, RequestHash: receipt.Hash(req), ResponseHash: claimed, Seq: uint64(i)})
		if err != nil {
			t.Fatal(err)
		}
		d.receipts, d.requests, d.truth = append(d.receipts, enc), append(d.requests, req), append(d.truth, truth)
		leaves = append(leaves, receipt.Hash([]byte(enc)))
	}
	d.send("dave", &channelpb.MsgClaim{Payee: dave, Claims: []*channelpb.Claim{{Voucher: channelpb.SignVoucher(key("alice"), testChain, 1, 30), Amount: 30, ReceiptsRoot: receipt.Root(leaves), ReceiptsCount: 3}}})
	return d
}

// disputeGas is the gas limit of the dispute tests' txs, enough for a
// proof check (1.8M); disputeFee is its fee.
const (
	disputeGas = 3_000_000
	disputeFee = 3_000
)

func (d *disputes) send(name string, msg module.Msg) *abci.ExecTxResult {
	d.t.Helper()
	raw, err := signTxGas(key(name), d.seq[name], disputeGas, msg)
	if err != nil {
		d.t.Fatal(err)
	}
	d.seq[name]++
	d.pending = [][]byte{raw}
	resp, _ := d.block()
	return resp.TxResults[0]
}

func (d *disputes) challenge(i int, path [][]byte) *abci.ExecTxResult {
	return d.send("v4", &auditpb.MsgChallenge{Challenger: address("v4").String(), Receipt: []byte(d.receipts[i]), ChannelId: 1, Anchor: 0, LeafIndex: uint32(i), Path: path, Request: d.requests[i]})
}

func (d *disputes) leaves() [][]byte {
	var out [][]byte
	for _, r := range d.receipts {
		out = append(out, receipt.Hash([]byte(r)))
	}
	return out
}

func (d *disputes) dispute(id uint64) *auditpb.Dispute {
	r, err := ask(d.harness, auditpb.QueryDispute, &auditpb.QueryDisputeRequest{Id: id})
	if err != nil {
		d.t.Fatal(err)
	}
	return r.Dispute
}

// vote has each of voters commit to hash, waits out the commit window,
// and reveals.
func (d *disputes) vote(id uint64, votes map[string][]byte) {
	salt := []byte("salt")
	for _, v := range []string{"v1", "v2", "v3"} {
		if h, ok := votes[v]; ok {
			if r := d.send(v, &auditpb.MsgCommit{Verifier: address(v).String(), DisputeId: id, Commitment: auditpb.Commitment(h, salt, address(v).String())}); r.Code != 0 {
				d.t.Fatalf("%s commit: %s", v, r.Log)
			}
		}
	}
	for d.height <= d.dispute(id).CommitUntil {
		d.block()
	}
	for _, v := range []string{"v1", "v2", "v3"} {
		if h, ok := votes[v]; ok {
			if r := d.send(v, &auditpb.MsgReveal{Verifier: address(v).String(), DisputeId: id, ResponseHash: h, Salt: salt}); r.Code != 0 {
				d.t.Fatalf("%s reveal: %s", v, r.Log)
			}
		}
	}
	for d.height < d.dispute(id).RevealUntil {
		d.block()
	}
}

func (d *disputes) stake(name string) uint64 {
	r, err := ask(d.harness, stakingpb.QueryStake, &stakingpb.QueryStakeRequest{Address: address(name).String()})
	if err != nil {
		d.t.Fatal(err)
	}
	return r.Stake.Bonded
}

// TestLyingProviderIsSlashed: a challenge of the lying receipt, a
// committee that re-executes and votes the true hash, and the provider
// loses 10% of its stake, half of it to the challenger.
func TestLyingProviderIsSlashed(t *testing.T) {
	d := newDisputes(t)
	defer d.close()
	if r := d.challenge(1, [][]byte{{1, 2, 3}}); r.Code == 0 {
		t.Fatal("a challenge with a bad inclusion path was accepted")
	}
	before := d.balance(address("v4"), "uagr")
	if r := d.challenge(1, receipt.Path(d.leaves(), 1)); r.Code != 0 {
		t.Fatalf("challenge: %s", r.Log)
	}
	if n := len(d.dispute(1).Votes); n != 3 {
		t.Fatalf("committee of %d", n)
	}
	// A double commit and a non-member's commit are refused.
	d.vote(1, map[string][]byte{"v1": d.truth[1], "v2": d.truth[1], "v3": d.truth[1]})
	got := d.dispute(1)
	if got.Status != auditpb.DisputeStatus_DISPUTE_STATUS_PROVIDER_LIED {
		t.Fatalf("status %v", got.Status)
	}
	if s := d.stake("dave"); s != 180_000_000 {
		t.Errorf("dave's stake %d, want 180000000 (10%% slashed)", s)
	}
	if gain := d.balance(address("v4"), "uagr") + disputeFee - before; gain != 10_000_000 {
		t.Errorf("the challenger gained %d, want 10000000 (half the slash; the bond came back)", gain)
	}
	info, err := ask(d.harness, providerpb.QueryProvider, &providerpb.QueryProviderRequest{Address: address("dave").String()})
	if err != nil {
		t.Fatal(err)
	}
	if info.Provider.DisputesLost != 1 {
		t.Errorf("dave lost %d disputes, want 1", info.Provider.DisputesLost)
	}
	if err := checkInvariant(d.harness); err != nil {
		t.Error(err)
	}
}

// TestFrivolousChallengeAndMissedVote: challenging an honest receipt costs
// the bond (paid to the members who voted), and a member who does not
// vote loses a little stake.
func TestFrivolousChallengeAndMissedVote(t *testing.T) {
	d := newDisputes(t)
	defer d.close()
	before := d.balance(address("v4"), "uagr")
	if r := d.challenge(0, receipt.Path(d.leaves(), 0)); r.Code != 0 {
		t.Fatalf("challenge: %s", r.Log)
	}
	// v1 commits twice: the second is refused.
	salt := []byte("s")
	c := auditpb.Commitment(d.truth[0], salt, address("v1").String())
	if r := d.send("v1", &auditpb.MsgCommit{Verifier: address("v1").String(), DisputeId: 1, Commitment: c}); r.Code != 0 {
		t.Fatal(r.Log)
	}
	if r := d.send("v1", &auditpb.MsgCommit{Verifier: address("v1").String(), DisputeId: 1, Commitment: c}); r.Code == 0 {
		t.Error("a double commit was accepted")
	}
	if r := d.send("bob", &auditpb.MsgCommit{Verifier: address("bob").String(), DisputeId: 1, Commitment: c}); r.Code == 0 {
		t.Error("a non-member's commit was accepted")
	}
	if r := d.send("v2", &auditpb.MsgCommit{Verifier: address("v2").String(), DisputeId: 1, Commitment: auditpb.Commitment(d.truth[0], salt, address("v2").String())}); r.Code != 0 {
		t.Fatal(r.Log)
	}
	if r := d.send("v1", &auditpb.MsgReveal{Verifier: address("v1").String(), DisputeId: 1, ResponseHash: d.truth[0], Salt: salt}); r.Code == 0 {
		t.Error("a reveal before the commit window closed was accepted")
	}
	for d.height <= d.dispute(1).CommitUntil {
		d.block()
	}
	if r := d.send("v2", &auditpb.MsgReveal{Verifier: address("v2").String(), DisputeId: 1, ResponseHash: d.truth[2], Salt: salt}); r.Code == 0 {
		t.Error("a reveal that does not match its commitment was accepted")
	}
	for _, v := range []string{"v1", "v2"} { // v3 never votes
		if r := d.send(v, &auditpb.MsgReveal{Verifier: address(v).String(), DisputeId: 1, ResponseHash: d.truth[0], Salt: salt}); r.Code != 0 {
			t.Fatalf("%s reveal: %s", v, r.Log)
		}
	}
	for d.height < d.dispute(1).RevealUntil {
		d.block()
	}
	if r := d.send("v1", &auditpb.MsgReveal{Verifier: address("v1").String(), DisputeId: 1, ResponseHash: d.truth[0], Salt: salt}); r.Code == 0 {
		t.Error("a late reveal was accepted")
	}
	if got := d.dispute(1).Status; got != auditpb.DisputeStatus_DISPUTE_STATUS_PROVIDER_HONEST {
		t.Fatalf("status %v", got)
	}
	if lost := before - d.balance(address("v4"), "uagr") - disputeFee; lost != 10_000_000 {
		t.Errorf("the frivolous challenger lost %d, want its bond of 10000000", lost)
	}
	if s := d.stake("v3"); s != 200_000_000-1_000_000 {
		t.Errorf("v3, who did not vote, has %d staked, want 199000000 (0.5%% penalty)", s)
	}
	if s := d.stake("v1"); s != 200_000_000 {
		t.Errorf("v1 voted with the majority but has %d staked", s)
	}
	if s := d.stake("dave"); s != 200_000_000 {
		t.Errorf("the honest provider was slashed to %d", s)
	}
	if err := checkInvariant(d.harness); err != nil {
		t.Error(err)
	}

}

// TestAReceiptIsChallengedByItself is part of finding 8 of the buyer-and-
// seller review: a challenge needed the receipt's path under a claim's
// root, from leaves the accused provider served itself, so a cheater left
// its lying receipts out of its claims (or was paid with exact, which
// anchors nothing) and could not be challenged. A signed receipt is now
// evidence by itself within the window after its height; once.
func TestAReceiptIsChallengedByItself(t *testing.T) {
	d := newDisputes(t)
	defer d.close()
	const model = "abababababababababababababababababababababababababababababababab"
	req := []byte("never anchored")
	sign := func(chain string, height int64) string {
		enc, err := receipt.Sign(key("dave"), &receipt.Receipt{ChainId: chain, ModelId: model, RequestHash: receipt.Hash(req), ResponseHash: receipt.Hash([]byte("a lie")), Height: height, Seq: 9})
		if err != nil {
			t.Fatal(err)
		}
		return enc
	}
	challenge := func(enc string) *abci.ExecTxResult {
		return d.send("v4", &auditpb.MsgChallenge{Challenger: address("v4").String(), Receipt: []byte(enc), Request: req})
	}
	if r := challenge(sign("another-chain", d.height)); r.Code == 0 {
		t.Error("a receipt of another chain was challenged")
	}
	if r := challenge(sign(testChain, d.height+2*receipt.MaxLead)); r.Code == 0 {
		t.Error("a receipt from far in the future was challenged")
	}
	// Dated a little ahead, as buyers take them: challengeable at once.
	lie := sign(testChain, d.height+receipt.MaxLead/2)
	if r := challenge(lie); r.Code != 0 {
		t.Fatalf("challenge of an unanchored receipt: %s", r.Log)
	}
	if r := challenge(lie); r.Code == 0 {
		t.Error("one receipt was challenged twice")
	}
	// Nor in another encoding of the same signed receipt (base64 skips
	// line breaks).
	if r := challenge(lie[:10] + "\n" + lie[10:]); r.Code == 0 {
		t.Error("one receipt was challenged twice, re-encoded")
	}
	truth := receipt.Hash([]byte("the truth"))
	d.vote(1, map[string][]byte{"v1": truth, "v2": truth, "v3": truth})
	if got := d.dispute(1); got.Status != auditpb.DisputeStatus_DISPUTE_STATUS_PROVIDER_LIED {
		t.Fatalf("status %v", got.Status)
	}
	if s := d.stake("dave"); s != 180_000_000 {
		t.Errorf("dave's stake %d, want 180000000 (10%% slashed)", s)
	}
	if err := checkInvariant(d.harness); err != nil {
		t.Error(err)
	}
}
