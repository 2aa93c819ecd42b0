package provider

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/agoranet/agora/internal/answer"
	"github.com/agoranet/agora/internal/model"
	"github.com/agoranet/agora/internal/openai"
	"github.com/agoranet/agora/internal/receipt"
)

// TestReferenceMatchesProvider is the contract verifiers rely on: for every
// endpoint, streamed or not, the bytes a provider's receipt covers are the
// bytes answer.Reference makes for the same request, so an honest answer
// always passes an audit.
func TestReferenceMatchesProvider(t *testing.T) {
	s := start(t, "p1", builtinOffers(t))
	ref := answer.NewReference(model.Builtin())
	pixels := bytes.Repeat([]byte("9,"), 255)
	cases := []struct{ endpoint, path, body string }{
		{"chat.completions", "/v1/chat/completions", `{"model":"agora/tiny-lm","messages":[{"role":"user","content":"ROMEO:"}],"max_tokens":30,"temperature":0.8,"seed":7}`},
		{"chat.completions", "/v1/chat/completions", `{"model":"agora/tiny-lm","messages":[{"role":"user","content":"ROMEO:"}],"max_tokens":30,"seed":8,"stream":true}`},
		{"chat.completions", "/v1/chat/completions", `{"model":"agora/tiny-lm","messages":[{"role":"user","content":"JULIET:"}],"max_tokens":60,"seed":3,"stop":["e"],"stream":true}`},
		{"completions", "/v1/completions", `{"model":"agora/tiny-lm","prompt":"To be","max_tokens":25,"seed":1}`},
		{"completions", "/v1/completions", `{"model":"agora/tiny-lm","prompt":"To be","max_tokens":25,"seed":2,"stream":true}`},
		{"infer", "/v1/infer", fmt.Sprintf(`{"model":"agora/digits-mlp","input":[%s7]}`, pixels)},
	}
	for _, c := range cases {
		resp, body := post(t, s.URL()+c.path, c.body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", c.body, resp.StatusCode, body)
		}
		covered, rc := openai.SplitStream(body)
		if rc == "" {
			rc = resp.Header.Get(receipt.Header)
		}
		r, err := receipt.Decode(rc)
		if err != nil {
			t.Fatalf("%s: receipt: %v", c.body, err)
		}
		want, err := ref.Covered(context.Background(), c.endpoint, []byte(c.body))
		if err != nil {
			t.Fatalf("%s: reference: %v", c.body, err)
		}
		if !bytes.Equal(covered, want) {
			t.Errorf("%s:\nprovider  %q\nreference %q", c.body, covered, want)
		}
		if !bytes.Equal(r.ResponseHash, receipt.Hash(want)) {
			t.Errorf("%s: the receipt's response hash is not the reference's", c.body)
		}
	}
	if _, err := ref.Covered(context.Background(), "chat.completions", []byte(`{"model":"nope","messages":[{"role":"user","content":"x"}]}`)); err == nil {
		t.Error("re-executing with an unknown model succeeded")
	}
}

// TestInterimReceiptsPassAnAudit: a stream cut short is charged by its last
// interim receipt, which gets anchored and can be challenged. The reference
// must judge every honest interim receipt honest (it covers a prefix of the
// answer's events), or any client could have an honest provider slashed by
// cutting a stream; a hash that is no prefix's is still a lie.
func TestInterimReceiptsPassAnAudit(t *testing.T) {
	s := start(t, "p1", builtinOffers(t))
	s.cfg.InterimEvery = 3
	ref := answer.NewReference(model.Builtin())
	ctx := context.Background()
	body := `{"model":"agora/tiny-lm","messages":[{"role":"user","content":"ROMEO:"}],"max_tokens":20,"seed":8,"stream":true}`
	_, stream := post(t, s.URL()+"/v1/chat/completions", body)
	interims := 0
	for _, line := range bytes.SplitAfter(stream, []byte("\n")) {
		rc := openai.ReceiptOf(line)
		if rc == "" {
			continue
		}
		r, err := receipt.Decode(rc)
		if err != nil {
			t.Fatal(err)
		}
		if r.Partial {
			interims++
		}
		if truth, err := ref.Honest(ctx, "chat.completions", []byte(body), r.ResponseHash); err != nil || !bytes.Equal(truth, r.ResponseHash) {
			t.Errorf("an honest receipt (partial %v, %d tokens) is judged a lie: %v", r.Partial, r.Usage.CompletionTokens, err)
		}
	}
	if interims < 20/3 {
		t.Fatalf("%d interim receipts in a 20-token stream, want one every 3 tokens", interims)
	}
	lie := receipt.Hash([]byte("not a prefix"))
	if truth, _ := ref.Honest(ctx, "chat.completions", []byte(body), lie); bytes.Equal(truth, lie) {
		t.Error("a hash of no prefix of the answer is judged honest")
	}
}
