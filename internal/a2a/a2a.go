// Package a2a serves the Agent2Agent protocol over JSON-RPC 2.0 in front of
// an OpenAI chat endpoint: v1.0's SendMessage and SendStreamingMessage and
// v0.3's message/send and message/stream, since clients of both are in the
// wild. A message's text parts become one chat request, which the wrapped
// handler serves exactly as it serves HTTP clients (its payment, receipts
// and limits apply), and its answer, streamed or whole, comes back as A2A.
//
// Payment follows the A2A x402 extension: an unpaid request to a priced
// server gets a task in the input-required state whose message carries the
// x402 requirements (metadata x402.payment.required); the client sends the
// message again with its payment in metadata x402.payment.payload.
//
// The server keeps no tasks: every answer is complete in its response.
package a2a

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/agoranet/agora/internal/openai"
	"github.com/agoranet/agora/internal/receipt"
	"github.com/agoranet/agora/x402"
)

// Path is where the JSON-RPC endpoint is served.
const Path = "/a2a"

// X402Extension is the A2A x402 extension's URI, declared in the card.
const X402Extension = "https://github.com/google-a2a/a2a-x402/v0.1"

// The x402 extension's metadata keys.
const (
	metaStatus   = "x402.payment.status"
	metaRequired = "x402.payment.required"
	metaPayload  = "x402.payment.payload"
	metaReceipts = "x402.payment.receipts"
)

// Skill is a model offered as an A2A skill.
type Skill struct {
	ID, Name, Description string
	Tags                  []string
	Text                  bool // answers chat; a classifier is listed but not served here
}

// Card describes a server for its agent card.
type Card struct {
	Name, Description, Organization string
	Skills                          []Skill
	Paid                            bool
}

// AgentCard renders the card served at /.well-known/agent-card.json for a
// server at base: v1.0's supportedInterfaces, and v0.3's url and
// preferredTransport beside them for v0.3 clients.
func AgentCard(c Card, base string) map[string]any {
	url := strings.TrimSuffix(base, "/") + Path
	var skills []map[string]any
	for _, s := range c.Skills {
		modes := []string{"text/plain"}
		if !s.Text {
			modes = []string{"application/json"}
		}
		skills = append(skills, map[string]any{"id": s.ID, "name": s.Name, "description": s.Description, "tags": s.Tags, "inputModes": modes, "outputModes": modes})
	}
	ext := []map[string]any{{"uri": X402Extension, "required": c.Paid,
		"description": "Answers are paid with x402: an unpaid message gets a task in input-required with the requirements in metadata x402.payment.required; send it again with x402.payment.payload."}}
	return map[string]any{
		"name": c.Name, "description": c.Description, "version": "1",
		"supportedInterfaces": []map[string]any{
			{"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
			{"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "0.3"},
		},
		// v0.3's fields.
		"protocolVersion": "0.3.0", "url": url, "preferredTransport": "JSONRPC",
		"provider":           map[string]any{"organization": c.Organization, "url": base},
		"capabilities":       map[string]any{"streaming": true, "pushNotifications": false, "extensions": ext},
		"defaultInputModes":  []string{"text/plain"},
		"defaultOutputModes": []string{"text/plain"},
		"skills":             skills,
	}
}

// Server answers A2A JSON-RPC requests with Chat, an OpenAI chat
// completions handler.
type Server struct {
	Chat http.Handler
	// Model resolves the model a message names in its metadata ("model",
	// a name or id; "" for the server's default text model), or says why
	// it is not served.
	Model func(name string) (string, error)
}

type rpcRequest struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params"`
}

type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// JSON-RPC error codes.
const (
	codeParse          = -32700
	codeInvalidRequest = -32600
	codeNoMethod       = -32601
	codeInvalidParams  = -32602
	codeInternal       = -32603
)

// message is a message in either version: v1.0 has role ROLE_USER and
// parts {text}; v0.3 role user and parts {kind: text, text}.
type message struct {
	MessageID string         `json:"messageId"`
	ContextID string         `json:"contextId,omitempty"`
	TaskID    string         `json:"taskId,omitempty"`
	Role      string         `json:"role"`
	Parts     []part         `json:"parts"`
	Metadata  map[string]any `json:"metadata,omitempty"`
}

type part struct {
	Kind string  `json:"kind,omitempty"`
	Text *string `json:"text,omitempty"`
}

type sendParams struct {
	Message  *message       `json:"message"`
	Metadata map[string]any `json:"metadata,omitempty"`
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "A2A JSON-RPC: POST a JSON-RPC 2.0 request here; the agent card is at /.well-known/agent-card.json", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, openai.MaxBodyBytes+1))
	var req rpcRequest
	if err != nil || len(body) > openai.MaxBodyBytes || json.Unmarshal(body, &req) != nil {
		writeRPC(w, nil, nil, &rpcError{codeParse, "the body is not a JSON-RPC 2.0 request (at most 1 MiB)"})
		return
	}
	if req.JSONRPC != "2.0" || req.Method == "" {
		writeRPC(w, req.ID, nil, &rpcError{codeInvalidRequest, `a JSON-RPC request needs "jsonrpc": "2.0" and a method`})
		return
	}
	var v1 bool
	var stream bool
	switch req.Method {
	case "SendMessage":
		v1 = true
	case "SendStreamingMessage":
		v1, stream = true, true
	case "message/send":
	case "message/stream":
		stream = true
	default:
		writeRPC(w, req.ID, nil, &rpcError{codeNoMethod, fmt.Sprintf("method %q is not served: this agent answers SendMessage and SendStreamingMessage (A2A 1.0), message/send and message/stream (0.3), and keeps no tasks", req.Method)})
		return
	}
	var p sendParams
	if err := json.Unmarshal(req.Params, &p); err != nil || p.Message == nil {
		writeRPC(w, req.ID, nil, &rpcError{codeInvalidParams, "params must hold a message"})
		return
	}
	text, model, payment, perr := s.read(p)
	if perr != nil {
		writeRPC(w, req.ID, nil, perr)
		return
	}
	x := &exchange{s: s, w: w, r: r, id: req.ID, v1: v1, in: p.Message, text: text, model: model, payment: payment}
	if stream {
		x.stream()
	} else {
		x.send()
	}
}

