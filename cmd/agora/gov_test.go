package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	cmttypes "github.com/cometbft/cometbft/types"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/gov/govpb"
	"github.com/agoranet/agora/internal/chain/provider/providerpb"
	"github.com/agoranet/agora/internal/chain/upgrades"
	"github.com/agoranet/agora/internal/client"
	agoranet "github.com/agoranet/agora/internal/devnet"
	"github.com/agoranet/agora/internal/e2e"
	"github.com/agoranet/agora/internal/keyring"
)

// TestGovernanceOnATestnet is the governance acceptance test on four
// validators as separate processes: a proposal to change
// provider.offline_after_blocks passes with the validators' votes and takes
// effect; then an upgrade proposal halts every node at its height (each
// exits naming the upgrade, and the old binary will not start past it),
// and the binary that knows the upgrade migrates the state and the chain
// goes on with every balance as it was; last, the state is exported and
// the four start a new chain from it where the old one stopped.
func TestGovernanceOnATestnet(t *testing.T) {
	e2e.MultiProcess(t)
	out := t.TempDir()
	base := e2e.FreePorts(t, 40)
	gp := govpb.DefaultParams()
	gp.VotingPeriod, gp.LateWindowBlocks, gp.ExtensionBlocks, gp.DepositPeriod = 20, 3, 3, 50
	if _, err := agoranet.InitTestnet(agoranet.TestnetConfig{Validators: 4, Out: out, ChainID: "agora-gov-test", BasePort: base,
		BlockTime: 200 * time.Millisecond, Gov: gp}); err != nil {
		t.Fatal(err)
	}
	home := func(i int) string { return filepath.Join(out, fmt.Sprintf("node%d", i)) }
	rpc := func(i int) string { return fmt.Sprintf("http://127.0.0.1:%d", base+10*i+1) }
	procs := make([]*e2e.Proc, 4)
	startAll := func(bin string) {
		for i := range procs {
			procs[i] = e2e.StartBinary(t, bin, out, fmt.Sprintf("node%d-%d", i, time.Now().UnixNano()), "start", "--home", home(i))
		}
	}
	startAll(e2e.Binary(t))
	c, err := client.New(rpc(0))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	height := func() int64 {
		st, err := c.Status(ctx)
		if err != nil {
			return 0
		}
		return st.Height
	}
	e2e.Eventually(t, 60*time.Second, "blocks", func() error {
		if h := height(); h < 3 {
			return fmt.Errorf("height %d", h)
		}
		return nil
	})
	gov := func(i int, args ...string) string {
		return e2e.Run(t, append(append([]string{"gov"}, args...), "--home", home(i), "--node", rpc(0), "--output", "json")...)
	}
	proposalID := func(txJSON string) string {
		var r struct {
			Responses []struct {
				ProposalID string `json:"proposal_id"`
			} `json:"responses"`
		}
		if err := json.Unmarshal([]byte(txJSON), &r); err != nil || len(r.Responses) != 1 {
			t.Fatalf("submit: %v in %s", err, txJSON)
		}
		return r.Responses[0].ProposalID
	}
	// pass submits a proposal from node0's operator, has every validator
	// vote yes, and waits for it to be decided.
	pass := func(args ...string) *govpb.Proposal {
		id := proposalID(gov(0, append([]string{"submit"}, append(args, "--deposit", "10000000uagr")...)...))
		for i := range procs {
			args := []string{"gov", "vote", "operator", id, "yes", "--home", home(i), "--node", rpc(0), "--output", "json"}
			if _, err := e2e.RunErr(t, args...); err != nil {
				// A validator's operator key also signs its beacon txs, sent
				// to its own node, which can take the vote's sequence; the
				// client reports the vote dropped only once that is certain
				// (10 s), and by then the voting may be over. The tally
				// below still decides the test. For the same reason a later
				// vote can find the voting already over.
				if !strings.Contains(err.Error(), "dropped from the mempool") && !strings.Contains(err.Error(), "not in its voting period") {
					t.Fatalf("agora %s: %v", strings.Join(args, " "), err)
				}
				t.Logf("validator %d's vote was dropped (its beacon tx took the sequence): %v", i, err)
			}
		}
		var p *govpb.Proposal
		e2e.Eventually(t, 60*time.Second, "proposal "+id+" decided", func() error {
			var n uint64
			fmt.Sscan(id, &n)
			r, err := client.Ask(ctx, c, govpb.QueryProposal, &govpb.QueryProposalRequest{Id: n})
			if err != nil {
				return err
			}
			if p = r.Proposal; p.Status == govpb.Status_STATUS_VOTING || p.Status == govpb.Status_STATUS_DEPOSIT {
				return fmt.Errorf("still %s, tally %v", p.Status, r.Tally)
			}
			return nil
		})
		if p.Status != govpb.Status_STATUS_PASSED {
			t.Fatalf("proposal %d: %s (%s), tally %v", p.Id, p.Status, p.Failure, p.Tally)
		}
		return p
	}

	// 1. A param change passes and is in force from the next block.
	before, err := client.Ask(ctx, c, providerpb.QueryParams, &providerpb.QueryParamsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	want := before.OfflineAfterBlocks + 17
	p := pass("params", "operator", fmt.Sprintf("provider.offline_after_blocks=%d", want), "--title", "give providers longer to heartbeat")
	after, err := client.Ask(ctx, c, providerpb.QueryParams, &providerpb.QueryParamsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if after.OfflineAfterBlocks != want {
		t.Fatalf("offline_after_blocks is %d after proposal %d passed; want %d", after.OfflineAfterBlocks, p.Id, want)
	}
	t.Logf("proposal %d passed at height %d (tally %v): offline_after_blocks %d -> %d", p.Id, p.VotingEnd, p.Tally, before.OfflineAfterBlocks, want)

	// 2. An upgrade: every node halts at its height, naming it.
	upHeight := height() + 45 // voting (20 blocks) and the votes' txs fit before it
	p = pass("upgrade", "operator", upgrades.DemoName, fmt.Sprint(upHeight), "--info", "build with -tags agora_upgrade_demo", "--title", "demo upgrade")
	// Accounts that send nothing (operators pay fees for their beacon
	// commitments and votes all along).
	balances := map[addr.Address]string{}
	for _, name := range []string{"alice", "bob", "provider1", "modelowner"} {
		k, err := keyring.Open(filepath.Join(home(0), "keyring")).Get(name)
		if err != nil {
			t.Fatal(err)
		}
		r, err := c.Balances(ctx, k.Address())
		if err != nil {
			t.Fatal(err)
		}
		balances[k.Address()] = fmt.Sprint(r.Balances)
	}
	t.Logf("upgrade proposal %d passed; halting at %d", p.Id, upHeight)
	// A node that has executed up to the upgrade height exits; one that
	// lags behind when the others stop waits at that height for a peer to
	// send it the block, so, as its operator would, the test stops it.
	var halted []int
	deadline, grace := time.Now().Add(90*time.Second), time.Time{}
	for len(halted) < len(procs) && time.Now().Before(deadline) && (grace.IsZero() || time.Now().Before(grace)) {
		for i, pr := range procs {
			if slices.Contains(halted, i) || !pr.Exited() {
				continue
			}
			if code := pr.Wait(0); code == 0 || !strings.Contains(pr.Log(), fmt.Sprintf("UPGRADE %q NEEDED at height %d", upgrades.DemoName, upHeight)) {
				t.Fatalf("node%d exited (code %d) without naming the upgrade:\n%s", i, code, tail(pr.Log()))
			}
			halted = append(halted, i)
			if grace.IsZero() {
				grace = time.Now().Add(10 * time.Second) // the others have the block by now, or will not get it
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(halted) == 0 {
		t.Fatal("no node halted at the upgrade height")
	}
	for i, pr := range procs {
		if !slices.Contains(halted, i) {
			pr.Kill()
			t.Logf("node%d lagged and was stopped at the upgrade", i)
		}
	}
	t.Logf("%d of 4 nodes halted at height %d naming the upgrade", len(halted), upHeight)
	// The old binary will not go past it either.
	old := e2e.Start(t, out, "old-binary", "start", "--home", home(halted[0]))
	if code := old.Wait(60 * time.Second); code <= 0 || !strings.Contains(old.Log(), "NEEDED") {
		t.Fatalf("the old binary restarted past the upgrade (exit %d):\n%s", code, tail(old.Log()))
	}

	// 3. The new binary migrates and the chain goes on.
	startAll(e2e.BinaryTags(t, "agora_upgrade_demo"))
	e2e.Eventually(t, 60*time.Second, "blocks after the upgrade", func() error {
		if h := height(); h < upHeight+5 {
			return fmt.Errorf("height %d", h)
		}
		return nil
	})
	up, err := client.Ask(ctx, c, govpb.QueryUpgrade, &govpb.QueryUpgradeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if up.Plan != nil || len(up.Done) != 1 || up.Done[0].Name != upgrades.DemoName || up.Done[0].Height != upHeight {
		t.Fatalf("upgrade record after the migration: %v", up)
	}
	gpNow, err := client.Ask(ctx, c, govpb.QueryParams, &govpb.QueryParamsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if gpNow.VotingPeriod != 2*gp.VotingPeriod {
		t.Fatalf("the migration did not run: voting_period %d, want %d", gpNow.VotingPeriod, 2*gp.VotingPeriod)
	}
	for a, want := range balances {
		r, err := c.Balances(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(r.Balances); got != want {
			t.Errorf("%s: balances %s after the upgrade, %s before", a, got, want)
		}
	}
	t.Logf("halted at %d, migrated (voting_period %d -> %d), at height %d with the same balances", upHeight, gp.VotingPeriod, gpNow.VotingPeriod, height())

	// 4. Export: the nodes stop, node0's state becomes a new chain's
	// genesis, and the four start it from their old keys, at the next
	// height, with the same balances.
	newBin := e2e.BinaryTags(t, "agora_upgrade_demo")
	for i, pr := range procs {
		if err := pr.Interrupt(30 * time.Second); err != nil {
			t.Fatalf("node%d: %v", i, err)
		}
	}
	genesis := filepath.Join(out, "exported.json")
	// A new chain under the old id would take what was signed for the old.
	for _, id := range [][]string{nil, {"--chain-id", "agora-gov-test"}} {
		if o, err := e2e.RunBinary(t, newBin, append([]string{"export", "--home", home(0), "--out", genesis}, id...)...); err == nil || !strings.Contains(err.Error(), "--chain-id") {
			t.Errorf("export %v: %v %s", id, err, o)
		}
	}
	if _, err := e2e.RunBinary(t, newBin, "export", "--home", home(0), "--chain-id", "agora-gov-test-2", "--out", genesis); err != nil {
		t.Fatal(err)
	}
	doc, err := cmttypes.GenesisDocFromFile(genesis)
	if err != nil {
		t.Fatal(err)
	}
	for i := range procs {
		data := filepath.Join(home(i), "data")
		entries, err := os.ReadDir(data)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Name() != "priv_validator_state.json" {
				if err := os.RemoveAll(filepath.Join(data, e.Name())); err != nil {
					t.Fatal(err)
				}
			}
		}
		b, err := os.ReadFile(genesis)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(home(i), "config", "genesis.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	startAll(newBin)
	e2e.Eventually(t, 60*time.Second, "blocks on the exported chain", func() error {
		if h := height(); h < doc.InitialHeight+3 {
			return fmt.Errorf("height %d", h)
		}
		return nil
	})
	if st, err := c.Status(ctx); err != nil || st.ChainID != "agora-gov-test-2" {
		t.Fatalf("the new chain: %v %v", st, err)
	}
	for a, want := range balances {
		r, err := c.Balances(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(r.Balances); got != want {
			t.Errorf("%s: balances %s on the exported chain, %s before", a, got, want)
		}
	}
	t.Logf("exported at height %d; the new chain agora-gov-test-2 runs from %d with the same balances", doc.InitialHeight-1, doc.InitialHeight)
}

func tail(s string) string {
	if len(s) > 3000 {
		return s[len(s)-3000:]
	}
	return s
}
