package openai

import (
	"crypto/ed25519"
	"errors"
	"net/http"
	"testing"

	"github.com/agoranet/agora/internal/receipt"
)

var lim = Limits{MaxTokens: 64, MaxPromptBytes: 1 << 10}

// Two bodies that ask for the same answer must hash the same: key order,
// unknown fields and spelled-out defaults do not change the canonical form.
func TestSummarizeCanonicalIgnoresSpelling(t *testing.T) {
	a := `{"model":"tiny-lm","messages":[{"role":"user","content":"hi"}]}`
	b := `{"user":"x","temperature":1,"messages":[{"content":"hi","role":"user"}],"n":1,"model":"tiny-lm","max_tokens":64}`
	sa, err := Summarize("chat.completions", []byte(a), lim)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := Summarize("chat.completions", []byte(b), lim)
	if err != nil {
		t.Fatal(err)
	}
	if string(sa.Canonical) != string(sb.Canonical) {
		t.Fatalf("canonical forms differ:\n%s\n%s", sa.Canonical, sb.Canonical)
	}
	if sa.Model != "tiny-lm" || sa.MaxTokens != min(DefaultMaxTokens, lim.MaxTokens) || sa.Stream {
		t.Fatalf("summary %+v", sa)
	}
	// A field that changes the answer changes the canonical form.
	c := `{"model":"tiny-lm","messages":[{"role":"user","content":"hi"}],"seed":7}`
	sc, err := Summarize("chat.completions", []byte(c), lim)
	if err != nil {
		t.Fatal(err)
	}
	if string(sc.Canonical) == string(sa.Canonical) {
		t.Fatal("the seed does not reach the canonical form")
	}
}

func TestSummarizeEndpoints(t *testing.T) {
	s, err := Summarize("completions", []byte(`{"model":"m","prompt":["one"],"stream":true,"max_tokens":3}`), lim)
	if err != nil || !s.Stream || s.MaxTokens != 3 {
		t.Fatalf("completions: %+v %v", s, err)
	}
	s, err = Summarize("infer", []byte(`{"model":"digits-mlp","input":[1,2],"proof":true}`), lim)
	if err != nil || s.Model != "digits-mlp" || string(s.Canonical) != `{"endpoint":"infer","model":"digits-mlp","input":[1,2],"proof":true}` {
		t.Fatalf("infer: %+v %v", s, err)
	}
	if _, err := Summarize("embeddings", []byte(`{}`), lim); err == nil {
		t.Fatal("an unknown endpoint was summarized")
	}
}

// Bad requests are client errors that name the parameter to fix.
func TestSummarizeRejects(t *testing.T) {
	for body, param := range map[string]string{
		`{"messages":[{"role":"user","content":"hi"}]}`:                             "model",
		`{"model":"m","messages":[]}`:                                               "messages",
		`{"model":"m","messages":[{"role":"robot","content":"hi"}]}`:                "messages",
		`{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":65}`: "max_tokens",
		`{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":9}`: "temperature",
		`{"model":"m","messages":[{"role":"user","content":"hi"}],"n":2}`:           "n",
	} {
		_, err := Summarize("chat.completions", []byte(body), lim)
		var e *Error
		if !errors.As(err, &e) || e.Status != http.StatusBadRequest || e.Param != param {
			t.Errorf("%s: got %v, want a 400 on %q", body, err, param)
		}
	}
	if _, err := Summarize("chat.completions", []byte(`{"model":"m"} {}`), lim); err == nil {
		t.Error("two JSON values were accepted")
	}
}

// TestSplitStreamLeavesOutReceiptEvents: what the last receipt of a stream
// covers is every byte before its event except receipt events, interim
// ones included.
func TestSplitStreamLeavesOutReceiptEvents(t *testing.T) {
	a, b, fin := "data: {\"choices\":[{\"delta\":{\"content\":\"a\\\"agora_receipt\\\":\\\"x\"}}]}\n\n", "data: {\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n\n", "data: {\"choices\":[{\"finish_reason\":\"length\"}]}\n\n"
	_, key, _ := ed25519.GenerateKey(nil)
	R1, _ := receipt.Sign(key, &receipt.Receipt{Partial: true})
	R2, _ := receipt.Sign(key, &receipt.Receipt{})
	interim := "data: {\"choices\":[],\"agora_receipt\":\"" + R1 + "\"}\n\n"
	last := "data: {\"choices\":[],\"usage\":{},\"agora_receipt\":\"" + R2 + "\"}\n\ndata: [DONE]\n\n"
	covered, rc := SplitStream([]byte(a + interim + b + fin + last))
	if string(covered) != a+b+fin || rc != R2 {
		t.Errorf("covered %q, receipt %q; want %q and R2", covered, rc, a+b+fin)
	}
	covered, rc = SplitStream([]byte(a + interim + b)) // cut after an interim receipt
	if string(covered) != a || rc != R1 {
		t.Errorf("a cut stream: covered %q, receipt %q; want %q and R1", covered, rc, a)
	}
	if covered, rc = SplitStream([]byte(a + b)); string(covered) != a+b || rc != "" {
		t.Errorf("no receipt: %q %q", covered, rc)
	}
	// Text dressed as a receipt event is covered like any text.
	fake := "data: {\"choices\":[{\"delta\":{\"content\":\"evil\"}}],\"agora_receipt\":\"R0\"}\n\n"
	if covered, rc = SplitStream([]byte(a + fake + b + last)); string(covered) != a+fake+b || rc != R2 {
		t.Errorf("a text event with a receipt field: covered %q, receipt %q", covered, rc)
	}
	// An event after the final receipt is one no receipt covers: the
	// stream has none.
	if _, rc = SplitStream([]byte(a + b + last + b)); rc != "" {
		t.Errorf("an event after the final receipt: receipt %q; want none", rc)
	}
}

// TestReceiptEventsCarryNoText: only the two exact receipt shapes are
// receipts; a line that carries text beside a receipt (with no type, a
// null type, or a duplicate key) is not one, so SplitStream keeps it in
// what the receipt covers and a provider cannot show a client text its
// receipt does not vouch for. The first three were taken as receipts
// before.
func TestReceiptEventsCarryNoText(t *testing.T) {
	for _, line := range []string{
		`data: {"delta":"hidden","agora_receipt":"x"}`,
		`data: {"type":null,"delta":"hidden","agora_receipt":"x"}`,
		`data: {"type":"agora.receipt","delta":"hidden","agora_receipt":"x","type":null}`,
		`data: {"type":"agora.receipt","agora_receipt":"x","text":"hidden"}`,
		`data: {"object":"chat.completion.chunk","choices":[{"delta":{"content":"hidden"}}],"agora_receipt":"x"}`,
		`data: {"object":"chat.completion.chunk","agora_receipt":"x","content":"hidden"}`,
		`data: {"object":"chat.completion.chunk","agora_receipt":"x"}`,
		`data: {"object":"response.output_text.delta","choices":[],"agora_receipt":"x"}`,
	} {
		if ReceiptOf([]byte(line)) != "" {
			t.Errorf("taken as a receipt: %s", line)
		}
	}
	for _, line := range []string{
		`data: {"type":"agora.receipt","agora_receipt":"x"}`,
		`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":0,"model":"m","choices":[],"usage":{"prompt_tokens":1},"agora_receipt":"x"}`,
		`data: {"id":"cmpl-1","object":"text_completion","created":0,"model":"m","choices":[],"agora_receipt":"x"}`,
	} {
		if ReceiptOf([]byte(line)) != "x" {
			t.Errorf("not taken as a receipt: %s", line)
		}
	}
}
