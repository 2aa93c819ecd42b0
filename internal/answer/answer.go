// Package answer makes the bytes of an answer: it runs a model (a built-in
// one or an upstream engine) and renders what the model said in the OpenAI
// wire format.
//
// Providers answer with it and verifiers re-execute with it, so a
// deterministic model's answer is byte-for-byte the same wherever it is
// made: that is what lets a verifier check a receipt's response hash by
// answering the request again. Payment, receipts and HTTP stay with the
// provider; nothing here knows about the chain.
package answer

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/agoranet/agora/internal/model"
	"github.com/agoranet/agora/internal/openai"
	"github.com/agoranet/agora/internal/receipt"
)

// ID names an answer after its canonical request, as OpenAI's ids do
// ("chatcmpl-…", "cmpl-…"); the same request gets the same id everywhere.
func ID(prefix string, canonical []byte) string {
	return prefix + hex.EncodeToString(receipt.Hash(canonical)[:12])
}

// Text renders one generation's answer, whole or as a stream of
// server-sent events, in the shape of the endpoint it was asked on. A
// stream's Text keeps state (a Responses stream numbers its events and
// repeats the text at its end), so each answer needs its own.
type Text struct {
	id, object, model string
	shape             shape
	// A Responses stream: its message item's id, the events sent so far
	// (receipts are not counted, so the bytes they cover do not depend on
	// how many there were), and the text.
	itemID string
	seq    int
	text   []byte
}

type shape int

const (
	chat        shape = iota
	completions       // the legacy /v1/completions shape
	responses         // the Responses API
)

// NewText renders g's answer from model (the served model's name).
func NewText(g *openai.Generation, model string) *Text {
	canonical := g.Canonical()
	switch g.Endpoint {
	case "completions":
		return &Text{id: ID("cmpl-", canonical), object: "text_completion", model: model, shape: completions}
	case "responses":
		return &Text{id: ID("resp_", canonical), object: "response", model: model, shape: responses, itemID: ID("msg_", canonical)}
	}
	return &Text{id: ID("chatcmpl-", canonical), object: "chat.completion", model: model}
}

// Body is the whole, non-streamed answer: a JSON document and a newline.
func (t *Text) Body(text, finish string, usage openai.Usage) []byte {
	var v any
	switch t.shape {
	case completions:
		v = openai.TextCompletion{ID: t.id, Object: t.object, Model: t.model,
			Choices: []openai.TextChoice{{Text: text, FinishReason: finish}}, Usage: usage}
	case responses:
		v = t.response(text, finish, &usage)
	default:
		v = openai.ChatCompletion{ID: t.id, Object: t.object, Model: t.model,
			Choices: []openai.ChatChoice{{Message: openai.Message{Role: "assistant", Content: text}, FinishReason: finish}}, Usage: usage}
	}
	return append(mustJSON(v), '\n')
}

// response is the Responses object; finish "" is one still in progress.
func (t *Text) response(text, finish string, usage *openai.Usage) *openai.Response {
	r := &openai.Response{ID: t.id, Object: t.object, Model: t.model, Status: "in_progress", Output: []openai.OutputMessage{}}
	if finish == "" {
		return r
	}
	r.Status = "completed"
	if finish == "length" {
		r.Status, r.IncompleteDetails = "incomplete", &openai.Incomplete{Reason: "max_output_tokens"}
	}
	r.Output = []openai.OutputMessage{t.message(text, "completed")}
	r.Usage = &openai.ResponseUsage{InputTokens: usage.PromptTokens, OutputTokens: usage.CompletionTokens, TotalTokens: usage.PromptTokens + usage.CompletionTokens}
	return r
}

func (t *Text) message(text, status string) openai.OutputMessage {
	content := []openai.OutputText{}
	if status == "completed" {
		content = []openai.OutputText{{Type: "output_text", Text: text, Annotations: []any{}}}
	}
	return openai.OutputMessage{Type: "message", ID: t.itemID, Status: status, Role: "assistant", Content: content}
}

// event is a Responses stream event: named, and numbered in order.
func (t *Text) event(e openai.ResponseEvent) []byte {
	e.SequenceNumber = t.seq
	t.seq++
	b := append([]byte("event: "+e.Type+"\n"), Event(e)...)
	return b
}

func (t *Text) chunk(text, role string, finish *string) []byte {
	object := "chat.completion.chunk"
	if t.shape == completions {
		object = t.object
	}
	c := openai.Chunk{ID: t.id, Object: object, Model: t.model, Choices: []openai.ChunkChoice{{FinishReason: finish}}}
	if t.shape == completions {
		c.Choices[0].Text = &text
	} else {
		c.Choices[0].Delta = openai.Delta{Role: role, Content: text}
	}
	return Event(c)
}

var zero = new(int)

// Open is the stream's first events: the assistant's role for a chat,
// none for a completion, the response and its message begun for the
// Responses API.
func (t *Text) Open() []byte {
	switch t.shape {
	case completions:
		return nil
	case responses:
		var b []byte
		b = append(b, t.event(openai.ResponseEvent{Type: "response.created", Response: t.response("", "", nil)})...)
		b = append(b, t.event(openai.ResponseEvent{Type: "response.in_progress", Response: t.response("", "", nil)})...)
		item := t.message("", "in_progress")
		b = append(b, t.event(openai.ResponseEvent{Type: "response.output_item.added", OutputIndex: zero, Item: &item})...)
		return append(b, t.event(openai.ResponseEvent{Type: "response.content_part.added", ItemID: t.itemID, OutputIndex: zero, ContentIndex: zero,
			Part: &openai.OutputText{Type: "output_text", Text: "", Annotations: []any{}}})...)
	}
	return t.chunk("", "assistant", nil)
}

