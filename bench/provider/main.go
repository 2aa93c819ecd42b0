// Command provider measures tiny-lm answers per second and latency through
// the provider's HTTP API (JSON parsing, receipt signing and all) against
// calling the same model in-process, in one run, and prints the ratio; and
// tiny-lm's tokens/s and digits-mlp's inferences/s on one core.
//
//	go run ./bench/provider
package main

import (
	"context"
	"crypto/ed25519"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/agoranet/agora/internal/model"
	"github.com/agoranet/agora/internal/provider"
)

func main() {
	requests := flag.Int("requests", 600, "requests per measurement")
	workers := flag.Int("workers", 0, "concurrent clients (0: 1, then two per core)")
	tokens := flag.Int("max-tokens", 64, "tokens per answer")
	flag.Parse()
	log.SetFlags(0)

	lm, err := model.Lookup(model.TinyLMName)
	if err != nil {
		log.Fatal(err)
	}
	prompt := "ROMEO:\n\n"
	body := fmt.Sprintf(`{"model":"agora/tiny-lm","messages":[{"role":"user","content":"ROMEO:"}],"max_tokens":%d,"temperature":0.8,"seed":%%d}`, *tokens)

	// In-process: the model alone.
	directF := func(i int) error {
		_, err := lm.LM.Generate([]byte(prompt), *tokens, 800, uint64(i))
		return err
	}

	// Through HTTP on loopback: a real provider, a real client.
	_, key, _ := ed25519.GenerateKey(nil)
	cfg := provider.DefaultConfig()
	cfg.Listen, cfg.Key, cfg.ChainID = "127.0.0.1:0", key, "bench"
	cfg.Offers = []provider.Offer{{Model: lm, PricePerRequest: 1, PricePer1KTokens: 10}}
	s, err := provider.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *workers}}
	url := s.URL() + "/v1/chat/completions"
	httpF := func(i int) error {
		resp, err := hc.Post(url, "application/json", strings.NewReader(fmt.Sprintf(body, i)))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return err
		}
		if resp.StatusCode != 200 || resp.Header.Get("Agora-Receipt") == "" {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	counts := []int{1, 2 * runtime.NumCPU()} // latency alone; then enough load to keep every core busy
	if *workers > 0 {
		counts = []int{*workers}
	}
	for _, w := range counts {
		// Alternate the two, three rounds each after a warm-up, and keep
		// each one's median round: the machine's speed drifts between runs.
		run(*requests/4, w, directF)
		run(*requests/4, w, httpF)
		var ds, hs []result
		for round := 0; round < 3; round++ {
			ds = append(ds, run(*requests, w, directF))
			hs = append(hs, run(*requests, w, httpF))
		}
		direct, viaHTTP := median(ds), median(hs)
		fmt.Printf("\ntiny-lm, %d tokens per answer, %d requests, %d concurrent clients\n", *tokens, *requests, w)
		fmt.Printf("%-24s %10s %10s %10s\n", "", "answers/s", "p50 ms", "p99 ms")
		for _, r := range []struct {
			name string
			res  result
		}{{"in-process (baseline)", direct}, {"provider HTTP + receipt", viaHTTP}} {
			fmt.Printf("%-24s %10.0f %10.2f %10.2f\n", r.name, r.res.rate, ms(r.res.p50), ms(r.res.p99))
		}
		fmt.Printf("ratio HTTP/in-process: %.3f (target >= 0.90); added p50 %.2f ms\n", viaHTTP.rate/direct.rate, ms(viaHTTP.p50-direct.p50))
	}

	// One core: tokens/s and inferences/s.
	prev := runtime.GOMAXPROCS(1)
	const genTokens = 256
	one := run(200, 1, func(i int) error {
		_, err := lm.LM.Generate([]byte(prompt), genTokens, 800, uint64(i))
		return err
	})
	digits, err := model.Lookup(model.DigitsName)
	if err != nil {
		log.Fatal(err)
	}
	img, _ := model.GenerateDigit(1, 7)
	inf := run(200000, 1, func(int) error {
		_, _, err := digits.MLP.Infer(img)
		return err
	})
	runtime.GOMAXPROCS(prev)
	fmt.Printf("\none core: tiny-lm %.0f tokens/s; digits-mlp %.0f inferences/s\n", one.rate*genTokens, inf.rate)
}

type result struct {
	rate     float64
	p50, p99 time.Duration
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// run calls f n times from w goroutines and reports calls/s and latency.
func run(n, w int, f func(i int) error) result {
	lat := make([]time.Duration, n)
	var wg sync.WaitGroup
	next := make(chan int, n)
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	start := time.Now()
	for g := 0; g < w; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				t := time.Now()
				if err := f(i); err != nil {
					log.Fatal(err)
				}
				lat[i] = time.Since(t)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return result{rate: float64(n) / elapsed.Seconds(), p50: lat[n/2], p99: lat[n*99/100]}
}

func median(rs []result) result {
	sort.Slice(rs, func(i, j int) bool { return rs[i].rate < rs[j].rate })
	return rs[len(rs)/2]
}
