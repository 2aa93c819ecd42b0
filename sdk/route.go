package sdk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"time"

	"github.com/agoranet/agora/internal/openai"
	"github.com/agoranet/agora/internal/receipt"
	"github.com/agoranet/agora/internal/route"
)

// Agent routes an agent's requests across the providers of a model on its
// own, with no gateway: the same routing library the gateway uses picks
// the best provider from the chain's registry, fails over when one dies,
// pays with the Payer and checks every receipt.
type Agent struct {
	payer  *Payer
	router *route.Router
	http   *http.Client
	stop   context.CancelFunc
	seqs   receipt.Seqs // receipt numbers taken, per provider
}

// NewAgent starts routing for a wallet within a budget.
func NewAgent(ctx context.Context, w *Wallet, b Budget) (*Agent, error) {
	return newAgent(ctx, w, NewPayer(w, b))
}

// OpenAgent is NewAgent with the payer's books in a journal (OpenPayer),
// so that the next run pays over this run's channels.
func OpenAgent(ctx context.Context, w *Wallet, b Budget, journal string) (*Agent, error) {
	p, err := OpenPayer(w, b, journal)
	if err != nil {
		return nil, err
	}
	a, err := newAgent(ctx, w, p)
	if err != nil {
		p.Close()
	}
	return a, err
}

func newAgent(ctx context.Context, w *Wallet, p *Payer) (*Agent, error) {
	rc := route.DefaultConfig()
	rc.Chain = w.chain
	r, err := route.New(ctx, rc)
	if err != nil {
		return nil, err
	}
	p.PinTo(r.Pins())
	rctx, stop := context.WithCancel(context.Background())
	go p.reclaimEvery(rctx, time.Minute)
	return &Agent{payer: p, router: r, http: &http.Client{Transport: p, CheckRedirect: NoRedirects}, stop: stop}, nil
}

// NoRedirects is a CheckRedirect for clients of providers: a provider
// answers at the endpoint the chain registered, and a redirect (to plain
// http, to another host, to an internal address) is refused, its response
// taken as the provider's answer.
func NoRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Payer is the agent's payer, for its spending.
func (a *Agent) Payer() *Payer { return a.payer }

// Model is a model the network serves, as the agent's router sees it.
type Model struct {
	Name, ModelID string
	Providers     int
	// The lowest price among its providers.
	Denom                       string
	PricePerRequest, PricePer1K uint64
}