// read takes the text, the model and any payment from a message.
func (s *Server) read(p sendParams) (text, model, payment string, e *rpcError) {
	var b strings.Builder
	for _, pt := range p.Message.Parts {
		if pt.Kind != "" && pt.Kind != "text" || pt.Text == nil {
			return "", "", "", &rpcError{codeInvalidParams, "this agent reads text parts only"}
		}
		b.WriteString(*pt.Text)
	}
	if b.Len() == 0 {
		return "", "", "", &rpcError{codeInvalidParams, "the message has no text"}
	}
	meta := func(k string) any {
		if v, ok := p.Message.Metadata[k]; ok {
			return v
		}
		return p.Metadata[k]
	}
	name, _ := meta("model").(string)
	model, err := s.Model(name)
	if err != nil {
		return "", "", "", &rpcError{codeInvalidParams, err.Error()}
	}
	if pl := meta(metaPayload); pl != nil {
		enc, err := x402.Encode(pl)
		if err != nil {
			return "", "", "", &rpcError{codeInvalidParams, "x402.payment.payload is not an x402 payment payload"}
		}
		payment = enc
	}
	return b.String(), model, payment, nil
}

// exchange is one A2A request served through the chat handler.
type exchange struct {
	s                    *Server
	w                    http.ResponseWriter
	r                    *http.Request
	id                   json.RawMessage
	v1                   bool
	in                   *message
	text, model, payment string
}

// chatBody is the chat request the message stands for.
func (x *exchange) chatBody(stream bool) []byte {
	b, _ := json.Marshal(map[string]any{"model": x.model, "messages": []openai.Message{{Role: "user", Content: x.text}}, "stream": stream})
	return b
}

