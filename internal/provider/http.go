package provider

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/agoranet/agora/internal/a2a"
	"github.com/agoranet/agora/internal/answer"
	"github.com/agoranet/agora/internal/blob"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/openai"
	"github.com/agoranet/agora/internal/paygate"
	"github.com/agoranet/agora/internal/receipt"
	"github.com/agoranet/agora/x402"
)

// Handler is the provider's HTTP API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/models", s.handleModels)
	chat := handleText[openai.ChatRequest](s, "chat")
	mux.HandleFunc("/v1/chat/completions", chat)
	mux.HandleFunc("/v1/completions", handleText[openai.CompletionRequest](s, "completions"))
	mux.HandleFunc("/v1/responses", handleText[openai.ResponsesRequest](s, "responses"))
	mux.HandleFunc("/v1/infer", s.handleInfer)
	mux.HandleFunc("/healthz", s.handleHealth)
	mux.HandleFunc("GET /v1/anchors/{channel}/{n}", s.handleAnchors)
	mux.Handle("/metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/.well-known/agent-card.json", s.handleAgentCard)
	mux.Handle(a2a.Path, s.a2aServer(chat))
	if s.cfg.Jobs != nil {
		mux.Handle(blob.Path, s.cfg.Jobs.Store.Handler())
		mux.Handle(strings.TrimSuffix(blob.Path, "/"), s.cfg.Jobs.Store.Handler())
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		openai.WriteError(w, openai.Errorf(http.StatusNotFound, "invalid_request_error", "unknown_url", "no endpoint %s %s; see /v1/models, /v1/chat/completions, /v1/completions, /v1/responses, /v1/infer", r.Method, r.URL.Path))
	})
	return mux
}

func (s *Server) lookup(name string) (*served, error) {
	m, ok := s.models[name]
	if !ok {
		return nil, openai.Errorf(http.StatusNotFound, "invalid_request_error", "model_not_found", "this provider does not serve model %q; GET /v1/models lists what it does", name)
	}
	return m, nil
}

// acquire takes one of the model's concurrency slots, or fails at once.
func (m *served) acquire() (release func(), err error) {
	select {
	case m.slots <- struct{}{}:
		return func() { <-m.slots }, nil
	default:
		return nil, openai.Errorf(http.StatusTooManyRequests, "rate_limit_error", "provider_busy", "this provider is serving %d requests for %s, its limit; retry shortly or use another provider", cap(m.slots), m.name)
	}
}

func (s *Server) price(m *served, completionTokens int) *coin.Coin {
	per1k := m.PricePer1KTokens * uint64(completionTokens)
	return coin.New(m.Denom, m.PricePerRequest+(per1k+999)/1000)
}

// maxPrice is the most a generation can cost: its price if it uses all
// of max_tokens.
func (s *Server) maxPrice(m *served, maxTokens int) uint64 {
	return s.price(m, maxTokens).Amount
}

// charge takes payment for an answer that will cost at most max. With no
// price or no payments configured the answer is free (nil, true); on a
// payment problem it has answered 402 or 400 and returns false.
//
// With background set (a built-in model, which stops within a step of
// its context ending), the voucher's signature is checked while the model
// runs (paygate's Start): generate computes in pay.Context, and refused
// sends the refusal instead of the answer if the check failed.
func (s *Server) charge(w http.ResponseWriter, r *http.Request, m *served, endpoint string, max uint64, background bool) (*paygate.Payment, bool) {
	if s.gate == nil || max == 0 {
		return nil, true
	}
	price := paygate.Price{Denom: m.Denom, Max: max, ModelID: m.id}
	begin := s.gate.Begin
	if background {
		begin = s.gate.Start
	}
	pay, perr := begin(r, price)
	if perr != nil {
		s.gate.Write(w, r, price, perr)
		s.metrics.requests.WithLabelValues(m.name, endpoint, strconv.Itoa(perr.Status)).Inc()
		return nil, false
	}
	return pay, true
}

// refused answers with the payment's refusal if its background check
// failed, and says so. Nothing else may have been sent.
func (s *Server) refused(w http.ResponseWriter, r *http.Request, m *served, endpoint string, pay *paygate.Payment) bool {
	perr := pay.Admitted()
	if perr == nil {
		perr = pay.Refusal() // the voucher log failed, say
	}
	if perr == nil {
		return false
	}
	s.gate.Write(w, r, pay.Price(), perr)
	s.metrics.requests.WithLabelValues(m.name, endpoint, strconv.Itoa(perr.Status)).Inc()
	return true
}

