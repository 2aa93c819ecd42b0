package escrow_test

import (
	"errors"
	"testing"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/bank"
	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/escrow"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/store/storetest"
)

func setup(t *testing.T) (*module.Context, escrow.Account, addr.Address, addr.Address) {
	t.Helper()
	kv := storetest.NewMem()
	ctx := module.NewContext(kv, "test", 1, 0)
	payer, payee := addr.Module("test/payer"), addr.Module("test/payee")
	gen := module.EncodeGenesis(&bankpb.Genesis{
		Params:   &bankpb.Params{Denoms: []*bankpb.Denom{{Name: coin.Native}, {Name: coin.Stable}}},
		Balances: []*bankpb.GenesisBalance{{Address: payer.String(), Coins: []*coin.Coin{coin.New(coin.Stable, 1000)}}},
	})
	if err := (bank.Module{}).InitGenesis(ctx, gen); err != nil {
		t.Fatal(err)
	}
	return ctx, escrow.New(addr.Module("test/escrow"), "test/hold/"), payer, payee
}

func balance(ctx *module.Context, a addr.Address) uint64 { return bank.Balance(ctx.KV, a, coin.Stable) }

func TestPaysOutExactlyOnce(t *testing.T) {
	ctx, e, payer, payee := setup(t)
	if err := e.Hold(ctx, payer, 7, coin.New(coin.Stable, 600)); err != nil {
		t.Fatal(err)
	}
	if err := e.Hold(ctx, payer, 7, coin.New(coin.Stable, 1)); err == nil {
		t.Fatal("an open hold was held again")
	}
	if err := e.Pay(ctx, 7, payee, 250); err != nil {
		t.Fatal(err)
	}
	if err := e.Pay(ctx, 7, payee, 351); !errors.Is(err, codes.ErrInsufficientFunds) {
		t.Fatalf("paying more than is left: %v, want insufficient funds", err)
	}
	if err := e.Burn(ctx, 7, 50); err != nil {
		t.Fatal(err)
	}
	if err := e.CheckInvariant(ctx.KV); err != nil {
		t.Fatal(err)
	}
	refund, err := e.Close(ctx, 7, payer)
	if err != nil || refund != 300 {
		t.Fatalf("close: refunded %d, %v; want 300", refund, err)
	}
	for _, f := range []func() error{
		func() error { _, err := e.Close(ctx, 7, payer); return err },
		func() error { return e.Pay(ctx, 7, payee, 1) },
		func() error { return e.Burn(ctx, 7, 1) },
	} {
		if err := f(); !errors.Is(err, codes.ErrNotFound) {
			t.Fatalf("after close: %v, want not found", err)
		}
	}
	if got := balance(ctx, payer); got != 400+300 {
		t.Errorf("payer has %d, want 700", got)
	}
	if got := balance(ctx, payee); got != 250 {
		t.Errorf("payee has %d, want 250", got)
	}
	if got := balance(ctx, e.Addr); got != 0 {
		t.Errorf("escrow keeps %d after its only hold closed", got)
	}
	if err := e.CheckInvariant(ctx.KV); err != nil {
		t.Fatal(err)
	}
	if err := bank.CheckInvariant(ctx.KV); err != nil {
		t.Fatal(err)
	}
}

func TestHoldNeedsFunds(t *testing.T) {
	ctx, e, payer, _ := setup(t)
	if err := e.Hold(ctx, payer, 1, coin.New(coin.Stable, 1001)); err == nil {
		t.Fatal("held more than the payer has")
	}
	if e.Held(ctx.KV, 1) != nil {
		t.Fatal("a refused hold was recorded")
	}
	if err := e.Hold(ctx, payer, 1, coin.New(coin.Stable, 0)); err == nil {
		t.Fatal("held nothing")
	}
}

func TestInvariantCatchesStrayCoins(t *testing.T) {
	ctx, e, payer, _ := setup(t)
	if err := e.Hold(ctx, payer, 1, coin.New(coin.Stable, 10)); err != nil {
		t.Fatal(err)
	}
	// Coins sent to the escrow account behind the package's back.
	if err := bank.Send(ctx, payer, e.Addr, []*coin.Coin{coin.New(coin.Stable, 5)}); err != nil {
		t.Fatal(err)
	}
	if err := e.CheckInvariant(ctx.KV); err == nil {
		t.Fatal("the invariant missed 5 coins held for nothing")
	}
}
