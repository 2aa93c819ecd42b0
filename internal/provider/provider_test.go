package provider

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/agoranet/agora/internal/answer"
	"github.com/agoranet/agora/internal/model"
	"github.com/agoranet/agora/internal/openai"
	"github.com/agoranet/agora/internal/receipt"
)

func testKey(name string) ed25519.PrivateKey {
	s := sha256.Sum256([]byte(name))
	return ed25519.NewKeyFromSeed(s[:])
}

func builtinOffers(t testing.TB) []Offer {
	var offers []Offer
	for _, m := range model.Builtin() {
		offers = append(offers, Offer{Model: m, PricePerRequest: 1, PricePer1KTokens: 1000})
	}
	return offers
}

// start runs a provider on a loopback port for the test.
func start(t testing.TB, name string, offers []Offer) *Server {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Key = testKey(name)
	cfg.ChainID = "agora-test"
	cfg.Offers = offers
	cfg.Home = t.TempDir()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return s
}

func post(t testing.TB, url, body string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

const chatBody = `{"model":"agora/tiny-lm","messages":[{"role":"user","content":"ROMEO:"}],"max_tokens":40,"temperature":0.8,"seed":7}`

func canonicalChat(t testing.TB, body string) []byte {
	var req openai.ChatRequest
	if err := json.Unmarshal([]byte(body), &req); err != nil {
		t.Fatal(err)
	}
	g, err := req.Generation(answer.BuiltinLimits)
	if err != nil {
		t.Fatal(err)
	}
	return g.Canonical()
}

func TestModels(t *testing.T) {
	s := start(t, "p1", builtinOffers(t))
	resp, err := http.Get(s.URL() + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list openai.ModelList
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, m := range list.Data {
		got[m.ID] = m.ModelID
	}
	for _, m := range model.Builtin() {
		if got[m.Manifest.Name] != m.Manifest.ID {
			t.Errorf("/v1/models: %s has id %q, want %q", m.Manifest.Name, got[m.Manifest.Name], m.Manifest.ID)
		}
	}
}

// TestChatReceipt: an answer's receipt verifies against the request and
// the body, and no longer does when one byte of the body changes.
func TestChatReceipt(t *testing.T) {
	s := start(t, "p1", builtinOffers(t))
	resp, body := post(t, s.URL()+"/v1/chat/completions", chatBody)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var cc openai.ChatCompletion
	if err := json.Unmarshal(body, &cc); err != nil {
		t.Fatal(err)
	}
	if len(cc.Choices) != 1 || cc.Choices[0].Message.Content == "" || cc.Usage.CompletionTokens != 40 {
		t.Fatalf("answer %s", body)
	}
	r, err := receipt.Decode(resp.Header.Get(receipt.Header))
	if err != nil {
		t.Fatal(err)
	}
	if r.Provider != s.Address().String() || r.ModelId != model.Builtin()[1].Manifest.ID && r.ModelId != model.Builtin()[0].Manifest.ID {
		t.Errorf("receipt names provider %s model %s", r.Provider, r.ModelId)
	}
	if r.Price.Amount != 1+40 { // 1 per request + 40 tokens at 1000 per 1k
		t.Errorf("price %d, want 41", r.Price.Amount)
	}
	if err := receipt.Check(r, canonicalChat(t, chatBody), body); err != nil {
		t.Fatalf("receipt does not check: %v", err)
	}
	body[len(body)/2] ^= 0x20
	if err := receipt.Check(r, canonicalChat(t, chatBody), body); !errors.Is(err, receipt.ErrMismatch) {
		t.Errorf("a changed body still checks: %v", err)
	}
	resp2, _ := post(t, s.URL()+"/v1/chat/completions", chatBody)
	if r2, _ := receipt.Decode(resp2.Header.Get(receipt.Header)); r2 == nil || r2.Seq <= r.Seq {
		t.Errorf("second receipt's seq does not follow the first's %d", r.Seq)
	}
}

// TestSameAnswerEverywhere: two providers with different keys give the
// same bytes for the same request and seed.
func TestSameAnswerEverywhere(t *testing.T) {
	a, b := start(t, "p1", builtinOffers(t)), start(t, "p2", builtinOffers(t))
	ra, ba := post(t, a.URL()+"/v1/chat/completions", chatBody)
	rb, bb := post(t, b.URL()+"/v1/chat/completions", chatBody)
	if !bytes.Equal(ba, bb) {
		t.Fatalf("answers differ:\n%s\n%s", ba, bb)
	}
	x, _ := receipt.Decode(ra.Header.Get(receipt.Header))
	y, _ := receipt.Decode(rb.Header.Get(receipt.Header))
	if !bytes.Equal(x.ResponseHash, y.ResponseHash) || x.Provider == y.Provider {
		t.Errorf("response hashes %x %x from %s %s", x.ResponseHash, y.ResponseHash, x.Provider, y.Provider)
	}
	_, other := post(t, a.URL()+"/v1/chat/completions", strings.Replace(chatBody, `"seed":7`, `"seed":8`, 1))
	if bytes.Equal(ba, other) {
		t.Error("another seed gave the same answer")
	}
}

// TestStream: SSE chunks end with a receipt chunk and [DONE], with interim
// (partial) receipts on the way; every receipt hashes every byte before its
// own event except receipt events, the last matches the trailer, and the
// streamed text equals the non-streamed answer.
func TestStream(t *testing.T) {
	s := start(t, "p1", builtinOffers(t))
	body := strings.Replace(chatBody, `"seed":7`, `"seed":7,"stream":true`, 1)
	resp, err := http.Post(s.URL()+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d type %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var hashed bytes.Buffer
	var text strings.Builder
	var rc string
	done, afterReceipt, interims := false, false, 0
	rd := bufio.NewReader(resp.Body)
	for {
		line, err := rd.ReadString('\n')
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			if !afterReceipt { // the blank line ending a receipt's event is not covered
				hashed.WriteString(line)
			}
			afterReceipt = false
			continue
		}
		afterReceipt = false
		data = strings.TrimSpace(data)
		if data == "[DONE]" {
			done = true
			continue
		}
		var c openai.Chunk
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			t.Fatalf("bad chunk %q: %v", data, err)
		}
		if c.AgoraReceipt != "" {
			if rc != "" { // the one before was an interim receipt
				r, err := receipt.Decode(rc)
				if err != nil || !r.Partial {
					t.Fatalf("a receipt before the last is not partial: %v", err)
				}
				interims++
			}
			rc, afterReceipt = c.AgoraReceipt, true
			r, err := receipt.Decode(rc)
			if err != nil {
				t.Fatal(err)
			}
			if err := receipt.Check(r, canonicalChat(t, body), hashed.Bytes()); err != nil {
				t.Fatalf("receipt %d does not cover the stream before it: %v", interims+1, err)
			}
			continue
		}
		hashed.WriteString(line)
		for _, ch := range c.Choices {
			text.WriteString(ch.Delta.Content)
		}
	}
	if !done || rc == "" {
		t.Fatalf("stream ended without receipt (%v) or [DONE] (%v)", rc != "", done)
	}
	if tr := resp.Trailer.Get(receipt.Header); tr != rc {
		t.Errorf("trailer receipt %q differs from the event's", tr)
	}
	r, err := receipt.Decode(rc)
	if err != nil {
		t.Fatal(err)
	}
	if r.Partial || interims == 0 {
		t.Errorf("the last receipt is partial (%v), or there was no interim one (%d)", r.Partial, interims)
	}
	_, plain := post(t, s.URL()+"/v1/chat/completions", chatBody)
	var cc openai.ChatCompletion
	json.Unmarshal(plain, &cc)
	if text.String() != cc.Choices[0].Message.Content {
		t.Errorf("streamed %q, plain %q", text.String(), cc.Choices[0].Message.Content)
	}
}

func TestCompletionsAndStop(t *testing.T) {
	s := start(t, "p1", builtinOffers(t))
	resp, body := post(t, s.URL()+"/v1/completions", `{"model":"agora/tiny-lm","prompt":"KING:","max_tokens":300,"temperature":0,"stop":["\n"]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var tc openai.TextCompletion
	if err := json.Unmarshal(body, &tc); err != nil {
		t.Fatal(err)
	}
	c := tc.Choices[0]
	if strings.Contains(c.Text, "\n") || c.FinishReason != "stop" && len(c.Text) != 300 {
		t.Errorf("stop sequence not honoured: %q (%s)", c.Text, c.FinishReason)
	}
}

func TestInfer(t *testing.T) {
	s := start(t, "p1", builtinOffers(t))
	for d := 0; d < 10; d++ {
		px, err := model.GenerateDigit(uint64(1000+d), d)
		if err != nil {
			t.Fatal(err)
		}
		ints := make([]int, len(px))
		for i, p := range px {
			ints[i] = int(p)
		}
		in, _ := json.Marshal(map[string]any{"model": "agora/digits-mlp", "input": ints})
		resp, body := post(t, s.URL()+"/v1/infer", string(in))
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		var out openai.InferResponse
		json.Unmarshal(body, &out)
		if out.Class != d || len(out.Logits) != 10 {
			t.Errorf("digit %d classified as %d", d, out.Class)
		}
		if _, err := receipt.Decode(resp.Header.Get(receipt.Header)); err != nil {
			t.Error(err)
		}
	}
}

// TestBadInput: each bad request gets the right status and an OpenAI
// error body, never a panic or a hang.
func TestBadInput(t *testing.T) {
	s := start(t, "p1", builtinOffers(t))
	big := `{"model":"agora/tiny-lm","messages":[{"role":"user","content":"` + strings.Repeat("a", 2<<20) + `"}]}`
	for _, tc := range []struct {
		name, path, ctype, body string
		status                  int
		code                    string
	}{
		{"invalid json", "/v1/chat/completions", "application/json", `{"model":`, 400, "invalid_json"},
		{"unknown model", "/v1/chat/completions", "application/json", `{"model":"gpt-9","messages":[{"role":"user","content":"hi"}]}`, 404, "model_not_found"},
		{"no messages", "/v1/chat/completions", "application/json", `{"model":"agora/tiny-lm","messages":[]}`, 400, "invalid_messages"},
		{"empty prompt", "/v1/completions", "application/json", `{"model":"agora/tiny-lm","prompt":""}`, 400, "invalid_prompt"},
		{"max_tokens too big", "/v1/chat/completions", "application/json", `{"model":"agora/tiny-lm","messages":[{"role":"user","content":"hi"}],"max_tokens":100000}`, 400, "invalid_max_tokens"},
		{"max_tokens zero", "/v1/chat/completions", "application/json", `{"model":"agora/tiny-lm","messages":[{"role":"user","content":"hi"}],"max_tokens":0}`, 400, "invalid_max_tokens"},
		{"temperature", "/v1/chat/completions", "application/json", `{"model":"agora/tiny-lm","messages":[{"role":"user","content":"hi"}],"temperature":3}`, 400, "invalid_temperature"},
		{"bad role", "/v1/chat/completions", "application/json", `{"model":"agora/tiny-lm","messages":[{"role":"robot","content":"hi"}]}`, 400, "invalid_messages"},
		{"n=2", "/v1/chat/completions", "application/json", `{"model":"agora/tiny-lm","messages":[{"role":"user","content":"hi"}],"n":2}`, 400, "invalid_n"},
		{"content type", "/v1/chat/completions", "text/plain", chatBody, 415, "unsupported_media_type"},
		{"too large", "/v1/chat/completions", "application/json", big, 413, "request_too_large"},
		{"classifier as chat", "/v1/chat/completions", "application/json", `{"model":"agora/digits-mlp","messages":[{"role":"user","content":"hi"}]}`, 400, "invalid_model"},
		{"short image", "/v1/infer", "application/json", `{"model":"agora/digits-mlp","input":[1,2,3]}`, 400, "invalid_request"},
		{"pixel range", "/v1/infer", "application/json", `{"model":"agora/digits-mlp","input":[300]}`, 400, "invalid_input"},
		{"unknown path", "/v2/x", "application/json", `{}`, 404, "unknown_url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Post(s.URL()+tc.path, tc.ctype, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e struct {
				Error struct{ Message, Type, Code string }
			}
			if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
				t.Fatalf("error body is not JSON: %v", err)
			}
			if resp.StatusCode != tc.status || e.Error.Code != tc.code || e.Error.Message == "" || e.Error.Type == "" {
				t.Errorf("got %d %+v, want %d %s", resp.StatusCode, e.Error, tc.status, tc.code)
			}
		})
	}
	resp, err := http.Get(s.URL() + "/v1/chat/completions")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Errorf("GET on a POST endpoint: %d", resp.StatusCode)
	}
}

// TestUpstream serves a model through another OpenAI-compatible server
// (here another provider) and signs receipts over what it relays.
func TestUpstream(t *testing.T) {
	engine := start(t, "engine", builtinOffers(t))
	id := strings.Repeat("ab", 32)
	front := start(t, "front", []Offer{{Upstream: &Upstream{URL: engine.URL(), Engine: "agora/tiny-lm", Name: "ext/lm", ID: id}}})
	resp, body := post(t, front.URL()+"/v1/chat/completions", strings.Replace(chatBody, "agora/tiny-lm", "ext/lm", 1))
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	_, direct := post(t, engine.URL()+"/v1/chat/completions", chatBody)
	var a, b openai.ChatCompletion
	json.Unmarshal(body, &a)
	json.Unmarshal(direct, &b)
	if a.Choices[0].Message.Content != b.Choices[0].Message.Content {
		t.Errorf("relayed %q, engine said %q", a.Choices[0].Message.Content, b.Choices[0].Message.Content)
	}
	r, err := receipt.Decode(resp.Header.Get(receipt.Header))
	if err != nil || r.ModelId != id || r.Provider != front.Address().String() {
		t.Errorf("receipt %+v, %v", r, err)
	}
}

func TestSeqSurvivesRestart(t *testing.T) {
	path := t.TempDir() + "/seq"
	a, err := openSeq(path)
	if err != nil {
		t.Fatal(err)
	}
	var last uint64
	for i := 0; i < 5; i++ {
		last, _ = a.next()
	}
	b, err := openSeq(path) // as after a crash
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := b.next(); n <= last {
		t.Errorf("after restart the counter gave %d, already used up to %d", n, last)
	}
}

func FuzzChatRequest(f *testing.F) {
	s := start(f, "fuzz", builtinOffers(f))
	h := s.Handler()
	f.Add(chatBody)
	f.Add(`{"model":"agora/tiny-lm","prompt":["a"],"max_tokens":1}`)
	f.Add(`{"model":"agora/tiny-lm","messages":[{"role":"user","content":"x"}],"stop":[1]}`)
	f.Fuzz(func(t *testing.T, body string) {
		for _, path := range []string{"/v1/chat/completions", "/v1/completions", "/v1/infer"} {
			req, _ := http.NewRequest(http.MethodPost, path, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			w := &recorder{header: http.Header{}}
			h.ServeHTTP(w, req)
			if w.status >= 500 {
				t.Fatalf("%s answered %d to %q", path, w.status, body)
			}
		}
	})
}

type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { r.WriteHeader(200); return r.body.Write(b) }
func (r *recorder) WriteHeader(s int) {
	if r.status == 0 {
		r.status = s
	}
}
func (r *recorder) Flush() {}

func TestHealthMetricsAgentCard(t *testing.T) {
	s := start(t, "p1", builtinOffers(t))
	post(t, s.URL()+"/v1/chat/completions", chatBody)
	get := func(path string) string {
		resp, err := http.Get(s.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
		return string(b)
	}
	if h := get("/healthz"); !strings.Contains(h, `"status":"ok"`) || !strings.Contains(h, s.Address().String()) {
		t.Errorf("/healthz: %s", h)
	}
	if m := get("/metrics"); !strings.Contains(m, `agora_provider_requests_total{endpoint="chat.completions",model="agora/tiny-lm",status="200"} 1`) || !strings.Contains(m, "agora_provider_receipts_total 1") {
		t.Errorf("/metrics lacks the request:\n%s", m)
	}
	var card struct {
		Name, URL           string
		SupportedInterfaces []struct{ URL, ProtocolBinding, ProtocolVersion string }
		Capabilities        struct{ Streaming bool }
		Skills              []struct{ ID, Name string }
	}
	if err := json.Unmarshal([]byte(get("/.well-known/agent-card.json")), &card); err != nil {
		t.Fatal(err)
	}
	a2aURL := s.URL() + "/a2a"
	if card.URL != a2aURL || len(card.SupportedInterfaces) == 0 || card.SupportedInterfaces[0].URL != a2aURL || !card.Capabilities.Streaming || len(card.Skills) != 2 {
		t.Errorf("agent card %+v", card)
	}
}
