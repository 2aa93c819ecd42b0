package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/e2e"
)

type balanceOut struct {
	Address  string `json:"address"`
	Balances []struct {
		Denom  string `json:"denom"`
		Amount string `json:"amount"`
	} `json:"balances"`
}

func uagr(t *testing.T, node, home, address string) string {
	t.Helper()
	var b balanceOut
	out := e2e.Run(t, "query", "balance", address, "--output", "json", "--node", node, "--home", home)
	if err := json.Unmarshal([]byte(out), &b); err != nil {
		t.Fatalf("query balance output %q: %v", out, err)
	}
	if b.Address != address {
		t.Fatalf("balance of %s answered for %s", address, b.Address)
	}
	for _, c := range b.Balances {
		if c.Denom == "uagr" {
			return c.Amount
		}
	}
	return "0"
}

// TestDevnetSurvivesKill: send with the CLI, SIGKILL the devnet, restart it
// and find the same balances and app hash.
func TestDevnetSurvivesKill(t *testing.T) {
	e2e.MultiProcess(t)
	home := t.TempDir()
	base := e2e.FreePorts(t, 30) // the devnet's providers, gateway and facilitator listen above base
	node := fmt.Sprintf("http://127.0.0.1:%d", base+1)
	start := func() *e2e.Proc {
		p := e2e.Start(t, home, "devnet", "devnet", "--home", home, "--base-port", fmt.Sprint(base))
		c, err := client.New(node)
		if err != nil {
			t.Fatal(err)
		}
		e2e.Eventually(t, 30*time.Second, "devnet answers", func() error {
			st, err := c.Status(context.Background())
			if err == nil && st.Height < 2 {
				return fmt.Errorf("height %d", st.Height)
			}
			return err
		})
		// The banner comes once everything (agent, providers) is set up.
		e2e.Eventually(t, 60*time.Second, "devnet banner", func() error {
			if p.Exited() {
				t.Fatalf("the devnet exited:\n%s", p.Log())
			}
			if !strings.Contains(p.Log(), "Agora devnet is running") {
				return fmt.Errorf("no banner yet; it printed:\n%s", p.Log())
			}
			return nil
		})
		return p
	}
	p := start()
	if !strings.Contains(p.Log(), "agora-devnet-1") {
		t.Errorf("banner does not show the chain-id:\n%s", p.Log())
	}
	alice := strings.TrimSpace(e2e.Run(t, "keys", "show", "alice", "--address", "--home", home))
	bob := strings.TrimSpace(e2e.Run(t, "keys", "show", "bob", "--address", "--home", home))
	a0, b0 := uagr(t, node, home, alice), uagr(t, node, home, bob)

	out := e2e.Run(t, "tx", "send", "alice", bob, "1000uagr", "--home", home, "--node", node, "--output", "json")
	var res struct {
		Hash   string `json:"hash"`
		Height int64  `json:"height,string"`
		Fee    string `json:"fee"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Hash) != 64 || res.Height <= 0 {
		t.Fatalf("tx send printed %q (%v); want hash and height", out, err)
	}
	a1, b1 := uagr(t, node, home, alice), uagr(t, node, home, bob)
	fee, err := coin.Parse(res.Fee)
	if err != nil || fee.Amount == 0 {
		t.Fatalf("tx send printed fee %q: %v", res.Fee, err)
	}
	if want := sub(t, a0, 1000+int64(fee.Amount)); a1 != want { // 1000 sent + the fee
		t.Errorf("alice after send: %s, want %s", a1, want)
	}
	if want := sub(t, b0, -1000); b1 != want {
		t.Errorf("bob after send: %s, want %s", b1, want)
	}

	c, _ := client.New(node)
	// The app hash after the tx's block is in the next header.
	hashAt := func(h int64) string {
		var out string
		e2e.Eventually(t, 10*time.Second, "block header", func() error {
			hdr, err := c.Header(context.Background(), h)
			if err != nil {
				return err
			}
			out = fmt.Sprintf("%X", hdr.AppHash)
			return nil
		})
		return out
	}
	want := hashAt(res.Height + 1)

	p.Kill()
	start()
	if got := hashAt(res.Height + 1); got != want {
		t.Errorf("app hash at height %d after SIGKILL: %s, want %s", res.Height+1, got, want)
	}
	if a2, b2 := uagr(t, node, home, alice), uagr(t, node, home, bob); a2 != a1 || b2 != b1 {
		t.Errorf("after SIGKILL and restart: alice %s bob %s, want %s %s", a2, b2, a1, b1)
	}
	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%X", st.AppHash); got != want {
		t.Errorf("latest app hash %s, want %s (no tx since)", got, want)
	}
}

func sub(t *testing.T, a string, d int64) string {
	var n int64
	if _, err := fmt.Sscan(a, &n); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(n - d)
}
