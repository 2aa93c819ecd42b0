package chain_test

import (
	"crypto/ed25519"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"

	"github.com/agoranet/agora/internal/chain/audit/auditpb"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/provider/providerpb"
	"github.com/agoranet/agora/internal/chain/staking/stakingpb"
	"github.com/agoranet/agora/internal/model"
	"github.com/agoranet/agora/internal/node"
	"github.com/agoranet/agora/internal/zk"
)

// withModelKey puts a verifying key in the harness's genesis.
func withModelKey(id string, vk []byte) func(*node.Genesis) {
	return func(g *node.Genesis) { g.ModelKeys = append(g.ModelKeys, node.ModelKey{ModelID: id, VerifyingKey: vk}) }
}

// keyChain is a harness whose txs go one per block, with staked verifiers
// v1..v4, erin and frank, and dave as the only provider of digits-mlp.
type keyChain struct {
	*harness
	t  *testing.T
	id string
}

func newKeyChain(t *testing.T, opts ...func(*node.Genesis)) *keyChain {
	m, _ := model.Lookup(model.DigitsName)
	k := &keyChain{harness: newHarness(t, "", append([]func(*node.Genesis){shortKeyReviews}, opts...)...), t: t, id: m.Manifest.ID}
	for _, v := range []string{"v1", "v2", "v3", "v4", "erin", "frank", "dave"} {
		k.send(v, &stakingpb.MsgBond{Staker: address(v).String(), Amount: coin.New("uagr", 200_000_000)})
		if v != "dave" {
			k.send(v, &auditpb.MsgRegisterVerifier{Verifier: address(v).String()})
		}
	}
	dave := address("dave").String()
	k.send("dave", &providerpb.MsgRegisterProvider{Operator: dave, Endpoint: "http://127.0.0.1:1"})
	k.send("dave", &providerpb.MsgRegisterService{Operator: dave, ModelId: k.id, ModelName: m.Manifest.Name, MaxConcurrency: 1})
	k.send("dave", &auditpb.MsgRegisterVerifier{Verifier: dave})
	return k
}

// shortKeyReviews gives key reviews the disputes' commit window instead
// of 600 blocks, in which the harness's providers, who send no
// heartbeats, would be slashed for going offline.
func shortKeyReviews(g *node.Genesis) {
	p := auditpb.DefaultParams()
	p.KeyReviewCommitBlocks = p.CommitBlocks
	g.Audit = p
}

func (k *keyChain) send(name string, msg module.Msg) *abci.ExecTxResult {
	k.t.Helper()
	raw, err := signTxGas(key(name), k.sequence(name), disputeGas, msg)
	if err != nil {
		k.t.Fatal(err)
	}
	k.pending = [][]byte{raw}
	resp, _ := k.block()
	return resp.TxResults[0]
}

func pub(name string) []byte { return key(name).Public().(ed25519.PublicKey) }

func (k *keyChain) propose(by string, vk []byte, contributors ...string) *abci.ExecTxResult {
	m := &auditpb.MsgProposeModelKey{Proposer: address(by).String(), ModelId: k.id, VerifyingKey: vk, TranscriptDigest: make([]byte, 32), TranscriptUrl: "http://127.0.0.1:1/transcript"}
	for _, c := range contributors {
		m.Contributors = append(m.Contributors, pub(c))
	}
	return k.send(by, m)
}

// vote has every member of review id commit and reveal verdict, and runs
// the chain past the reveal window.
func (k *keyChain) vote(id uint64, verdict []byte) {
	k.t.Helper()
	k.voteEach(id, func(string) []byte { return verdict })
}

