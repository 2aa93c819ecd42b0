package gateway_test

import (
	"context"
	"crypto/ed25519"
	"path/filepath"
	"testing"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/gateway"
	"github.com/agoranet/agora/internal/ledger"
)

// TestTheCLIDoesNotReleaseTheGatewaysLeases: the CLI's key commands opened
// the ledger under the gateway's own owner name, and opening as an owner
// releases that owner's leases: every `agora gateway key` command handed
// back what the running gateway was serving from. Now the CLI opens as an
// owner of its own.
func TestTheCLIDoesNotReleaseTheGatewaysLeases(t *testing.T) {
	ctx := context.Background()
	_, priv, _ := ed25519.GenerateKey(nil)
	db := filepath.Join(t.TempDir(), "ledger.db")
	gw, err := ledger.Open(ctx, db, addr.FromPubKey(priv.Public().(ed25519.PublicKey)).String())
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	key, _, err := gw.CreateKey(ctx, "uusdc", 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	leases := gw.Leased(ledger.LeaseConfig{})
	defer leases.Close(ctx)
	r, err := leases.Reserve(ctx, key, 100)
	if err != nil {
		t.Fatal(err)
	}
	defer leases.Settle(r, 100) // before Close, which waits for it
	cli, err := gateway.OpenLedger(ctx, gateway.Config{DB: db, Key: priv})
	if err != nil {
		t.Fatal(err)
	}
	cli.Close()
	a, err := gw.Balance(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if a.Reserved == 0 {
		t.Errorf("a CLI command released the running gateway's lease: %+v", a)
	}
}
