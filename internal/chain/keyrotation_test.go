package chain_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/agoranet/agora/internal/chain/agent/agentpb"
	"github.com/agoranet/agora/internal/chain/audit/auditpb"
	"github.com/agoranet/agora/internal/chain/auth/authpb"
	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/channel/channelpb"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/provider/providerpb"
	"github.com/agoranet/agora/internal/chain/tx"
	"github.com/agoranet/agora/internal/receipt"
)

// sendAs signs msgs for name's account with k, naming the account as the
// tx's signer when k does not derive it, in a block of its own.
func (h *harness) sendAs(k ed25519.PrivateKey, name string, msgs ...module.Msg) *abci.ExecTxResult {
	h.t.Helper()
	raw, err := tx.Sign(k, tx.Header{ChainID: testChain, Sequence: h.sequence(name), GasLimit: disputeGas, Fee: coin.New(coin.Native, disputeFee),
		Signer: address(name).String()}, msgs...)
	if err != nil {
		h.t.Fatal(err)
	}
	h.pending = [][]byte{raw}
	resp, _ := h.block()
	return resp.TxResults[0]
}

// rotation is name's MsgRotateKey from key from to key to, proven by to.
func rotation(name string, from, to ed25519.PrivateKey) *authpb.MsgRotateKey {
	a := address(name).String()
	return &authpb.MsgRotateKey{Account: a, NewPublicKey: to.Public().(ed25519.PublicKey),
		Proof: ed25519.Sign(to, authpb.RotateKeySignBytes(testChain, a, from.Public().(ed25519.PublicKey)))}
}

func pubKey(k ed25519.PrivateKey) []byte { return k.Public().(ed25519.PublicKey) }

