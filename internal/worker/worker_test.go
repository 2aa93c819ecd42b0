package worker_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/agoranet/agora/examples/jobs/kernel/matmul"
	"github.com/agoranet/agora/internal/blob"
	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/job/jobpb"
	"github.com/agoranet/agora/internal/chain/staking/stakingpb"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/devnet"
	"github.com/agoranet/agora/internal/e2e"
	"github.com/agoranet/agora/internal/provider"
	"github.com/agoranet/agora/internal/sandbox"
	"github.com/agoranet/agora/internal/verifier"
)

const maxPrice = 2000

// warm runs the module once in the devnet's sandbox, so the lessees find
// it compiled: compiling a Go-built module takes seconds, and tens of
// seconds under -race, which would eat the tests' deadlines.
func warm(t *testing.T, d *devnet.Devnet, wasm []byte) {
	t.Helper()
	if _, err := d.Sandbox().Run(context.Background(), wasm, nil, sandbox.Limits{Fuel: 1 << 30, MemoryMiB: 256, MaxOutput: 1 << 20}); err != nil {
		t.Fatal(err)
	}
}

// order uploads a job to every provider's store, as `agora job submit`
// does, and orders it as alice with the URLs of provider1's copy.
func order(t *testing.T, d *devnet.Devnet, c *client.Client, wasm, input []byte, deadline int64) uint64 {
	t.Helper()
	ctx := context.Background()
	hc := &http.Client{Timeout: 30 * time.Second}
	var mu, iu string
	for i := len(d.Providers) - 1; i >= 0; i-- {
		var err error
		if mu, err = blob.Upload(ctx, hc, d.Providers[i].URL(), wasm); err != nil {
			t.Fatal(err)
		}
		if iu, err = blob.Upload(ctx, hc, d.Providers[i].URL(), input); err != nil {
			t.Fatal(err)
		}
	}
	alice, _ := d.Keyring.Get("alice")
	mh, ih := sha256.Sum256(wasm), sha256.Sum256(input)
	res, err := c.Submit(ctx, alice, "", &jobpb.MsgCreateOrder{Tenant: alice.Address().String(), ModuleHash: mh[:], ModuleUrl: mu, InputHash: ih[:], InputUrl: iu,
		Fuel: 1 << 36, MemoryMib: 256, MaxPrice: coin.New(coin.Stable, maxPrice), Redundancy: 2, BidWindow: 20, DeadlineBlocks: deadline})
	if err != nil {
		t.Fatal(err)
	}
	var created jobpb.MsgCreateOrderResponse
	if err := res.Response(0, &created); err != nil {
		t.Fatal(err)
	}
	return created.OrderId
}

func get(t *testing.T, c *client.Client, id uint64) *jobpb.Order {
	t.Helper()
	r, err := client.Ask(context.Background(), c, jobpb.QueryOrder, &jobpb.QueryOrderRequest{Id: id})
	if err != nil {
		t.Fatal(err)
	}
	return r.Order
}

func wait(t *testing.T, c *client.Client, id uint64, timeout time.Duration) *jobpb.Order {
	t.Helper()
	var o *jobpb.Order
	e2e.Eventually(t, timeout, fmt.Sprintf("order %d ends", id), func() error {
		if o = get(t, c, id); o.FinishedAt == 0 {
			return fmt.Errorf("order %d is %s", id, o.Status)
		}
		return nil
	})
	return o
}

// checkEscrow: every uusdc put in escrow was paid out or refunded, and the
// escrow account holds nothing.
func checkEscrow(t *testing.T, c *client.Client, o *jobpb.Order) {
	t.Helper()
	if o.Paid+o.Refunded != maxPrice*uint64(o.Redundancy) || o.Escrow != 0 {
		t.Errorf("escrow: paid %d + refunded %d != %d, %d still held", o.Paid, o.Refunded, maxPrice*o.Redundancy, o.Escrow)
	}
	var sum uint64
	for _, l := range o.Leases {
		if l.Status == jobpb.LeaseStatus_LEASE_STATUS_PAID {
			sum += l.Price
		}
	}
	if sum != o.Paid {
		t.Errorf("paid leases sum to %d, the order says %d", sum, o.Paid)
	}
	if held, err := c.Balance(context.Background(), jobpb.Escrow, coin.Stable); err != nil || held != 0 {
		t.Errorf("the escrow account holds %d (%v) after the order ended", held, err)
	}
}

