// Command pay measures what payments cost a provider, in one run: answers
// per second for free against paid (x402 vouchers over a channel) from 1
// and from 8 concurrent clients, in paired rounds, the
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
	"strings"
	"time"

	"github.com/agoranet/agora/bench/internal/load"
	"github.com/agoranet/agora/internal/chain/channel/channelpb"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/devnet"
	"github.com/agoranet/agora/internal/model"
	"github.com/agoranet/agora/internal/provider"
	"github.com/agoranet/agora/sdk"
)

func main() {
	n := flag.Int("requests", 1000, "requests per round")
	clientsFlag := flag.String("clients", "1,8", "concurrent clients, a run for each")
	rounds := flag.Int("rounds", 5, "paired rounds (free, paid) per client count")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the first paid round to this file (.1, .8: per client count)")
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
	freeAsk, paidAsk := ask(freeClient, free.URL()), ask(paidClient, paid.URL())
	err = load.Compare(load.Setup{Clients: *clientsFlag, Rounds: *rounds, N: *n, CPUProfile: *profile,
		Title: fmt.Sprintf("tiny-lm, %d tokens per answer", *tokens), Base: "free (baseline)", Ours: "paid (x402 voucher)",
		Ratio: "paid/free", Targets: "ratio goal >= 0.95, floor >= 0.9; added p50 goal <= 0.2 ms, floor <= 0.3 ms"}, freeAsk, paidAsk)
	if err != nil {
		log.Fatal(err)
	}

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