// TestKeyRotation: an account rotates its key and keeps its address and
// funds; from then on only the new key signs for it (txs, authorizations,
// channels), the old one for nothing, and no rotation binds a key whose
// holder did not prove it.
func TestKeyRotation(t *testing.T) {
	h := newHarness(t, t.TempDir())
	defer h.close()
	alice, bob := address("alice").String(), address("bob").String()
	old, next := key("alice"), key("alice 2")
	send := func(amount uint64) *bankpb.MsgSend {
		return &bankpb.MsgSend{From: alice, To: bob, Amount: []*coin.Coin{coin.New("uagr", amount)}}
	}
	h.mustSend("alice", send(1))

	// Proofs that must not bind a key.
	bad := map[string]*authpb.MsgRotateKey{
		"by another key (bob's, which alice does not hold)": {Account: alice, NewPublicKey: pubKey(key("bob")), Proof: rotation("alice", old, next).Proof},
		"for another chain": {Account: alice, NewPublicKey: pubKey(next),
			Proof: ed25519.Sign(next, authpb.RotateKeySignBytes("another-chain", alice, pubKey(old)))},
		"for another account": {Account: alice, NewPublicKey: pubKey(next),
			Proof: ed25519.Sign(next, authpb.RotateKeySignBytes(testChain, bob, pubKey(old)))},
		"to the key it has": rotation("alice", old, old),
	}
	for what, m := range bad {
		if r := h.send("alice", m); r.Code == 0 {
			t.Errorf("a rotation %s was accepted", what)
		}
	}
	// Bob cannot rotate alice's key: his tx cannot carry her message.
	if r := h.send("bob", rotation("alice", old, next)); r.Code != codes.ErrUnauthorized.Code {
		t.Errorf("bob rotated alice's key: code %d, %s", r.Code, r.Log)
	}

	before := h.balance(address("alice"), "uagr")
	if r := h.send("alice", rotation("alice", old, next)); r.Code != 0 {
		t.Fatalf("rotation: %s", r.Log)
	}
	rotatedAt := h.height
	acc, err := ask(h, authpb.QueryAccount, &authpb.QueryAccountRequest{Address: alice})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(acc.PublicKey, pubKey(next)) || len(acc.RetiredKeys) != 1 || !bytes.Equal(acc.RetiredKeys[0].PublicKey, pubKey(old)) || acc.RetiredKeys[0].Until != rotatedAt {
		t.Fatalf("account after rotation: %v", acc)
	}
	if got := h.balance(address("alice"), "uagr"); got != before-authpb.MinFee(authpb.DefaultParams(), testGas) {
		t.Errorf("alice's balance went from %d to %d by a rotation; only its fee should go", before, got)
	}
	for _, c := range []struct {
		key     ed25519.PrivateKey
		current bool
		retired int64
	}{{old, false, rotatedAt}, {next, true, 0}, {key("bob"), false, 0}} {
		k, err := ask(h, authpb.QueryKey, &authpb.QueryKeyRequest{Account: alice, PublicKey: pubKey(c.key)})
		if err != nil || k.Current != c.current || k.RetiredAt != c.retired {
			t.Errorf("QueryKey %x: %v, %v; want current %v, retired at %d", pubKey(c.key)[:4], k, err, c.current, c.retired)
		}
	}

	// The old key still derives alice's address, and signs for nothing:
	// not charged a fee, no sequence taken.
	seq, bal := h.sequence("alice"), h.balance(address("alice"), "uagr")
	if r := h.send("alice", send(2)); r.Code != codes.ErrUnauthorized.Code || !strings.Contains(r.Log, "not the one account") {
		t.Errorf("the retired key signed a send: code %d, %s", r.Code, r.Log)
	}
	if h.sequence("alice") != seq || h.balance(address("alice"), "uagr") != bal {
		t.Error("a tx by the retired key took a sequence or a fee")
	}
	// Nor may it claim another account's place: bob's key naming alice.
	if r := h.sendAs(key("bob"), "alice", send(2)); r.Code != codes.ErrUnauthorized.Code {
		t.Errorf("bob's key signed for alice: code %d, %s", r.Code, r.Log)
	}
	// The new key signs for alice, naming her account.
	if r := h.sendAs(next, "alice", send(3)); r.Code != 0 {
		t.Fatalf("the new key's send: %s", r.Log)
	}
	if h.balance(address("alice"), "uagr") != bal-3-disputeFee {
		t.Errorf("alice's balance %d, want %d", h.balance(address("alice"), "uagr"), bal-3-disputeFee)
	}
	// Nor may it consent to make alice someone's agent, which would let
	// its holder revoke her into its own account.
	consent := ed25519.Sign(old, agentpb.ConsentBytes(testChain, bob))
	if r := h.send("bob", &agentpb.MsgCreateAgent{Owner: bob, AgentKey: pubKey(old), Consent: consent, Policy: &agentpb.Policy{Denom: "uagr"}}); r.Code != codes.ErrSignature.Code {
		t.Errorf("alice's retired key made her bob's agent: code %d, %s", r.Code, r.Log)
	}
	// A retired key is never bound again, even by its holder.
	if r := h.sendAs(next, "alice", rotation("alice", next, old)); r.Code == 0 || !strings.Contains(r.Log, "retired") {
		t.Errorf("alice rotated back to her retired key: code %d, %s", r.Code, r.Log)
	}

	// Authorizations: by the old key refused, by the new one paid.
	nonce := make([]byte, 32)
	authz := func(k ed25519.PrivateKey, n byte) *bankpb.MsgTransferWithAuthorization {
		nonce[0] = n
		a := &bankpb.Authorization{From: alice, To: bob, Amount: coin.New("uagr", 7), ValidBefore: 1_900_000_000, Nonce: append([]byte(nil), nonce...)}
		bankpb.SignAuthorization(k, testChain, a)
		return &bankpb.MsgTransferWithAuthorization{Submitter: bob, Authorization: a}
	}
	if r := h.send("bob", authz(old, 1)); r.Code != codes.ErrSignature.Code {
		t.Errorf("an authorization by alice's retired key: code %d, %s", r.Code, r.Log)
	}
	if r := h.send("bob", authz(next, 2)); r.Code != 0 {
		t.Errorf("an authorization by alice's new key: %s", r.Log)
	}

	// Channels take the payer's current key.
	open := func(k ed25519.PrivateKey) *channelpb.MsgOpenChannel {
		return &channelpb.MsgOpenChannel{Payer: alice, Payee: bob, Deposit: coin.New("uagr", 100), ExpiresAt: h.height + 100, PayerKey: pubKey(k)}
	}
	if r := h.sendAs(next, "alice", open(old)); r.Code != codes.ErrSignature.Code {
		t.Errorf("a channel with alice's retired key as payer key: code %d, %s", r.Code, r.Log)
	}
	if r := h.sendAs(next, "alice", open(next)); r.Code != 0 {
		t.Errorf("a channel with alice's new key: %s", r.Log)
	}

	// And it all stands across a restart.
	h.restart()
	if r := h.sendAs(next, "alice", send(1)); r.Code != 0 {
		t.Errorf("after a restart, the new key's send: %s", r.Log)
	}
	if err := checkInvariant(h); err != nil {
		t.Error(err)
	}
}

