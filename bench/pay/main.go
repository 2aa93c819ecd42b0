// Command pay measures what payments cost a provider, in one run: answers
// per second for free against paid (x402 vouchers over a channel), the
// latency a paid request adds, voucher verifications per second on one
// core, and how many vouchers one claim transaction settles.
//
//	go run ./bench/pay
package main

import (
	"context"
	"crypto/ed25519"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/agoranet/agora/internal/chain/channel/channelpb"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/devnet"
	"github.com/agoranet/agora/internal/model"
	"github.com/agoranet/agora/internal/provider"
	"github.com/agoranet/agora/sdk"
)

func main() {
	n := flag.Int("requests", 2000, "requests per measurement")
	tokens := flag.Int("max-tokens", 16, "tokens per answer (small, so payment overhead shows)")
	flag.Parse()
	log.SetFlags(0)
	home, _ := os.MkdirTemp("", "agora-bench-pay")
	defer os.RemoveAll(home)

	cfg := devnet.DefaultConfig(home)
	cfg.BasePort = 17656 // below the ephemeral range (32768-60999) and the tests' (20000-32699)
	cfg.Providers = 1
	cfg.ClaimInterval = time.Hour // everything is claimed at once, at shutdown
	d, err := devnet.Start(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer d.Stop()
	paid := d.Providers[0]

	// The same model for free, from a provider without a payment gate.
	lm, _ := model.Lookup(model.TinyLMName)
	_, key, _ := ed25519.GenerateKey(nil)
	fc := provider.DefaultConfig()
	fc.Listen, fc.Key, fc.ChainID, fc.Offers = "127.0.0.1:0", key, devnet.ChainID, []provider.Offer{{Model: lm}}
	free, err := provider.New(fc)
	if err != nil {
		log.Fatal(err)
	}
	if err := free.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	defer free.Shutdown(context.Background())

	alice, _ := d.Keyring.Get("alice")
	w, err := sdk.NewWallet(alice.Private, d.Node.RPC())
	if err != nil {
		log.Fatal(err)
	}
	payer := sdk.NewPayer(w, sdk.Budget{Denom: coin.Stable, Max: 1 << 40, Deposit: 1 << 30})
	paidClient := &http.Client{Transport: payer}
	freeClient := &http.Client{}
	body := fmt.Sprintf(`{"model":"agora/tiny-lm","messages":[{"role":"user","content":"ROMEO:"}],"max_tokens":%d,"seed":%%d}`, *tokens)
	ask := func(c *http.Client, url string) func(i int) {
		return func(i int) {
			resp, err := c.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(fmt.Sprintf(body, i)))
			if err != nil {
				log.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				log.Fatalf("status %d", resp.StatusCode)
			}
		}
	}
	ask(paidClient, paid.URL())(0) // opens the channel outside the measurement
	// Sequential requests, alternating rounds; the median round counts.
	var fr, pr []result
	for round := 0; round < 3; round++ {
		fr = append(fr, run(*n/3, ask(freeClient, free.URL())))
		pr = append(pr, run(*n/3, ask(paidClient, paid.URL())))
	}
	f, p := median(fr), median(pr)
	fmt.Printf("\ntiny-lm, %d tokens per answer, sequential requests\n", *tokens)
	fmt.Printf("%-26s %10s %10s %10s\n", "", "answers/s", "p50 ms", "p99 ms")
	fmt.Printf("%-26s %10.0f %10.3f %10.3f\n", "free (baseline)", f.rate, ms(f.p50), ms(f.p99))
	fmt.Printf("%-26s %10.0f %10.3f %10.3f\n", "paid (x402 voucher)", p.rate, ms(p.p50), ms(p.p99))
	fmt.Printf("ratio paid/free: %.3f (target >= 0.95); added p50 %.3f ms, p99 %.3f ms (target <= 0.2 ms)\n",
		p.rate/f.rate, ms(p.p50-f.p50), ms(p.p99-f.p99))

	// Voucher verification on one core.
	ch := &channelpb.Channel{Id: 1, PayerKey: alice.Public()}
	vs := make([]*channelpb.Voucher, 1000)
	for i := range vs {
		vs[i] = channelpb.SignVoucher(alice.Private, devnet.ChainID, 1, uint64(i+1))
	}
	prev := runtime.GOMAXPROCS(1)
	start := time.Now()
	const verifies = 20000
	for i := 0; i < verifies; i++ {
		if err := channelpb.VerifyVoucher(devnet.ChainID, ch, vs[i%len(vs)], 0); err != nil {
			log.Fatal(err)
		}
	}
	vps := verifies / time.Since(start).Seconds()
	runtime.GOMAXPROCS(prev)
	fmt.Printf("voucher verifications on one core: %.0f/s (target >= 20000)\n", vps)

	// One claim: stop the provider, which claims everything at once.
	ids := payer.Channels()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := paid.Shutdown(ctx); err != nil {
		log.Fatal(err)
	}
	c, _ := client.New(d.Node.RPC())
	an, err := client.Ask(ctx, c, channelpb.QueryAnchors, &channelpb.QueryAnchorsRequest{ChannelId: ids[0]})
	if err != nil {
		log.Fatal(err)
	}
	var total, largest uint64
	for _, a := range an.Anchors {
		total += a.Count
		largest = max(largest, a.Count)
	}
	fmt.Printf("claims: %d vouchers settled by %d claim txs; the largest settled %d in one tx (target >= 1000)\n", total, len(an.Anchors), largest)
}

type result struct {
	rate     float64
	p50, p99 time.Duration
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func median(rs []result) result {
	sort.Slice(rs, func(i, j int) bool { return rs[i].rate < rs[j].rate })
	return rs[len(rs)/2]
}

func run(n int, f func(i int)) result {
	lat := make([]time.Duration, n)
	start := time.Now()
	for i := 0; i < n; i++ {
		t := time.Now()
		f(i)
		lat[i] = time.Since(t)
	}
	el := time.Since(start)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return result{rate: float64(n) / el.Seconds(), p50: lat[n/2], p99: lat[n*99/100]}
}
