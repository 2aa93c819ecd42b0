package main_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agoranet/agora/internal/chain/channel/channelpb"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/e2e"
	"github.com/agoranet/agora/internal/keyring"
	"github.com/agoranet/agora/internal/provider"
	"github.com/agoranet/agora/sdk"
)

// TestPaidProviderSurvivesKill: a priced provider process is killed with
// SIGKILL in the middle of paid load and restarted; it claims every charge
// it made (at least all the client saw, at most one more answer that may
// have been lost in the crash) and is never paid twice.
func TestPaidProviderSurvivesKill(t *testing.T) {
	e2e.MultiProcess(t)
	home, node, base := devnet(t)
	listen := fmt.Sprintf("127.0.0.1:%d", base+15)
	start := func() *e2e.Proc {
		return e2e.Start(t, home, "paid-provider", "provider", "start", "--key", "bob", "--bond", "200000000uagr", "--listen", listen,
			"--model", "agora/tiny-lm", "--price-request", "100", "--price-1k-tokens", "1000", "--claim-interval", "1s", "--home", home, "--node", node)
	}
	url := "http://" + listen + "/v1/chat/completions"
	waitUp := func() {
		e2e.Eventually(t, 30*time.Second, "paid provider up", func() error {
			resp, err := http.Get("http://" + listen + "/healthz")
			if err == nil {
				resp.Body.Close()
			}
			return err
		})
	}
	p := start()
	waitUp()

	kr := keyring.Open(filepath.Join(home, "keyring"))
	alice, _ := kr.Get("alice")
	bob, _ := kr.Get("bob")
	w, err := sdk.NewWallet(alice.Private, node)
	if err != nil {
		t.Fatal(err)
	}
	payer := sdk.NewPayer(w, sdk.Budget{Denom: coin.Stable, Max: 10_000_000, Deposit: 100_000})
	hc := &http.Client{Transport: payer, Timeout: 10 * time.Second}
	served := 0
	ask := func(i int) error {
		resp, err := hc.Post(url, "application/json", strings.NewReader(fmt.Sprintf(`{"model":"agora/tiny-lm","messages":[{"role":"user","content":"HAMLET:"}],"max_tokens":30,"seed":%d}`, i)))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		served++
		return nil
	}
	// Load in the background; kill the provider while it runs.
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			ask(i)
		}
	}()
	e2e.Eventually(t, 30*time.Second, "paid load running", func() error {
		if payer.Spent() < 20*130 {
			return fmt.Errorf("spent %d", payer.Spent())
		}
		return nil
	})
	p.Kill()
	time.Sleep(200 * time.Millisecond) // requests fail while it is down
	close(stop)
	<-done
	start()
	waitUp()
	for i := 10_000; i < 10_030; i++ {
		if err := ask(i); err != nil {
			t.Fatalf("after restart, request %d: %v", i, err)
		}
	}
	spent := payer.Spent()
	if served < 30 || spent == 0 {
		t.Fatalf("served %d, spent %d", served, spent)
	}
	c, _ := client.New(node)
	ctx := context.Background()
	ids := payer.Channels()
	if len(ids) != 1 {
		t.Fatalf("payer opened %d channels, want 1 (the restarted provider must honour the old one)", len(ids))
	}
	var ch *channelpb.Channel
	e2e.Eventually(t, 30*time.Second, "claims cover every answer the client saw", func() error {
		var err error
		ch, err = client.Ask(ctx, c, channelpb.QueryChannel, &channelpb.QueryChannelRequest{Id: ids[0]})
		if err != nil {
			return err
		}
		if ch.Claimed < spent {
			return fmt.Errorf("claimed %d of %d", ch.Claimed, spent)
		}
		return nil
	})
	const perAnswer = 100 + 30 // per request + 30 tokens at 1000/1k
	if ch.Claimed > spent+perAnswer {
		t.Errorf("claimed %d, the client saw %d charged: more than one answer lost in the crash", ch.Claimed, spent)
	}
	got, err := c.Balance(ctx, bob.Address(), coin.Stable)
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(1_000_000_000_000) + ch.Claimed; got != want {
		t.Errorf("provider holds %d uusdc, want %d: paid other than exactly once for what it claimed", got, want)
	}
	t.Logf("served %d answers, client charged %d, claimed %d in %d receipts", served, spent, ch.Claimed, ch.Receipts)
	// `agora provider start` lays out its home as the devnet's own
	// providers do.
	// providers do: bob has served and been paid; provider1 (the devnet's)
	// also takes batch jobs.
	for key, files := range map[string][]string{"bob": {"receipt-seq", "vouchers.log"}, "provider1": {"vouchers.log", "blobs"}} {
		for _, f := range files {
			if _, err := os.Stat(filepath.Join(provider.Home(home, key), f)); err != nil {
				t.Errorf("provider %s: %v", key, err)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(home, "provider")); err == nil {
		t.Errorf("%s/provider exists: the old per-key file layout is still written", home)
	}
}