// chat builds the chat request the message stands for.
func (x *exchange) chat(stream bool) *http.Request {
	body := x.chatBody(stream)
	req, _ := http.NewRequestWithContext(x.r.Context(), http.MethodPost, "/v1/chat/completions", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if a := x.r.Header.Get("Authorization"); a != "" { // a gateway's API key
		req.Header.Set("Authorization", a)
	}
	if x.payment != "" {
		req.Header.Set(x402.HeaderSignature, x.payment)
	}
	req.RemoteAddr = x.r.RemoteAddr
	return req
}

func (x *exchange) send() {
	rec := newRecorder()
	x.s.Chat.ServeHTTP(rec, x.chat(false))
	if rec.status == http.StatusPaymentRequired {
		writeRPC(x.w, x.id, x.paymentRequired(rec.header), nil)
		return
	}
	if rec.status != http.StatusOK {
		writeRPC(x.w, x.id, nil, chatError(rec.status, rec.body.Bytes()))
		return
	}
	var c openai.ChatCompletion
	if err := json.Unmarshal(rec.body.Bytes(), &c); err != nil || len(c.Choices) == 0 {
		writeRPC(x.w, x.id, nil, &rpcError{codeInternal, "the model's answer did not decode"})
		return
	}
	meta := x.paidMeta(rec.header.Get(receipt.Header), rec.header.Get(x402.HeaderResponse))
	x.evidence(meta, false, rec.body.Bytes())
	writeRPC(x.w, x.id, x.wrap("message", x.reply(c.Choices[0].Message.Content, meta)), nil)
}

// stream serves a streamed answer: a working task, the text as artifact
// updates, and a completed status carrying the receipt.
func (x *exchange) stream() {
	pr, pw := io.Pipe()
	sw := &streamWriter{header: http.Header{}, pw: pw, ready: make(chan struct{})}
	go func() {
		defer func() {
			// A handler that panics (a cut connection is
			// http.ErrAbortHandler) ends this stream, not the process.
			if p := recover(); p != nil {
				pw.CloseWithError(fmt.Errorf("a2a: the chat handler stopped: %v", p))
			}
		}()
		x.s.Chat.ServeHTTP(sw, x.chat(true))
		sw.start(http.StatusOK) // a handler that wrote nothing
		pw.Close()
	}()
	<-sw.ready
	defer pr.Close()
	if sw.status != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(pr, 1<<20))
		if sw.status == http.StatusPaymentRequired {
			x.events(func(emit func(any)) { emit(x.paymentRequired(sw.header)) })
			return
		}
		writeRPC(x.w, x.id, nil, chatError(sw.status, b))
		return
	}
	task, ctx := "task-"+x.in.MessageID, x.contextID()
	x.events(func(emit func(any)) {
		emit(x.wrap("task", x.task(task, ctx, "working", nil)))
		rd := bufio.NewReader(pr)
		first, rc, failed := true, "", false
		var all []byte // the chat stream, for the evidence (bounded)
		for {
			line, err := rd.ReadBytes('\n')
			if len(all)+len(line) <= maxEvidence {
				all = append(all, line...)
			}
			if enc := openai.ReceiptOf(line); enc != "" {
				rc = enc
			} else if d := delta(line); d != "" {
				emit(x.artifact(task, ctx, d, !first))
				first = false
			} else if bytes.HasPrefix(line, []byte(`data: {"error"`)) {
				failed = true
			}
			if err != nil {
				failed = failed || err != io.EOF
				break
			}
		}
		if rc == "" {
			rc = sw.header.Get(receipt.Header) // the trailer
		}
		meta := x.paidMeta(rc, sw.header.Get(x402.HeaderResponse))
		if covered, enc := openai.SplitStream(all); enc != "" {
			x.evidence(meta, true, covered)
		}
		// Completed only with a final receipt: a stream cut short (no
		// receipt, or only an interim one) is a failed task, whatever
		// text it got, and its partial receipt says what was paid.
		if r, err := receipt.Parse(rc); failed || err != nil || r.Partial {
			emit(x.status(task, ctx, "failed", meta))
			return
		}
		emit(x.status(task, ctx, "completed", meta))
	})
}

// events writes a server-sent event stream of JSON-RPC responses.
func (x *exchange) events(f func(emit func(any))) {
	h := x.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	x.w.WriteHeader(http.StatusOK)
	fl, _ := x.w.(http.Flusher)
	f(func(v any) {
		b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": x.id, "result": v})
		fmt.Fprintf(x.w, "data: %s\n\n", b)
		if fl != nil {
			fl.Flush()
		}
	})
}

func delta(line []byte) string {
	data, ok := bytes.CutPrefix(bytes.TrimSpace(line), []byte("data: {"))
	if !ok {
		return ""
	}
	var c openai.Chunk
	if json.Unmarshal(append([]byte("{"), data...), &c) != nil || len(c.Choices) == 0 {
		return ""
	}
	return c.Choices[0].Delta.Content
}

func (x *exchange) contextID() string {
	if x.in.ContextID != "" {
		return x.in.ContextID
	}
	return "ctx-" + x.in.MessageID
}

func (x *exchange) role() string {
	if x.v1 {
		return "ROLE_AGENT"
	}
	return "agent"
}

func (x *exchange) state(s string) string {
	if x.v1 {
		return "TASK_STATE_" + strings.ToUpper(strings.ReplaceAll(s, "-", "_"))
	}
	return s
}

func (x *exchange) textPart(t string) map[string]any {
	if x.v1 {
		return map[string]any{"text": t}
	}
	return map[string]any{"kind": "text", "text": t}
}

func (x *exchange) reply(t string, meta map[string]any) map[string]any {
	m := map[string]any{"messageId": "reply-" + x.in.MessageID, "contextId": x.contextID(), "role": x.role(), "parts": []any{x.textPart(t)}, "metadata": meta}
	if !x.v1 {
		m["kind"] = "message"
	}
	return m
}

func (x *exchange) task(id, ctx, state string, msg map[string]any) map[string]any {
	st := map[string]any{"state": x.state(state)}
	if msg != nil {
		st["message"] = msg
	}
	t := map[string]any{"id": id, "contextId": ctx, "status": st}
	if !x.v1 {
		t["kind"] = "task"
	}
	return t
}

