package chain_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"math/rand/v2"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"

	"github.com/agoranet/agora/internal/chain"
	"github.com/agoranet/agora/internal/chain/auth/authpb"
	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/channel/channelpb"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/proof"
	"github.com/agoranet/agora/internal/chain/tx"
)

// randomBlocks makes blocks of random transfers, mints and burns among a
// few accounts, some of which fail, from a seed.
func randomBlocks(seed uint64, blocks, perBlock int) [][][]byte {
	r := rand.New(rand.NewPCG(seed, 7))
	names := []string{"alice", "bob", "issuer", "carol"}
	seq := map[string]uint64{}
	var out [][][]byte
	for b := 0; b < blocks; b++ {
		var txs [][]byte
		for i := 0; i < perBlock; i++ {
			from := names[r.IntN(3)] // carol has nothing to pay fees with
			to := address(names[r.IntN(len(names))]).String()
			var msg module.Msg
			switch r.IntN(4) {
			case 0:
				msg = &bankpb.MsgMint{Issuer: address(from).String(), To: to, Amount: coin.New("uusdc", uint64(r.IntN(100)+1))}
			case 1:
				msg = &bankpb.MsgBurn{From: address(from).String(), Amount: coin.New("uagr", uint64(r.IntN(50)+1))}
			default:
				msg = &bankpb.MsgSend{From: address(from).String(), To: to, Amount: []*coin.Coin{coin.New([]string{"uagr", "uusdc"}[r.IntN(2)], uint64(r.IntN(300_000)+1))}}
			}
			raw, err := signTx(key(from), seq[from], msg)
			if err != nil {
				panic(err)
			}
			seq[from]++
			txs = append(txs, raw)
		}
		out = append(out, txs)
	}
	return out
}

// TestDeterminism runs the same blocks through two fresh nodes and a
// third that restarts from disk every few blocks, and compares the app
// hash at every height.
func TestDeterminism(t *testing.T) {
	blocks := randomBlocks(42, 30, 20)
	a := newHarness(t, t.TempDir())
	b := newHarness(t, t.TempDir())
	c := newHarness(t, t.TempDir())
	defer a.close()
	defer b.close()
	defer c.close()
	var failed int
	for i, txs := range blocks {
		a.pending, b.pending, c.pending = txs, txs, txs
		ra, ha := a.block()
		_, hb := b.block()
		_, hc := c.block()
		if !bytes.Equal(ha, hb) || !bytes.Equal(ha, hc) {
			t.Fatalf("height %d: app hashes differ: %X %X %X", i+1, ha, hb, hc)
		}
		for _, r := range ra.TxResults {
			if r.Code != 0 {
				failed++
			}
		}
		if i%7 == 3 {
			c.restart()
			info, _ := c.app.Info(context.Background(), &abci.RequestInfo{})
			if info.LastBlockHeight != int64(i+1) || !bytes.Equal(info.LastBlockAppHash, ha) {
				t.Fatalf("after restart: height %d hash %X, want %d %X", info.LastBlockHeight, info.LastBlockAppHash, i+1, ha)
			}
		}
	}
	if failed == 0 || failed == 30*20 {
		t.Errorf("%d of %d txs failed; the test wants a mix of successes and failures", failed, 30*20)
	}
	for _, h := range []*harness{a, b, c} {
		if err := chain.CheckInvariants(h.app); err != nil {
			t.Error(err)
		}
	}
}

// TestCrashBeforeCommit: a node that executed a block but died before
// Commit has the previous version on disk; CometBFT replays the block and
// the app must reach the same hash.
func TestCrashBeforeCommit(t *testing.T) {
	blocks := randomBlocks(9, 3, 10)
	dir := t.TempDir()
	h := newHarness(t, dir)
	h.pending = blocks[0]
	h.block()
	// Execute block 2 but do not commit, then "crash".
	resp, err := h.app.FinalizeBlock(context.Background(), &abci.RequestFinalizeBlock{Height: 2, Time: genesisTime.Add(2e9), Txs: blocks[1]})
	if err != nil {
		t.Fatal(err)
	}
	want := resp.AppHash
	h.restart()
	if h.height != 1 {
		t.Fatalf("after crash the app is at height %d, want 1", h.height)
	}
	h.pending = blocks[1]
	if _, got := h.block(); !bytes.Equal(got, want) {
		t.Fatalf("replayed block 2 hash %X, want %X", got, want)
	}
	h.close()
}

