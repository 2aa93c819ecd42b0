// Command soak runs steady load through the gateway for a long while and
// prints each daemon's heap, RSS and goroutines at the start and the end,
// and every error: growth beyond noise is a leak. Not in CI (ten minutes by
// default).
//
//	go run ./bench/soak [-duration 10m] [-clients 8]
//
// It builds the agora binary and runs the devnet (chain and gateway) and
// two providers as processes of their own, on loopback ports from 16000.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/agoranet/agora/internal/devnet"
)

const base = 16000 // below the ephemeral range (32768-60999) and the tests' (20000-32699)

func main() {
	duration := flag.Duration("duration", 10*time.Minute, "how long to keep the load on")
	clients := flag.Int("clients", 8, "concurrent clients through the gateway (odd ones stream)")
	warm := flag.Duration("warm-up", 30*time.Second, "load before the first reading")
	profiles := flag.String("heap-profiles", "", "write each daemon's heap profile at the first and the last reading to this directory "+
		"(compare with go tool pprof -base FIRST LAST)")
	flag.Parse()
	if *profiles != "" {
		os.Setenv("AGORA_PPROF", "1") // the daemons serve /debug/pprof/ on loopback
		if err := os.MkdirAll(*profiles, 0o755); err != nil {
			log.Fatal(err)
		}
	}
	log.SetFlags(0)
	dir, err := os.MkdirTemp("", "agora-soak")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "agora")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/agora").CombinedOutput(); err != nil {
		log.Fatalf("build: %v\n%s (run from the module root)", err, out)
	}
	var procs []*exec.Cmd
	start := func(name string, args ...string) {
		f, _ := os.Create(filepath.Join(dir, name+".log"))
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = f, f
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			log.Fatal(err)
		}
		procs = append(procs, cmd)
	}
	defer func() {
		for _, p := range procs {
			syscall.Kill(-p.Process.Pid, syscall.SIGINT)
			p.Wait()
		}
	}()
	home := filepath.Join(dir, "home")
	start("devnet", "devnet", "--home", home, "--base-port", fmt.Sprint(base), "--providers", "0")
	node := fmt.Sprintf("http://127.0.0.1:%d", base+1)
	gw := fmt.Sprintf("http://127.0.0.1:%d", base+24)
	waitFor(gw + "/healthz")
	daemons := map[string]string{"gateway (with the chain)": gw}
	for i, key := range []string{"provider1", "provider2"} {
		listen := fmt.Sprintf("127.0.0.1:%d", base+30+i)
		start(key, "provider", "start", "--key", key, "--home", home, "--node", node, "--listen", listen,
			"--model", "agora/tiny-lm", "--price-request", "100", "--price-1k-tokens", "1000")
		daemons[key] = "http://" + listen
		waitFor("http://" + listen + "/healthz")
	}
	time.Sleep(5 * time.Second) // the gateway sees both on chain

	var ok, failed atomic.Int64
	var firstErr atomic.Value
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range *clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := &http.Client{Timeout: 30 * time.Second}
			for i := 0; ctx.Err() == nil; i++ {
				body := fmt.Sprintf(`{"model":"agora/tiny-lm","messages":[{"role":"user","content":"KING:"}],"max_tokens":24,"seed":%d,"stream":%t}`, w*10_000_000+i, w%2 == 1)
				req, _ := http.NewRequest(http.MethodPost, gw+"/v1/chat/completions", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+devnet.APIKey)
				req.Header.Set("Content-Type", "application/json")
				resp, err := hc.Do(req)
				if err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 || strings.Contains(string(b), `"error"`) {
						err = fmt.Errorf("%d %.200s", resp.StatusCode, b)
					}
				}
				if err != nil && ctx.Err() == nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				ok.Add(1)
			}
		}()
	}
	time.Sleep(*warm)
	first := readAll(daemons)
	saveHeaps(*profiles, "first", daemons)
	t0, n0 := time.Now(), ok.Load()
	fmt.Printf("load on: %d clients; first reading after %v, the last after %v more\n", *clients, *warm, *duration)
	// A heap reading is the live heap plus whatever garbage the next GC
	// will take: the lowest of many readings approaches the live heap. The
	// lowest in the first minute against the lowest in the last says
	// whether what stays alive grows.
	lowFirst, lowLast := map[string]float64{}, map[string]float64{}
	end := time.Now().Add(*duration)
	for lastPrint := time.Now(); time.Now().Before(end); {
		time.Sleep(min(5*time.Second, time.Until(end)))
		for name, m := range readAll(daemons) {
			h, okh := m["go_memstats_heap_alloc_bytes"]
			if !okh {
				continue
			}
			if time.Since(t0) <= time.Minute && (lowFirst[name] == 0 || h < lowFirst[name]) {
				lowFirst[name] = h
			}
			if time.Until(end) <= time.Minute && (lowLast[name] == 0 || h < lowLast[name]) {
				lowLast[name] = h
			}
		}
		if time.Since(lastPrint) >= time.Minute || !time.Now().Before(end) {
			lastPrint = time.Now()
			fmt.Printf("  %v: %d answers, %d errors\n", time.Since(t0).Round(time.Second), ok.Load(), failed.Load())
		}
	}
	last := readAll(daemons)
	saveHeaps(*profiles, "last", daemons)
	rate := float64(ok.Load()-n0) / time.Since(t0).Seconds()
	stop()
	wg.Wait()
	fmt.Printf("\n%-26s %22s %26s %22s %18s\n", "daemon", "heap MiB start→end", "lowest heap 1st→last min", "RSS MiB start→end", "goroutines")
	for name := range daemons {
		a, b := first[name], last[name]
		fmt.Printf("%-26s %10.1f → %-9.1f %12.1f → %-11.1f %10.1f → %-9.1f %7.0f → %-7.0f\n", name,
			a["go_memstats_heap_alloc_bytes"]/(1<<20), b["go_memstats_heap_alloc_bytes"]/(1<<20),
			lowFirst[name]/(1<<20), lowLast[name]/(1<<20),
			a["process_resident_memory_bytes"]/(1<<20), b["process_resident_memory_bytes"]/(1<<20),
			a["go_goroutines"], b["go_goroutines"])
	}
	fmt.Printf("\n%d answers (%.0f a second), %d errors", ok.Load(), rate, failed.Load())
	if e := firstErr.Load(); e != nil {
		fmt.Printf("; the first: %v", e)
	}
	fmt.Println()
}

