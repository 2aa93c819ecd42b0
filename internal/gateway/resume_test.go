package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agoranet/agora/internal/answer"
	"github.com/agoranet/agora/internal/devnet"
	"github.com/agoranet/agora/internal/e2e"
	"github.com/agoranet/agora/internal/model"
	"github.com/agoranet/agora/internal/openai"
	"github.com/agoranet/agora/internal/provider"
	"github.com/agoranet/agora/internal/receipt"
)

// TestStreamResumesOnAnotherProvider: a provider that dies (its connection
// cut) or hangs midway through a stream no longer cuts the client's
// stream. The gateway asks another provider for the same answer (a
// built-in model's is the same bytes everywhere), checks that it begins
// with what the client already has, and continues from there: the client
// gets the whole answer, exactly the reference's bytes, with a receipt
// that covers them all, and is billed once. The providers send interim
// receipts every 4 tokens, so both streams carry receipts of their own
// where the second takes over.
func TestStreamResumesOnAnotherProvider(t *testing.T) {
	d := e2e.Devnet(t, func(c *devnet.Config) { c.InterimEvery = 4 })
	var mu sync.Mutex
	seen := map[string]bool{}
	var hang bool
	// The first provider to serve a request breaks its stream after 5
	// pieces of text; whoever is asked again serves it whole.
	for _, p := range d.Providers {
		p.SetHooks(provider.Hooks{BreakStream: func(canonical []byte) (int, bool) {
			mu.Lock()
			defer mu.Unlock()
			if seen[string(canonical)] || !bytes.Contains(canonical, []byte("BREAK")) {
				return 0, false
			}
			seen[string(canonical)] = true
			return 5, hang
		}})
	}
	ref := answer.NewReference(model.Builtin())
	var priced uint64
	stream := func(prompt string, seed int) {
		t.Helper()
		body := fmt.Sprintf(`{"model":"agora/tiny-lm","messages":[{"role":"user","content":%q}],"max_tokens":40,"seed":%d,"stream":true}`, prompt, seed)
		req, _ := http.NewRequest(http.MethodPost, d.Gateway.URL()+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+devnet.APIKey)
		req.Header.Set("Content-Type", "application/json")
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || bytes.Contains(got, []byte("stream_cut")) {
			t.Fatalf("%s: %d %s", prompt, resp.StatusCode, got)
		}
		covered, rc := openai.SplitStream(got)
		want, err := ref.Covered(context.Background(), "chat.completions", []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(covered, want) {
			t.Fatalf("%s: the stream is not the model's answer:\ngot  %q\nwant %q", prompt, covered, want)
		}
		r, err := receipt.Decode(rc)
		if err != nil || !bytes.Equal(r.ResponseHash, receipt.Hash(covered)) || r.Partial {
			t.Fatalf("%s: the last receipt does not cover the stream the client got: %v", prompt, err)
		}
		if n := bytes.Count(got, []byte(`"agora_receipt"`)); n < 40/4 {
			t.Fatalf("%s: %d receipts in the stream; want one every 4 tokens and a last one", prompt, n)
		}
		priced += r.Price.Amount
		t.Logf("%s: whole in %v", prompt, time.Since(start).Round(time.Millisecond))
	}
	for i := range 3 { // measures the model's pace between chunks
		stream("warm up", i)
	}
	before := metric(t, d.Gateway.URL(), "agora_gateway_resumes_total")
	balance0, priced0 := e2e.KeyBalance(t, d.Gateway.URL(), devnet.APIKey), priced
	stream("BREAK: a crash", 1)
	hang = true
	stream("BREAK: a hang", 2)
	if got := metric(t, d.Gateway.URL(), "agora_gateway_resumes_total") - before; got != 2 {
		t.Errorf("%v streams resumed, want 2", got)
	}
	e2e.Eventually(t, 10*time.Second, "the key is debited once for each resumed stream", func() error {
		if debited, want := balance0-e2e.KeyBalance(t, d.Gateway.URL(), devnet.APIKey), priced-priced0; debited != want {
			return fmt.Errorf("the key was debited %d for the two resumed streams; their receipts say %d", debited, want)
		}
		return nil
	})
}

// metric reads one counter from a /metrics page.
func metric(t *testing.T, base, name string) float64 {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return 0
}

// TestCutStreamIsBilledForWhatTheClientGot: a client that went away
// mid-stream used to pay nothing for the text it had. Now the stream
// carries interim receipts, and the key is debited the price of the last
// one the client was sent. The provider here sends 20 tokens (an interim
// receipt every 4) and then stalls; the client leaves after the fifth.
func TestCutStreamIsBilledForWhatTheClientGot(t *testing.T) {
	d := e2e.Devnet(t, func(c *devnet.Config) { c.InterimEvery = 4 })
	for _, p := range d.Providers {
		p.SetHooks(provider.Hooks{BreakStream: func(canonical []byte) (int, bool) {
			return 20, bytes.Contains(canonical, []byte("STALL"))
		}})
	}
	before := e2e.KeyBalance(t, d.Gateway.URL(), devnet.APIKey)
	body := `{"model":"agora/tiny-lm","messages":[{"role":"user","content":"STALL"}],"max_tokens":200,"seed":7,"stream":true}`
	req, _ := http.NewRequest(http.MethodPost, d.Gateway.URL()+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+devnet.APIKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(resp.Body)
	var got []byte
	var last *receipt.Receipt
	for n := 0; n < 5; {
		line, err := rd.ReadBytes('\n')
		if err != nil {
			t.Fatalf("the stream ended after %d interim receipts: %v\n%s", n, err, got)
		}
		got = append(got, line...)
		if rc := openai.ReceiptOf(line); rc != "" {
			covered, _ := openai.SplitStream(got)
			r, err := receipt.Decode(rc)
			if err != nil || !r.Partial || !bytes.Equal(r.ResponseHash, receipt.Hash(covered)) {
				t.Fatalf("interim receipt %d does not cover the stream so far: %v %+v", n, err, r)
			}
			last, n = r, n+1
		}
	}
	resp.Body.Close() // the client goes away
	if last.Usage.CompletionTokens != 20 || last.Price.Amount == 0 {
		t.Fatalf("the last interim receipt: %+v", last)
	}
	e2e.Eventually(t, 10*time.Second, "the key is debited for the prefix", func() error {
		if debited := before - e2e.KeyBalance(t, d.Gateway.URL(), devnet.APIKey); debited != last.Price.Amount {
			return fmt.Errorf("debited %d; the last receipt the client got says %d", debited, last.Price.Amount)
		}
		return nil
	})
}
