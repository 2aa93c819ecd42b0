// Package agentmcp is the network as Model Context Protocol tools, for any
// MCP-capable agent: list the models and their prices, ask a model (paid
// from the agent's wallet within its budget and the chain's policy, its
// receipt checked), submit a batch job and fetch its result, and read the
// wallet's balance and spending. It is the
// official MCP Go SDK (modelcontextprotocol/go-sdk) over an sdk.Agent;
// `agora mcp` serves it on stdio or streamable HTTP.
package agentmcp

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/job/jobpb"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/jobrun"
	"github.com/agoranet/agora/internal/keyring"
	"github.com/agoranet/agora/internal/openai"
	"github.com/agoranet/agora/sdk"
)

// Version is the server's version in the MCP handshake.
const Version = "1.0.0"

// Wallet is what the tools spend from.
type Wallet struct {
	// Key signs the wallet's job orders.
	Key   *keyring.Key
	Agent *sdk.Agent
	// Chain reads the wallet's balances.
	Chain   *client.Client
	Address addr.Address
	Budget  sdk.Budget
}

// New returns the MCP server whose tools act for w.
func New(w Wallet) *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "agora", Title: "Agora: decentralized AI inference", Version: Version}, &mcp.ServerOptions{
		Instructions: "Agora is an open network of AI model providers paid per request. list_models shows what is served and its price; " +
			"ask_model asks one (paid from this server's wallet, within its budget; every answer carries a signed receipt, checked); " +
			"wallet shows the balance and what was spent.",
	})
	t := &tools{w: w}
	mcp.AddTool(s, &mcp.Tool{Name: "list_models", Title: "List models",
		Description: "The models the network serves now, each with its on-chain id (the weights' sha256), how many providers serve it and the lowest price.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}}, t.listModels)
	mcp.AddTool(s, &mcp.Tool{Name: "ask_model", Title: "Ask a model",
		Description: "Ask a model a question and get its answer. The answer is paid from this server's wallet (at most max_tokens' price) and " +
			"comes from the best provider, failing over if one is down; its signed receipt is checked before the answer is returned.",
		Annotations: &mcp.ToolAnnotations{OpenWorldHint: ptr(true)}}, t.askModel)
	mcp.AddTool(s, &mcp.Tool{Name: "submit_job", Title: "Submit a batch job",
		Description: "Order a WebAssembly batch job (a wasip1 module that reads its input on stdin and writes its output to stdout). " +
			"Its module and input go to up to three providers' blob stores; the chain escrows max_price × redundancy from this wallet, " +
			"leases the job to the cheapest bidders, and pays those whose results agree. Follow it with job_result.",
		Annotations: &mcp.ToolAnnotations{OpenWorldHint: ptr(true)}}, t.submitJob)
	mcp.AddTool(s, &mcp.Tool{Name: "job_result", Title: "A batch job's state and result",
		Description: "An order's state (bidding, leased, committing, revealing, completed, failed, cancelled) and, once completed, its agreed output, fetched from a lessee and checked against the hash the chain agreed on.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}}, t.jobResult)
	mcp.AddTool(s, &mcp.Tool{Name: "wallet", Title: "Wallet",
		Description: "The wallet's address and balances on chain, what it has spent and committed, and its budget.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}}, t.wallet)
	return s
}

func ptr[T any](v T) *T { return &v }

type tools struct {
	w Wallet
	// escrowed is what submit_job has put in escrow: it counts against
	// the budget beside what answers committed.
	mu       sync.Mutex
	escrowed uint64
}

// ModelInfo is one model in list_models.
type ModelInfo struct {
	Name             string `json:"name" jsonschema:"the model's name, as ask_model takes it"`
	ModelID          string `json:"model_id" jsonschema:"the sha256 of the model's weights, as registered on chain"`
	Providers        int    `json:"providers" jsonschema:"how many providers serve it now"`
	PricePerRequest  string `json:"price_per_request" jsonschema:"the lowest price per request, like 100uusdc"`
	PricePer1KTokens string `json:"price_per_1k_tokens" jsonschema:"and per thousand output tokens"`
}

// ModelList is list_models' result.
type ModelList struct {
	Models []ModelInfo `json:"models"`
}

func (t *tools) listModels(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, ModelList, error) {
	out := ModelList{Models: []ModelInfo{}}
	for _, m := range t.w.Agent.Models() {
		out.Models = append(out.Models, ModelInfo{Name: m.Name, ModelID: m.ModelID, Providers: m.Providers,
			PricePerRequest: coin.String(coin.New(m.Denom, m.PricePerRequest)), PricePer1KTokens: coin.String(coin.New(m.Denom, m.PricePer1K))})
	}
	return nil, out, nil
}

// Question is ask_model's input.
type Question struct {
	Model        string   `json:"model" jsonschema:"the model's name, from list_models (like agora/tiny-lm)"`
	Prompt       string   `json:"prompt" jsonschema:"what to ask"`
	Instructions string   `json:"instructions,omitempty" jsonschema:"a system message before the prompt"`
	MaxTokens    int      `json:"max_tokens,omitempty" jsonschema:"the most tokens to generate (default 128); the most it can cost is its price"`
	Temperature  *float64 `json:"temperature,omitempty" jsonschema:"sampling temperature, 0 to 2 (0: greedy)"`
	Seed         *int64   `json:"seed,omitempty" jsonschema:"picks one of the model's answers; the same seed gives the same answer"`
}

// AnswerInfo is ask_model's result.
type AnswerInfo struct {
	Text             string `json:"text"`
	Model            string `json:"model"`
	FinishReason     string `json:"finish_reason" jsonschema:"stop, or length when max_tokens cut it"`
	Provider         string `json:"provider" jsonschema:"the provider that answered and signed the receipt"`
	Price            string `json:"price" jsonschema:"what the answer cost, like 120uusdc"`
	PromptTokens     uint64 `json:"prompt_tokens"`
	CompletionTokens uint64 `json:"completion_tokens"`
	Receipt          string `json:"receipt" jsonschema:"the provider's signed receipt (Agora-Receipt), checked against the question and the answer"`
	ReceiptHeight    int64  `json:"receipt_height" jsonschema:"the chain height the receipt names"`
	Attempts         int    `json:"attempts" jsonschema:"providers asked before one answered"`
}

func (t *tools) askModel(ctx context.Context, _ *mcp.CallToolRequest, q Question) (*mcp.CallToolResult, AnswerInfo, error) {
	if q.Model == "" || q.Prompt == "" {
		return nil, AnswerInfo{}, errors.New("ask_model needs a model (see list_models) and a prompt")
	}
	req := openai.ChatRequest{Model: q.Model, Temperature: q.Temperature, Seed: q.Seed}
	if q.Instructions != "" {
		req.Messages = append(req.Messages, openai.Message{Role: "system", Content: q.Instructions})
	}
	req.Messages = append(req.Messages, openai.Message{Role: "user", Content: q.Prompt})
	if q.MaxTokens > 0 {
		req.MaxTokens = &q.MaxTokens
	}
	body, _ := json.Marshal(req)
	ans, err := t.w.Agent.Post(ctx, "/v1/chat/completions", q.Model, body)
	if err != nil {
		return nil, AnswerInfo{}, fmt.Errorf("ask %s: %w", q.Model, err)
	}
	var c openai.ChatCompletion
	if err := json.Unmarshal(ans.Body, &c); err != nil || len(c.Choices) == 0 {
		return nil, AnswerInfo{}, fmt.Errorf("ask %s: the provider's answer is not a chat completion", q.Model)
	}
	r := ans.Receipt
	return nil, AnswerInfo{Text: c.Choices[0].Message.Content, Model: c.Model, FinishReason: c.Choices[0].FinishReason, Provider: ans.Provider,
		Price: coin.String(coin.New(r.Denom, r.Price)), PromptTokens: r.PromptTokens, CompletionTokens: r.CompletionTokens,
		Receipt: r.Encoded, ReceiptHeight: r.Height, Attempts: ans.Attempts}, nil
}

// Job is submit_job's input.
type Job struct {
	Module     string `json:"module_base64" jsonschema:"the WebAssembly module (GOOS=wasip1), base64"`
	Input      string `json:"input_base64,omitempty" jsonschema:"the job's input, base64, fed to it on stdin"`
	MaxPrice   string `json:"max_price" jsonschema:"the most one lessee may be paid, like 2000uusdc"`
	Redundancy uint32 `json:"redundancy,omitempty" jsonschema:"how many providers run it; their results must agree (default 2)"`
	Fuel       uint64 `json:"fuel,omitempty" jsonschema:"about the number of WebAssembly instructions it may run (default 1e11)"`
	MemoryMiB  uint32 `json:"memory_mib,omitempty" jsonschema:"memory cap in MiB (default 256)"`
}

// JobPlaced is submit_job's result.
type JobPlaced struct {
	OrderID uint64 `json:"order_id"`
	Height  int64  `json:"height" jsonschema:"the block the order was placed in"`
}

func (t *tools) submitJob(ctx context.Context, _ *mcp.CallToolRequest, j Job) (*mcp.CallToolResult, JobPlaced, error) {
	wasm, err := base64.StdEncoding.DecodeString(j.Module)
	if err != nil || len(wasm) == 0 {
		return nil, JobPlaced{}, errors.New("module_base64 must be a WebAssembly module in base64")
	}
	in, err := base64.StdEncoding.DecodeString(j.Input)
	if err != nil {
		return nil, JobPlaced{}, errors.New("input_base64 is not base64")
	}
	price, err := coin.Parse(j.MaxPrice)
	if err != nil {
		return nil, JobPlaced{}, fmt.Errorf("max_price: %w", err)
	}
	if j.Redundancy == 0 {
		j.Redundancy = 2
	}
	// The escrow is spending like any other: within the budget, in its
	// denom, beside what answers committed.
	b := t.w.Budget
	if price.Denom != b.Denom {
		return nil, JobPlaced{}, fmt.Errorf("max_price is in %s; this server spends %s", price.Denom, b.Denom)
	}
	escrow := price.Amount * uint64(j.Redundancy)
	if j.Redundancy > 16 || escrow/uint64(j.Redundancy) != price.Amount {
		return nil, JobPlaced{}, errors.New("redundancy is at most 16")
	}
	t.mu.Lock()
	if spent := t.w.Agent.Payer().Committed() + t.escrowed; spent+escrow < spent || spent+escrow > b.Max {
		t.mu.Unlock()
		return nil, JobPlaced{}, fmt.Errorf("over budget: the job escrows %d%s (max_price × redundancy), and %d of this server's %d%s is committed", escrow, b.Denom, spent, b.Max, b.Denom)
	}
	t.escrowed += escrow
	t.mu.Unlock()
	placed := false
	defer func() {
		if !placed { // nothing was escrowed
			t.mu.Lock()
			t.escrowed -= escrow
			t.mu.Unlock()
		}
	}()
	if j.Fuel == 0 {
		j.Fuel = 100_000_000_000
	}
	if j.MemoryMiB == 0 {
		j.MemoryMiB = 256
	}
	stores, err := jobrun.Stores(ctx, t.w.Chain)
	if err != nil {
		return nil, JobPlaced{}, err
	}
	moduleURL, inputURL, err := jobrun.Upload(ctx, stores, wasm, in)
	if err != nil {
		return nil, JobPlaced{}, fmt.Errorf("upload the job: %w", err)
	}
	mh, ih := sha256.Sum256(wasm), sha256.Sum256(in)
	res, err := t.w.Chain.Submit(ctx, t.w.Key, "job", &jobpb.MsgCreateOrder{Tenant: t.w.Address.String(), ModuleHash: mh[:], ModuleUrl: moduleURL,
		InputHash: ih[:], InputUrl: inputURL, Fuel: j.Fuel, MemoryMib: j.MemoryMiB, MaxPrice: price, Redundancy: j.Redundancy})
	if err != nil {
		placed = errors.Is(err, client.ErrMaybeSent) // may be escrowed: keep counting it
		return nil, JobPlaced{}, fmt.Errorf("order the job: %w", err)
	}
	placed = true
	var created jobpb.MsgCreateOrderResponse
	if err := res.Response(0, &created); err != nil {
		return nil, JobPlaced{}, fmt.Errorf("the order was placed at height %d, but: %w", res.Height, err)
	}
	return nil, JobPlaced{OrderID: created.OrderId, Height: res.Height}, nil
}

// JobQuery is job_result's input.
type JobQuery struct {
	OrderID uint64 `json:"order_id"`
}

// JobState is job_result's result.
type JobState struct {
	OrderID uint64 `json:"order_id"`
	Status  string `json:"status" jsonschema:"bidding, leased, committing, revealing, completed, failed or cancelled"`
	Done    bool   `json:"done" jsonschema:"the order has ended: completed, failed or cancelled"`
	Reason  string `json:"reason,omitempty" jsonschema:"why it failed or was cancelled"`
	// Output is the agreed output of a completed order, base64, when at
	// most MaxOutput bytes; OutputSize and OutputHash say what it is.
	Output     string `json:"output_base64,omitempty"`
	OutputSize uint64 `json:"output_size,omitempty"`
	OutputHash string `json:"output_sha256,omitempty"`
}

// MaxOutput is the largest output job_result returns inline.
const MaxOutput = 1 << 20

func (t *tools) jobResult(ctx context.Context, _ *mcp.CallToolRequest, q JobQuery) (*mcp.CallToolResult, JobState, error) {
	r, err := client.Ask(ctx, t.w.Chain, jobpb.QueryOrder, &jobpb.QueryOrderRequest{Id: q.OrderID})
	if err != nil {
		return nil, JobState{}, fmt.Errorf("order %d: %w", q.OrderID, err)
	}
	o := r.Order
	out := JobState{OrderID: o.Id, Status: strings.ToLower(strings.TrimPrefix(o.Status.String(), "ORDER_STATUS_")), Done: o.FinishedAt != 0, Reason: o.Reason}
	if o.Status != jobpb.OrderStatus_ORDER_STATUS_COMPLETED || o.Result == nil {
		return nil, out, nil
	}
	out.OutputSize, out.OutputHash = o.Result.OutputSize, hex.EncodeToString(o.Result.OutputHash)
	if o.Result.OutputSize <= MaxOutput {
		data, err := jobrun.Output(ctx, o)
		if err != nil {
			return nil, JobState{}, err
		}
		out.Output = base64.StdEncoding.EncodeToString(data)
	}
	return nil, out, nil
}

// WalletInfo is the wallet tool's result.
type WalletInfo struct {
	Address   string   `json:"address"`
	Balances  []string `json:"balances" jsonschema:"what the account holds on chain, like 1000000uusdc"`
	Spent     string   `json:"spent" jsonschema:"what answers have cost so far, in the budget's denom"`
	Committed string   `json:"committed" jsonschema:"what the wallet has committed in vouchers, spent or not"`
	Budget    string   `json:"budget" jsonschema:"the most this server will commit"`
}

func (t *tools) wallet(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, WalletInfo, error) {
	bal, err := t.w.Chain.Balances(ctx, t.w.Address)
	if err != nil {
		return nil, WalletInfo{}, fmt.Errorf("read the balance: %w", err)
	}
	p := t.w.Agent.Payer()
	d := t.w.Budget.Denom
	out := WalletInfo{Address: t.w.Address.String(), Balances: []string{}, Spent: strconv.FormatUint(p.Spent(), 10) + d,
		Committed: strconv.FormatUint(p.Committed(), 10) + d, Budget: coin.String(coin.New(d, t.w.Budget.Max))}
	for _, c := range bal.Balances {
		out.Balances = append(out.Balances, coin.String(c))
	}
	return nil, out, nil
}
