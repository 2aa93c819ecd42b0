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
// server-sent events.
type Text struct {
	id, object, model string
	completions       bool // the legacy /v1/completions shape
}

// NewText renders g's answer from model (the served model's name).
func NewText(g *openai.Generation, model string) Text {
	canonical := g.Canonical()
	if g.Endpoint == "completions" {
		return Text{id: ID("cmpl-", canonical), object: "text_completion", model: model, completions: true}
	}
	return Text{id: ID("chatcmpl-", canonical), object: "chat.completion", model: model}
}

// Body is the whole, non-streamed answer: a JSON document and a newline.
func (t Text) Body(text, finish string, usage openai.Usage) []byte {
	var v any
	if t.completions {
		v = openai.TextCompletion{ID: t.id, Object: t.object, Model: t.model,
			Choices: []openai.TextChoice{{Text: text, FinishReason: finish}}, Usage: usage}
	} else {
		v = openai.ChatCompletion{ID: t.id, Object: t.object, Model: t.model,
			Choices: []openai.ChatChoice{{Message: openai.Message{Role: "assistant", Content: text}, FinishReason: finish}}, Usage: usage}
	}
	return append(mustJSON(v), '\n')
}

func (t Text) chunk(text, role string, finish *string) []byte {
	object := "chat.completion.chunk"
	if t.completions {
		object = t.object
	}
	c := openai.Chunk{ID: t.id, Object: object, Model: t.model, Choices: []openai.ChunkChoice{{FinishReason: finish}}}
	if t.completions {
		c.Choices[0].Text = &text
	} else {
		c.Choices[0].Delta = openai.Delta{Role: role, Content: text}
	}
	return Event(c)
}

// Open is the stream's first event: the assistant's role for a chat, none
// for a completion.
func (t Text) Open() []byte {
	if t.completions {
		return nil
	}
	return t.chunk("", "assistant", nil)
}

// Delta is the event carrying one piece of text, as the model emitted it.
func (t Text) Delta(text []byte) []byte { return t.chunk(string(text), "", nil) }

// Finish is the event saying why the generation stopped; a receipt's
// response hash covers the stream up to and including it.
func (t Text) Finish(finish string) []byte { return t.chunk("", "", &finish) }

// Interim is an interim receipt's event: no choices, the receipt (see
// openai.SplitStream for what it covers).
func (t Text) Interim(receipt string) []byte {
	object := "chat.completion.chunk"
	if t.completions {
		object = t.object
	}
	return Event(openai.Chunk{ID: t.id, Object: object, Model: t.model, Choices: []openai.ChunkChoice{}, AgoraReceipt: receipt})
}

// Close ends the stream: an event with no choices that carries the usage
// and the receipt, then [DONE].
func (t Text) Close(usage openai.Usage, receipt string) []byte {
	object := "chat.completion.chunk"
	if t.completions {
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
