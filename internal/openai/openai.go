// Package openai is the OpenAI HTTP API as Agora speaks it: request and
// response types, strict parsing with OpenAI-style errors, and the
// canonical form of a request that receipts hash.
//
// Only what Agora serves is modelled; unknown request fields are ignored,
// as the OpenAI API does, and are not part of the canonical request.
package openai

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"strings"

	"github.com/agoranet/agora/internal/receipt"
)

// Limits on requests.
const (
	MaxBodyBytes     = 1 << 20
	MaxMessages      = 256
	MaxStops         = 4
	DefaultMaxTokens = 128
	MaxTemperature   = 2.0
)

// Message is one chat message.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// ChatRequest is POST /v1/chat/completions.
type ChatRequest struct {
	Model               string          `json:"model"`
	Messages            []Message       `json:"messages"`
	MaxTokens           *int            `json:"max_tokens,omitempty"`
	MaxCompletionTokens *int            `json:"max_completion_tokens,omitempty"`
	Temperature         *float64        `json:"temperature,omitempty"`
	Seed                *int64          `json:"seed,omitempty"`
	Stream              bool            `json:"stream,omitempty"`
	Stop                json.RawMessage `json:"stop,omitempty"`
	N                   *int            `json:"n,omitempty"`
}

// CompletionRequest is POST /v1/completions.
type CompletionRequest struct {
	Model       string          `json:"model"`
	Prompt      json.RawMessage `json:"prompt"`
	MaxTokens   *int            `json:"max_tokens,omitempty"`
	Temperature *float64        `json:"temperature,omitempty"`
	Seed        *int64          `json:"seed,omitempty"`
	Stream      bool            `json:"stream,omitempty"`
	Stop        json.RawMessage `json:"stop,omitempty"`
	N           *int            `json:"n,omitempty"`
}

// InferRequest is POST /v1/infer, for models that are not chat models.
type InferRequest struct {
	Model string `json:"model"`
	Input []int  `json:"input"`
	// Proof asks for a zero-knowledge proof of the inference.
	Proof bool `json:"proof,omitempty"`
}

// Generation is a text request reduced to what decides the answer. Its
// JSON encoding is the canonical request that receipts hash: fields in a
// fixed order, defaults filled in, unknown fields gone.
type Generation struct {
	Endpoint         string    `json:"endpoint"` // "chat.completions" or "completions"
	Model            string    `json:"model"`    // as the client named it
	Messages         []Message `json:"messages,omitempty"`
	Prompt           *string   `json:"prompt,omitempty"`
	MaxTokens        int       `json:"max_tokens"`
	TemperatureMilli int       `json:"temperature_milli"`
	Seed             int64     `json:"seed"`
	Stop             []string  `json:"stop,omitempty"`
	Stream           bool      `json:"stream"`
}

// Canonical returns the canonical request bytes.
func (g *Generation) Canonical() []byte {
	b, err := json.Marshal(g)
	if err != nil {
		panic(err) // a Generation always marshals
	}
	return b
}

// Inference is an /v1/infer request in canonical form.
type Inference struct {
	Endpoint string `json:"endpoint"` // "infer"
	Model    string `json:"model"`
	Input    []int  `json:"input"`
	Proof    bool   `json:"proof,omitempty"`
}

// Canonical returns the canonical request bytes.
func (i *Inference) Canonical() []byte {
	b, err := json.Marshal(i)
	if err != nil {
		panic(err)
	}
	return b
}

// Error is an API error: an HTTP status and the body OpenAI clients read.
type Error struct {
	Status  int
	Message string // for the user: what is wrong and what to do
	Type    string // invalid_request_error, not_found_error, server_error, …
	Code    string // a stable machine-readable code
	Param   string
}

func (e *Error) Error() string { return e.Message }

