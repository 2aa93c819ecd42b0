package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agoranet/agora/internal/chain/channel/channelpb"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/devnet"
	"github.com/agoranet/agora/internal/e2e"
	"github.com/agoranet/agora/internal/openai"
	"github.com/agoranet/agora/internal/receipt"
	"github.com/agoranet/agora/sdk"
)

// buyer is alice on a paid devnet, with a chain client and a lying proxy
// in front of the first provider.
type buyer struct {
	t     *testing.T
	d     *devnet.Devnet
	w     *sdk.Wallet
	chain *client.Client
	liar  *e2e.Liar
}

func newBuyer(t *testing.T) *buyer {
	d := e2e.Devnet(t, func(c *devnet.Config) { c.Paid = true; c.Providers = 1 })
	alice, _ := d.Keyring.Get("alice")
	w, err := sdk.NewWallet(alice.Private, d.Node.RPC())
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(d.Node.RPC())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	pk, _ := d.Keyring.Get("provider1")
	return &buyer{t: t, d: d, w: w, chain: c, liar: e2e.NewLiar(t, d.Providers[0].URL(), pk.Private)}
}

// chat asks url for 20 tokens (each answer costs 100 + 20 = 120, its
// maximum) through payer and returns the status, the body and the payer's
// refusal, if any.
func (b *buyer) chat(payer *sdk.Payer, url string, seed int, stream bool) (int, []byte, error) {
	body := fmt.Sprintf(`{"model":"agora/tiny-lm","messages":[{"role":"user","content":"ROMEO:"}],"max_tokens":20,"seed":%d,"stream":%t}`, seed, stream)
	resp, err := (&http.Client{Transport: payer, Timeout: time.Minute}).Post(url+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil { // refused before sending: a known price it will not pay
		return 0, nil, sdk.Refused(nil, err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return resp.StatusCode, got, sdk.Refused(resp, nil)
}

// claimed is what the chain paid out of the payer's channels.
func (b *buyer) claimed(payer *sdk.Payer) uint64 {
	var n uint64
	for _, id := range payer.Channels() {
		ch, err := client.Ask(context.Background(), b.chain, channelpb.QueryChannel, &channelpb.QueryChannelRequest{Id: id})
		if err != nil {
			b.t.Fatal(err)
		}
		n += ch.Claimed
	}
	return n
}

// TestALyingProviderTakesOnlyWhatWasInFlight is finding 1: the payer took
// a provider's word for a channel's charged total and for each charge, so
// a provider that said "you already owe deposit − price" got a voucher for
// the whole deposit, and one that reported charges of 1 kept the budget
// untouched (four requests priced 120, a budget of 10,000: 20,000 claimed,
// Spent 4). Now a charge is checked against the receipt, and the payee that
// lied is paid no more: it can claim the maximum of the one request in
// flight when it lied, and nothing else.
func TestALyingProviderTakesOnlyWhatWasInFlight(t *testing.T) {
	b := newBuyer(t)
	payer := sdk.NewPayer(b.w, sdk.Budget{Denom: coin.Stable, Max: 10_000, Deposit: 5_000})
	b.liar.State = func(uint64) uint64 { return 5_000 - 120 }
	b.liar.Charge = func(uint64) uint64 { return 1 }
	var ok, refused int
	for i := range 4 {
		status, _, perr := b.chat(payer, b.liar.URL, i, false)
		switch {
		case status == http.StatusOK:
			ok++
		case perr != nil && !errors.Is(perr, sdk.ErrBudget) && strings.Contains(perr.Error(), "lied"):
			refused++
		default:
			t.Fatalf("request %d: status %d, refusal %v", i, status, perr)
		}
	}
	if ok != 1 || refused != 3 {
		t.Errorf("%d answered, %d refused; want the first answered and the rest refused", ok, refused)
	}
	if err := b.liar.ClaimAll(context.Background(), b.chain); err != nil {
		t.Fatal(err)
	}
	if got := b.claimed(payer); got != 120 {
		t.Errorf("the liar claimed %d; the one request in flight when it lied allowed 120", got)
	}
	if payer.Spent() != 120 || payer.Committed() != 120 {
		t.Errorf("spent %d, committed %d; want 120 and 120 (the lie is booked at its maximum)", payer.Spent(), payer.Committed())
	}
}

// TestAPriceAboveTheRegisteredOneIsNotPaid: the 402's amount was never
// compared with the price the provider registered on chain. Now a price
// above it is refused before anything is signed, and the refusal is the
// provider's failure (a router tries another), not a budget one.
func TestAPriceAboveTheRegisteredOneIsNotPaid(t *testing.T) {
	b := newBuyer(t)
	payer := sdk.NewPayer(b.w, sdk.Budget{Denom: coin.Stable, Max: 100_000})
	b.liar.Price = func(n uint64) uint64 { return n * 10 }
	status, _, perr := b.chat(payer, b.liar.URL, 1, false)
	if status != http.StatusPaymentRequired || perr == nil || errors.Is(perr, sdk.ErrBudget) || !strings.Contains(perr.Error(), "registered") {
		t.Fatalf("status %d, refusal %v; want a non-budget refusal naming the registered price", status, perr)
	}
	if len(b.liar.Best()) != 0 || payer.Committed() != 0 || len(payer.Channels()) != 0 {
		t.Errorf("the payer signed %v, committed %d, opened %d channels; want nothing", b.liar.Best(), payer.Committed(), len(payer.Channels()))
	}
}

// TestAReceiptThatUndercountsItsTokensIsALie: the charge matches the
// receipt's price, but the receipt's own usage makes the registered price
// lower: the provider overcharged, and is paid no more.
func TestAReceiptThatUndercountsItsTokensIsALie(t *testing.T) {
	b := newBuyer(t)
	payer := sdk.NewPayer(b.w, sdk.Budget{Denom: coin.Stable, Max: 100_000})
	b.liar.Receipt = func(r *receipt.Receipt) { r.Usage.CompletionTokens = 5 }
	if status, _, _ := b.chat(payer, b.liar.URL, 1, false); status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	_, _, perr := b.chat(payer, b.liar.URL, 2, false)
	if perr == nil || !strings.Contains(perr.Error(), "registered price makes that 105") {
		t.Errorf("after an overcharge the payer paid again: refusal %v", perr)
	}
}

// TestStreamedChargesCount is finding 2: a stream's charge comes in its
// trailer, which the payer never read, so ten streamed answers left Spent
// at 0 against a budget of 500, and the provider claimed 1,200. Now each
// streamed answer is booked from its trailer (checked against the
// receipt there), and the budget stops the payer at what it allows.
func TestStreamedChargesCount(t *testing.T) {
	b := newBuyer(t)
	payer := sdk.NewPayer(b.w, sdk.Budget{Denom: coin.Stable, Max: 500})
	var answered, over int
	var priced uint64
	for i := range 10 {
		status, body, perr := b.chat(payer, b.d.Providers[0].URL(), i, true)
		switch {
		case status == http.StatusOK:
			_, enc := openai.SplitStream(body)
			r, err := receipt.Decode(enc)
			if err != nil {
				t.Fatalf("stream %d: %v", i, err)
			}
			priced += r.Price.Amount
			answered++
		case errors.Is(perr, sdk.ErrBudget):
			over++
		default:
			t.Fatalf("stream %d: status %d, refusal %v", i, status, perr)
		}
	}
	if answered != 4 || over != 6 {
		t.Errorf("%d streams answered, %d refused by the budget; a budget of 500 pays four of 120", answered, over)
	}
	if payer.Spent() != priced || payer.Committed() > 500 {
		t.Errorf("spent %d (the receipts say %d), committed %d of 500", payer.Spent(), priced, payer.Committed())
	}
	e2e.Eventually(t, 30*time.Second, "the provider claims the streams", func() error {
		if got := b.claimed(payer); got != priced {
			return fmt.Errorf("claimed %d, receipts %d", got, priced)
		}
		return nil
	})

	// A streamed charge that disagrees with the receipt in the same
	// trailer is a lie like any other.
	b.liar.Charge = func(n uint64) uint64 { return n - 1 }
	liarPayer := sdk.NewPayer(b.w, sdk.Budget{Denom: coin.Stable, Max: 10_000})
	if status, _, _ := b.chat(liarPayer, b.liar.URL, 100, true); status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	if _, _, perr := b.chat(liarPayer, b.liar.URL, 101, true); perr == nil || !strings.Contains(perr.Error(), "lied") {
		t.Errorf("a lying stream's provider was paid again: %v", perr)
	}
}

// TestSpentChannelsAreReclaimed is the rest of finding 2: a full channel
// was replaced and forgotten, its rest never reclaimed. Now Reclaim
// settles every expired channel of the payer's.
func TestSpentChannelsAreReclaimed(t *testing.T) {
	b := newBuyer(t)
	payer := sdk.NewPayer(b.w, sdk.Budget{Denom: coin.Stable, Max: 10_000, Deposit: 300, ExpiryBlocks: 50})
	for i := range 3 { // two answers fill a channel of 300; the third opens another
		if status, body, _ := b.chat(payer, b.d.Providers[0].URL(), i, false); status != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, status, body)
		}
	}
	ids := payer.Channels()
	if len(ids) != 2 {
		t.Fatalf("channels %v, want two", ids)
	}
	alice, _ := b.d.Keyring.Get("alice")
	before, _ := b.chain.Balance(context.Background(), alice.Address(), coin.Stable)
	var back uint64
	e2e.Eventually(t, 60*time.Second, "both channels expire and are reclaimed", func() error {
		n, err := payer.Reclaim(context.Background())
		back += n
		if err != nil {
			return err
		}
		for _, c := range payer.Books() {
			if !c.Reclaimed {
				return fmt.Errorf("channel %d (expires at %d) not reclaimed yet", c.ID, c.ExpiresAt)
			}
		}
		return nil
	})
	after, _ := b.chain.Balance(context.Background(), alice.Address(), coin.Stable)
	// 600 deposited, 360 charged for three answers: 240 comes back.
	if back != 240 || after-before != 240 {
		t.Errorf("reclaimed %d, balance rose by %d; want 240", back, after-before)
	}
}

// TestAJournalCarriesTheBooksAcrossRuns: a payer on a journal continues
// the last one's channel, accepts the provider's account of it up to what
// the journal reserved, and its books and the provider's agree.
func TestAJournalCarriesTheBooksAcrossRuns(t *testing.T) {
	b := newBuyer(t)
	path := filepath.Join(t.TempDir(), "payer.journal")
	budget := sdk.Budget{Denom: coin.Stable, Max: 10_000, Deposit: 5_000}
	var ids []uint64
	for run := range 3 {
		payer, err := sdk.OpenPayer(b.w, budget, path)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if status, body, perr := b.chat(payer, b.d.Providers[0].URL(), run*10+i, false); status != http.StatusOK {
				t.Fatalf("run %d request %d: %d %s %v", run, i, status, body, perr)
			}
		}
		ids = payer.Channels()
		payer.Close()
	}
	if len(ids) != 1 {
		t.Errorf("three runs opened channels %v; want one, continued", ids)
	}
	e2e.Eventually(t, 30*time.Second, "the provider claims nine answers", func() error {
		ch, err := client.Ask(context.Background(), b.chain, channelpb.QueryChannel, &channelpb.QueryChannelRequest{Id: ids[0]})
		if err != nil {
			return err
		}
		if ch.Claimed != 9*120 {
			return fmt.Errorf("claimed %d, want %d", ch.Claimed, 9*120)
		}
		return nil
	})
}

