package main

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/agoranet/agora/internal/chain/channel/channelpb"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/devnet"
	"github.com/agoranet/agora/internal/e2e"
	"github.com/agoranet/agora/internal/keyring"
)

// TestExampleAgent runs the example agent on a paid devnet: 100 paid
// requests across the providers, every receipt checked; then with a small
// budget it stops at the budget.
func providerKey(t *testing.T, d *devnet.Devnet, addr string) *keyring.Key {
	for _, n := range []string{"provider1", "provider2", "provider3"} {
		if k, _ := d.Keyring.Get(n); k.Address().String() == addr {
			return k
		}
	}
	t.Fatalf("no devnet provider %s", addr)
	return nil
}

func TestExampleAgent(t *testing.T) {
	d := e2e.Devnet(t, nil)
	run1 := config{node: d.Node.RPC(), home: filepath.Dir(d.Keyring.Dir()), key: "agent", model: "agora/tiny-lm", budget: coin.New(coin.Stable, 100_000), requests: 100}
	st, err := run(context.Background(), run1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.answers != 100 || st.receiptsChecked != 100 || len(st.providers) != 3 {
		t.Errorf("answers %d, receipts %d, providers %d; want 100, 100, 3", st.answers, st.receiptsChecked, len(st.providers))
	}
	// 100 + 40 tokens at 1000 per 1k = 140 per answer.
	if st.spent != 100*140 {
		t.Errorf("spent %d, want %d", st.spent, 100*140)
	}
	// The providers claim: they and the model owner receive exactly what
	// was charged. Closing refunds the agent exactly the rest.
	c, _ := client.New(d.Node.RPC())
	ctx := context.Background()
	balance := func(name string) uint64 {
		k, _ := d.Keyring.Get(name)
		n, err := c.Balance(ctx, k.Address(), coin.Stable)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	earners := []string{"provider1", "provider2", "provider3", "modelowner"}
	e2e.Eventually(t, 30*time.Second, "claims", func() error {
		var got uint64
		for _, n := range earners {
			got += balance(n)
		}
		if want := uint64(len(earners))*devnet.Funds[1].Amount + st.spent; got != want {
			return fmt.Errorf("providers and owner hold %d, want %d", got, want)
		}
		return nil
	})
	agentBefore := balance("agent")
	var deposits uint64
	for _, id := range st.channels {
		ch, err := client.Ask(ctx, c, channelpb.QueryChannel, &channelpb.QueryChannelRequest{Id: id})
		if err != nil {
			t.Fatal(err)
		}
		deposits += ch.Deposit
		pk := providerKey(t, d, ch.Payee)
		if _, err := c.Submit(ctx, pk, "", &channelpb.MsgCloseChannel{Payee: ch.Payee, ChannelId: id}); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := balance("agent")-agentBefore, deposits-st.spent; got != want {
		t.Errorf("closing refunded %d, want %d (deposits %d - spent %d)", got, want, deposits, st.spent)
	}
	small := run1
	small.budget = coin.New(coin.Stable, 1000)
	st, err = run(context.Background(), small, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !st.stoppedByBudget || st.spent > 1000 {
		t.Errorf("with a budget of 1000: spent %d, stopped by budget %v", st.spent, st.stoppedByBudget)
	}
}
