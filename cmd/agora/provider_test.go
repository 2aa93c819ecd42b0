package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/e2e"
	"github.com/agoranet/agora/internal/model"
	"github.com/agoranet/agora/internal/receipt"
)

// devnet starts `agora devnet --free` as a process and waits for its
// providers.
func devnet(t *testing.T) (home, node string, base int) {
	t.Helper()
	return devnetWith(t, "--free")
}

// devnetWith starts `agora devnet` with extra flags.
func devnetWith(t *testing.T, flags ...string) (home, node string, base int) {
	t.Helper()
	home = t.TempDir()
	base = e2e.FreePorts(t, 80) // the devnet's storage nodes listen at +70…
	node = fmt.Sprintf("http://127.0.0.1:%d", base+1)
	args := append([]string{"devnet", "--home", home, "--base-port", fmt.Sprint(base)}, flags...)
	p := e2e.Start(t, home, "devnet-proc", args...)
	e2e.Eventually(t, 60*time.Second, "devnet banner", func() error {
		if p.Exited() {
			t.Fatalf("the devnet exited:\n%s", p.Log())
		}
		if !strings.Contains(p.Log(), "Agora devnet is running") {
			return fmt.Errorf("no banner yet; it printed:\n%s", p.Log())
		}
		return nil
	})
	e2e.Eventually(t, 60*time.Second, "devnet providers answer", func() error {
		for i := 0; i < 3; i++ {
			resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", base+10+i))
			if err != nil {
				return err
			}
			resp.Body.Close()
		}
		return nil
	})
	return home, node, base
}

func chat(t *testing.T, url, body string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("chat: %d %s", resp.StatusCode, b)
	}
	return resp, b
}

// TestDevnetProviders: every devnet provider lists both built-in models
// with their ids; answers carry receipts that `agora receipt verify`
// accepts, and rejects once one byte changes; two providers give the same
// bytes for the same request and seed.
func TestDevnetProviders(t *testing.T) {
	e2e.MultiProcess(t)
	home, _, base := devnet(t)
	urls := []string{}
	for i := 0; i < 3; i++ {
		urls = append(urls, fmt.Sprintf("http://127.0.0.1:%d", base+10+i))
	}
	for _, u := range urls {
		resp, err := http.Get(u + "/v1/models")
		if err != nil {
			t.Fatal(err)
		}
		var list struct {
			Data []struct {
				ID      string `json:"id"`
				ModelID string `json:"model_id"`
			}
		}
		json.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		ids := map[string]string{}
		for _, d := range list.Data {
			ids[d.ID] = d.ModelID
		}
		for _, m := range model.Builtin() {
			if ids[m.Manifest.Name] != m.Manifest.ID {
				t.Errorf("%s/v1/models: %s id %q, want %q", u, m.Manifest.Name, ids[m.Manifest.Name], m.Manifest.ID)
			}
		}
	}

	req := `{"model":"agora/tiny-lm","messages":[{"role":"user","content":"JULIET:"}],"max_tokens":60,"temperature":0.9,"seed":12345}`
	r1, b1 := chat(t, urls[0], req)
	r2, b2 := chat(t, urls[1], req)
	if !bytes.Equal(b1, b2) {
		t.Fatalf("two providers answered differently:\n%s\n%s", b1, b2)
	}
	x, _ := receipt.Decode(r1.Header.Get(receipt.Header))
	y, _ := receipt.Decode(r2.Header.Get(receipt.Header))
	if x == nil || y == nil || !bytes.Equal(x.ResponseHash, y.ResponseHash) || x.Provider == y.Provider {
		t.Fatalf("receipts %v %v", x, y)
	}

	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	reqFile, respFile := write("req.json", []byte(req)), write("resp.json", b1)
	out := e2e.Run(t, "receipt", "verify", "--request", reqFile, "--response", respFile, "--receipt", r1.Header.Get(receipt.Header), "--home", home)
	if !strings.Contains(out, "valid receipt") {
		t.Errorf("receipt verify printed %q", out)
	}
	bad := append([]byte(nil), b1...)
	bad[len(bad)/2] ^= 1
	if out, err := e2e.RunErr(t, "receipt", "verify", "--request", reqFile, "--response", write("bad.json", bad), "--receipt", r1.Header.Get(receipt.Header)); err == nil {
		t.Errorf("receipt verify accepted a changed response: %s", out)
	}

	// A streamed answer, saved whole, verifies from its final event.
	sreq := strings.Replace(req, `"seed":12345`, `"seed":12345,"stream":true`, 1)
	_, stream := chat(t, urls[2], sreq)
	out = e2e.Run(t, "receipt", "verify", "--request", write("sreq.json", []byte(sreq)), "--response", write("stream.txt", stream))
	if !strings.Contains(out, "valid receipt") {
		t.Errorf("receipt verify of a stream printed %q", out)
	}
}

type providerJSON struct {
	Provider struct {
		Status string `json:"status"`
	} `json:"provider"`
}

// TestProviderKilledGoesOffline: a provider process killed with SIGKILL is
// shown offline within the configured number of blocks, and a restarted
// one comes back online.
func TestProviderKilledGoesOffline(t *testing.T) {
	e2e.MultiProcess(t)
	home, node, base := devnet(t)
	bob := strings.TrimSpace(e2e.Run(t, "keys", "show", "bob", "--address", "--home", home))
	status := func() string {
		out, err := e2e.RunErr(t, "query", "provider", bob, "--output", "json", "--node", node, "--home", home)
		if err != nil {
			return "unregistered"
		}
		var p providerJSON
		json.Unmarshal([]byte(out), &p)
		return p.Provider.Status
	}
	startProvider := func() *e2e.Proc {
		return e2e.Start(t, home, "bob-provider", "provider", "start", "--key", "bob", "--bond", "200000000uagr",
			"--listen", fmt.Sprintf("127.0.0.1:%d", base+15), "--model", "agora/tiny-lm", "--home", home, "--node", node)
	}
	waitStatus := func(want string, timeout time.Duration) {
		e2e.Eventually(t, timeout, "provider "+want, func() error {
			if got := status(); got != want {
				return fmt.Errorf("status %s", got)
			}
			return nil
		})
	}
	p := startProvider()
	waitStatus("STATUS_ONLINE", 30*time.Second)

	c, _ := client.New(node)
	height := func() int64 {
		st, err := c.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return st.Height
	}
	p.Kill()
	killed := height()
	waitStatus("STATUS_OFFLINE", 30*time.Second)
	// offline_after_blocks is 20; the last heartbeat may be a block or two
	// before the kill and the query sees the state a block late.
	if h := height(); h > killed+20+3 {
		t.Errorf("offline at height %d, killed at %d: later than 20 blocks", h, killed)
	}
	startProvider()
	waitStatus("STATUS_ONLINE", 30*time.Second)
}