// settle charges the actual price of a made answer and returns the
// PAYMENT-RESPONSE value ("" when free).
func settle(pay *paygate.Payment, actual uint64, rc string) (string, error) {
	if pay == nil {
		return "", nil
	}
	return pay.Finish(actual, receipt.Hash([]byte(rc)))
}

// sign makes the receipt for an answer.
func (s *Server) sign(m *served, canonical, responseHash []byte, usage openai.Usage, pay *paygate.Payment, partial bool) (string, error) {
	seq, err := s.seq.next()
	if err != nil {
		return "", err
	}
	r := &receipt.Receipt{
		ChainId: s.cfg.ChainID, ModelId: m.id,
		RequestHash: receipt.Hash(canonical), ResponseHash: responseHash,
		Usage:  &receipt.Usage{PromptTokens: uint64(usage.PromptTokens), CompletionTokens: uint64(usage.CompletionTokens)},
		Price:  s.price(m, usage.CompletionTokens),
		Height: s.height.Load(), Seq: seq, Partial: partial,
	}
	if pay != nil {
		r.PaymentRef = pay.Ref()
	}
	enc, err := receipt.SignAs(s.cfg.Key, s.address, r)
	if err == nil {
		s.metrics.receipts.Inc()
	}
	return enc, err
}

func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		openai.WriteError(w, openai.Errorf(http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed", "use GET for /v1/models"))
		return
	}
	list := openai.ModelList{Object: "list", Data: []openai.ModelCard{}}
	for _, m := range s.order {
		list.Data = append(list.Data, openai.ModelCard{
			ID: m.name, Object: "model", OwnedBy: s.address.String(), ModelID: m.id,
			Architecture: m.manifest.Architecture, Task: m.manifest.Task, License: m.manifest.License,
			Price: &openai.Price{Denom: m.Denom, PerRequest: strconv.FormatUint(m.PricePerRequest, 10), Per1KTokens: strconv.FormatUint(m.PricePer1KTokens, 10)},
		})
	}
	writeJSON(w, http.StatusOK, list)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// textRequest is a request body that reduces to a text generation.
type textRequest[R any] interface {
	*R
	Generation(openai.Limits) (*openai.Generation, error)
	ModelName() string
}

// handleText serves one text endpoint (chat, completions, responses):
// parse, find the model, reduce to a Generation, generate.
func handleText[R any, P textRequest[R]](s *Server, endpoint string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req := P(new(R))
		if err := openai.ReadJSON(r, req); err != nil {
			s.fail(w, "", endpoint, err)
			return
		}
		m, err := s.lookup(req.ModelName())
		if err == nil && m.gen == nil {
			err = openai.Invalid("model", "%s is a classifier; POST its input to /v1/infer", m.name)
		}
		if err != nil {
			s.fail(w, req.ModelName(), endpoint, err)
			return
		}
		g, err := req.Generation(m.gen.Limits())
		if err != nil {
			s.fail(w, m.name, endpoint, err)
			return
		}
		s.generate(w, r, m, g)
	}
}

func (s *Server) fail(w http.ResponseWriter, model, endpoint string, err error) {
	var e *openai.Error
	status := http.StatusInternalServerError
	if errors.As(err, &e) {
		status = e.Status
	} else {
		s.log.Error("provider: request failed", "model", model, "endpoint", endpoint, "err", err)
	}
	s.metrics.requests.WithLabelValues(model, endpoint, strconv.Itoa(status)).Inc()
	openai.WriteError(w, err)
}

func (s *Server) generate(w http.ResponseWriter, r *http.Request, m *served, g *openai.Generation) {
	release, err := m.acquire()
	if err != nil {
		s.fail(w, m.name, g.Endpoint, err)
		return
	}
	defer release()
	pay, ok := s.charge(w, r, m, g.Endpoint, s.maxPrice(m, g.MaxTokens), answer.StopsAtOnce(m.gen))
	if !ok {
		return
	}
	defer pay.Abort() // no charge unless the answer was made
	start := time.Now()
	canonical := g.Canonical()
	if g.Stream {
		s.stream(w, r, m, g, canonical, pay)
	} else {
		s.complete(w, r, m, g, canonical, pay)
	}
	s.metrics.latency.WithLabelValues(m.name, g.Endpoint).Observe(time.Since(start).Seconds())
}