func read(t *testing.T, path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLesseeKilledMidJobIsReleased: one of the two lessees dies while the
// job runs. It misses its deadline, is penalised, and the job goes to the
// standby bid; the order completes with the right result within a bounded
// number of blocks, and the escrow is fully accounted for.
func TestLesseeKilledMidJobIsReleased(t *testing.T) {
	if testing.Short() {
		t.Skip("a devnet and a WebAssembly job; skipped with -short")
	}
	wasm := read(t, e2e.Wasm(t, "./examples/jobs/kernel"))
	d := e2e.Devnet(t, nil)
	warm(t, d, wasm)
	c, err := client.New(d.Node.RPC())
	if err != nil {
		t.Fatal(err)
	}
	// 150 blocks of 100 ms: time for a lessee to fetch, compile (slow
	// under -race) and run the kernel.
	const deadline = 150
	id := order(t, d, c, wasm, []byte("128 2"), deadline)

	// Kill a lessee as soon as the job is leased, before it can commit.
	var victim string
	e2e.Eventually(t, 30*time.Second, "the job is leased", func() error {
		o := get(t, c, id)
		for _, l := range o.Leases {
			if l.Status == jobpb.LeaseStatus_LEASE_STATUS_ACTIVE {
				victim = l.Provider
				return nil
			}
		}
		return fmt.Errorf("order %d is %s", id, o.Status)
	})
	var standby string
	for _, p := range d.Providers {
		if p.Address().String() == victim {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			p.Shutdown(ctx)
			cancel()
		}
	}
	stakeBefore := bonded(t, c, victim)

	o := wait(t, c, id, 3*time.Minute)
	if o.Status != jobpb.OrderStatus_ORDER_STATUS_COMPLETED {
		t.Fatalf("order ended %s: %s\n%v", o.Status, o.Reason, o)
	}
	var missed, paid int
	for _, l := range o.Leases {
		switch l.Status {
		case jobpb.LeaseStatus_LEASE_STATUS_MISSED:
			missed++
			if l.Provider != victim {
				t.Errorf("%s missed, but %s was killed", l.Provider, victim)
			}
		case jobpb.LeaseStatus_LEASE_STATUS_PAID:
			paid++
			standby = l.Provider
		}
	}
	if missed != 1 || paid != 2 || o.Releases != 1 {
		t.Fatalf("leases: %d missed, %d paid, %d releases; want 1, 2, 1: %v", missed, paid, o.Releases, o.Leases)
	}
	if bound := o.BidWindow + 2*o.DeadlineBlocks + 2*20; o.FinishedAt-o.CreatedAt > bound {
		t.Errorf("the order took %d blocks, more than the bound %d", o.FinishedAt-o.CreatedAt, bound)
	}
	if after := bonded(t, c, victim); after >= stakeBefore {
		t.Errorf("the killed lessee's stake went from %d to %d: not penalised", stakeBefore, after)
	}
	var want []byte
	for _, sum := range matmul.Run(128, 2) {
		want = fmt.Appendln(want, sum)
	}
	if h := sha256.Sum256(want); string(o.Result.OutputHash) != string(h[:]) {
		t.Errorf("the agreed result is not the kernel's output")
	}
	checkEscrow(t, c, o)
	t.Logf("order %d: leased, lessee killed, re-leased to %s, completed in %d blocks", id, standby, o.FinishedAt-o.CreatedAt)
}

func bonded(t *testing.T, c *client.Client, a string) uint64 {
	t.Helper()
	r, err := client.Ask(context.Background(), c, stakingpb.QueryStake, &stakingpb.QueryStakeRequest{Address: a})
	if err != nil {
		t.Fatal(err)
	}
	return r.Stake.Bonded
}

// TestWrongJobResultIsOutvotedAndSlashed: provider2 returns a corrupted
// output. The two lessees disagree, a committee of three verifiers re-runs
// the job, and the liar is outvoted and slashed while the honest lessee is
// paid.
func TestWrongJobResultIsOutvotedAndSlashed(t *testing.T) {
	if testing.Short() {
		t.Skip("a devnet, three verifiers and a WebAssembly job; skipped with -short")
	}
	wasm := read(t, e2e.Wasm(t, "./examples/jobs/kernel"))
	d := e2e.Devnet(t, nil)
	// provider2 returns a wrong output for every job.
	d.Providers[1].SetHooks(provider.Hooks{AlterJobOutput: func(out []byte) []byte { return append([]byte("corrupted "), out...) }})
	warm(t, d, wasm)
	c, err := client.New(d.Node.RPC())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	alice, _ := d.Keyring.Get("alice")
	fund := &bankpb.MsgMultiSend{From: alice.Address().String()}
	var keys []ed25519.PrivateKey
	for i := 0; i < 3; i++ {
		seed := sha256.Sum256([]byte(fmt.Sprintf("job verifier %d", i)))
		k := ed25519.NewKeyFromSeed(seed[:])
		keys = append(keys, k)
		fund.Outputs = append(fund.Outputs, &bankpb.Output{To: addr.FromPubKey(k.Public().(ed25519.PublicKey)).String(), Amount: []*coin.Coin{coin.New(coin.Native, 1_000_000_000)}})
	}
	if _, err := c.Submit(ctx, alice, "", fund); err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		vc, _ := client.New(d.Node.RPC())
		v, err := verifier.Start(ctx, verifier.Config{Listen: "127.0.0.1:0", Key: k, Chain: vc, Bond: 200_000_000, Sandbox: d.Sandbox(),
			Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
		if err != nil {
			t.Fatalf("verifier %d: %v", i, err)
		}
		t.Cleanup(func() { v.Shutdown(context.Background()) })
	}
	liar := d.Providers[1].Address().String()
	stakeBefore := bonded(t, c, liar)

	id := order(t, d, c, wasm, []byte("48 2"), 50)
	o := wait(t, c, id, 2*time.Minute)
	if o.Status != jobpb.OrderStatus_ORDER_STATUS_COMPLETED {
		t.Fatalf("order ended %s: %s", o.Status, o.Reason)
	}
	if len(o.Votes) != 3 {
		t.Fatalf("%d committee votes, want 3: the results should have disagreed", len(o.Votes))
	}
	for _, l := range o.Leases {
		want := jobpb.LeaseStatus_LEASE_STATUS_PAID
		if l.Provider == liar {
			want = jobpb.LeaseStatus_LEASE_STATUS_OUTVOTED
		}
		if l.Status != want {
			t.Errorf("lease of %s is %s, want %s", l.Provider, l.Status, want)
		}
	}
	if after := bonded(t, c, liar); after >= stakeBefore {
		t.Errorf("the liar's stake went from %d to %d: not slashed", stakeBefore, after)
	}
	checkEscrow(t, c, o)
}
