package main_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/agoranet/agora/internal/e2e"
)

// openaiNodeModules returns the node_modules holding the official OpenAI
// Node client, which .ci/run installs; locally the test skips without it.
func openaiNodeModules(t *testing.T) string {
	dir := os.Getenv("AGORA_OPENAI_NODE_MODULES")
	if _, err := exec.LookPath("node"); err != nil || dir == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI must provide node and AGORA_OPENAI_NODE_MODULES (see .ci/run)")
		}
		t.Skip("set AGORA_OPENAI_NODE_MODULES to a node_modules with the openai package (bash .ci/run does)")
	}
	return dir
}

// runNode runs a testdata script with node, its modules on NODE_PATH and
// env added, and returns its stdout; a failure shows its stderr.
func runNode(t *testing.T, script string, env ...string) []byte {
	t.Helper()
	path, _ := filepath.Abs(filepath.Join("testdata", script))
	cmd := exec.Command("node", path)
	cmd.Env = append(append(os.Environ(), "NODE_PATH="+openaiNodeModules(t)), env...)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("node %s: %v\n%s", script, err, stderr)
	}
	return out
}

// runOpenAIClient runs testdata/openai_client.cjs against base.
func runOpenAIClient(t *testing.T, base, apiKey string) map[string]any {
	t.Helper()
	out := runNode(t, "openai_client.cjs", "BASE="+base, "API_KEY="+apiKey)
	var res map[string]any
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("openai client printed %q", out)
	}
	return res
}

// TestOfficialOpenAIClient: the official OpenAI Node client, unmodified,
// lists models, gets a chat completion, streams one, gets a text
// completion, and a response from the Responses API (streamed and not)
// from a devnet provider.
func TestOfficialOpenAIClient(t *testing.T) {
	e2e.MultiProcess(t)
	openaiNodeModules(t)
	_, _, base := devnet(t)
	res := runOpenAIClient(t, fmt.Sprintf("http://127.0.0.1:%d", base+10), "")
	ids := fmt.Sprint(res["ids"])
	if ids != "[agora/digits-mlp agora/tiny-lm]" {
		t.Errorf("models %s", ids)
	}
	if res["text"] == "" || res["text"] != res["streamed"] {
		t.Errorf("chat %q, streamed %q: want the same non-empty text", res["text"], res["streamed"])
	}
	if res["completion"] == "" {
		t.Error("empty text completion")
	}
	checkResponses(t, res)
}

// checkResponses checks what the client's responses.create calls got.
func checkResponses(t *testing.T, res map[string]any) {
	t.Helper()
	if res["response"] == "" || res["response"] != res["responseStreamed"] {
		t.Errorf("responses.create %q, streamed %q: want the same non-empty text", res["response"], res["responseStreamed"])
	}
	if res["responseStatus"] == nil || res["responseStatus"] != res["streamedStatus"] {
		t.Errorf("response status %v, streamed %v", res["responseStatus"], res["streamedStatus"])
	}
	if res["refused"] != "400 tools" {
		t.Errorf("a request with tools: %v; want a 400 naming tools", res["refused"])
	}
}

// TestOfficialOpenAIClientThroughGateway: the official client, pointed at
// the devnet gateway with the dev API key, gets models, chat (streamed and
// not), completions and responses from paid providers.
func TestOfficialOpenAIClientThroughGateway(t *testing.T) {
	e2e.MultiProcess(t)
	openaiNodeModules(t)
	_, _, base := devnetWith(t)
	res := runOpenAIClient(t, fmt.Sprintf("http://127.0.0.1:%d", base+24), "agk_devnet")
	if ids := fmt.Sprint(res["ids"]); ids != "[agora/digits-mlp agora/tiny-lm]" {
		t.Errorf("models %s", ids)
	}
	if res["text"] == "" || res["text"] != res["streamed"] {
		t.Errorf("chat %q, streamed %q: want the same non-empty text", res["text"], res["streamed"])
	}
	checkResponses(t, res)
}