// complete answers a non-streaming request: the whole body is made first,
// so the receipt can go in a header.
func (s *Server) complete(w http.ResponseWriter, r *http.Request, m *served, g *openai.Generation, canonical []byte, pay *paygate.Payment) {
	var text bytes.Buffer
	finish, usage, err := m.gen.Generate(pay.Context(r.Context()), g, func(b []byte) error { text.Write(b); return nil })
	if s.refused(w, r, m, g.Endpoint, pay) {
		return
	}
	if err != nil {
		s.fail(w, m.name, g.Endpoint, answer.InputError(err))
		return
	}
	if s.corrupts(canonical) && text.Len() > 0 {
		b := text.Bytes()
		b[0] ^= 0x01 // a lie: not what the model said
	}
	body := answer.NewText(g, m.name).Body(text.String(), finish, usage)
	s.writeAnswer(w, m, g.Endpoint, canonical, body, usage, pay)
}

func (s *Server) writeAnswer(w http.ResponseWriter, m *served, endpoint string, canonical, body []byte, usage openai.Usage, pay *paygate.Payment) {
	rc, err := s.sign(m, canonical, receipt.Hash(body), usage, pay, false)
	if err != nil {
		s.fail(w, m.name, endpoint, err)
		return
	}
	pr, err := settle(pay, s.price(m, usage.CompletionTokens).Amount, rc)
	if err != nil {
		s.fail(w, m.name, endpoint, paymentFailed(err))
		return
	}
	h := w.Header()
	if pr != "" {
		h.Set(x402.HeaderResponse, pr)
	}
	h.Set("Content-Type", "application/json")
	h.Set(receipt.Header, rc)
	h.Set("Agora-Provider", s.address.String())
	h.Set("Agora-Model-Id", m.id)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
	s.metrics.requests.WithLabelValues(m.name, endpoint, "200").Inc()
	s.metrics.tokens.WithLabelValues(m.name).Add(float64(usage.CompletionTokens))
}

// stream answers with server-sent events. The response hash covers every
// byte sent before the receipt event; the receipt goes in a final chunk
// (no choices, the usage, agora_receipt) and in the Agora-Receipt trailer.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, m *served, g *openai.Generation, canonical []byte, pay *paygate.Payment) {
	fl, ok := w.(http.Flusher)
	if !ok {
		s.fail(w, m.name, g.Endpoint, errors.New("provider: response writer cannot stream"))
		return
	}
	hash := newHashWriter(w)
	t := answer.NewText(g, m.name)
	started := false
	begin := func() error {
		if started {
			return nil
		}
		if perr := pay.Admitted(); perr != nil {
			return perr
		}
		if err := pay.Durable(); err != nil { // nothing is sent before the payment is safe
			return paymentFailed(err)
		}
		started = true
		// The stream's headers only now: a refusal or a failure before
		// this point is answered without them.
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("Trailer", receipt.Header+", "+x402.HeaderResponse)
		h.Set("Agora-Provider", s.address.String())
		h.Set("Agora-Model-Id", m.id)
		w.WriteHeader(http.StatusOK)
		_, _ = hash.Write(t.Open())
		return nil
	}
	lastFlush := time.Now()
	breakAt, hang := s.breaks(canonical)
	pieces := 0
	every := s.cfg.InterimEvery
	if every <= 0 {
		every = 32
	}
	interimAt := every
	corrupt := s.corrupts(canonical)
	finish, usage, err := m.gen.Generate(pay.Context(r.Context()), g, func(b []byte) error {
		if err := begin(); err != nil {
			return err
		}
		if corrupt && pieces == 0 && len(b) > 0 {
			b = append([]byte{b[0] ^ 0x01}, b[1:]...) // a lie: not what the model said
		}
		if _, err := hash.Write(t.Delta(b)); err != nil {
			return errClientGone
		}
		if pieces+1 >= interimAt {
			interimAt += every
			if err := s.interim(w, m, t, canonical, hash.sum(), pieces+1, pay); err != nil {
				return err
			}
		}
		if pieces++; pieces == breakAt { // a test's fault: see Hooks.BreakStream
			fl.Flush()
			if hang {
				<-r.Context().Done()
				return errClientGone
			}
			panic(http.ErrAbortHandler) // the connection is cut
		}
		if time.Since(lastFlush) > 5*time.Millisecond {
			fl.Flush()
			lastFlush = time.Now()
		}
		return nil
	})
	if err != nil {
		if !started {
			if !s.refused(w, r, m, g.Endpoint, pay) {
				s.fail(w, m.name, g.Endpoint, answer.InputError(err))
			}
			return
		}
		// Headers are gone: end the stream with an error event the client
		// can see, and no receipt (there is no answer to pay for).
		s.log.Warn("provider: stream failed", "model", m.name, "err", err)
		_, _ = w.Write(answer.Event(map[string]any{"error": map[string]any{"message": "the provider failed mid-stream; retry the request", "type": "server_error", "code": "stream_failed"}}))
		s.metrics.requests.WithLabelValues(m.name, g.Endpoint, "stream_error").Inc()
		return
	}
	if err := begin(); err != nil {
		if !s.refused(w, r, m, g.Endpoint, pay) {
			s.fail(w, m.name, g.Endpoint, err)
		}
		return
	}
	_, _ = hash.Write(t.Finish(finish, usage))
	rc, err := s.sign(m, canonical, hash.sum(), usage, pay, false)
	if err != nil {
		s.log.Error("provider: sign receipt", "err", err)
		return
	}
	pr, err := settle(pay, s.price(m, usage.CompletionTokens).Amount, rc)
	if err != nil {
		s.log.Error("provider: record charge", "err", err)
		return
	}
	_, _ = w.Write(t.Close(usage, rc))
	w.Header().Set(receipt.Header, rc)
	if pr != "" {
		w.Header().Set(x402.HeaderResponse, pr)
	}
	fl.Flush()
	s.metrics.requests.WithLabelValues(m.name, g.Endpoint, "200").Inc()
	s.metrics.tokens.WithLabelValues(m.name).Add(float64(usage.CompletionTokens))
}

