package gateway_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/devnet"
	"github.com/agoranet/agora/internal/e2e"
	"github.com/agoranet/agora/internal/gateway"
	"github.com/agoranet/agora/internal/route"
)

// TestReplicasShareAPostgresLedger: two gateway replicas, each with its own
// payer key and channels, bill one API key in one PostgreSQL ledger under
// concurrent load. The key ends with exactly its credit less the prices
// in the receipts of the answers its clients received.
func TestReplicasShareAPostgresLedger(t *testing.T) {
	dsn := e2e.Postgres(t)
	d := e2e.Devnet(t, nil)
	ctx := context.Background()
	var urls []string
	for _, name := range []string{"alice", "bob"} {
		k, _ := d.Keyring.Get(name)
		c, err := client.New(d.Node.RPC())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		rc := route.DefaultConfig()
		rc.Refresh = time.Second
		gw, err := gateway.Start(ctx, gateway.Config{Listen: "127.0.0.1:0", Key: k.Private, ChainID: devnet.ChainID, Chain: c, NodeURL: d.Node.RPC(),
			Home: t.TempDir(), DB: dsn, Denom: coin.Stable, Spend: 10_000_000, Deposit: 1_000_000, Route: rc})
		if err != nil {
			t.Fatal(err)
		}
		defer gw.Shutdown(ctx)
		urls = append(urls, gw.URL())
	}
	l, err := gateway.OpenLedger(ctx, gateway.Config{DB: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const credit = 1_000_000
	key, _, err := l.CreateKey(ctx, coin.Stable, credit)
	if err != nil {
		t.Fatal(err)
	}

	_, priced := load(t, urls, key, 8, 20, func(i int) bool { return i%2 == 0 })
	// A charge is written just after its answer goes out.
	e2e.Eventually(t, 10*time.Second, "the key holds its credit less its answers' prices", func() error {
		a, err := l.Balance(ctx, key)
		if err != nil {
			return err
		}
		if a.Balance != credit-priced || a.Reserved != 0 || a.Debited != priced {
			return fmt.Errorf("the key holds %d (reserved %d, debited %d); its answers' receipts say %d, so it should hold %d", a.Balance, a.Reserved, a.Debited, priced, credit-priced)
		}
		return nil
	})
}