// TestChannelsNearExpiryAreReplaced is finding 4: the payer kept paying
// on a channel its provider refused as expiring, so every request failed
// once a channel came near its end. Now the payer replaces a channel
// before the provider's expiry margin (and at once when refused for it),
// and no request fails.
func TestChannelsNearExpiryAreReplaced(t *testing.T) {
	b := newBuyer(t)
	// 35 blocks of 100 ms, of which the provider's margin takes 20.
	payer := sdk.NewPayer(b.w, sdk.Budget{Denom: coin.Stable, Max: 1_000_000, Deposit: 10_000, ExpiryBlocks: 35})
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		if status, body, perr := b.chat(payer, b.d.Providers[0].URL(), i, i%2 == 0); status != http.StatusOK {
			t.Fatalf("request %d on channels %v: %d %s %v", i, payer.Channels(), status, body, perr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := len(payer.Channels()); n < 2 {
		t.Errorf("%d channels in 5 s of channels that last 1.5 s", n)
	}
}

// TestAnUnsettledAnswerIsALie (review): a provider that left a whole
// answer's charge unknown (no PAYMENT-RESPONSE) was never caught, and could
// later have its account of the channel believed up to the maxima of all
// such answers. A registered provider settles a whole answer before it
// sends it, so one without a settlement is a lie, booked at its maximum.
func TestAnUnsettledAnswerIsALie(t *testing.T) {
	b := newBuyer(t)
	payer := sdk.NewPayer(b.w, sdk.Budget{Denom: coin.Stable, Max: 100_000})
	b.liar.Unsettled = true
	if status, _, _ := b.chat(payer, b.liar.URL, 1, false); status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	if _, _, perr := b.chat(payer, b.liar.URL, 2, false); perr == nil || !strings.Contains(perr.Error(), "no settlement") {
		t.Errorf("after an unsettled answer the payer paid again: %v", perr)
	}
	if payer.Spent() != 120 || payer.Committed() != 120 {
		t.Errorf("spent %d, committed %d; want the one answer's maximum, 120", payer.Spent(), payer.Committed())
	}
}

// TestReclaimRunsBesideRequests (review): Reclaim took the payer's lock
// and then each channel's, the order allocate takes them the other way
// round, so a gateway reclaiming while it paid could hang for good.
func TestReclaimRunsBesideRequests(t *testing.T) {
	b := newBuyer(t)
	payer := sdk.NewPayer(b.w, sdk.Budget{Denom: coin.Stable, Max: 10_000_000, Deposit: 1_000_000})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 25 {
					b.chat(payer, b.d.Providers[0].URL(), w*100+i, false)
				}
			}()
		}
		stop := make(chan struct{})
		go func() {
			for {
				select {
				case <-stop:
					return
				default:
					payer.Reclaim(context.Background())
					payer.Books()
				}
			}
		}()
		wg.Wait()
		close(stop)
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("requests and Reclaim deadlocked")
	}
}

// TestATotalAboveTheVouchersIsALie (review): a payee's charged total was
// believed up to what unsettled requests could explain, which could be
// more than any voucher signed. No honest payee has charged more than the
// best voucher it holds.
func TestATotalAboveTheVouchersIsALie(t *testing.T) {
	b := newBuyer(t)
	payer := sdk.NewPayer(b.w, sdk.Budget{Denom: coin.Stable, Max: 100_000})
	b.liar.State = func(n uint64) uint64 { return n + 1000 }
	if status, _, _ := b.chat(payer, b.liar.URL, 1, false); status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	if _, _, perr := b.chat(payer, b.liar.URL, 2, false); perr == nil || !strings.Contains(perr.Error(), "no voucher above") {
		t.Errorf("after a total above its vouchers the payee was paid again: %v", perr)
	}
	if payer.Committed() != 120 {
		t.Errorf("committed %d; want the one answer's 120", payer.Committed())
	}
}
