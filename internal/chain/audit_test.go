package chain_test

import (
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"

	"github.com/agoranet/agora/internal/chain/audit/auditpb"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/tx"
	"github.com/agoranet/agora/internal/model"
	"github.com/agoranet/agora/internal/zk"
)

// TestProvenInference: a digits-mlp proof verifies on chain under the
// registered key and is recorded; a proof with a changed output or input,
// or for a model without a key, is refused; a key is registered once.
func TestProvenInference(t *testing.T) {
	h := newHarness(t, "")
	defer h.close()
	m, _ := model.Lookup(model.DigitsName)
	sys, err := zk.Setup(m.MLP)
	if err != nil {
		t.Fatal(err)
	}
	vk, _ := sys.VerifyingKey()
	px, _ := model.GenerateDigit(5, 5)
	logits, proof, err := sys.Prove(px)
	if err != nil {
		t.Fatal(err)
	}
	seq := map[string]uint64{}
	send := func(name string, msg module.Msg) *abci.ExecTxResult {
		raw, err := tx.Sign(key(name), testChain, seq[name], coin.New("uagr", 10), "", msg)
		if err != nil {
			t.Fatal(err)
		}
		h.pending = [][]byte{raw}
		resp, _ := h.block()
		seq[name]++
		return resp.TxResults[0]
	}
	id := m.Manifest.ID
	verify := func(in []byte, out []int32) *abci.ExecTxResult {
		return send("bob", &auditpb.MsgVerifyInference{Submitter: address("bob").String(), ModelId: id, Input: in, Logits: out, Proof: proof})
	}
	if r := verify(px, logits); r.Code == 0 {
		t.Fatal("a proof verified before any key was registered")
	}
	if r := send("alice", &auditpb.MsgRegisterModelKey{Owner: address("alice").String(), ModelId: id, VerifyingKey: vk}); r.Code != 0 {
		t.Fatalf("register key: %s", r.Log)
	}
	if r := send("bob", &auditpb.MsgRegisterModelKey{Owner: address("bob").String(), ModelId: id, VerifyingKey: vk}); r.Code == 0 {
		t.Error("a second key registration was accepted")
	}
	if r := verify(px, logits); r.Code != 0 {
		t.Fatalf("a true proof was refused: %s", r.Log)
	}
	got, err := ask(h, auditpb.QueryProven, &auditpb.QueryProvenRequest{InferenceId: auditpb.InferenceID(id, px, logits)})
	if err != nil || got.Proven.Submitter != address("bob").String() {
		t.Fatalf("proven inference not recorded: %v %v", got.Proven, err)
	}
	bad := append([]int32(nil), logits...)
	bad[3] -= 7
	if r := verify(px, bad); r.Code == 0 {
		t.Error("a proof of another output verified")
	}
	px2 := append([]byte(nil), px...)
	px2[100]++
	if r := verify(px2, logits); r.Code == 0 {
		t.Error("a proof of another input verified")
	}
}