// interim sends a stream's interim receipt: it covers the events so far
// (hash) and prices the tokens sent (pieces of text, at most one token
// each), and the payment charges it should the stream be cut from here.
func (s *Server) interim(w http.ResponseWriter, m *served, t *answer.Text, canonical, hash []byte, tokens int, pay *paygate.Payment) error {
	rc, err := s.sign(m, canonical, hash, openai.Usage{CompletionTokens: tokens}, pay, true)
	if err != nil {
		return err
	}
	if _, err := w.Write(t.Interim(rc)); err != nil { // not hashed: receipts cover what is not a receipt
		return errClientGone
	}
	pay.Interim(s.price(m, tokens).Amount, receipt.Hash([]byte(rc)))
	return nil
}

func (s *Server) handleInfer(w http.ResponseWriter, r *http.Request) {
	var req openai.InferRequest
	if err := openai.ReadJSON(r, &req); err != nil {
		s.fail(w, "", "infer", err)
		return
	}
	m, err := s.lookup(req.Model)
	if err == nil && m.mlp == nil {
		err = openai.Invalid("model", "%s generates text; use /v1/chat/completions", m.name)
	}
	if err != nil {
		s.fail(w, req.Model, "infer", err)
		return
	}
	release, err := m.acquire()
	if err != nil {
		s.fail(w, m.name, "infer", err)
		return
	}
	defer release()
	pay, ok := s.charge(w, r, m, "infer", m.PricePerRequest, false)
	if !ok {
		return
	}
	defer pay.Abort()
	pixels, err := answer.Pixels(req.Input)
	if err != nil {
		s.fail(w, m.name, "infer", err)
		return
	}
	logits, class, err := m.mlp.Infer(pixels)
	if err != nil {
		s.fail(w, m.name, "infer", answer.InputError(err))
		return
	}
	canonical := answer.InferCanonical(&req)
	if s.corrupts(canonical) {
		logits[0]++ // a lie
	}
	var proof []byte
	if req.Proof {
		if m.Prover == nil {
			s.fail(w, m.name, "infer", openai.Invalid("proof", "this provider does not prove %s; ask without \"proof\" or use another provider", m.name))
			return
		}
		if _, proof, err = m.Prover.Prove(pixels); err != nil {
			s.fail(w, m.name, "infer", err)
			return
		}
	}
	body := answer.Classification(m.name, logits, class, proof)
	s.writeAnswer(w, m, "infer", canonical, body, openai.Usage{PromptTokens: len(pixels), TotalTokens: len(pixels)}, pay)
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "provider": s.address.String(), "chain_id": s.cfg.ChainID, "height": s.height.Load(), "models": len(s.order)})
}