// TestCheckTxSequence: CheckTx keeps admitted txs' effects, so a second tx
// from the same account must carry the next sequence, and a recheck after
// a commit drops what the block already applied.
func TestCheckTxSequence(t *testing.T) {
	h := newHarness(t, "")
	defer h.close()
	h.block()
	mk := func(seq uint64) []byte {
		raw, err := signTx(key("alice"), seq, &bankpb.MsgSend{From: address("alice").String(), To: address("bob").String(), Amount: []*coin.Coin{coin.New("uagr", 1)}})
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	check := func(raw []byte, typ abci.CheckTxType) uint32 {
		r, _ := h.app.CheckTx(context.Background(), &abci.RequestCheckTx{Tx: raw, Type: typ})
		return r.Code
	}
	t0, t1 := mk(0), mk(1)
	if c := check(t0, abci.CheckTxType_New); c != 0 {
		t.Fatalf("seq 0: code %d", c)
	}
	if c := check(t0, abci.CheckTxType_New); c == 0 {
		t.Fatal("the same tx was admitted twice")
	}
	if c := check(t1, abci.CheckTxType_New); c != 0 {
		t.Fatalf("seq 1 after seq 0: code %d", c)
	}
	h.pending = [][]byte{t0}
	h.block()
	if c := check(t1, abci.CheckTxType_Recheck); c != 0 {
		t.Fatalf("recheck of seq 1 after seq 0 committed: code %d", c)
	}
}

// TestRecheckKeepsATxANewBlockMadeFail: a tx admitted as succeeding that
// the next block makes fail (a channel expiry the height has reached, as a
// vote whose window closed) stays in the mempool, to fail and pay its fee
// in a block, and the sender's next tx stays too. It used to be dropped on
// recheck, with every later tx of its sender behind it: their client
// waited for txs that could never commit (a verifier stopped voting).
func TestRecheckKeepsATxANewBlockMadeFail(t *testing.T) {
	h := newHarness(t, "")
	defer h.close()
	h.block()
	open := &channelpb.MsgOpenChannel{Payer: address("alice").String(), Payee: address("bob").String(),
		Deposit: coin.New("uusdc", 10), ExpiresAt: h.height + 2, PayerKey: key("alice").Public().(ed25519.PublicKey)}
	t0, err := signTx(key("alice"), 0, open)
	if err != nil {
		t.Fatal(err)
	}
	t1, err := signTx(key("alice"), 1, &bankpb.MsgSend{From: address("alice").String(), To: address("bob").String(), Amount: []*coin.Coin{coin.New("uagr", 1)}})
	if err != nil {
		t.Fatal(err)
	}
	check := func(raw []byte, typ abci.CheckTxType) *abci.ResponseCheckTx {
		r, _ := h.app.CheckTx(context.Background(), &abci.RequestCheckTx{Tx: raw, Type: typ})
		return r
	}
	for _, raw := range [][]byte{t0, t1} {
		if r := check(raw, abci.CheckTxType_New); r.Code != 0 {
			t.Fatalf("admission: code %d %s", r.Code, r.Log)
		}
	}
	h.block() // an empty block: the channel's expiry is now the height
	if r := check(t0, abci.CheckTxType_Recheck); r.Code != 0 {
		t.Fatalf("recheck of a tx the block made fail: code %d %s; want it kept to pay its fee", r.Code, r.Log)
	}
	if r := check(t1, abci.CheckTxType_Recheck); r.Code != 0 {
		t.Fatalf("recheck of the sender's next tx: code %d %s", r.Code, r.Log)
	}
	before := h.balance(address("alice"), "uagr")
	h.pending = [][]byte{t0, t1}
	resp, _ := h.block()
	if c := resp.TxResults[0].Code; c != codes.ErrInvalidRequest.Code {
		t.Errorf("the expired open in its block: code %d %s", c, resp.TxResults[0].Log)
	}
	if c := resp.TxResults[1].Code; c != 0 {
		t.Errorf("the next tx in the block: code %d %s", c, resp.TxResults[1].Log)
	}
	fee := authpb.MinFee(authpb.DefaultParams(), testGas)
	if paid := before - h.balance(address("alice"), "uagr"); paid != 2*fee+1 {
		t.Errorf("alice paid %d, want two fees and the 1uagr sent (%d)", paid, 2*fee+1)
	}
}

// TestQueryProof checks a balance against the app hash with its Merkle
// proof, and that a wrong value or a missing key is caught.
func TestQueryProof(t *testing.T) {
	h := newHarness(t, "")
	defer h.close()
	_, appHash := h.block()
	k := bankpb.BalanceKey(address("alice"), "uagr")
	r, _ := h.app.Query(context.Background(), &abci.RequestQuery{Path: proof.StorePath, Data: k, Prove: true})
	if r.Code != 0 || r.ProofOps == nil {
		t.Fatalf("query: code %d log %q", r.Code, r.Log)
	}
	if err := proof.Verify(appHash, k, r.Value, r.ProofOps); err != nil {
		t.Fatalf("valid proof refused: %v", err)
	}
	forged := append([]byte(nil), r.Value...)
	forged[7]++
	if err := proof.Verify(appHash, k, forged, r.ProofOps); err == nil {
		t.Fatal("proof accepted a forged balance")
	}
	absent := bankpb.BalanceKey(address("carol"), "uagr")
	r, _ = h.app.Query(context.Background(), &abci.RequestQuery{Path: proof.StorePath, Data: absent, Prove: true})
	if r.Value != nil {
		t.Fatalf("carol has a balance: %x", r.Value)
	}
	if err := proof.Verify(appHash, absent, nil, r.ProofOps); err != nil {
		t.Fatalf("proof of absence refused: %v", err)
	}
	if r, _ := h.app.Query(context.Background(), &abci.RequestQuery{Path: "/nope/x"}); r.Code == 0 {
		t.Error("unknown query route answered")
	}
	if r, _ := h.app.Query(context.Background(), &abci.RequestQuery{Path: "/bank/balance", Height: 99}); r.Code == 0 {
		t.Error("query at a future height answered")
	}
}

// FuzzCheckTx feeds arbitrary bytes and mutated valid txs to CheckTx: it
// must never panic, and a refused tx must leave the mempool state as it
// was (a follow-up valid tx still needs sequence 0).
func FuzzCheckTx(f *testing.F) {
	for _, blk := range randomBlocks(3, 1, 8) {
		for _, raw := range blk {
			f.Add(raw)
		}
	}
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x00})
	h := newHarness(f, "")
	defer h.close()
	f.Fuzz(func(t *testing.T, raw []byte) {
		// An empty block resets the mempool view to the committed state,
		// which no iteration changes.
		h.block()
		r, _ := h.app.CheckTx(context.Background(), &abci.RequestCheckTx{Tx: raw})
		if r.Code == 0 {
			return // a valid tx; nothing to check here
		}
		for _, name := range []string{"alice", "bob", "issuer"} {
			seq0, err := signTx(key(name), 0, &bankpb.MsgBurn{From: address(name).String(), Amount: coin.New("uagr", 1)})
			if err != nil {
				t.Fatal(err)
			}
			if r2, _ := h.app.CheckTx(context.Background(), &abci.RequestCheckTx{Tx: seq0}); r2.Code != 0 {
				t.Fatalf("refused tx (code %d: %s) changed %s's state: %s", r.Code, r.Log, name, r2.Log)
			}
		}
	})
}

// FuzzDecode: tx.Decode never panics and whatever it accepts re-verifies
// consistently.
func FuzzDecode(f *testing.F) {
	app, err := chain.New(chain.Config{})
	if err != nil {
		f.Fatal(err)
	}
	defer app.Close()
	for _, raw := range randomBlocks(5, 1, 4)[0] {
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		d, err := tx.Decode(raw, app.Resolve)
		if err != nil {
			return
		}
		if len(d.Msgs) == 0 || len(d.Body.PublicKey) != ed25519.PublicKeySize {
			t.Fatalf("decoded a tx with %d msgs and a %d-byte key", len(d.Msgs), len(d.Body.PublicKey))
		}
		_ = d.Verify()
	})
}

func ExampleApp() {
	app, _ := chain.New(chain.Config{})
	defer app.Close()
	_, ok := app.Resolve(tx.TypeURL(&bankpb.MsgSend{}))
	fmt.Println(ok)
	// Output: true
}
