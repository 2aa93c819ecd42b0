package node_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"fmt"
	"sync"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"

	"github.com/agoranet/agora/internal/chain/audit/auditpb"
	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/devnet"
	"github.com/agoranet/agora/internal/e2e"
	"github.com/agoranet/agora/internal/model"
	"github.com/agoranet/agora/internal/node"
)

// TestDevnetConcurrentTxs runs the devnet in-process and sends txs from
// several keys at once, through the parallel signature check and the
// serialised app, under the race detector in CI.
func TestDevnetConcurrentTxs(t *testing.T) {
	d := e2e.Devnet(t, nil)
	if err := d.Node.WaitForHeight(2, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(d.Node.RPC())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bob, err := d.Keyring.Get("bob")
	if err != nil {
		t.Fatal(err)
	}
	before, err := c.Balance(ctx, bob.Address(), coin.Native)
	if err != nil {
		t.Fatal(err)
	}
	// Clients follow state changes over the websocket, filtered by the
	// indexed event attributes.
	events, err := c.Subscribe(ctx, fmt.Sprintf("tm.event='Tx' AND transfer.recipient='%s'", bob.Address()), 100)
	if err != nil {
		t.Fatal(err)
	}
	const perKey = 5
	var wg sync.WaitGroup
	errs := make(chan error, 2*perKey)
	for _, name := range []string{"alice", "issuer"} {
		k, err := d.Keyring.Get(name)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perKey; i++ {
				msg := &bankpb.MsgSend{From: k.Address().String(), To: bob.Address().String(), Amount: []*coin.Coin{coin.New(coin.Native, 7)}}
				if _, err := c.Submit(ctx, k, "", msg); err != nil {
					errs <- fmt.Errorf("%s tx %d: %w", k.Name, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	after, err := c.Balance(ctx, bob.Address(), coin.Native)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := after-before, uint64(2*perKey*7); got != want {
		t.Errorf("bob received %d, want %d", got, want)
	}
	for i := 0; i < 2*perKey; i++ {
		select {
		case ev := <-events:
			if ev.Tx == nil {
				t.Fatalf("event %d carries no tx result: %+v", i, ev)
			}
			txe := ev.Tx
			if !hasAttr(txe.Result.Events, "transfer", "recipient", bob.Address().String()) || !hasAttr(txe.Result.Events, "transfer", "amount", "7uagr") {
				t.Errorf("event %d lacks the transfer to bob: %v", i, txe.Result.Events)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("got %d transfer events over the websocket, want %d", i, 2*perKey)
		}
	}
	proven, h, err := c.ProvenBalance(ctx, bob.Address(), coin.Native)
	if err != nil {
		t.Fatal(err)
	}
	if proven != after || h <= 0 {
		t.Errorf("proven balance %d at height %d, want %d", proven, h, after)
	}
}

func hasAttr(evs []abci.Event, typ, key, value string) bool {
	for _, e := range evs {
		if e.Type != typ {
			continue
		}
		for _, a := range e.Attributes {
			if a.Key == key && a.Value == value {
				return true
			}
		}
	}
	return false
}

// TestDevnetProvenInference: a devnet provider proves a digits-mlp answer
// on request, and the chain verifies the proof under the registered key.
func TestDevnetProvenInference(t *testing.T) {
	d := e2e.Devnet(t, func(c *devnet.Config) { c.Paid = false })
	px, _ := model.GenerateDigit(42, 4)
	ints := make([]int, len(px))
	for i, p := range px {
		ints[i] = int(p)
	}
	body, _ := json.Marshal(map[string]any{"model": model.DigitsName, "input": ints, "proof": true})
	resp, err := http.Post(d.Providers[0].URL()+"/v1/infer", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ans struct {
		Class  int
		Logits []int32
		Proof  string
	}
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil || resp.StatusCode != 200 || ans.Proof == "" {
		t.Fatalf("status %d, answer %+v, %v", resp.StatusCode, ans, err)
	}
	proof, _ := base64.StdEncoding.DecodeString(ans.Proof)
	c, _ := client.New(d.Node.RPC())
	bob, _ := d.Keyring.Get("bob")
	m, _ := model.Lookup(model.DigitsName)
	ctx := context.Background()
	if _, err := c.Submit(ctx, bob, "", &auditpb.MsgVerifyInference{Submitter: bob.Address().String(), ModelId: m.Manifest.ID, Input: px, Logits: ans.Logits, Proof: proof}); err != nil {
		t.Fatalf("the chain refused a provider's proof: %v", err)
	}
	_, err = client.Ask(ctx, c, auditpb.QueryProven, &auditpb.QueryProvenRequest{InferenceId: auditpb.InferenceID(m.Manifest.ID, px, ans.Logits)})
	if err != nil {
		t.Fatal(err)
	}
	ans.Logits[ans.Class]++
	if _, err := c.Submit(ctx, bob, "", &auditpb.MsgVerifyInference{Submitter: bob.Address().String(), ModelId: m.Manifest.ID, Input: px, Logits: ans.Logits, Proof: proof}); err == nil {
		t.Error("the chain accepted the proof for a changed output")
	}
}

// TestTimeoutsSuitTheBlockTime: a devnet or testnet whose proposer is dead
// waits timeout_propose for it, once per turn; with CometBFT's defaults (3
// s) a transfer on a four-validator testnet with one validator down took
// 4.5 s. Every step of a round is now well under a second at the block
// times the devnet and testnet use, and the config file says so.
func TestTimeoutsSuitTheBlockTime(t *testing.T) {
	for _, bt := range []time.Duration{200 * time.Millisecond, 300 * time.Millisecond} {
		c := node.CometConfig(t.TempDir(), "n", node.DefaultPorts, bt)
		cc := c.Consensus
		if cc.TimeoutPropose >= time.Second || cc.TimeoutPrevote >= time.Second || cc.TimeoutPrecommit >= time.Second || cc.TimeoutCommit != bt {
			t.Errorf("block time %v: propose %v, prevote %v, precommit %v, commit %v", bt, cc.TimeoutPropose, cc.TimeoutPrevote, cc.TimeoutPrecommit, cc.TimeoutCommit)
		}
		if _, err := node.WriteHome(c); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(c.RootDir, "config", "config.toml"))
		if err != nil || !strings.Contains(string(b), `timeout_propose = "`+cc.TimeoutPropose.String()+`"`) {
			t.Errorf("config.toml does not carry timeout_propose %v: %v", cc.TimeoutPropose, err)
		}
	}
}