// voteEach is vote with each member's own verdict; nil is no vote.
func (k *keyChain) voteEach(id uint64, verdict func(member string) []byte) {
	k.t.Helper()
	r, err := ask(k.harness, auditpb.QueryReview, &auditpb.QueryKeyReviewRequest{Id: id})
	// On a chain with a beacon the committee is drawn once it is final.
	for i := 0; err == nil && r.DrawAt != 0 && i < 100; i++ {
		k.block()
		r, err = ask(k.harness, auditpb.QueryReview, &auditpb.QueryKeyReviewRequest{Id: id})
	}
	if err != nil {
		k.t.Fatal(err)
	}
	salt := []byte("salt")
	names := map[string]string{}
	for _, n := range names_ {
		names[address(n).String()] = n
	}
	for _, v := range r.Votes {
		if verdict(names[v.Verifier]) == nil {
			continue
		}
		c := auditpb.KeyCommitment(verdict(names[v.Verifier]), salt, v.Verifier)
		if res := k.send(names[v.Verifier], &auditpb.MsgCommitKeyVote{Verifier: v.Verifier, ReviewId: id, Commitment: c}); res.Code != 0 {
			k.t.Fatalf("commit: %s", res.Log)
		}
	}
	for k.height <= r.CommitUntil {
		k.block()
	}
	for _, v := range r.Votes {
		if verdict(names[v.Verifier]) == nil {
			continue
		}
		if res := k.send(names[v.Verifier], &auditpb.MsgRevealKeyVote{Verifier: v.Verifier, ReviewId: id, Verdict: verdict(names[v.Verifier]), Salt: salt}); res.Code != 0 {
			k.t.Fatalf("reveal: %s", res.Log)
		}
	}
	for k.height <= r.RevealUntil {
		k.block()
	}
}

var names_ = []string{"v1", "v2", "v3", "v4", "erin", "frank", "dave", "alice", "bob"}

// TestAVerifyingKeyNeedsEvidence is finding 4 of issue 14: any account
// could register any bytes as any model's key, first come final, which
// disabled proofs for the model or let a lying provider register a key
// from a setup it controls. Now a key needs a transcript with two
// distinct staked verifiers' contributions, none the model's only
// provider, and a committee's approval; a squatted key is rejected.
func TestAVerifyingKeyNeedsEvidence(t *testing.T) {
	k := newKeyChain(t)
	defer k.close()
	m, _ := model.Lookup(model.DigitsName)
	sys, err := zk.Setup(m.MLP)
	if err != nil {
		t.Fatal(err)
	}
	vk, _ := sys.VerifyingKey()
	for _, c := range []struct {
		name         string
		contributors []string
	}{
		{"one contributor", []string{"v1"}},
		{"a contributor who is not a verifier", []string{"v1", "alice"}},
		{"the model's only provider among them", []string{"v1", "dave"}},
		{"the same contributor twice", []string{"v1", "v1"}},
	} {
		if r := k.propose("bob", vk, c.contributors...); r.Code != codes.ErrKeyEvidence.Code {
			t.Errorf("%s: code %d (%s), want %d", c.name, r.Code, r.Log, codes.ErrKeyEvidence.Code)
		}
	}
	// A squatter's key: the committee's check of its transcript fails.
	before := k.balance("v3")
	if r := k.propose("v3", []byte("squatted key"), "erin", "frank"); r.Code != 0 {
		t.Fatalf("propose: %s", r.Log)
	}
	if r := k.propose("v4", vk, "erin", "frank"); r.Code == 0 {
		t.Error("a second review of the same model opened while one is open")
	}
	k.vote(1, make([]byte, 32))
	if _, err := ask(k.harness, auditpb.QueryKey, &auditpb.QueryKeyRequest{ModelId: k.id}); err == nil {
		t.Fatal("a key the committee rejected is the model's key")
	}
	if got := k.balance("v3"); got >= before-auditpb.DefaultParams().ChallengeBond {
		t.Errorf("the squatter kept its bond: %d before, %d after", before, got)
	}
	// The real key, whose transcript the committee checked.
	if r := k.propose("v4", vk, "erin", "frank"); r.Code != 0 {
		t.Fatalf("propose: %s", r.Log)
	}
	k.vote(2, auditpb.KeyVerdict(k.id, vk, [][]byte{pub("erin"), pub("frank")}))
	got, err := ask(k.harness, auditpb.QueryKey, &auditpb.QueryKeyRequest{ModelId: k.id})
	if err != nil || string(got.VerifyingKey) != string(vk) || len(got.Contributors) != 2 {
		t.Fatalf("the approved key is not the model's key: %v %v", got, err)
	}
	// And proofs verify under it.
	px, _ := model.GenerateDigit(5, 5)
	logits, proof, err := sys.Prove(px)
	if err != nil {
		t.Fatal(err)
	}
	if r := k.send("bob", &auditpb.MsgVerifyInference{Submitter: address("bob").String(), ModelId: k.id, Input: px, Logits: logits, Proof: proof}); r.Code != 0 {
		t.Fatalf("a true proof was refused: %s", r.Log)
	}
	if r := k.propose("v3", []byte("another"), "erin", "frank"); r.Code == 0 {
		t.Error("a key was proposed for a model that has one")
	}
	if err := checkInvariant(k.harness); err != nil {
		t.Error(err)
	}
}

