// Command gateway measures what the gateway adds: the same requests sent
// straight to a provider and through the gateway (routing, API-key
// billing, receipt checking and its own receipt), in one run, and prints
// the throughput ratio and the added latency.
//
//	go run ./bench/gateway
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strings"

	"github.com/agoranet/agora/bench/internal/load"
	"github.com/agoranet/agora/internal/devnet"
)

func main() {
	n := flag.Int("requests", 600, "requests per round (per client count)")
	clientsFlag := flag.String("clients", "1,8", "concurrent clients, a run for each")
	tokens := flag.Int("max-tokens", 16, "tokens per answer")
	rounds := flag.Int("rounds", 5, "paired rounds (direct, gateway) per client count")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the first run through the gateway to this file (.1, .8: per client count)")
	flag.Parse()
	log.SetFlags(0)
	home, _ := os.MkdirTemp("", "agora-bench-gateway")
	defer os.RemoveAll(home)
	cfg := devnet.DefaultConfig(home)
	cfg.BasePort = 18656 // below the ephemeral range (32768-60999) and the tests' (20000-32699)
	cfg.Providers = 1
	cfg.Paid = false
	d, err := devnet.Start(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer d.Stop()
	body := fmt.Sprintf(`{"model":"agora/tiny-lm","messages":[{"role":"user","content":"ROMEO:"}],"max_tokens":%d,"seed":%%d}`, *tokens)
	// Enough idle connections for every client, so that neither side is
	// measured dialing.
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	ask := func(url, key string) func(int) {
		return func(i int) {
			req, _ := http.NewRequest(http.MethodPost, url+"/v1/chat/completions", strings.NewReader(fmt.Sprintf(body, i)))
			req.Header.Set("Content-Type", "application/json")
			if key != "" {
				req.Header.Set("Authorization", "Bearer "+key)
			}
			resp, err := hc.Do(req)
			if err != nil {
				log.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				log.Fatalf("%s: status %d", url, resp.StatusCode)
			}
		}
	}
	direct, viaGW := ask(d.Providers[0].URL(), ""), ask(d.Gateway.URL(), devnet.APIKey)
	err = load.Compare(load.Setup{Clients: *clientsFlag, Rounds: *rounds, N: *n, CPUProfile: *profile,
		Title: fmt.Sprintf("tiny-lm, %d tokens per answer", *tokens), Base: "straight to provider", Ours: "through the gateway",
		Ratio: "gateway/direct", Targets: "ratio goal >= 0.95, floor >= 0.93; added p50 goal <= 0.2 ms"}, direct, viaGW)
	if err != nil {
		log.Fatal(err)
	}
}
