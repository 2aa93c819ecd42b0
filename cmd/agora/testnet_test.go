package main_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/e2e"
	"github.com/agoranet/agora/internal/keyring"
)

// TestTestnetSurvivesValidatorKill starts four validators as separate
// processes, kills one under load, checks that blocks continue, restarts
// it, checks that it catches up, and finds every acknowledged tx on every
// node.
func TestTestnetSurvivesValidatorKill(t *testing.T) {
	e2e.MultiProcess(t)
	out := t.TempDir()
	base := e2e.FreePorts(t, 40)
	e2e.Run(t, "testnet", "init", "--validators", "4", "--out", out, "--base-port", fmt.Sprint(base), "--block-time", "200ms")
	procs := make([]*e2e.Proc, 4)
	clients := make([]*client.Client, 4)
	startNode := func(i int) {
		procs[i] = e2e.Start(t, out, fmt.Sprintf("node%d", i), "start", "--home", filepath.Join(out, fmt.Sprintf("node%d", i)))
	}
	for i := range procs {
		startNode(i)
		c, err := client.New(fmt.Sprintf("http://127.0.0.1:%d", base+10*i+1))
		if err != nil {
			t.Fatal(err)
		}
		clients[i] = c
	}
	ctx := context.Background()
	height := func(i int) int64 {
		st, err := clients[i].Status(ctx)
		if err != nil {
			return -1
		}
		return st.Height
	}
	for i := range clients {
		e2e.Eventually(t, 60*time.Second, fmt.Sprintf("node%d makes blocks", i), func() error {
			if h := height(i); h < 3 {
				return fmt.Errorf("height %d", h)
			}
			return nil
		})
	}

	// Load: three senders, each submitting one tx after another through
	// nodes 0-2, and recording what the chain acknowledged as committed.
	kr := keyring.Open(filepath.Join(out, "node0", "keyring"))
	bob, _ := kr.Get("bob")
	var mu sync.Mutex
	acked := map[string]int64{}
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i, name := range []string{"alice", "issuer", "bob"} {
		k, err := kr.Get(name)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func(c *client.Client) {
			defer wg.Done()
			for loadCtx.Err() == nil {
				tctx, cancel := context.WithTimeout(loadCtx, 10*time.Second)
				res, err := c.Submit(tctx, k, "", &bankpb.MsgSend{From: k.Address().String(), To: bob.Address().String(), Amount: []*coin.Coin{coin.New("uagr", 1)}})
				cancel()
				if err == nil {
					mu.Lock()
					acked[res.Hash] = res.Height
					mu.Unlock()
				}
			}
		}(clients[i])
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	e2e.Eventually(t, 30*time.Second, "load commits txs", func() error {
		if n := count(); n < 10 {
			return fmt.Errorf("%d acknowledged", n)
		}
		return nil
	})

	procs[3].Kill()
	killedAt, killTime := height(0), time.Now()
	e2e.Eventually(t, 30*time.Second, "blocks continue with one validator down", func() error {
		if h := height(0); h < killedAt+8 {
			return fmt.Errorf("height %d, killed at %d", h, killedAt)
		}
		return nil
	})
	// Two of these eight blocks were the dead validator's turns; with
	// timeouts scaled to the block time each cost about half a second.
	var gaps []string
	var worst time.Duration
	for h := killedAt + 1; h <= killedAt+8; h++ {
		a, err1 := clients[0].Header(ctx, h-1)
		b, err2 := clients[0].Header(ctx, h)
		if err1 == nil && err2 == nil {
			gap := b.Time.Sub(a.Time).Round(10 * time.Millisecond)
			worst = max(worst, gap)
			gaps = append(gaps, gap.String())
		}
	}
	t.Logf("8 blocks in %v with one of four validators down (200 ms block time); block gaps %v, worst %v", time.Since(killTime).Round(10*time.Millisecond), gaps, worst)
	before := count()
	e2e.Eventually(t, 30*time.Second, "txs commit with one validator down", func() error {
		if n := count(); n < before+10 {
			return fmt.Errorf("%d acknowledged, %d before", n, before)
		}
		return nil
	})

	startNode(3)
	e2e.Eventually(t, 60*time.Second, "restarted node catches up", func() error {
		st, err := clients[3].Status(ctx)
		if err != nil {
			return err
		}
		if h0 := height(0); st.CatchingUp || st.Height < h0-1 {
			return fmt.Errorf("node3 at %d (catching up %v), node0 at %d", st.Height, st.CatchingUp, h0)
		}
		return nil
	})
	stopLoad()
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d txs acknowledged; node0 at height %d", len(acked), height(0))
	top := int64(0)
	for hash, h := range acked {
		if h > top {
			top = h
		}
		for i, c := range clients {
			// The killed node may have committed the block around its
			// death without indexing its txs: CometBFT indexes after the
			// commit, asynchronously, and does not re-index on restart.
			// The app hashes below show it applied them.
			if i == 3 && h <= killedAt+1 {
				if _, err := c.Tx(ctx, mustHex(hash)); err != nil {
					t.Logf("node3 has no index entry for tx %s at height %d, committed as it was killed: %v", hash, h, err)
					continue
				}
			}
			var res *client.Result
			e2e.Eventually(t, 20*time.Second, fmt.Sprintf("node%d has tx %s", i, hash), func() error {
				// Bounded, so that Eventually's deadline holds: WaitTx
				// waits for as long as its context lets it.
				wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				defer cancel()
				var err error
				res, err = c.WaitTx(wctx, mustHex(hash))
				return err
			})
			if res.Height != h {
				t.Errorf("node%d has tx %s at height %d, acknowledged at %d", i, hash, res.Height, h)
			}
		}
	}
	// Every node agrees on the app hash after the last acknowledged block.
	var want string
	for i, c := range clients {
		h := top + 1
		var got string
		e2e.Eventually(t, 20*time.Second, "block header", func() error {
			hdr, err := c.Header(ctx, h)
			if err != nil {
				return err
			}
			got = fmt.Sprintf("%X", hdr.AppHash)
			return nil
		})
		if i == 0 {
			want = got
		} else if got != want {
			t.Errorf("node%d app hash at %d: %s, node0 has %s", i, h, got, want)
		}
	}
}

func mustHex(s string) []byte {
	var b []byte
	fmt.Sscanf(s, "%X", &b)
	return b
}