// skills are the models the provider serves as A2A skills: the same list
// (s.order) that it registers on chain as services and lists at
// /v1/models, so the card cannot say what the chain does not.
func (s *Server) skills() []a2a.Skill {
	var out []a2a.Skill
	for _, m := range s.order {
		sk := a2a.Skill{ID: m.id, Name: m.name, Tags: []string{m.manifest.Task, m.manifest.Architecture}, Text: m.gen != nil,
			Description: "Text generation: send a text message (A2A), or use the OpenAI API at /v1/chat/completions, /v1/completions and /v1/responses."}
		if !sk.Text {
			sk.Description = "Classification over /v1/infer (not over A2A)."
		}
		out = append(out, sk)
	}
	return out
}

func (s *Server) a2aServer(chat http.Handler) *a2a.Server {
	return &a2a.Server{Chat: chat, Model: func(name string) (string, error) {
		for _, m := range s.order {
			if m.gen != nil && (name == "" || name == m.name || name == m.id) {
				return m.name, nil
			}
		}
		if name == "" {
			return "", errors.New("this provider serves no text model")
		}
		return "", fmt.Errorf("model %q is not a text model served here; the agent card's skills list what is", name)
	}}
}

// handleAgentCard serves the provider's A2A agent card.
func (s *Server) handleAgentCard(w http.ResponseWriter, r *http.Request) {
	paid := false
	for _, m := range s.order {
		paid = paid || s.gate != nil && (m.PricePerRequest > 0 || m.PricePer1KTokens > 0)
	}
	writeJSON(w, http.StatusOK, a2a.AgentCard(a2a.Card{Name: "Agora provider " + s.address.String(),
		Description:  "Sells model inference on the Agora network; every answer carries a signed receipt (metadata agora.receipt; Agora-Receipt over HTTP).",
		Organization: s.address.String(), Skills: s.skills(), Paid: paid}, s.URL()))
}

// handleAnchors publishes the receipt hashes a payment claim anchored, so
// that an auditor can prove any receipt was among them.
func (s *Server) handleAnchors(w http.ResponseWriter, r *http.Request) {
	id, err1 := strconv.ParseUint(r.PathValue("channel"), 10, 64)
	n, err2 := strconv.Atoi(r.PathValue("n"))
	if err1 != nil || err2 != nil || s.gate == nil {
		openai.WriteError(w, openai.Errorf(http.StatusNotFound, "invalid_request_error", "unknown_anchor", "GET /v1/anchors/{channel id}/{claim number} of a paid provider"))
		return
	}
	leaves := s.gate.Anchored(id, n)
	if leaves == nil {
		openai.WriteError(w, openai.Errorf(http.StatusNotFound, "invalid_request_error", "unknown_anchor", "this provider has no claim %d on channel %d", n, id))
		return
	}
	out := make([]string, len(leaves))
	for i, l := range leaves {
		out[i] = hex.EncodeToString(l)
	}
	writeJSON(w, http.StatusOK, map[string]any{"channel": id, "claim": n, "leaves": out})
}

// breaks tells, for tests of failover, whether and where this stream
// breaks (see Hooks).
func (s *Server) breaks(canonical []byte) (int, bool) {
	h := s.hooks.Load()
	if h == nil || h.BreakStream == nil {
		return 0, false
	}
	return h.BreakStream(canonical)
}

// corrupts tells, for tests of audits, whether this request's answer is
// one the provider alters (see Hooks).
func (s *Server) corrupts(canonical []byte) bool {
	h := s.hooks.Load()
	return h != nil && h.Corrupt != nil && h.Corrupt(canonical)
}

var errClientGone = errors.New("provider: client went away")

// paymentFailed is what a client hears when its payment could not be made
// safe (an exact transfer the chain refused, a voucher the disk did not
// take): a 402, and no answer.
func paymentFailed(err error) error {
	return openai.Errorf(http.StatusPaymentRequired, "payment_required", "payment_failed", "the payment could not be settled, so no answer was sent: %v", err)
}