// Errorf builds an Error.
func Errorf(status int, typ, code, format string, args ...any) *Error {
	return &Error{Status: status, Type: typ, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid is a 400 invalid_request_error about param.
func Invalid(param, format string, args ...any) *Error {
	e := Errorf(http.StatusBadRequest, "invalid_request_error", "invalid_"+param, format, args...)
	e.Param = param
	return e
}

// WriteError writes err as an OpenAI error body. A non-*Error is a 500
// whose details stay in the server's log, not in the response.
func WriteError(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = Errorf(http.StatusInternalServerError, "server_error", "internal_error", "the server failed to answer; try again or use another provider")
	}
	body := map[string]any{"error": map[string]any{"message": e.Message, "type": e.Type, "code": e.Code, "param": nilIfEmpty(e.Param)}}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(body)
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// ReadJSON reads a JSON request body into v: the content type must be
// JSON, the body at most MaxBodyBytes and a single JSON value.
func ReadJSON(r *http.Request, v any) error {
	if r.Method != http.MethodPost {
		return Errorf(http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed", "use POST for %s", r.URL.Path)
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return Errorf(http.StatusUnsupportedMediaType, "invalid_request_error", "unsupported_media_type", "send the body as application/json, not %q", ct)
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
	if err != nil {
		return Errorf(http.StatusBadRequest, "invalid_request_error", "unreadable_body", "could not read the request body: %v", err)
	}
	if len(body) > MaxBodyBytes {
		return Errorf(http.StatusRequestEntityTooLarge, "invalid_request_error", "request_too_large", "the request body is over %d bytes", MaxBodyBytes)
	}
	return DecodeJSON(body, v)
}

// DecodeJSON parses one JSON value into v with a message for the user.
func DecodeJSON(body []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(body)))
	if err := dec.Decode(v); err != nil {
		var e *Error
		if errors.As(err, &e) { // a field refused by name
			return e
		}
		return Errorf(http.StatusBadRequest, "invalid_request_error", "invalid_json", "the body is not valid JSON for this endpoint: %v", err)
	}
	if dec.More() {
		return Errorf(http.StatusBadRequest, "invalid_request_error", "invalid_json", "the body has more than one JSON value")
	}
	return nil
}

// Limits a backend imposes on generations.
type Limits struct {
	MaxTokens      int
	MaxPromptBytes int
}

func maxTokens(a, b *int, lim Limits) (int, error) {
	set := a
	if set == nil {
		set = b
	}
	if set == nil {
		return min(DefaultMaxTokens, lim.MaxTokens), nil
	}
	if *set < 1 || *set > lim.MaxTokens {
		return 0, Invalid("max_tokens", "max_tokens is %d; this model allows 1 to %d", *set, lim.MaxTokens)
	}
	return *set, nil
}

func temperature(t *float64) (int, error) {
	if t == nil {
		return 1000, nil
	}
	if math.IsNaN(*t) || *t < 0 || *t > MaxTemperature {
		return 0, Invalid("temperature", "temperature must be between 0 and %g", MaxTemperature)
	}
	return int(math.Round(*t * 1000)), nil
}

func stops(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		if one == "" {
			return nil, nil
		}
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil || len(many) > MaxStops {
		return nil, Invalid("stop", "stop must be a string or a list of up to %d strings", MaxStops)
	}
	out := many[:0]
	for _, s := range many {
		if s != "" {
			out = append(out, s)
		}
	}
	return out, nil
}

func checkN(n *int) error {
	if n != nil && *n != 1 {
		return Invalid("n", "only n=1 is supported; send separate requests for more choices")
	}
	return nil
}

// ModelName is the model the request names.
func (r *ChatRequest) ModelName() string { return r.Model }

// ModelName is the model the request names.
func (r *CompletionRequest) ModelName() string { return r.Model }

// ModelName is the model the request names.
func (r *ResponsesRequest) ModelName() string { return r.Model }

// Chat validates a chat request and reduces it to a Generation.
func (r *ChatRequest) Generation(lim Limits) (*Generation, error) {
	if r.Model == "" {
		return nil, Invalid("model", "model is required; GET /v1/models lists what is served")
	}
	if len(r.Messages) == 0 || len(r.Messages) > MaxMessages {
		return nil, Invalid("messages", "messages must hold 1 to %d messages", MaxMessages)
	}
	size := 0
	for i, m := range r.Messages {
		switch m.Role {
		case "system", "user", "assistant", "developer":
		default:
			return nil, Invalid("messages", "messages[%d].role %q must be system, user, assistant or developer", i, m.Role)
		}
		size += len(m.Content)
	}
	if size == 0 {
		return nil, Invalid("messages", "the messages are empty; send some text")
	}
	g := &Generation{Endpoint: "chat.completions", Model: r.Model, Messages: r.Messages, Stream: r.Stream}
	var err error
	if g.MaxTokens, err = maxTokens(r.MaxTokens, r.MaxCompletionTokens, lim); err != nil {
		return nil, err
	}
	if g.TemperatureMilli, err = temperature(r.Temperature); err != nil {
		return nil, err
	}
	if r.Seed != nil {
		g.Seed = *r.Seed
	}
	if g.Stop, err = stops(r.Stop); err != nil {
		return nil, err
	}
	if err := checkN(r.N); err != nil {
		return nil, err
	}
	if len(g.PromptText()) > lim.MaxPromptBytes {
		return nil, Invalid("messages", "the prompt is %d bytes; this model takes at most %d", len(g.PromptText()), lim.MaxPromptBytes)
	}
	return g, nil
}

// Generation validates a completion request and reduces it.
func (r *CompletionRequest) Generation(lim Limits) (*Generation, error) {
	if r.Model == "" {
		return nil, Invalid("model", "model is required; GET /v1/models lists what is served")
	}
	var prompt string
	if err := json.Unmarshal(r.Prompt, &prompt); err != nil {
		var list []string
		if json.Unmarshal(r.Prompt, &list) != nil || len(list) != 1 {
			return nil, Invalid("prompt", "prompt must be a string (or a list of one string)")
		}
		prompt = list[0]
	}
	if prompt == "" {
		return nil, Invalid("prompt", "prompt is empty; send some text")
	}
	g := &Generation{Endpoint: "completions", Model: r.Model, Prompt: &prompt, Stream: r.Stream}
	var err error
	if g.MaxTokens, err = maxTokens(r.MaxTokens, nil, lim); err != nil {
		return nil, err
	}
	if g.TemperatureMilli, err = temperature(r.Temperature); err != nil {
		return nil, err
	}
	if r.Seed != nil {
		g.Seed = *r.Seed
	}
	if g.Stop, err = stops(r.Stop); err != nil {
		return nil, err
	}
	if err := checkN(r.N); err != nil {
		return nil, err
	}
	if len(prompt) > lim.MaxPromptBytes {
		return nil, Invalid("prompt", "the prompt is %d bytes; this model takes at most %d", len(prompt), lim.MaxPromptBytes)
	}
	return g, nil
}

// PromptText is the text a completion model continues: the prompt, or
// the chat messages as a script, each message's text followed by a blank
// line (roles are not spelled out: the built-in model knows only plays).
func (g *Generation) PromptText() string {
	if g.Prompt != nil {
		return *g.Prompt
	}
	var b strings.Builder
	for _, m := range g.Messages {
		b.WriteString(m.Content)
		b.WriteString("\n\n")
	}
	return b.String()
}

// Summary is what a router needs to know of a request body: the model it
// names, whether it streams, its token budget and the canonical request
// bytes that a receipt hashes.
type Summary struct {
	Model     string
	Stream    bool
	MaxTokens int // 0 for /v1/infer
	Canonical []byte
}

// Summarize decodes a request body sent to endpoint ("chat.completions",
// "completions", "responses" or "infer") under lim and reduces it to a
// Summary.
func Summarize(endpoint string, body []byte, lim Limits) (*Summary, error) {
	var gen interface {
		Generation(Limits) (*Generation, error)
	}
	switch endpoint {
	case "chat.completions":
		gen = new(ChatRequest)
	case "completions":
		gen = new(CompletionRequest)
	case "responses":
		gen = new(ResponsesRequest)
	case "infer":
		var r InferRequest
		if err := DecodeJSON(body, &r); err != nil {
			return nil, err
		}
		return &Summary{Model: r.Model, Canonical: (&Inference{Endpoint: "infer", Model: r.Model, Input: r.Input, Proof: r.Proof}).Canonical()}, nil
	default:
		return nil, fmt.Errorf("openai: unknown endpoint %q (chat.completions, completions, responses or infer)", endpoint)
	}
	if err := DecodeJSON(body, gen); err != nil {
		return nil, err
	}
	g, err := gen.Generation(lim)
	if err != nil {
		return nil, err
	}
	return &Summary{Model: g.Model, Stream: g.Stream, MaxTokens: g.MaxTokens, Canonical: g.Canonical()}, nil
}

// CanonicalRequest returns the canonical form of a request body sent to
// endpoint, as a receipt hashes it. It applies no model's limits: it is for
// checking receipts.
func CanonicalRequest(endpoint string, body []byte) ([]byte, error) {
	sum, err := Summarize(endpoint, body, Limits{MaxTokens: 1 << 30, MaxPromptBytes: MaxBodyBytes})
	if err != nil {
		return nil, err
	}
	return sum.Canonical, nil
}

// A stream's receipts travel in events of their own (no choices, the
// receipt in agora_receipt): interim ones every few tokens, so that a
// stream cut short is paid for what was delivered, and a last one after
// the finish reason. Each covers every byte of the stream before it except
// the receipt events themselves, so the bytes a receipt covers are the
// same whichever provider, and however many interim receipts, sent them.

const receiptField = `"agora_receipt":"`

// ReceiptOf is the encoded receipt in a receipt event's data line (one
// line of a stream, its newline included or not), "" if line is not one.
// A receipt event has exactly one of two shapes: a chat or completion
// chunk with an empty choices list, or a Responses event of type
// agora.receipt; in either, no field but the chunk's own can be present.
// An event that could carry text is never one, so no text can be left out
// of what receipts cover.
func ReceiptOf(line []byte) string {
	data, ok := bytes.CutPrefix(line, []byte("data: "))
	if !ok || !bytes.Contains(data, []byte(receiptField)) { // most lines: no parsing
		return ""
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(data, &fields) != nil {
		return ""
	}
	var enc string
	if json.Unmarshal(fields["agora_receipt"], &enc) != nil || enc == "" {
		return ""
	}
	str := func(k string) string {
		var v string
		json.Unmarshal(fields[k], &v)
		return v
	}
	if _, typed := fields["type"]; typed {
		if len(fields) == 2 && str("type") == ReceiptEventType {
			return enc
		}
		return ""
	}
	var choices []json.RawMessage
	if c, ok := fields["choices"]; !ok || json.Unmarshal(c, &choices) != nil || choices == nil || len(choices) != 0 {
		return ""
	}
	if _, ok := fields["object"]; ok {
		if o := str("object"); o != "chat.completion.chunk" && o != "text_completion" {
			return ""
		}
	}
	for k := range fields {
		switch k {
		case "id", "object", "created", "model", "choices", "usage", "agora_receipt":
		default:
			return ""
		}
	}
	return enc
}

// ReceiptEventType is the type of a streamed response's receipt events.
const ReceiptEventType = "agora.receipt"

// SplitStream splits a saved server-sent-event stream into the bytes its
// last receipt covers (everything before that receipt's event, receipt
// events left out) and that receipt. A body with no receipt event comes
// back whole with no receipt, and so does one with anything but "data:
// [DONE]" after a final (not partial) last receipt: that receipt says the
// stream ends there, and events after it are ones no receipt vouches for.
func SplitStream(body []byte) (covered []byte, enc string) {
	var out []byte
	coveredLen := -1
	skipBlank := false
	for rest := body; len(rest) > 0; {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line = rest[:i+1]
		}
		rest = rest[len(line):]
		if rc := ReceiptOf(line); rc != "" {
			enc, coveredLen, skipBlank = rc, len(out), true
			continue
		}
		if skipBlank && string(line) == "\n" { // the receipt event's end
			skipBlank = false
			continue
		}
		skipBlank = false
		out = append(out, line...)
	}
	if coveredLen < 0 {
		return body, ""
	}
	if r, err := receipt.Parse(enc); (err != nil || !r.Partial) && !StreamEnd(out[coveredLen:]) {
		return body, ""
	}
	return out[:coveredLen], enc
}

// StreamEnd tells whether b is all a stream may send after its final
// receipt: "data: [DONE]" and blank lines.
func StreamEnd(b []byte) bool {
	for _, line := range bytes.SplitAfter(b, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && string(t) != "data: [DONE]" {
			return false
		}
	}
	return true
}