// saveHeaps writes each daemon's heap profile (after a GC) to dir as
// NAME-WHEN.pb.gz; nothing if dir is "".
func saveHeaps(dir, when string, daemons map[string]string) {
	if dir == "" {
		return
	}
	for name, url := range daemons {
		resp, err := http.Get(url + "/debug/pprof/heap?gc=1")
		if err != nil {
			log.Printf("heap profile of %s: %v", name, err)
			continue
		}
		file := filepath.Join(dir, strings.Fields(name)[0]+"-"+when+".pb.gz")
		if f, err := os.Create(file); err == nil {
			io.Copy(f, resp.Body)
			f.Close()
		}
		resp.Body.Close()
	}
}

func waitFor(url string) {
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			return
		}
	}
	log.Fatalf("%s did not come up", url)
}

func readAll(daemons map[string]string) map[string]map[string]float64 {
	out := map[string]map[string]float64{}
	for name, url := range daemons {
		out[name] = read(url + "/metrics")
	}
	return out
}

// read takes the gauges it needs from a Prometheus text page.
func read(url string) map[string]float64 {
	m := map[string]float64{}
	resp, err := http.Get(url)
	if err != nil {
		return m
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		for _, k := range []string{"go_memstats_heap_alloc_bytes", "process_resident_memory_bytes", "go_goroutines"} {
			if v, ok := strings.CutPrefix(sc.Text(), k+" "); ok {
				var f float64
				fmt.Sscan(v, &f)
				m[k] = f
			}
		}
	}
	return m
}
