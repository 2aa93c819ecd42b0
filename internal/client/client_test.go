package client_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/channel/channelpb"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/tx"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/devnet"
	"github.com/agoranet/agora/internal/e2e"
)

// TestClient exercises the hand-written RPC client against a real node:
// status and headers, typed queries and their errors, a submit whose id
// comes back in the typed response, waiting for a tx already committed,
// and a wait that ends with its context.
func TestClient(t *testing.T) {
	d := e2e.Devnet(t, func(c *devnet.Config) { c.Providers = 0 })
	c, err := client.New(d.Node.RPC())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	st, err := c.Status(ctx)
	if err != nil || st.ChainID != "agora-devnet-1" || st.Height < 1 || len(st.AppHash) != 32 {
		t.Fatalf("status %+v, %v", st, err)
	}
	h, err := c.Header(ctx, st.Height)
	if err != nil || h.Height != st.Height || len(h.AppHash) != 32 {
		t.Fatalf("header %+v, %v", h, err)
	}

	alice, _ := d.Keyring.Get("alice")
	bob, _ := d.Keyring.Get("bob")
	bal, err := client.Ask(ctx, c, bankpb.QueryBalance, &bankpb.QueryBalanceRequest{Address: alice.Address().String()})
	if err != nil || bal.Address != alice.Address().String() || len(bal.Balances) == 0 {
		t.Fatalf("balance %v, %v", bal, err)
	}
	if _, err := client.Ask(ctx, c, bankpb.QueryBalance, &bankpb.QueryBalanceRequest{Address: "nope"}); !errors.Is(err, codes.ErrInvalidAddress) {
		t.Errorf("balance of a bad address: err %v, want ErrInvalidAddress", err)
	}
	if _, err := client.Ask(ctx, c, channelpb.QueryChannel, &channelpb.QueryChannelRequest{Id: 999_999}); !errors.Is(err, codes.ErrNotFound) {
		t.Errorf("a missing channel: err %v, want ErrNotFound", err)
	}

	res, err := c.Submit(ctx, alice, "", &channelpb.MsgOpenChannel{Payer: alice.Address().String(), Payee: bob.Address().String(),
		Deposit: coin.New(coin.Stable, 1000), ExpiresAt: st.Height + 1000, PayerKey: alice.Public()})
	if err != nil {
		t.Fatal(err)
	}
	var opened channelpb.MsgOpenChannelResponse
	if err := res.Response(0, &opened); err != nil || opened.ChannelId == 0 {
		t.Fatalf("typed response %v, %v", &opened, err)
	}
	var wrong bankpb.QueryNonceResponse
	if err := res.Response(0, &wrong); err == nil {
		t.Error("decoding a response as the wrong type succeeded")
	}
	ch, err := client.Ask(ctx, c, channelpb.QueryChannel, &channelpb.QueryChannelRequest{Id: opened.ChannelId})
	if err != nil || ch.Payer != alice.Address().String() || ch.Deposit != 1000 {
		t.Fatalf("the opened channel: %v, %v", ch, err)
	}

	// A tx committed before the wait began is found at once.
	hash, _ := hex.DecodeString(res.Hash)
	again, err := c.WaitTx(ctx, hash)
	if err != nil || again.Height != res.Height || len(again.Responses) != 1 {
		t.Fatalf("WaitTx of a committed tx: %+v, %v", again, err)
	}
	info, err := c.Tx(ctx, hash)
	if err != nil || info.Height != res.Height || !bytes.Equal(info.Hash, hash) || len(info.Raw) == 0 {
		t.Fatalf("Tx: %+v, %v", info, err)
	}
	// One never sent: the wait ends with its context.
	short, stop := context.WithTimeout(ctx, 300*time.Millisecond)
	defer stop()
	if _, err := c.WaitTx(short, make([]byte, 32)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitTx of an unknown tx: err %v, want the deadline", err)
	}

	// A tx whose sequence another tx took is reported dropped, not waited
	// for until the context ends (as a tx a recheck dropped, or one sent
	// to another node that lost the race, would be).
	acc, err := c.Account(ctx, alice.Address())
	if err != nil {
		t.Fatal(err)
	}
	lost, err := tx.Sign(alice.Private, tx.Header{ChainID: st.ChainID, Sequence: acc.Sequence, GasLimit: 100_000, Signer: alice.Address().String()},
		&bankpb.MsgSend{From: alice.Address().String(), To: bob.Address().String(), Amount: []*coin.Coin{coin.New(coin.Native, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Submit(ctx, alice, "", &bankpb.MsgSend{From: alice.Address().String(), To: bob.Address().String(), Amount: []*coin.Coin{coin.New(coin.Native, 2)}}); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if _, err := c.WaitSigned(ctx, tx.Hash(lost), alice.Address(), acc.Sequence); !errors.Is(err, client.ErrDropped) || errors.Is(err, client.ErrMaybeSent) {
		t.Errorf("waiting for a tx whose sequence another took: err %v, want ErrDropped", err)
	}
	if waited := time.Since(began); waited > 20*time.Second {
		t.Errorf("the drop took %v to see", waited)
	}
}

// TestCloseWhileWaiting: Close racing waits neither panics nor leaks. Waits
// in flight when the client closes end by their contexts (polling), and a
// wait begun after Close does not dial a new event stream that nothing
// would ever close (the bug: it did, leaking its reader and dispatcher).
func TestCloseWhileWaiting(t *testing.T) {
	d := e2e.Devnet(t, func(c *devnet.Config) { c.Providers = 0 })
	// Let the devnet's own goroutines settle before counting.
	time.Sleep(500 * time.Millisecond)
	before := runtime.NumGoroutine()
	for i := range 10 {
		c, err := client.New(d.Node.RPC())
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for j := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
				defer cancel()
				hash := make([]byte, 32)
				hash[0], hash[1] = byte(i), byte(j)
				if _, err := c.WaitTx(ctx, hash); !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("WaitTx: %v, want the deadline", err)
				}
			}()
		}
		time.Sleep(time.Duration(i%4) * 20 * time.Millisecond)
		c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		if _, err := c.WaitTx(ctx, make([]byte, 32)); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("WaitTx after Close: %v, want the deadline", err)
		}
		cancel()
		wg.Wait()
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+5 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before+5 {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines after 10 closed clients, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

// TestARefusedSubscriptionLeavesNothingBehind: the node refuses a client's
// subscriptions beyond its limit (CometBFT's max_subscriptions_per_client),
// and a follower subscribes again every second. Each refused one used to
// leave a goroutine behind until the client closed: in the soak, 600 in
// ten minutes in the gateway's process.
func TestARefusedSubscriptionLeavesNothingBehind(t *testing.T) {
	d := e2e.Devnet(t, func(c *devnet.Config) { c.Providers = 0 })
	c, err := client.New(d.Node.RPC())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Fill the client's quota, then ask for more, again and again.
	for i := range 32 {
		if _, err := c.Subscribe(ctx, fmt.Sprintf("tm.event='Tx' AND filler%d.x EXISTS", i), 1); err != nil {
			t.Fatal(err)
		}
	}
	refused := func() {
		ch, err := c.Subscribe(ctx, "tm.event='Tx' AND extra.x EXISTS", 1)
		if err != nil {
			return
		}
		select {
		case _, open := <-ch:
			if open {
				t.Fatal("an event on a subscription beyond the limit")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a subscription beyond the node's limit was neither refused nor closed")
		}
	}
	refused()
	time.Sleep(100 * time.Millisecond)
	before := runtime.NumGoroutine()
	for range 50 {
		refused()
	}
	time.Sleep(100 * time.Millisecond)
	if after := runtime.NumGoroutine(); after > before+5 {
		t.Errorf("%d goroutines after 50 refused subscriptions, %d before", after, before)
	}
}
