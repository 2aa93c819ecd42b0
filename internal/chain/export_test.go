package chain_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"
	"google.golang.org/protobuf/proto"

	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/gov/govpb"
	"github.com/agoranet/agora/internal/chain/staking/stakingpb"
	"github.com/agoranet/agora/internal/node"
)

// TestExportStartsANewChainWhereTheOldStopped exports a chain with
// validators, delegations, an undelegation and a proposal in flight,
// starts a new chain from it, and checks that the new chain begins at the
// next height and goes on from the same state: balances, sequences, the
// proposal in flight and the undelegation that completes later all carry
// over.
func TestExportStartsANewChainWhereTheOldStopped(t *testing.T) {
	h := newHarness(t, t.TempDir(), withValidators(nil), func(g *node.Genesis) { g.Gov = govParams() })
	dave, v1 := address("dave").String(), address("v1").String()
	h.mustSend("dave", &stakingpb.MsgDelegate{Delegator: dave, Validator: v1, Amount: coin.New(coin.Native, 20_000_000)})
	h.mustSend("dave", &stakingpb.MsgUndelegate{Delegator: dave, Validator: v1, Amount: coin.New(coin.Native, 5_000_000)})
	id := h.propose("erin", offlineAfter("9"))
	h.vote("v1", id, govpb.Option_OPTION_YES)
	h.block()
	lastHash, _ := h.app.Info(context.Background(), &abci.RequestInfo{})
	daveBefore := h.balanceOf(address("dave"))
	undelegation := undelegationsOf(t, h, "dave")[0]
	vals, err := ask(h, stakingpb.QueryValidators, &stakingpb.QueryValidatorsRequest{})
	if err != nil {
		t.Fatal(err)
	}

	e, err := h.app.Export()
	if err != nil {
		t.Fatal(err)
	}
	h.close()
	if e.Height != h.height || !bytes.Equal(e.AppHash, lastHash.LastBlockAppHash) || len(e.Validators) != 2 {
		t.Fatalf("export at %d (chain at %d), %d validators", e.Height, h.height, len(e.Validators))
	}
	state, err := e.AppState()
	if err != nil {
		t.Fatal(err)
	}
	// A wrong initial height is refused.
	bad := &harness{t: t, dir: t.TempDir(), queued: map[string]uint64{}}
	bad.open()
	if _, err := bad.app.InitChain(context.Background(), &abci.RequestInitChain{ChainId: testChain, Time: genesisTime, InitialHeight: 1, AppStateBytes: state}); err == nil {
		t.Error("an exported state started at height 1")
	}
	bad.close()

	n := &harness{t: t, dir: t.TempDir(), queued: map[string]uint64{}}
	n.open()
	defer n.close()
	if _, err := n.app.InitChain(context.Background(), &abci.RequestInitChain{ChainId: testChain, Time: genesisTime, InitialHeight: e.Height + 1, AppStateBytes: state}); err != nil {
		t.Fatal(err)
	}

	n.height = e.Height
	n.block()
	if info, _ := n.app.Info(context.Background(), &abci.RequestInfo{}); info.LastBlockHeight != e.Height+1 {
		t.Errorf("the new chain's first block is %d, want %d", info.LastBlockHeight, e.Height+1)
	}
	if got, err := ask(n, stakingpb.QueryValidators, &stakingpb.QueryValidatorsRequest{}); err != nil || !proto.Equal(got, vals) {
		t.Errorf("validators on the new chain:\n%v\non the old:\n%v", got, vals)
	}
	if got := n.balanceOf(address("dave")); got != daveBefore {
		t.Errorf("dave has %d on the new chain, %d on the old", got, daveBefore)
	}
	// Sequences carried over: dave's next tx is accepted.
	n.mustSend("dave", &bankpb.MsgSend{From: dave, To: address("bob").String(), Amount: []*coin.Coin{coin.New(coin.Native, 1)}})
	afterSend := n.balanceOf(address("dave"))
	for n.height < undelegation.CompletesAt {
		n.block()
	}
	if got := n.balanceOf(address("dave")); got != afterSend+undelegation.Amount {
		t.Errorf("dave has %d after his undelegation completed on the new chain; want %d", got, afterSend+undelegation.Amount)
	}
	if p := n.proposal(id); p.Status != govpb.Status_STATUS_PASSED {
		t.Errorf("the proposal in flight at the export: %s", p.Status)
	}
	if err := checkInvariant(n); err != nil {
		t.Fatal(err)
	}
	var probe map[string]json.RawMessage
	if json.Unmarshal(state, &probe) != nil || len(probe) != 1 {
		t.Errorf("an exported app_state has one key: %s", state[:min(len(state), 80)])
	}
}
