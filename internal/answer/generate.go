package answer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/agoranet/agora/internal/model"
	"github.com/agoranet/agora/internal/openai"
)

// Generator makes text: a built-in model or an upstream engine.
type Generator interface {
	// Generate answers g, calling emit with each piece of text as it is
	// made, and returns why it stopped ("stop" or "length") and the usage.
	Generate(ctx context.Context, g *openai.Generation, emit func(text []byte) error) (finish string, usage openai.Usage, err error)
	Limits() openai.Limits
}

// Builtin generates with a built-in (or operator-supplied) language model.
// It is deterministic: the same request and seed give the same pieces of
// text, in the same pieces, on every machine.
func Builtin(lm *model.LM) Generator { return builtinLM{lm} }

// StopsAtOnce tells whether g stops within a step of its context ending
// (a built-in model does; an upstream engine's prefill may go on), so that
// it may start before the request's payment is checked.
func StopsAtOnce(g Generator) bool {
	_, ok := g.(builtinLM)
	return ok
}

type builtinLM struct{ lm *model.LM }

// BuiltinLimits are what a built-in language model accepts.
var BuiltinLimits = openai.Limits{MaxTokens: model.MaxTokens, MaxPromptBytes: model.MaxPromptBytes}

func (b builtinLM) Limits() openai.Limits { return BuiltinLimits }

func (b builtinLM) Generate(ctx context.Context, g *openai.Generation, emit func([]byte) error) (string, openai.Usage, error) {
	prompt := []byte(g.PromptText())
	st := newStopper(g.Stop, emit)
	n := 0
	err := b.lm.GenerateStreamContext(ctx, prompt, g.MaxTokens, g.TemperatureMilli, uint64(g.Seed), func(tok []byte) error {
		n++
		return st.write(tok)
	})
	if err != nil {
		return "", openai.Usage{}, err
	}
	if err := st.flush(); err != nil {
		return "", openai.Usage{}, err
	}
	finish := "length"
	if st.stopped {
		finish = "stop"
	}
	return finish, openai.Usage{PromptTokens: len(prompt), CompletionTokens: n, TotalTokens: len(prompt) + n}, nil
}

// stopper passes text through until a stop sequence appears, holding back
// just enough bytes to never emit the start of one.
type stopper struct {
	stops   []string
	emit    func([]byte) error
	held    []byte
	stopped bool
	hold    int
}

func newStopper(stops []string, emit func([]byte) error) *stopper {
	s := &stopper{stops: stops, emit: emit}
	for _, x := range stops {
		s.hold = max(s.hold, len(x)-1)
	}
	return s
}

func (s *stopper) write(b []byte) error {
	if s.stopped {
		return model.ErrStop
	}
	if len(s.stops) == 0 {
		return s.emit(b)
	}
	s.held = append(s.held, b...)
	for _, x := range s.stops {
		if i := bytes.Index(s.held, []byte(x)); i >= 0 {
			s.stopped = true
			if i > 0 {
				if err := s.emit(s.held[:i]); err != nil {
					return err
				}
			}
			s.held = s.held[:0]
			return model.ErrStop
		}
	}
	if over := len(s.held) - s.hold; over > 0 {
		if err := s.emit(s.held[:over]); err != nil {
			return err
		}
		s.held = append(s.held[:0], s.held[over:]...)
	}
	return nil
}

func (s *stopper) flush() error {
	if len(s.held) == 0 || s.stopped {
		return nil
	}
	err := s.emit(s.held)
	s.held = s.held[:0]
	return err
}

// upstream serves a model from an OpenAI-compatible engine (vLLM,
// llama.cpp's server, Ollama) by streaming from its chat endpoint.
type upstream struct {
	url    string // base URL, like http://127.0.0.1:8000
	model  string // the engine's name for the model
	client *http.Client
}

func (u upstream) Limits() openai.Limits {
	return openai.Limits{MaxTokens: 32768, MaxPromptBytes: openai.MaxBodyBytes / 2}
}

func (u upstream) Generate(ctx context.Context, g *openai.Generation, emit func([]byte) error) (string, openai.Usage, error) {
	temp := float64(g.TemperatureMilli) / 1000
	body := map[string]any{"model": u.model, "max_tokens": g.MaxTokens, "temperature": temp, "seed": g.Seed, "stream": true,
		"stream_options": map[string]any{"include_usage": true}}
	path := "/v1/chat/completions"
	if g.Prompt != nil {
		path = "/v1/completions"
		body["prompt"] = *g.Prompt
	} else {
		body["messages"] = g.Messages
	}
	if len(g.Stop) > 0 {
		body["stop"] = g.Stop
	}
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(u.url, "/")+path, bytes.NewReader(b))
	if err != nil {
		return "", openai.Usage{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := u.client.Do(req)
	if err != nil {
		return "", openai.Usage{}, fmt.Errorf("answer: upstream %s: %w", u.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return "", openai.Usage{}, fmt.Errorf("answer: upstream %s answered %d: %s", u.url, resp.StatusCode, bytes.TrimSpace(msg))
	}
	finish, usage, completion := "length", openai.Usage{}, 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if line == "[DONE]" {
			break
		}
		var c openai.Chunk
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			return "", openai.Usage{}, fmt.Errorf("answer: upstream sent a bad chunk: %w", err)
		}
		if c.Usage != nil {
			usage = *c.Usage
		}
		for _, ch := range c.Choices {
			text := ch.Delta.Content
			if ch.Text != nil {
				text = *ch.Text
			}
			if text != "" {
				completion += len(text)
				if err := emit([]byte(text)); err != nil {
					return "", openai.Usage{}, err
				}
			}
			if ch.FinishReason != nil && *ch.FinishReason != "" {
				finish = *ch.FinishReason
			}
		}
	}
	if err := sc.Err(); err != nil {
		return "", openai.Usage{}, fmt.Errorf("answer: upstream stream: %w", err)
	}
	if usage.CompletionTokens == 0 { // an engine that does not report usage
		usage = openai.Usage{PromptTokens: len(g.PromptText()), CompletionTokens: completion, TotalTokens: len(g.PromptText()) + completion}
	}
	return finish, usage, nil
}

// Upstream generates with model name of the OpenAI-compatible engine at
// url (vLLM, llama.cpp's server, Ollama). Engines are not deterministic.
func Upstream(url, name string) Generator {
	return upstream{url: url, model: name, client: &http.Client{Timeout: 10 * time.Minute}}
}