func (x *exchange) artifact(task, ctx, text string, appendTo bool) any {
	a := map[string]any{"taskId": task, "contextId": ctx, "append": appendTo,
		"artifact": map[string]any{"artifactId": "answer", "name": "answer", "parts": []any{x.textPart(text)}}}
	if x.v1 {
		return map[string]any{"artifactUpdate": a}
	}
	a["kind"] = "artifact-update"
	return a
}

func (x *exchange) status(task, ctx, state string, meta map[string]any) any {
	u := map[string]any{"taskId": task, "contextId": ctx, "status": map[string]any{"state": x.state(state)}, "metadata": meta}
	if x.v1 {
		return map[string]any{"statusUpdate": u}
	}
	u["kind"], u["final"] = "status-update", true
	return u
}

// wrap is a v1.0 result's oneof ({"message": …}); v0.3 results are bare.
func (x *exchange) wrap(kind string, v map[string]any) any {
	if x.v1 {
		return map[string]any{kind: v}
	}
	return v
}

// paymentRequired is the x402 extension's answer to an unpaid message: a
// task in input-required whose message carries the requirements.
func (x *exchange) paymentRequired(h http.Header) any {
	var pr any
	if err := x402.Decode(h.Get(x402.HeaderRequired), &pr); err != nil {
		pr = map[string]any{"error": "the server asked for payment without x402 requirements"}
	}
	msg := x.reply("Payment is required: send this message again with an x402 payment for one of the requirements in metadata x402.payment.payload.",
		map[string]any{metaStatus: "payment-required", metaRequired: pr})
	return x.wrap("task", x.task("task-"+x.in.MessageID, x.contextID(), "input-required", msg))
}

// paidMeta is the metadata of an answer: its receipt and, if paid, the
// x402 settlement.
func (x *exchange) paidMeta(rc, settlement string) map[string]any {
	m := map[string]any{"agora.receipt": rc, "agora.model": x.model}
	if settlement != "" {
		var s any
		if x402.Decode(settlement, &s) == nil {
			m[metaStatus], m[metaReceipts] = "payment-completed", []any{s}
		}
	}
	return m
}

// maxEvidence bounds the answer bytes an A2A response carries as
// evidence.
const maxEvidence = 1 << 20

// evidence puts in meta what the receipt's hashes cover, base64: the chat
// request this message stood for (agora.request, on the chat completions
// endpoint) and the bytes of its answer (agora.answer), so that an A2A
// client can check the receipt (agora receipt verify) and hold it as
// evidence.
func (x *exchange) evidence(meta map[string]any, stream bool, answer []byte) {
	if len(answer) > maxEvidence {
		return
	}
	meta["agora.request"] = base64.StdEncoding.EncodeToString(x.chatBody(stream))
	meta["agora.answer"] = base64.StdEncoding.EncodeToString(answer)
}

// chatError carries the chat handler's error message into JSON-RPC.
func chatError(status int, body []byte) *rpcError {
	var e struct{ Error struct{ Message string } }
	msg := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &e) == nil && e.Error.Message != "" {
		msg = e.Error.Message
	}
	code := codeInternal
	if status >= 400 && status < 500 {
		code = codeInvalidParams
	}
	return &rpcError{code, fmt.Sprintf("%d: %s", status, msg)}
}

func writeRPC(w http.ResponseWriter, id json.RawMessage, result any, e *rpcError) {
	if id == nil {
		id = json.RawMessage("null")
	}
	out := map[string]any{"jsonrpc": "2.0", "id": id}
	if e != nil {
		out["error"] = e
	} else {
		out["result"] = result
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// recorder keeps a whole response in memory.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newRecorder() *recorder                    { return &recorder{header: http.Header{}} }
func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { r.WriteHeader(http.StatusOK); return r.body.Write(b) }
func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

// streamWriter passes a streamed response through a pipe; ready closes
// once its status is known.
type streamWriter struct {
	header http.Header
	status int
	pw     *io.PipeWriter
	ready  chan struct{}
}

func (s *streamWriter) Header() http.Header { return s.header }
func (s *streamWriter) start(status int) {
	if s.status == 0 {
		s.status = status
		close(s.ready)
	}
}
func (s *streamWriter) WriteHeader(status int) { s.start(status) }
func (s *streamWriter) Write(b []byte) (int, error) {
	s.start(http.StatusOK)
	n, err := s.pw.Write(b)
	if err != nil {
		return n, errors.Join(err, http.ErrAbortHandler)
	}
	return n, nil
}
func (s *streamWriter) Flush() {}
