package sdk_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agoranet/agora/x402"

	"github.com/agoranet/agora/internal/chain/channel/channelpb"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/devnet"
	"github.com/agoranet/agora/internal/e2e"
	"github.com/agoranet/agora/internal/openai"
	"github.com/agoranet/agora/internal/receipt"
	"github.com/agoranet/agora/sdk"
)

// TestConcurrentPaymentsOnOneChannel: many requests in flight at once on
// one payer's channel, half of them streams, none refused. Before, the
// payer signed each voucher for the charges it knew of plus the request's
// maximum, forgetting the maxima of the requests still in flight (a
// stream's charge arrives only in its trailer), so the provider answered
// 402 "voucher for N; channel C has N charged or in flight" and, after two
// tries, the caller got it. Every answer's price is in the payer's books,
// and the provider's charges are exactly those prices.
func TestConcurrentPaymentsOnOneChannel(t *testing.T) {
	d := e2e.Devnet(t, func(c *devnet.Config) { c.Paid = true })
	alice, _ := d.Keyring.Get("alice")
	w, err := sdk.NewWallet(alice.Private, d.Node.RPC())
	if err != nil {
		t.Fatal(err)
	}
	payer := sdk.NewPayer(w, sdk.Budget{Denom: coin.Stable, Max: 10_000_000, Deposit: 1_000_000})
	hc := &http.Client{Transport: payer, Timeout: time.Minute}
	url := d.Providers[0].URL() + "/v1/chat/completions"

	var mu sync.Mutex
	var priced uint64
	var failures []string
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				stream := (g+i)%2 == 0
				body := fmt.Sprintf(`{"model":"agora/tiny-lm","messages":[{"role":"user","content":"KING:"}],"max_tokens":24,"seed":%d,"stream":%t}`, g*1000+i, stream)
				resp, err := hc.Post(url, "application/json", strings.NewReader(body))
				if err != nil {
					mu.Lock()
					failures = append(failures, err.Error())
					mu.Unlock()
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				enc := resp.Header.Get(receipt.Header)
				if stream {
					_, enc = openai.SplitStream(b)
				}
				r, rerr := receipt.Decode(enc)
				mu.Lock()
				switch {
				case resp.StatusCode != http.StatusOK:
					failures = append(failures, fmt.Sprintf("%d %s", resp.StatusCode, firstLine(b)))
				case rerr != nil:
					failures = append(failures, "no receipt: "+rerr.Error())
				default:
					priced += r.Price.Amount
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Errorf("%d of 200 requests failed; the first: %s", len(failures), failures[0])
	}
	if got := payer.Spent(); got != priced {
		t.Errorf("the payer's books say %d spent, the receipts %d", got, priced)
	}
	ids := payer.Channels()
	if len(ids) != 1 {
		t.Fatalf("the payer opened %d channels for one provider, want 1", len(ids))
	}

	// A provider whose 402 claims more charged or in flight than the
	// payer's books allow is not paid; the refusal is not a budget one,
	// so a router fails over.
	resp, err := http.Post(url, "application/json", strings.NewReader(`{"model":"agora/tiny-lm","messages":[{"role":"user","content":"x"}],"max_tokens":24}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var pr x402.PaymentRequired
	if err := x402.Decode(resp.Header.Get(x402.HeaderRequired), &pr); err != nil {
		t.Fatal(err)
	}
	pr.Accepts[0].Extra["channelState"] = x402.ChannelState{ChannelID: strconv.FormatUint(ids[0], 10), ChargedCumulativeAmount: strconv.FormatUint(priced+500_000, 10)}
	greedy, _ := x402.Encode(pr)
	liar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(x402.HeaderRequired, greedy)
		w.WriteHeader(http.StatusPaymentRequired)
	}))
	defer liar.Close()
	resp, err = hc.Post(liar.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"agora/tiny-lm","messages":[{"role":"user","content":"x"}],"max_tokens":24}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	perr := sdk.Refused(resp, nil)
	if resp.StatusCode != http.StatusPaymentRequired || perr == nil || errors.Is(perr, sdk.ErrBudget) || !strings.Contains(perr.Error(), "books") {
		t.Errorf("a 402 beyond the books: status %d, refusal %v; want a non-budget refusal", resp.StatusCode, perr)
	}

	c, _ := client.New(d.Node.RPC())
	defer c.Close()
	e2e.Eventually(t, 30*time.Second, "the provider claims every charge", func() error {
		ch, err := client.Ask(context.Background(), c, channelpb.QueryChannel, &channelpb.QueryChannelRequest{Id: ids[0]})
		if err != nil {
			return err
		}
		if ch.Claimed != priced {
			return fmt.Errorf("claimed %d, receipts say %d", ch.Claimed, priced)
		}
		return nil
	})
}

func firstLine(b []byte) string {
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	if sc.Scan() {
		return sc.Text()
	}
	return ""
}
