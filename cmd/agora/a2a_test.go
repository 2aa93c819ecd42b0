package main_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/agoranet/agora/internal/e2e"
)

// TestA2AClient: the official A2A JavaScript client reads a devnet
// provider's agent card, finds its JSON-RPC interface, sends a message
// and a streamed one (A2A 1.0) and gets the model's answer with its
// receipt; a v0.3-style message/send gets the same answer.
func TestA2AClient(t *testing.T) {
	e2e.MultiProcess(t)
	openaiNodeModules(t)
	_, _, base := devnet(t)
	out := runNode(t, "a2a_client.cjs", fmt.Sprintf("BASE=http://127.0.0.1:%d", base+10))
	var res struct {
		Interfaces   []map[string]string
		Skills       []string
		Extensions   []string
		Reply        string
		ReplyReceipt bool
		Streamed     string
		Kinds        []string
		FinalState   any
		FinalReceipt bool
		LegacyKind   string
		LegacyText   string
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("a2a client printed %q: %v", out, err)
	}
	if len(res.Interfaces) == 0 || res.Interfaces[0]["protocolBinding"] != "JSONRPC" || res.Interfaces[0]["protocolVersion"] != "1.0" {
		t.Errorf("interfaces %v", res.Interfaces)
	}
	if !strings.Contains(strings.Join(res.Skills, ","), "agora/tiny-lm") || len(res.Extensions) == 0 {
		t.Errorf("skills %v, extensions %v", res.Skills, res.Extensions)
	}
	if res.Reply == "" || !res.ReplyReceipt {
		t.Errorf("sendMessage: %q, receipt %v", res.Reply, res.ReplyReceipt)
	}
	if res.Streamed != res.Reply || !res.FinalReceipt || fmt.Sprint(res.Kinds) != "[task artifactUpdate statusUpdate]" {
		t.Errorf("sendMessageStream: %q (want %q), events %v, final %v, receipt %v", res.Streamed, res.Reply, res.Kinds, res.FinalState, res.FinalReceipt)
	}
	if res.LegacyKind != "message" || res.LegacyText != res.Reply {
		t.Errorf("message/send (v0.3): kind %q, text %q", res.LegacyKind, res.LegacyText)
	}
}
