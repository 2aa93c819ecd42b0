package openai

import (
	"bytes"
	"encoding/json"
	"sort"
	"strings"
)

// ResponsesRequest is POST /v1/responses, the subset Agora serves: text in
// (a string or a list of messages), text out. Unlike chat, where unknown
// fields are ignored as OpenAI does, a Responses field outside the subset
// is refused by name: tools, previous_response_id, store and the like
// change what the answer means, and silently dropping them would sell an
// answer to a question nobody asked.
type ResponsesRequest struct {
	Model           string          `json:"model"`
	Input           json.RawMessage `json:"input"`
	Instructions    *string         `json:"instructions,omitempty"`
	MaxOutputTokens *int            `json:"max_output_tokens,omitempty"`
	Temperature     *float64        `json:"temperature,omitempty"`
	Stream          bool            `json:"stream,omitempty"`
	// Seed is Agora's, as for chat: it picks one of the model's answers.
	Seed *int64 `json:"seed,omitempty"`
}

// responsesFields are the fields ResponsesRequest takes.
var responsesFields = map[string]bool{"model": true, "input": true, "instructions": true, "max_output_tokens": true, "temperature": true, "stream": true, "seed": true}

// UnmarshalJSON refuses fields outside the subset, naming the first.
func (r *ResponsesRequest) UnmarshalJSON(b []byte) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return err
	}
	var unknown []string
	for k, v := range fields {
		if !responsesFields[k] && string(bytes.TrimSpace(v)) != "null" {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return Invalid(unknown[0], "%s is not supported on this network's /v1/responses (it serves model, input, instructions, max_output_tokens, temperature, stream and seed); remove it", unknown[0])
	}
	type plain ResponsesRequest
	return json.Unmarshal(b, (*plain)(r))
}

// responsesMessage is one item of a Responses input list.
type responsesMessage struct {
	Type    string          `json:"type"`
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// Generation validates a Responses request and reduces it: the
// instructions become a first system message, a string input one user
// message.
func (r *ResponsesRequest) Generation(lim Limits) (*Generation, error) {
	if r.Model == "" {
		return nil, Invalid("model", "model is required; GET /v1/models lists what is served")
	}
	g := &Generation{Endpoint: "responses", Model: r.Model, Stream: r.Stream}
	if r.Instructions != nil && *r.Instructions != "" {
		g.Messages = append(g.Messages, Message{Role: "system", Content: *r.Instructions})
	}
	msgs, err := responsesInput(r.Input)
	if err != nil {
		return nil, err
	}
	g.Messages = append(g.Messages, msgs...)
	size := 0
	for _, m := range g.Messages {
		size += len(m.Content)
	}
	if size == 0 {
		return nil, Invalid("input", "the input is empty; send some text")
	}
	if g.MaxTokens, err = maxTokens(r.MaxOutputTokens, nil, lim); err != nil {
		if e, ok := err.(*Error); ok {
			e.Param, e.Message = "max_output_tokens", strings.Replace(e.Message, "max_tokens", "max_output_tokens", 1)
		}
		return nil, err
	}
	if g.TemperatureMilli, err = temperature(r.Temperature); err != nil {
		return nil, err
	}
	if r.Seed != nil {
		g.Seed = *r.Seed
	}
	if len(g.PromptText()) > lim.MaxPromptBytes {
		return nil, Invalid("input", "the prompt is %d bytes; this model takes at most %d", len(g.PromptText()), lim.MaxPromptBytes)
	}
	return g, nil
}

func responsesInput(raw json.RawMessage) ([]Message, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, Invalid("input", "input is required: a string, or a list of messages")
	}
	var text string
	if json.Unmarshal(raw, &text) == nil {
		return []Message{{Role: "user", Content: text}}, nil
	}
	var items []responsesMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, Invalid("input", "input must be a string or a list of messages ({role, content})")
	}
	if len(items) == 0 || len(items) > MaxMessages {
		return nil, Invalid("input", "input must hold 1 to %d messages", MaxMessages)
	}
	out := make([]Message, 0, len(items))
	for i, it := range items {
		if it.Type != "" && it.Type != "message" {
			return nil, Invalid("input", "input[%d] is a %q item; this network serves text messages only", i, it.Type)
		}
		role := it.Role
		switch role {
		case "user", "assistant", "system":
		case "developer":
			role = "system"
		default:
			return nil, Invalid("input", "input[%d].role %q must be user, assistant, system or developer", i, it.Role)
		}
		content, err := responsesContent(it.Content, i)
		if err != nil {
			return nil, err
		}
		out = append(out, Message{Role: role, Content: content})
	}
	return out, nil
}

// responsesContent is a message's text: a string, or text parts joined.
func responsesContent(raw json.RawMessage, i int) (string, error) {
	var text string
	if json.Unmarshal(raw, &text) == nil {
		return text, nil
	}
	var parts []struct {
		Type string  `json:"type"`
		Text *string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", Invalid("input", "input[%d].content must be a string or a list of text parts", i)
	}
	var b strings.Builder
	for j, p := range parts {
		if (p.Type != "input_text" && p.Type != "output_text") || p.Text == nil {
			return "", Invalid("input", "input[%d].content[%d] is %q; this network serves text (input_text) only", i, j, p.Type)
		}
		b.WriteString(*p.Text)
	}
	return b.String(), nil
}

// Responses API output types, in the fields and order OpenAI clients read.

// ResponseUsage counts a response's tokens.
type ResponseUsage struct {
	InputTokens  int `json:"input_tokens"`
	OutputTokens int `json:"output_tokens"`
	TotalTokens  int `json:"total_tokens"`
}

// OutputText is a message's text part.
type OutputText struct {
	Type        string `json:"type"` // "output_text"
	Text        string `json:"text"`
	Annotations []any  `json:"annotations"`
}

// OutputMessage is an output item: the assistant's message.
type OutputMessage struct {
	Type    string       `json:"type"` // "message"
	ID      string       `json:"id"`
	Status  string       `json:"status"`
	Role    string       `json:"role"`
	Content []OutputText `json:"content"`
}

// Incomplete says why a response stopped short.
type Incomplete struct {
	Reason string `json:"reason"`
}

// Response is a Responses API response object.
type Response struct {
	ID                string          `json:"id"`
	Object            string          `json:"object"` // "response"
	CreatedAt         int64           `json:"created_at"`
	Status            string          `json:"status"`
	Error             any             `json:"error"`
	IncompleteDetails *Incomplete     `json:"incomplete_details"`
	Model             string          `json:"model"`
	Output            []OutputMessage `json:"output"`
	Usage             *ResponseUsage  `json:"usage"`
}

// ResponseEvent is one event of a streamed response; which fields it
// carries depends on its type.
type ResponseEvent struct {
	Type           string         `json:"type"`
	SequenceNumber int            `json:"sequence_number"`
	Response       *Response      `json:"response,omitempty"`
	OutputIndex    *int           `json:"output_index,omitempty"`
	ItemID         string         `json:"item_id,omitempty"`
	ContentIndex   *int           `json:"content_index,omitempty"`
	Item           *OutputMessage `json:"item,omitempty"`
	Part           *OutputText    `json:"part,omitempty"`
	Delta          *string        `json:"delta,omitempty"`
	Text           *string        `json:"text,omitempty"`
}