// Delta is the event carrying one piece of text, as the model emitted it.
func (t *Text) Delta(text []byte) []byte {
	if t.shape == responses {
		t.text = append(t.text, text...)
		d := string(text)
		return t.event(openai.ResponseEvent{Type: "response.output_text.delta", ItemID: t.itemID, OutputIndex: zero, ContentIndex: zero, Delta: &d})
	}
	return t.chunk(string(text), "", nil)
}

// Finish is the event saying why the generation stopped (for the
// Responses API, the text's and the response's closing events, with the
// usage); a receipt's response hash covers the stream up to and including
// it.
func (t *Text) Finish(finish string, usage openai.Usage) []byte {
	if t.shape != responses {
		return t.chunk("", "", &finish)
	}
	text := string(t.text)
	var b []byte
	b = append(b, t.event(openai.ResponseEvent{Type: "response.output_text.done", ItemID: t.itemID, OutputIndex: zero, ContentIndex: zero, Text: &text})...)
	b = append(b, t.event(openai.ResponseEvent{Type: "response.content_part.done", ItemID: t.itemID, OutputIndex: zero, ContentIndex: zero,
		Part: &openai.OutputText{Type: "output_text", Text: text, Annotations: []any{}}})...)
	item := t.message(text, "completed")
	b = append(b, t.event(openai.ResponseEvent{Type: "response.output_item.done", OutputIndex: zero, Item: &item})...)
	r := t.response(text, finish, &usage)
	kind := "response.completed"
	if r.Status == "incomplete" {
		kind = "response.incomplete"
	}
	return append(b, t.event(openai.ResponseEvent{Type: kind, Response: r})...)
}

// receiptEvent is a Responses stream's receipt event: data only, so that
// clients that dispatch on the event name pass it by, and not numbered.
func receiptEvent(rc string) []byte {
	return Event(struct {
		Type         string `json:"type"`
		AgoraReceipt string `json:"agora_receipt"`
	}{openai.ReceiptEventType, rc})
}

// Interim is an interim receipt's event: no choices, the receipt (see
// openai.SplitStream for what it covers).
func (t *Text) Interim(receipt string) []byte {
	switch t.shape {
	case responses:
		return receiptEvent(receipt)
	case completions:
		return Event(openai.Chunk{ID: t.id, Object: t.object, Model: t.model, Choices: []openai.ChunkChoice{}, AgoraReceipt: receipt})
	}
	return Event(openai.Chunk{ID: t.id, Object: "chat.completion.chunk", Model: t.model, Choices: []openai.ChunkChoice{}, AgoraReceipt: receipt})
}

// Close ends the stream: an event with no choices that carries the usage
// and the receipt, then [DONE]; for the Responses API, which has no
// [DONE], the receipt's event (the usage went with response.completed).
func (t *Text) Close(usage openai.Usage, receipt string) []byte {
	if t.shape == responses {
		return receiptEvent(receipt)
	}
	object := "chat.completion.chunk"
	if t.shape == completions {
		object = t.object
	}
	b := Event(openai.Chunk{ID: t.id, Object: object, Model: t.model, Choices: []openai.ChunkChoice{}, Usage: &usage, AgoraReceipt: receipt})
	return append(b, "data: [DONE]\n\n"...)
}

// Event is one server-sent event carrying v as JSON.
func Event(v any) []byte {
	b := append([]byte("data: "), mustJSON(v)...)
	return append(b, '\n', '\n')
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // the wire types always marshal
	}
	return b
}

// Pixels checks a classifier's input: each value is a pixel, 0 to 255.
func Pixels(input []int) ([]byte, error) {
	pixels := make([]byte, len(input))
	for i, v := range input {
		if v < 0 || v > 255 {
			return nil, openai.Invalid("input", "input[%d] is %d; pixels are 0 to 255", i, v)
		}
		pixels[i] = byte(v)
	}
	return pixels, nil
}

// InferCanonical is the canonical form of a classification request, the
// bytes a receipt's request hash covers.
func InferCanonical(req *openai.InferRequest) []byte {
	return (&openai.Inference{Endpoint: "infer", Model: req.Model, Input: req.Input, Proof: req.Proof}).Canonical()
}

// Classification renders a classifier's answer; proof is the zk proof of
// it, or nil.
func Classification(model string, logits []int32, class int, proof []byte) []byte {
	resp := openai.InferResponse{Model: model, Class: class, Logits: logits}
	if proof != nil {
		resp.Proof = base64.StdEncoding.EncodeToString(proof)
	}
	return append(mustJSON(resp), '\n')
}

// InputError turns a model's complaint about its input into a 400 for the
// client; other errors pass through.
func InputError(err error) error {
	if errors.Is(err, model.ErrInput) {
		return openai.Invalid("request", "%v", err)
	}
	return err
}

// errUnknown is the reference's answer for a model it does not hold.
func errUnknown(name string) error {
	return fmt.Errorf("answer: no built-in model %q to re-execute with", name)
}
