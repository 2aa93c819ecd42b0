package main_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cometbft/cometbft/privval"

	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/beacon/beaconpb"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/staking"
	"github.com/agoranet/agora/internal/chain/staking/stakingpb"
	"github.com/agoranet/agora/internal/client"
	agoranet "github.com/agoranet/agora/internal/devnet"
	"github.com/agoranet/agora/internal/e2e"
	"github.com/agoranet/agora/internal/keyring"
)

// TestValidatorSetFromStake is the proof-of-stake acceptance test, on four
// validators and two full nodes as separate processes: a fifth operator
// bonds more than the smallest validator and takes its place; a validator
// kept down past the liveness window is jailed, then unjailed; and a
// validator whose key runs on two nodes at once is slashed and
// tombstoned from CometBFT's own evidence.
func TestValidatorSetFromStake(t *testing.T) {
	e2e.MultiProcess(t)
	out := t.TempDir()
	base := e2e.FreePorts(t, 60)
	p := stakingpb.DefaultParams()
	p.MaxValidators, p.SignedBlocksWindow, p.DowntimeJailBlocks, p.UnbondingBlocks = 4, 10, 15, 30
	if _, err := agoranet.InitTestnet(agoranet.TestnetConfig{Validators: 4, FullNodes: 2, Out: out, ChainID: "agora-pos-test", BasePort: base,
		BlockTime: 200 * time.Millisecond, Staking: p, Beacon: &beaconpb.Params{EpochBlocks: 10, MissBps: 10, MissJailBlocks: 15}}); err != nil {
		t.Fatal(err)
	}
	home := func(i int) string { return filepath.Join(out, fmt.Sprintf("node%d", i)) }
	rpc := func(i int) string { return fmt.Sprintf("http://127.0.0.1:%d", base+10*i+1) }
	procs := map[int]*e2e.Proc{}
	start := func(i int) {
		procs[i] = e2e.Start(t, out, fmt.Sprintf("node%d-%d", i, time.Now().UnixNano()), "start", "--home", home(i))
	}
	for i := 0; i < 5; i++ {
		start(i)
	}
	c, err := client.New(rpc(0))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	e2e.Eventually(t, 60*time.Second, "blocks", func() error {
		if st, err := c.Status(ctx); err != nil || st.Height < 3 {
			return fmt.Errorf("height %v %v", st, err)
		}
		return nil
	})
	operator := func(i int) *keyring.Key {
		k, err := keyring.Open(filepath.Join(home(i), "keyring")).Get("operator")
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	consAddr := func(i int) string {
		pv := privval.LoadFilePVEmptyState(filepath.Join(home(i), "config", "priv_validator_key.json"), "")
		return fmt.Sprintf("%X", staking.ConsAddress(pv.Key.PubKey.Bytes()))
	}
	validator := func(i int) *stakingpb.Validator {
		r, err := client.Ask(ctx, c, stakingpb.QueryValidator, &stakingpb.QueryValidatorRequest{Operator: operator(i).Address().String()})
		if err != nil {
			t.Fatal(err)
		}
		return r.Validator
	}
	inSet := func(i int) (int64, bool) {
		set, err := c.ConsensusValidators(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		p, ok := set[consAddr(i)]
		return p, ok
	}
	waitSet := func(what string, want func(map[string]int64) error) {
		e2e.Eventually(t, 30*time.Second, what, func() error {
			set, err := c.ConsensusValidators(ctx, 0)
			if err != nil {
				return err
			}
			return want(set)
		})
	}

	// 1. node4's operator bonds 20 agr; the validators have 10 each, and
	// the one ranked last (ties go to the lower operator address) leaves.
	last := 0
	for i := 1; i < 4; i++ {
		if a, b := operator(i).Address(), operator(last).Address(); bytes.Compare(a[:], b[:]) > 0 {
			last = i
		}
	}
	e2e.Run(t, "validator", "create", "operator", "--home", home(4), "--node", rpc(0), "--self-bond", "20000000uagr", "--commission", "300", "--moniker", "node4")
	waitSet("node4 joins and the smallest leaves", func(set map[string]int64) error {
		if set[consAddr(4)] != 20 {
			return fmt.Errorf("node4 not in the set %v", set)
		}
		if _, ok := set[consAddr(last)]; ok || len(set) != 4 {
			return fmt.Errorf("node%d still in the set %v", last, set)
		}
		return nil
	})
	t.Logf("node4 (20 agr) replaced node%d (10 agr) in the active set", last)

	// Each validator's node takes its part in the beacon by itself: a
	// whole epoch's worth of commitments are revealed, node4's included.
	var b *beaconpb.Beacon
	e2e.Eventually(t, 60*time.Second, "a beacon from the four validators' reveals", func() error {
		s, err := client.Ask(ctx, c, beaconpb.QueryStatus, &beaconpb.QueryStatusRequest{})
		if err != nil {
			return err
		}
		if b = s.Latest; b == nil || b.Reveals < 4 || b.Reveals != b.Commitments {
			return fmt.Errorf("latest beacon %v", b)
		}
		return nil
	})
	t.Logf("beacon of epoch %d: %d commitments, %d reveals, final at height %d", b.Epoch, b.Commitments, b.Reveals, b.FinalHeight)
	if out := e2e.Run(t, "query", "beacon", fmt.Sprint(b.Epoch), "--node", rpc(0)); !strings.Contains(out, fmt.Sprintf("%x\n  final at height %d; %d commitments, %d reveals", b.Value, b.FinalHeight, b.Commitments, b.Reveals)) {
		t.Errorf("agora query beacon %d:\n%s", b.Epoch, out)
	}

	// 2. A validator down past the window is jailed and leaves the set;
	// back up after its jail, it unjails and, with a little more stake,
	// ranks again.
	var active []int // node0 answers the test's queries, so it stays up
	for i := 1; i < 4; i++ {
		if i != last {
			active = append(active, i)
		}
	}
	down, twin := active[0], active[1]
	procs[down].Kill()
	e2e.Eventually(t, 30*time.Second, fmt.Sprintf("node%d is jailed for downtime", down), func() error {
		if v := validator(down); !v.Jailed {
			return fmt.Errorf("not jailed yet")
		}
		return nil
	})
	v := validator(down)
	if v.Slashed == 0 || v.Tokens >= 10_000_000 {
		t.Errorf("jailed node%d lost nothing: %v", down, v)
	}
	waitSet(fmt.Sprintf("node%d leaves the set and node%d returns", down, last), func(set map[string]int64) error {
		if _, ok := set[consAddr(down)]; ok {
			return fmt.Errorf("node%d still in %v", down, set)
		}
		if _, ok := set[consAddr(last)]; !ok {
			return fmt.Errorf("node%d not back in %v", last, set)
		}
		return nil
	})
	start(down)
	if out, err := e2e.RunErr(t, "validator", "unjail", "operator", "--home", home(down), "--node", rpc(0)); err == nil {
		st, _ := c.Status(ctx)
		if st.Height < v.JailedUntil {
			t.Errorf("unjail at height %d, before the jail ends at %d, succeeded: %s", st.Height, v.JailedUntil, out)
		}
	}
	// (A reveal it committed to before going down was missed too, and
	// may have jailed it a little longer.)
	e2e.Eventually(t, 30*time.Second, "the jail ends", func() error {
		if st, err := c.Status(ctx); err != nil || st.Height <= validator(down).JailedUntil {
			return fmt.Errorf("height %v", st)
		}
		return nil
	})
	if validator(down).Jailed {
		e2e.Run(t, "validator", "unjail", "operator", "--home", home(down), "--node", rpc(0))
	}
	e2e.Run(t, "tx", "delegate", "operator", operator(down).Address().String(), "2000000uagr", "--home", home(down), "--node", rpc(0))
	waitSet(fmt.Sprintf("node%d, unjailed, is back", down), func(set map[string]int64) error {
		if set[consAddr(down)] != 11 {
			return fmt.Errorf("node%d not back at power 11 in %v", down, set)
		}
		return nil
	})
	t.Logf("node%d: jailed after missing the window (slashed %duagr), unjailed at height > %d, back in the set", down, v.Slashed, v.JailedUntil)

	// 3. node5 runs with node<twin>'s consensus key: the two sign
	// different votes at some height, CometBFT turns that into evidence,
	// and the chain slashes and tombstones node<twin>.
	key, err := os.ReadFile(filepath.Join(home(twin), "config", "priv_validator_key.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home(5), "config", "priv_validator_key.json"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	start(5)
	// Txs through the twin make the two nodes' blocks differ.
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	go func() {
		lc, err := client.New(rpc(5))
		if err != nil {
			return
		}
		k := operator(5)
		for loadCtx.Err() == nil {
			tctx, cancel := context.WithTimeout(loadCtx, 5*time.Second)
			_, _ = lc.Submit(tctx, k, "", &bankpb.MsgSend{From: k.Address().String(), To: operator(0).Address().String(), Amount: []*coin.Coin{coin.New(coin.Native, 1)}})
			cancel()
		}
	}()
	e2e.Eventually(t, 90*time.Second, fmt.Sprintf("node%d is tombstoned for double-signing", twin), func() error {
		if v := validator(twin); !v.Tombstoned {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	stopLoad()
	procs[5].Kill()
	tv := validator(twin)
	if !tv.Jailed || tv.Slashed < 500_000 {
		t.Errorf("the double-signer: %v", tv)
	}
	waitSet(fmt.Sprintf("node%d is out of the set for good", twin), func(set map[string]int64) error {
		if _, ok := set[consAddr(twin)]; ok {
			return fmt.Errorf("still in %v", set)
		}
		return nil
	})
	if out, err := e2e.RunErr(t, "validator", "unjail", "operator", "--home", home(twin), "--node", rpc(0)); err == nil {
		t.Errorf("a tombstoned validator unjailed: %s", out)
	}
	// The chain goes on.
	st, _ := c.Status(ctx)
	e2e.Eventually(t, 30*time.Second, "blocks continue", func() error {
		if now, err := c.Status(ctx); err != nil || now.Height < st.Height+5 {
			return fmt.Errorf("height %v", now)
		}
		return nil
	})
	_, ok := inSet(down)
	t.Logf("node%d tombstoned (slashed %duagr) at height ~%d; node%d in the set: %v", twin, tv.Slashed, st.Height, down, ok)
}
