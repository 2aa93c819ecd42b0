package provider

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
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
		{"responses", "/v1/responses", `{"model":"agora/tiny-lm","input":"ROMEO:","max_output_tokens":20,"seed":4}`},
		{"responses", "/v1/responses", `{"model":"agora/tiny-lm","instructions":"A play.","input":[{"role":"user","content":[{"type":"input_text","text":"JULIET:"}]}],"max_output_tokens":40,"seed":5,"stream":true}`},
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

// TestResponsesAPI: /v1/responses answers in the Responses shape, streamed
// with its event types and numbered events, and refuses by name a field
// outside the subset it serves.
func TestResponsesAPI(t *testing.T) {
	s := start(t, "p1", builtinOffers(t))
	resp, body := post(t, s.URL()+"/v1/responses", `{"model":"agora/tiny-lm","input":"ROMEO:","max_output_tokens":5,"seed":1}`)
	var r openai.Response
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &r) != nil || r.Object != "response" || !strings.HasPrefix(r.ID, "resp_") ||
		len(r.Output) != 1 || r.Output[0].Content[0].Type != "output_text" || r.Output[0].Content[0].Text == "" || r.Usage == nil || r.Usage.OutputTokens == 0 {
		t.Fatalf("a response: %d %s", resp.StatusCode, body)
	}
	if r.Status != "incomplete" || r.IncompleteDetails == nil || r.IncompleteDetails.Reason != "max_output_tokens" {
		t.Errorf("a response cut by max_output_tokens: status %q, %v", r.Status, r.IncompleteDetails)
	}
	_, stream := post(t, s.URL()+"/v1/responses", `{"model":"agora/tiny-lm","input":"ROMEO:","max_output_tokens":8,"seed":1,"stream":true}`)
	var types []string
	var text strings.Builder
	seq := 0
	for _, ev := range strings.Split(string(stream), "\n\n") {
		i := strings.Index(ev, "data: ")
		if i < 0 {
			continue
		}
		data := ev[i+len("data: "):]
		var e openai.ResponseEvent
		if err := json.Unmarshal([]byte(data), &e); err != nil {
			t.Fatalf("event %q: %v", ev, err)
		}
		if e.Type == openai.ReceiptEventType {
			continue
		}
		if name, _, _ := strings.Cut(strings.TrimPrefix(ev, "event: "), "\n"); name != e.Type {
			t.Errorf("event named %q carries type %q", name, e.Type)
		}
		if e.SequenceNumber != seq {
			t.Errorf("event %s has sequence number %d, want %d", e.Type, e.SequenceNumber, seq)
		}
		seq++
		types = append(types, e.Type)
		if e.Delta != nil {
			text.WriteString(*e.Delta)
		}
	}
	want := []string{"response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"}
	if len(types) < 9 || !slices.Equal(types[:4], want) || types[len(types)-1] != "response.incomplete" || types[len(types)-2] != "response.output_item.done" {
		t.Errorf("stream events %v", types)
	}
	if text.String() == "" {
		t.Error("the stream's deltas carry no text")
	}
	for field, body := range map[string]string{
		"tools":                `{"model":"agora/tiny-lm","input":"x","tools":[{"type":"web_search"}]}`,
		"previous_response_id": `{"model":"agora/tiny-lm","input":"x","previous_response_id":"resp_1"}`,
		"store":                `{"model":"agora/tiny-lm","input":"x","store":true}`,
	} {
		resp, b := post(t, s.URL()+"/v1/responses", body)
		var e struct {
			Error struct{ Param, Message string }
		}
		if resp.StatusCode != http.StatusBadRequest || json.Unmarshal(b, &e) != nil || e.Error.Param != field || !strings.Contains(e.Error.Message, field) {
			t.Errorf("%s: %d %s; want a 400 naming the field", field, resp.StatusCode, b)
		}
	}
	if resp, b := post(t, s.URL()+"/v1/responses", `{"model":"agora/tiny-lm","input":[{"role":"user","content":[{"type":"input_image","image_url":"x"}]}]}`); resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "input_image") {
		t.Errorf("an image input: %d %s", resp.StatusCode, b)
	}
}

// TestA2AStreamCutIsFailed: an A2A stream whose provider breaks after
// some text ends in a failed task, not a completed one (it said completed
// before, with only an interim receipt), and the process survives the
// handler's abort.
func TestA2AStreamCutIsFailed(t *testing.T) {
	s := start(t, "p1", builtinOffers(t))
	s.cfg.InterimEvery = 2
	s.SetHooks(Hooks{BreakStream: func([]byte) (int, bool) { return 5, false }})
	_, body := post(t, s.URL()+"/a2a", `{"jsonrpc":"2.0","id":1,"method":"SendStreamingMessage","params":{"message":{"messageId":"m","role":"ROLE_USER","parts":[{"text":"ROMEO:"}]}}}`)
	events := strings.Split(strings.TrimSpace(string(body)), "\n\n")
	last := events[len(events)-1]
	if !strings.Contains(last, `"statusUpdate"`) || !strings.Contains(last, "TASK_STATE_FAILED") {
		t.Errorf("the last event of a cut stream: %s", last)
	}
	if resp, _ := post(t, s.URL()+"/v1/models", ``); resp == nil {
		t.Error("the provider is gone")
	}
}

// TestA2AAnswersCarryTheirEvidence: an A2A answer, whole or streamed,
// carries the chat request and the answer bytes its receipt covers, and
// the receipt checks against them.
func TestA2AAnswersCarryTheirEvidence(t *testing.T) {
	s := start(t, "p1", builtinOffers(t))
	for _, method := range []string{"SendMessage", "SendStreamingMessage"} {
		_, body := post(t, s.URL()+"/a2a", `{"jsonrpc":"2.0","id":1,"method":"`+method+`","params":{"message":{"messageId":"m","role":"ROLE_USER","parts":[{"text":"ROMEO:"}]}}}`)
		events := strings.Split(strings.TrimSpace(string(body)), "\n\n")
		last := strings.TrimPrefix(events[len(events)-1], "data: ")
		var resp struct {
			Result map[string]struct {
				Metadata map[string]string `json:"metadata"`
			} `json:"result"`
		}
		if err := json.Unmarshal([]byte(last), &resp); err != nil {
			t.Fatalf("%s: %v in %s", method, err, last)
		}
		var meta map[string]string
		for _, v := range resp.Result {
			meta = v.Metadata
		}
		req, err1 := base64.StdEncoding.DecodeString(meta["agora.request"])
		ans, err2 := base64.StdEncoding.DecodeString(meta["agora.answer"])
		r, err3 := receipt.Decode(meta["agora.receipt"])
		canonical, err4 := openai.CanonicalRequest("chat.completions", req)
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			t.Fatalf("%s: evidence %v: %v", method, meta, err)
		}
		if err := receipt.Check(r, canonical, ans); err != nil {
			t.Errorf("%s: the receipt does not cover the evidence: %v", method, err)
		}
	}
}