// Models lists the models with a routable provider, by name.
func (a *Agent) Models() []Model {
	var out []Model
	for name, cs := range a.router.Models() {
		best := cs[0]
		for _, c := range cs {
			if c.PricePerRequest < best.PricePerRequest {
				best = c
			}
		}
		out = append(out, Model{Name: name, ModelID: best.ModelID, Providers: len(cs), Denom: best.Denom, PricePerRequest: best.PricePerRequest, PricePer1K: best.PricePer1K})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Close stops routing.
func (a *Agent) Close() { a.stop(); a.router.Close() }

// Answer is a checked answer.
type Answer struct {
	Body []byte
	// Receipt is the provider's signed receipt for Body, already checked
	// against the request and the body.
	Receipt  Receipt
	Provider string
	Attempts int
}

// Receipt is what a provider signed about one answer: who served which
// model, hashes binding the request and the response, and the price.
type Receipt struct {
	ChainID                        string
	Provider                       string // bech32 address of the signer
	ModelID                        string // sha256 of the model's weights, hex
	RequestHash                    []byte // sha256 of the canonical request
	ResponseHash                   []byte // sha256 of the response body as sent
	PromptTokens, CompletionTokens uint64
	Denom                          string
	Price                          uint64
	PaymentRef                     string // the payment that covered it, if any
	Height                         int64  // chain height when it was served
	Seq                            uint64 // the provider's receipt counter
	// Encoded is the receipt as the provider sent it (its header value),
	// for anchoring, audits and disputes.
	Encoded string
}

func publicReceipt(r *receipt.Receipt, encoded string) Receipt {
	return Receipt{ChainID: r.ChainId, Provider: r.Provider, ModelID: r.ModelId, RequestHash: r.RequestHash, ResponseHash: r.ResponseHash,
		PromptTokens: r.GetUsage().GetPromptTokens(), CompletionTokens: r.GetUsage().GetCompletionTokens(),
		Denom: r.GetPrice().GetDenom(), Price: r.GetPrice().GetAmount(), PaymentRef: r.PaymentRef, Height: r.Height, Seq: r.Seq, Encoded: encoded}
}

// Post sends an OpenAI request body for model to path ("/v1/chat/completions",
// "/v1/completions", "/v1/responses" or "/v1/infer") at the best provider, failing over to
// others, and returns the answer once its receipt checks.
func (a *Agent) Post(ctx context.Context, path, model string, body []byte) (*Answer, error) {
	endpoint := map[string]string{"/v1/chat/completions": "chat.completions", "/v1/completions": "completions", "/v1/responses": "responses", "/v1/infer": "infer"}[path]
	canonical, err := openai.CanonicalRequest(endpoint, body)
	if err != nil {
		return nil, err
	}
	// Attempts may run two at once (a hedge): each makes its own answer,
	// and only the winner's is kept.
	var ans *Answer
	res, err := a.router.Race(ctx, model, nil, func(ctx context.Context, c route.Candidate) (route.Begun, route.Outcome, error) {
		got, out, err := a.attempt(ctx, c, path, canonical, body)
		if out != route.OK {
			return nil, out, err
		}
		return kept{got, &ans}, route.OK, nil
	})
	if err != nil {
		return nil, err
	}
	ans.Attempts = res.Tries
	return ans, nil
}

// kept is an answer that won its race once Deliver keeps it.
type kept struct {
	a    *Answer
	into **Answer
}

func (k kept) Deliver() (route.Outcome, error) { *k.into = k.a; return route.OK, nil }
func (k kept) Discard()                        {}

// attempt asks one provider, pays it and checks its receipt.
func (a *Agent) attempt(ctx context.Context, c route.Candidate, path string, canonical, body []byte) (*Answer, route.Outcome, error) {
	var ans *Answer
	out, err := func() (route.Outcome, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Endpoint+path, bytes.NewReader(body))
		if err != nil {
			return route.Failed, err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := a.http.Do(req)
		if perr := Refused(resp, err); perr != nil && (err == nil || errors.Is(err, ErrBudget)) {
			if resp != nil {
				resp.Body.Close()
			}
			if errors.Is(perr, ErrBudget) { // our limit, not the provider's fault
				return route.Refused, perr
			}
			return route.Failed, perr // a price we cannot pay, say: try another
		}
		out := route.Retryable(resp, err) // a 402 after paying: the provider's books disagree with ours
		if err != nil {
			return out, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return route.Failed, err
		}
		if out != route.OK {
			return out, fmt.Errorf("sdk: %s answered %d: %s", c.Endpoint, resp.StatusCode, bytes.TrimSpace(b))
		}
		enc := resp.Header.Get(receipt.Header)
		r, err := receipt.DecodeFor(enc, c.Key)
		if err == nil && (r.Provider != c.Operator || r.ModelId != c.ModelID) {
			err = fmt.Errorf("sdk: receipt from %s for %s, expected %s for %s", r.Provider, r.ModelId, c.Operator, c.ModelID)
		}
		if err == nil {
			err = receipt.Check(r, canonical, b)
		}
		if err == nil {
			h, _ := a.payer.chain.Height(ctx)
			err = receipt.Fresh(r, a.payer.w.chainID, h)
		}
		if err == nil {
			err = a.seqs.Take(r.Provider, r.Seq)
		}
		if err != nil { // a provider that lies about its answer has failed
			return route.Failed, err
		}
		ans = &Answer{Body: b, Receipt: publicReceipt(r, enc), Provider: c.Operator}
		return route.OK, nil
	}()
	return ans, out, err
}
