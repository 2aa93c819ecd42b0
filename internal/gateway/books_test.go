package gateway_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/provider/providerpb"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/devnet"
	"github.com/agoranet/agora/internal/e2e"
	"github.com/agoranet/agora/internal/gateway"
	"github.com/agoranet/agora/internal/keyring"
	"github.com/agoranet/agora/internal/ledger"
	"github.com/agoranet/agora/internal/openai"
	"github.com/agoranet/agora/internal/receipt"
	"github.com/agoranet/agora/internal/route"
)

// TestBooksBalanceAgainstALyingProvider is finding 6 of the buyer-and-
// seller review: a client was billed the provider's self-signed receipt
// price, never compared with what the gateway's payer was charged, so a
// provider (and a client in collusion with it) could make the gateway pay
// more than it billed. Here one of two providers overcharges the gateway
// (its receipts say less than its PAYMENT-RESPONSE) under concurrent load,
// streams and whole answers: clients are billed the receipts' prices, the
// excess is the gateway's "overcharge" cost, the liar is paid no more
// after it is caught, no request fails, and the books balance to the unit
// per provider (paid = billed + costs) and per key (debited = what the
// gateway's receipts billed).
func TestBooksBalanceAgainstALyingProvider(t *testing.T) {
	w := newLiarWorld(t, 2)
	// Its receipts say 10 less than it charges (and than the voucher
	// allows): the client must pay the receipt, the gateway bears the rest.
	w.liar.Receipt = func(r *receipt.Receipt) { r.Price.Amount -= 10 }
	ctx, gw, l, key, pk := context.Background(), w.gw, w.ledger, w.key, w.provider
	const credit = liarCredit

	billed, _ := load(t, []string{gw.URL()}, key, 8, 15, func(i int) bool { return i%2 == 1 })
	e2e.Eventually(t, 10*time.Second, "the key is debited what the gateway's receipts billed", func() error {
		a, err := l.Balance(ctx, key)
		if err != nil {
			return err
		}
		if a.Debited != billed || a.Balance != credit-billed {
			return fmt.Errorf("debited %d, balance %d; the receipts billed %d", a.Debited, a.Balance, billed)
		}
		return nil
	})
	books, err := gw.Books(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var total uint64
	for _, b := range books {
		var costs uint64
		for _, n := range b.Costs {
			costs += n
		}
		if b.Paid != b.Billed+costs {
			t.Errorf("provider %s: paid %d, billed %d + costs %v", b.Provider, b.Paid, b.Billed, b.Costs)
		}
		if b.Provider == pk.Address().String() && (b.Costs["overcharge"] == 0 || b.Billed > 2*124*8) {
			t.Errorf("the liar: %+v; want an overcharge booked, and little billed after it was caught", b)
		}
		total += b.Billed
	}
	if total != billed {
		t.Errorf("the providers' books say %d billed, the receipts %d", total, billed)
	}
}

// load sends workers × each chat requests with key, spread over urls
// (streamed where stream says), fails the test for any that fails, and
// returns the sums of the prices in the gateway's receipts (what the
// clients were billed) and in the providers' receipts.
func load(t *testing.T, urls []string, key string, workers, each int, stream func(i int) bool) (billed, priced uint64) {
	t.Helper()
	var mu sync.Mutex
	var failures []string
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				body := fmt.Sprintf(`{"model":"agora/tiny-lm","messages":[{"role":"user","content":"KING:"}],"max_tokens":16,"seed":%d,"stream":%t}`, w*100+i, stream(i))
				req, _ := http.NewRequest(http.MethodPost, urls[w%len(urls)]+"/v1/chat/completions", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+key)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					mu.Lock()
					failures = append(failures, err.Error())
					mu.Unlock()
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				gw, prov := resp.Header.Get(receipt.GatewayHeader), resp.Header.Get(receipt.Header)
				if stream(i) {
					gw = resp.Trailer.Get(receipt.GatewayHeader)
					_, prov = openai.SplitStream(b)
				}
				g, gerr := receipt.Decode(gw)
				p, perr := receipt.Decode(prov)
				mu.Lock()
				if resp.StatusCode != 200 || gerr != nil || perr != nil {
					failures = append(failures, fmt.Sprintf("%d %v %v %.200s", resp.StatusCode, gerr, perr, b))
				} else {
					billed += g.Price.Amount
					priced += p.Price.Amount
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Errorf("%d of %d requests failed; the first: %s", len(failures), workers*each, failures[0])
	}
	return billed, priced
}

// TestEventsAfterTheFinalReceiptAreDropped is finding 7 of the buyer-and-
// seller review: events a provider appended after its final receipt
// passed every check and reached the client. The gateway now relays
// nothing after a final receipt, and scores the provider down.
func TestEventsAfterTheFinalReceiptAreDropped(t *testing.T) {
	w := newLiarWorld(t, 1)
	w.liar.Append = "data: {\"choices\":[{\"delta\":{\"content\":\"EVIL\"}}]}\n\n"
	gw, key := w.gw, w.key
	req, _ := http.NewRequest(http.MethodPost, gw.URL()+"/v1/chat/completions", strings.NewReader(`{"model":"agora/tiny-lm","messages":[{"role":"user","content":"KING:"}],"max_tokens":16,"stream":true}`))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.Contains(string(b), "EVIL") {
		t.Fatalf("status %d; the client got: %s", resp.StatusCode, b)
	}
	if _, enc := openai.SplitStream(b); enc == "" {
		t.Errorf("the stream lost its receipt: %s", b)
	}
}

// liarWorld is a paid devnet whose registry sends the gateway under test
// to a lying proxy (e2e.Liar) in front of provider1, and an API key with
// liarCredit on that gateway.
type liarWorld struct {
	liar     *e2e.Liar
	gw       *gateway.Server
	ledger   *ledger.Ledger
	key      string
	provider *keyring.Key
}

const liarCredit = 1_000_000

func newLiarWorld(t *testing.T, providers int) *liarWorld {
	t.Helper()
	d := e2e.Devnet(t, func(c *devnet.Config) { c.Providers = providers })
	ctx := context.Background()
	c, err := client.New(d.Node.RPC())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	pk, _ := d.Keyring.Get("provider1")
	w := &liarWorld{liar: e2e.NewLiar(t, d.Providers[0].URL(), pk.Private), provider: pk}
	if _, err := c.Submit(ctx, pk, "", &providerpb.MsgRegisterProvider{Operator: pk.Address().String(), Endpoint: w.liar.URL}); err != nil {
		t.Fatal(err)
	}
	bob, _ := d.Keyring.Get("bob")
	rc := route.DefaultConfig()
	rc.Refresh = time.Second
	home := t.TempDir()
	if w.gw, err = gateway.Start(ctx, gateway.Config{Listen: "127.0.0.1:0", Key: bob.Private, ChainID: devnet.ChainID, Chain: c, NodeURL: d.Node.RPC(),
		Home: home, Denom: coin.Stable, Spend: 10_000_000, Deposit: 100_000, Route: rc}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.gw.Shutdown(context.Background()) })
	if w.ledger, err = gateway.OpenLedger(ctx, gateway.Config{Home: home}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.ledger.Close() })
	if w.key, _, err = w.ledger.CreateKey(ctx, coin.Stable, liarCredit); err != nil {
		t.Fatal(err)
	}
	return w
}
