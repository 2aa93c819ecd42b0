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
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
	for _, cs := range strings.Split(*clientsFlag, ",") {
		var clients int
		fmt.Sscan(cs, &clients)
		run(50, clients, direct)
		run(50, clients, viaGW)
		// Paired rounds: each gateway round is compared with the direct
		// round next to it (in alternating order), and the median of those
		// ratios is reported, so that a slow spell of a shared machine
		// lands on both sides of one pair instead of on one side of the
		// whole comparison.
		var ds, gs []result
		var ratios []float64
		for round := 0; round < *rounds; round++ {
			var d, g result
			through := func() result { return run(*n, clients, viaGW) }
			if *profile != "" && round == 0 {
				f, err := os.Create(fmt.Sprintf("%s.%d", *profile, clients))
				if err != nil {
					log.Fatal(err)
				}
				through = func() result {
					pprof.StartCPUProfile(f)
					defer f.Close()
					defer pprof.StopCPUProfile()
					return run(*n, clients, viaGW)
				}
			}
			if round%2 == 0 {
				d, g = run(*n, clients, direct), through()
			} else {
				g, d = through(), run(*n, clients, direct)
			}
			ds, gs = append(ds, d), append(gs, g)
			ratios = append(ratios, g.rate/d.rate)
		}
		a, b := median(ds), median(gs)
		sort.Float64s(ratios)
		fmt.Printf("\ntiny-lm, %d tokens per answer, %d concurrent client(s), no errors; medians of %d paired rounds\n", *tokens, clients, *rounds)
		fmt.Printf("%-22s %10s %10s %10s\n", "", "answers/s", "p50 ms", "p99 ms")
		fmt.Printf("%-22s %10.0f %10.3f %10.3f\n", "straight to provider", a.rate, ms(a.p50), ms(a.p99))
		fmt.Printf("%-22s %10.0f %10.3f %10.3f\n", "through the gateway", b.rate, ms(b.p50), ms(b.p99))
		fmt.Printf("ratio gateway/direct: %.3f (goal >= 0.95, floor >= 0.93); added p50 %.3f ms (goal <= 0.2 ms), p99 %.3f ms\n",
			ratios[len(ratios)/2], ms(b.p50-a.p50), ms(b.p99-a.p99))
		fmt.Printf("  each pair's ratio: %s\n", fmtRatios(ratios))
	}
}

func fmtRatios(rs []float64) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, fmt.Sprintf("%.3f", r))
	}
	return strings.Join(parts, " ")
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

// run sends n requests from clients goroutines, each one after another;
// any error ends the benchmark (the run is for zero errors).
func run(n, clients int, f func(int)) result {
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				t := time.Now()
				f(i)
				lat[i] = time.Since(t)
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return result{rate: float64(n) / el.Seconds(), p50: lat[n/2], p99: lat[n*99/100]}
}
