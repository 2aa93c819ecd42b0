package main_test

import (
	"path/filepath"
	"strings"
	"testing"

	dev "github.com/agoranet/agora/internal/devnet"
	"github.com/agoranet/agora/internal/e2e"
)

// TestPayRemembersALiar: agora pay against a provider that lies about its
// charge gets its answer (booked at the most the voucher allowed), and
// neither that run nor the next pays the liar again: the key's payer
// journal remembers.
func TestPayRemembersALiar(t *testing.T) {
	d := e2e.Devnet(t, func(c *dev.Config) { c.Providers = 1 })
	pk, _ := d.Keyring.Get("provider1")
	liar := e2e.NewLiar(t, d.Providers[0].URL(), pk.Private)
	liar.Charge = func(n uint64) uint64 { return n - 1 }
	home := filepath.Dir(d.Keyring.Dir())
	pay := func() (string, error) {
		return e2e.RunErr(t, "pay", "--key", "alice", "--max", "10000uusdc", "--home", home, "--node", d.Node.RPC(), liar.URL+"/v1/chat/completions",
			"-d", `{"model":"agora/tiny-lm","messages":[{"role":"user","content":"ROMEO:"}],"max_tokens":8}`)
	}
	if out, err := pay(); err != nil || !strings.Contains(out, "chat.completion") {
		t.Fatalf("the first run: %q %v", out, err)
	}
	if _, err := pay(); err == nil || !strings.Contains(err.Error(), "lied about a charge") {
		t.Errorf("the second run paid the liar again: %v", err)
	}
}
