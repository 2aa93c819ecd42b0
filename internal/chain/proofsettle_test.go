package chain_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/agoranet/agora/internal/chain/audit/auditpb"
	"github.com/agoranet/agora/internal/chain/channel/channelpb"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/provider/providerpb"
	"github.com/agoranet/agora/internal/chain/staking/stakingpb"
	"github.com/agoranet/agora/internal/model"
	"github.com/agoranet/agora/internal/openai"
	"github.com/agoranet/agora/internal/receipt"
	"github.com/agoranet/agora/internal/zk"
)

// proven is an open dispute over a digits-mlp answer that carried a
// zero-knowledge proof, and what settling it needs.
type proven struct {
	*disputes
	logits []int32
	proof  []byte
	class  int // the true class of the input
}

// provenDispute has dave answer a proven request, saying the answer's
// class is said(true class), anchor the receipt and v4 challenge it.
func provenDispute(t *testing.T, said func(class int) int) *proven {
	m, _ := model.Lookup(model.DigitsName)
	sys, err := zk.Setup(m.MLP)
	if err != nil {
		t.Fatal(err)
	}
	vk, _ := sys.VerifyingKey()
	d := &disputes{harness: newHarness(t, "", withModelKey(m.Manifest.ID, vk)), t: t, seq: map[string]uint64{}}
	dave := address("dave").String()
	d.send("dave", &stakingpb.MsgBond{Staker: dave, Amount: coin.New("uagr", 200_000_000)})
	d.send("dave", &providerpb.MsgRegisterProvider{Operator: dave, Endpoint: "http://127.0.0.1:1"})
	d.send("dave", &providerpb.MsgRegisterService{Operator: dave, ModelId: m.Manifest.ID, ModelName: m.Manifest.Name, MaxConcurrency: 1})
	for _, v := range []string{"v1", "v2", "v3"} {
		d.send(v, &stakingpb.MsgBond{Staker: address(v).String(), Amount: coin.New("uagr", 200_000_000)})
		d.send(v, &auditpb.MsgRegisterVerifier{Verifier: address(v).String()})
	}
	d.send("alice", &channelpb.MsgOpenChannel{Payer: address("alice").String(), Payee: dave, Deposit: coin.New("uusdc", 1000), ExpiresAt: 1000, PayerKey: key("alice").Public().(ed25519.PublicKey)})

	// The answer, as a provider writes it for {"proof": true}.
	px, _ := model.GenerateDigit(9, 9)
	logits, proof, err := sys.Prove(px)
	if err != nil {
		t.Fatal(err)
	}
	_, class, _ := m.MLP.Infer(px)
	input := make([]int, len(px))
	for i, p := range px {
		input[i] = int(p)
	}
	canonical := (&openai.Inference{Endpoint: "infer", Model: m.Manifest.Name, Input: input, Proof: true}).Canonical()
	body, _ := json.Marshal(openai.InferResponse{Model: m.Manifest.Name, Class: said(class), Logits: logits, Proof: base64.StdEncoding.EncodeToString(proof)})
	body = append(body, '\n')
	enc, err := receipt.Sign(key("dave"), &receipt.Receipt{ChainId: testChain, ModelId: m.Manifest.ID, RequestHash: receipt.Hash(canonical), ResponseHash: receipt.Hash(body)})
	if err != nil {
		t.Fatal(err)
	}
	leaves := [][]byte{receipt.Hash([]byte(enc))}
	d.send("dave", &channelpb.MsgClaim{Payee: dave, Claims: []*channelpb.Claim{{Voucher: channelpb.SignVoucher(key("alice"), testChain, 1, 10), Amount: 10, ReceiptsRoot: receipt.Root(leaves), ReceiptsCount: 1}}})
	if r := d.send("v4", &auditpb.MsgChallenge{Challenger: address("v4").String(), Receipt: []byte(enc), ChannelId: 1, LeafIndex: 0, Path: receipt.Path(leaves, 0), Request: canonical}); r.Code != 0 {
		t.Fatalf("challenge: %s", r.Log)
	}
	return &proven{disputes: d, logits: logits, proof: proof, class: class}
}

// TestProofSettlesChallenge: a challenge of a digits-mlp answer that
// carried a zero-knowledge proof is settled at once by that proof, before
// any committee vote; the challenger's bond is gone.
func TestProofSettlesChallenge(t *testing.T) {
	d := provenDispute(t, func(class int) int { return class })
	defer d.close()
	dave := address("dave").String()
	logits, proof, class := d.logits, d.proof, d.class
	bad := append([]int32(nil), logits...)
	bad[0]++
	if r := d.send("dave", &auditpb.MsgSettleWithProof{Submitter: dave, DisputeId: 1, Class: int32(class), Logits: bad, Proof: proof}); r.Code == 0 {
		t.Fatal("a settlement with other logits was accepted")
	}
	if r := d.send("dave", &auditpb.MsgSettleWithProof{Submitter: dave, DisputeId: 1, Class: int32(class), Logits: logits, Proof: proof}); r.Code != 0 {
		t.Fatalf("settle with proof: %s", r.Log)
	}
	if got := d.dispute(1); got.Status != auditpb.DisputeStatus_DISPUTE_STATUS_PROVIDER_HONEST {
		t.Fatalf("status %v", got.Status)
	}
	if s := d.stake("dave"); s != 200_000_000 {
		t.Errorf("the proven provider was slashed to %d", s)
	}
	if err := checkInvariant(d.harness); err != nil {
		t.Error(err)
	}
}