func (k *keyChain) balance(name string) uint64 {
	return k.harness.balance(address(name), "uagr")
}

// TestProvenInference: a digits-mlp proof verifies on chain under the
// model's key and is recorded; a proof with a changed output or input, or
// for a model without a key, is refused; a proof costs its measured gas.
func TestProvenInference(t *testing.T) {
	m, _ := model.Lookup(model.DigitsName)
	sys, err := zk.Setup(m.MLP)
	if err != nil {
		t.Fatal(err)
	}
	vk, _ := sys.VerifyingKey()
	id := m.Manifest.ID
	h := newHarness(t, "", withModelKey(id, vk))
	defer h.close()
	px, _ := model.GenerateDigit(5, 5)
	logits, proof, err := sys.Prove(px)
	if err != nil {
		t.Fatal(err)
	}
	seq := uint64(0)
	verify := func(model string, in []byte, out []int32, gasLimit uint64) *abci.ExecTxResult {
		raw, err := signTxGas(key("bob"), seq, gasLimit, &auditpb.MsgVerifyInference{Submitter: address("bob").String(), ModelId: model, Input: in, Logits: out, Proof: proof})
		if err != nil {
			t.Fatal(err)
		}
		h.pending = [][]byte{raw}
		resp, _ := h.block()
		seq++
		return resp.TxResults[0]
	}
	if r := verify("ab"+id[2:], px, logits, 3_000_000); r.Code == 0 {
		t.Fatal("a proof verified for a model without a key")
	}
	if r := verify(id, px, logits, 1_000_000); r.Code != codes.ErrOutOfGas.Code {
		t.Fatalf("a proof check ran on 1M gas: code %d %s", r.Code, r.Log)
	}
	r := verify(id, px, logits, 3_000_000)
	if r.Code != 0 {
		t.Fatalf("a true proof was refused: %s", r.Log)
	}
	t.Logf("a zk verification (MsgVerifyInference) used %d gas", r.GasUsed)
	got, err := ask(h, auditpb.QueryProven, &auditpb.QueryProvenRequest{InferenceId: auditpb.InferenceID(id, px, logits)})
	if err != nil || got.Proven.Submitter != address("bob").String() {
		t.Fatalf("proven inference not recorded: %v %v", got.Proven, err)
	}
	bad := append([]int32(nil), logits...)
	bad[3] -= 7
	if r := verify(id, px, bad, 3_000_000); r.Code == 0 {
		t.Error("a proof of another output verified")
	}
	px2 := append([]byte(nil), px...)
	px2[100]++
	if r := verify(id, px2, logits, 3_000_000); r.Code == 0 {
		t.Error("a proof of another input verified")
	}
}
