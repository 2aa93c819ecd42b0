package answer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/agoranet/agora/internal/model"
	"github.com/agoranet/agora/internal/openai"
)

// Reference answers requests again with the built-in models, the way a
// provider answers them, and gives the bytes a receipt's response hash
// covers. Verifiers use it to check receipts.
type Reference struct {
	models map[string]*model.Model // by name and by id
}

// NewReference re-executes with models.
func NewReference(models []*model.Model) *Reference {
	r := &Reference{models: map[string]*model.Model{}}
	for _, m := range models {
		r.models[m.Manifest.Name], r.models[m.Manifest.ID] = m, m
	}
	return r
}

// Covered answers the request body sent to endpoint ("chat.completions",
// "completions" or "infer") and returns what a receipt for the answer
// covers: the whole body, or for a stream every event before the receipt.
func (r *Reference) Covered(ctx context.Context, endpoint string, body []byte) ([]byte, error) {
	return r.covered(ctx, endpoint, body, nil)
}

// Honest tells what an honest provider's receipt for this request would
// say: claimed itself if it is the hash of the answer's covered bytes, or,
// for a stream, of the bytes up to one of its events (what an interim
// receipt of a stream cut short covers); otherwise the whole answer's hash.
func (r *Reference) Honest(ctx context.Context, endpoint string, body, claimed []byte) ([]byte, error) {
	var marks []int
	covered, err := r.covered(ctx, endpoint, body, &marks)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	at := 0
	for _, m := range marks {
		h.Write(covered[at:m])
		at = m
		if sum := h.Sum(nil); bytes.Equal(sum, claimed) {
			return sum, nil
		}
	}
	s := sha256.Sum256(covered)
	return s[:], nil
}

// covered makes the answer's covered bytes and, if marks is set, notes
// where each of a stream's events ends.
func (r *Reference) covered(ctx context.Context, endpoint string, body []byte, marks *[]int) ([]byte, error) {
	mark := func(n int) {
		if marks != nil {
			*marks = append(*marks, n)
		}
	}
	var req interface {
		Generation(openai.Limits) (*openai.Generation, error)
	}
	switch endpoint {
	case "infer":
		return r.classify(body)
	case "chat.completions":
		req = new(openai.ChatRequest)
	case "completions":
		req = new(openai.CompletionRequest)
	case "responses":
		req = new(openai.ResponsesRequest)
	default:
		return nil, fmt.Errorf("answer: unknown endpoint %q (chat.completions, completions, responses or infer)", endpoint)
	}
	if err := openai.DecodeJSON(body, req); err != nil {
		return nil, err
	}
	g, err := req.Generation(BuiltinLimits)
	if err != nil {
		return nil, err
	}
	m := r.models[g.Model]
	if m == nil || m.LM == nil {
		return nil, errUnknown(g.Model)
	}
	t := NewText(g, m.Manifest.Name)
	var out bytes.Buffer
	if g.Stream {
		out.Write(t.Open())
		mark(out.Len())
	}
	var text bytes.Buffer
	finish, usage, err := Builtin(m.LM).Generate(ctx, g, func(b []byte) error {
		if g.Stream {
			out.Write(t.Delta(b))
			mark(out.Len())
		} else {
			text.Write(b)
		}
		return nil
	})
	if err != nil {
		return nil, InputError(err)
	}
	if !g.Stream {
		return t.Body(text.String(), finish, usage), nil
	}
	out.Write(t.Finish(finish, usage))
	return out.Bytes(), nil
}

func (r *Reference) classify(body []byte) ([]byte, error) {
	var req openai.InferRequest
	if err := openai.DecodeJSON(body, &req); err != nil {
		return nil, err
	}
	if req.Proof {
		return nil, errors.New("answer: an answer with a zk proof is checked by its proof, not re-executed")
	}
	m := r.models[req.Model]
	if m == nil || m.MLP == nil {
		return nil, errUnknown(req.Model)
	}
	pixels, err := Pixels(req.Input)
	if err != nil {
		return nil, err
	}
	logits, class, err := m.MLP.Infer(pixels)
	if err != nil {
		return nil, InputError(err)
	}
	return Classification(m.Manifest.Name, logits, class, nil), nil
}