// TestAReceiptOfARetiredKey: after a provider rotates its key, a receipt
// signed by the retired key is challenged only with its anchor (the
// provider's own claim), so rotating does not escape a lie and a stolen
// old key does not forge one; a receipt of the current key is challenged
// alone, as before.
func TestAReceiptOfARetiredKey(t *testing.T) {
	d := newDisputes(t)
	defer d.close()
	const model = "abababababababababababababababababababababababababababababababab"
	dave := address("dave")
	next := key("dave 2")
	if r := d.send("dave", rotation("dave", key("dave"), next)); r.Code != 0 {
		t.Fatalf("rotation: %s", r.Log)
	}
	info, err := ask(d.harness, providerpb.QueryProvider, &providerpb.QueryProviderRequest{Address: dave.String()})
	if err != nil || !bytes.Equal(info.PublicKey, pubKey(next)) {
		t.Fatalf("the provider listing after a rotation: %v, %v; want its new key", info, err)
	}
	req := []byte("never anchored")
	lie := func(k ed25519.PrivateKey, seq uint64) string {
		enc, err := receipt.SignAs(k, dave, &receipt.Receipt{ChainId: testChain, ModelId: model, RequestHash: receipt.Hash(req), ResponseHash: receipt.Hash([]byte("a lie")), Height: d.height, Seq: seq})
		if err != nil {
			t.Fatal(err)
		}
		return enc
	}
	alone := func(enc string) *abci.ExecTxResult {
		return d.send("v4", &auditpb.MsgChallenge{Challenger: address("v4").String(), Receipt: []byte(enc), Request: req})
	}
	// Dated after the rotation, a receipt of the retired key is no one's
	// (a thief's forgery); dated before, it is the provider's lie still,
	// alone as within the window: rotating does not escape it.
	rotatedAt := d.height - 1
	if r := alone(lie(key("dave"), 10)); r.Code != codes.ErrSignature.Code || !strings.Contains(r.Log, "retired") {
		t.Errorf("a receipt of the retired key dated after the rotation, alone: code %d, %s", r.Code, r.Log)
	}
	before, err := receipt.SignAs(key("dave"), dave, &receipt.Receipt{ChainId: testChain, ModelId: model, RequestHash: receipt.Hash(req),
		ResponseHash: receipt.Hash([]byte("an old lie")), Height: rotatedAt - 1, Seq: 13})
	if err != nil {
		t.Fatal(err)
	}
	if r := alone(before); r.Code != 0 {
		t.Errorf("a receipt of the retired key dated before the rotation, alone: %s", r.Log)
	}
	if r := alone(lie(key("bob"), 11)); r.Code != codes.ErrSignature.Code || !strings.Contains(r.Log, "never") {
		t.Errorf("a receipt naming dave by a key never his: code %d, %s", r.Code, r.Log)
	}
	// The anchored lie, signed before the rotation, is still a lie.
	if r := d.challenge(1, receipt.Path(d.leaves(), 1)); r.Code != 0 {
		t.Fatalf("the anchored receipt of the retired key: %s", r.Log)
	}
	if r := alone(lie(next, 12)); r.Code != 0 {
		t.Fatalf("a receipt of the current key, alone: %s", r.Log)
	}
	if err := checkInvariant(d.harness); err != nil {
		t.Error(err)
	}
}

// TestASignerIsNamedOnlyWhenTheKeyDoesNotDeriveIt: one tx has one
// encoding, so a signer field naming the key's own address is refused.
func TestASignerIsNamedOnlyWhenTheKeyDoesNotDeriveIt(t *testing.T) {
	k := key("alice")
	body, err := proto.Marshal(&tx.Body{ChainId: testChain, PublicKey: pubKey(k), Signer: address("alice").String(), GasLimit: testGas, Msgs: []*anypb.Any{mustAny(t,
		&bankpb.MsgSend{From: address("alice").String(), To: address("bob").String(), Amount: []*coin.Coin{coin.New("uagr", 1)}})}})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := proto.Marshal(&tx.Tx{Body: body, Signature: ed25519.Sign(k, tx.SignBytes(body))})
	if _, err := tx.Decode(raw, func(string) (module.Msg, bool) { return &bankpb.MsgSend{}, true }); !errors.Is(err, codes.ErrTxDecode) {
		t.Errorf("a tx naming its key's own address as signer decoded: %v", err)
	}
}

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
