package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agoranet/agora/internal/e2e"
	"github.com/agoranet/agora/internal/keyring"
	"github.com/agoranet/agora/internal/receipt"
	"github.com/agoranet/agora/sdk"
)

// TestGatewaySurvivesProviderKills is the reliability test: a devnet with
// five providers under steady load through the gateway; two are killed
// with SIGKILL mid-run. Nearly every request succeeds, no client is
// charged for a failed attempt, and the gateway stops sending to the dead
// providers within a second.
func TestGatewaySurvivesProviderKills(t *testing.T) {
	e2e.MultiProcess(t)
	home, node, base := devnetWith(t)
	gw := fmt.Sprintf("http://127.0.0.1:%d", base+24)
	var extra []*e2e.Proc
	var extraAddrs []string
	for i, key := range []string{"bob", "issuer"} {
		extra = append(extra, e2e.Start(t, home, "extra-"+key, "provider", "start", "--key", key, "--bond", "200000000uagr",
			"--listen", fmt.Sprintf("127.0.0.1:%d", base+15+i), "--model", "agora/tiny-lm", "--price-request", "100", "--price-1k-tokens", "1000",
			"--claim-interval", "1s", "--home", home, "--node", node))
		extraAddrs = append(extraAddrs, strings.TrimSpace(e2e.Run(t, "keys", "show", key, "--address", "--home", home)))
	}
	get := func(path string, v any) error {
		req, _ := http.NewRequest(http.MethodGet, gw+path, nil)
		req.Header.Set("Authorization", "Bearer agk_devnet")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		return json.NewDecoder(resp.Body).Decode(v)
	}
	e2e.Eventually(t, 30*time.Second, "the gateway routes to five providers", func() error {
		var list struct {
			Data []struct {
				ID        string `json:"id"`
				Providers int    `json:"providers"`
			}
		}
		if err := get("/v1/models", &list); err != nil {
			return err
		}
		for _, m := range list.Data {
			if m.ID == "agora/tiny-lm" && m.Providers == 5 {
				return nil
			}
		}
		return fmt.Errorf("models %+v", list.Data)
	})
	balance := func() uint64 {
		var b struct{ Balance string }
		if err := get("/v1/key", &b); err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.ParseUint(b.Balance, 10, 64)
		return n
	}
	before := balance()

	var ok, failed atomic.Int64
	var mu sync.Mutex
	var charged uint64
	lastAtDead := map[string]time.Time{}
	deadline := time.Now().Add(8 * time.Second)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			hc := &http.Client{Timeout: 20 * time.Second}
			for i := 0; time.Now().Before(deadline); i++ {
				body := fmt.Sprintf(`{"model":"agora/tiny-lm","messages":[{"role":"user","content":"KING:"}],"max_tokens":20,"seed":%d}`, w*100000+i)
				req, _ := http.NewRequest(http.MethodPost, gw+"/v1/chat/completions", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer agk_devnet")
				req.Header.Set("Content-Type", "application/json")
				sent := time.Now()
				resp, err := hc.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					t.Logf("request failed: %d", resp.StatusCode)
					continue
				}
				ok.Add(1)
				r, err := receipt.Decode(resp.Header.Get(receipt.Header))
				if err != nil {
					t.Errorf("answer without a valid receipt: %v", err)
					continue
				}
				mu.Lock()
				charged += r.Price.Amount
				for _, a := range extraAddrs {
					if r.Provider == a {
						lastAtDead[a] = sent
					}
				}
				mu.Unlock()
			}
		}(w)
	}
	// An agent routing by itself with the SDK, through the same kills.
	kr := keyring.Open(filepath.Join(home, "keyring"))
	agentKey, _ := kr.Get("alice")
	w, err := sdk.NewWallet(agentKey.Private, node)
	if err != nil {
		t.Fatal(err)
	}
	ag, err := sdk.NewAgent(context.Background(), w, sdk.Budget{Denom: "uusdc", Max: 5_000_000, Deposit: 20_000})
	if err != nil {
		t.Fatal(err)
	}
	defer ag.Close()
	var sdkOK, sdkFailed atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; time.Now().Before(deadline); i++ {
			body := fmt.Sprintf(`{"model":"agora/tiny-lm","messages":[{"role":"user","content":"QUEEN:"}],"max_tokens":20,"seed":%d}`, i)
			if _, err := ag.Post(context.Background(), "/v1/chat/completions", "agora/tiny-lm", []byte(body)); err != nil {
				sdkFailed.Add(1)
				t.Logf("sdk request failed: %v", err)
				continue
			}
			sdkOK.Add(1)
		}
	}()
	time.Sleep(3 * time.Second)
	mu.Lock()
	servedBefore := len(lastAtDead)
	mu.Unlock()
	if servedBefore != 2 {
		t.Errorf("only %d of the 2 providers to be killed had answered before the kill; the test needs both under load", servedBefore)
	}
	for _, p := range extra {
		p.Kill()
	}
	// A second after the kill, the gateway's failed attempts at the dead
	// providers must have stopped growing: count them then and at the end.
	time.Sleep(time.Second)
	errorsAfter1s := deadErrors(t, gw, extraAddrs)
	wg.Wait()
	if end := deadErrors(t, gw, extraAddrs); end != errorsAfter1s {
		t.Errorf("the gateway kept trying dead providers after 1 s: %d failed attempts then, %d at the end", errorsAfter1s, end)
	}

	if n := sdkOK.Load() + sdkFailed.Load(); n < 50 || float64(sdkOK.Load())/float64(n) < 0.999 {
		t.Errorf("SDK routing: %d of %d requests succeeded", sdkOK.Load(), n)
	}
	total := ok.Load() + failed.Load()
	t.Logf("%d requests, %d failed, %d charged", total, failed.Load(), charged)
	if total < 100 {
		t.Fatalf("only %d requests in 8 s", total)
	}
	if rate := float64(ok.Load()) / float64(total); rate < 0.999 {
		t.Errorf("success rate %.4f, want at least 0.999", rate)
	}
	// A charge is written just after its answer goes out.
	e2e.Eventually(t, 10*time.Second, "the key is debited what the receipts say", func() error {
		if got := before - balance(); got != charged {
			return fmt.Errorf("the key was debited %d, the answers' receipts say %d: charged for failed attempts?", got, charged)
		}
		return nil
	})
}

// deadErrors sums the gateway's failed attempts at the given providers.
func deadErrors(t *testing.T, gw string, addrs []string) int {
	resp, err := http.Get(gw + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		for _, a := range addrs {
			if v, ok := strings.CutPrefix(line, `agora_gateway_provider_errors_total{provider="`+a+`"} `); ok {
				c, _ := strconv.Atoi(v)
				n += c
			}
		}
	}
	return n
}
