package main_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/agoranet/agora/examples/jobs/kernel/matmul"
	"github.com/agoranet/agora/internal/e2e"
)

// TestMCPClient: the official MCP TypeScript client runs `agora mcp` on
// stdio against a devnet, lists its tools (each with input and output
// schemas), lists the models, asks one (paid from the devnet's agent
// account, its receipt checked), runs a batch job to its agreed output,
// and reads the wallet, which shows the spending; an unknown model is a
// tool error that says so.
func TestMCPClient(t *testing.T) {
	e2e.MultiProcess(t)
	openaiNodeModules(t)
	home, node, _ := devnetWith(t)
	out := runNode(t, "mcp_client.cjs", "AGORA="+e2e.Binary(t), "WASM="+e2e.Wasm(t, "./examples/jobs/kernel"),
		"HOME_DIR="+home, "NODE_URL="+node, "KEY=agent", "AGORA_HOME=", "AGORA_NODE=")
	var res struct {
		Tools []struct {
			Name          string
			Input, Output bool
		}
		Models struct {
			Models []struct {
				Name            string
				PricePerRequest string `json:"price_per_request"`
			}
		}
		Answer struct {
			Text, Provider, Price, Receipt string
			CompletionTokens               int `json:"completion_tokens"`
		}
		AnswerText string
		BadIsError bool
		BadText    string
		Wallet     struct{ Address, Spent string }
		Placed     any
		TooDear    string
		Job        struct {
			Status string
			Done   bool
			Output string `json:"output_base64"`
		}
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("mcp client printed %q: %v", out, err)
	}
	var names []string
	for _, tl := range res.Tools {
		names = append(names, tl.Name)
		if !tl.Input || !tl.Output {
			t.Errorf("tool %s: input schema %v, output schema %v; want both", tl.Name, tl.Input, tl.Output)
		}
	}
	if got := strings.Join(names, ","); got != "ask_model,job_result,list_models,submit_job,wallet" {
		t.Errorf("tools %s", got)
	}
	if fmt.Sprint(res.Models.Models) == "[]" || !strings.Contains(fmt.Sprint(res.Models.Models), "agora/tiny-lm") {
		t.Errorf("list_models: %v", res.Models.Models)
	}
	a := res.Answer
	if a.Text == "" || a.Provider == "" || a.Receipt == "" || a.CompletionTokens == 0 || !strings.HasSuffix(a.Price, "uusdc") || a.Price == "0uusdc" {
		t.Errorf("ask_model: %+v", a)
	}
	if !res.BadIsError || !strings.Contains(res.BadText, "no/such-model") {
		t.Errorf("an unknown model: error %v, %q", res.BadIsError, res.BadText)
	}
	if res.Wallet.Spent == "0uusdc" || res.Wallet.Address == "" {
		t.Errorf("wallet after a paid answer: %+v", res.Wallet)
	}
	if !strings.Contains(res.TooDear, "over budget") {
		t.Errorf("a job escrowing more than --max: %q; want over budget", res.TooDear)
	}
	var want strings.Builder
	for _, sum := range matmul.Run(8, 2) {
		fmt.Fprintln(&want, sum)
	}
	got, _ := base64.StdEncoding.DecodeString(res.Job.Output)
	if res.Job.Status != "completed" || string(got) != want.String() {
		t.Errorf("submit_job %v, then job_result: %s, output %q; want completed with %q", res.Placed, res.Job.Status, got, want.String())
	}
}
