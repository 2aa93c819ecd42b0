package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agoranet/agora/internal/chain/channel/channelpb"
	"github.com/agoranet/agora/internal/chain/provider/providerpb"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/e2e"
	"github.com/agoranet/agora/internal/keyring"
)

// TestRotatedKeysServeAndPay: a provider operator and a buyer each rotate
// their account key with `agora keys rotate`; the provider process started
// from the rotated keyring entry serves, signs receipts the buyer's
// `agora pay` accepts (by the key the chain lists), and claims what it was
// paid over a channel the buyer opened with its new key. The retired key
// signs for nothing, and the addresses never change.
func TestRotatedKeysServeAndPay(t *testing.T) {
	e2e.MultiProcess(t)
	home, node, base := devnet(t)
	kr := keyring.Open(filepath.Join(home, "keyring"))
	before := map[string]string{}
	for _, name := range []string{"alice", "bob"} {
		k, err := kr.Get(name)
		if err != nil {
			t.Fatal(err)
		}
		before[name] = k.Address().String()
		out := e2e.Run(t, "keys", "rotate", name, "--home", home, "--node", node, "--output", "json")
		var r struct {
			Account, PubKey, Retired string
			Height                   int64
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil || r.Account != before[name] || r.Height <= 0 || r.Retired != name+".retired" {
			t.Fatalf("keys rotate %s printed %q (%v)", name, out, err)
		}
		after, err := kr.Get(name)
		if err != nil || after.Address().String() != before[name] || fmt.Sprintf("%x", after.Public()) != r.PubKey || !after.Rotated() {
			t.Fatalf("after rotation %s is %v (%v); want account %s with key %s", name, after, err, before[name], r.PubKey)
		}
	}
	// The retired key still derives alice's address, and signs for nothing.
	if _, err := e2e.RunErr(t, "tx", "send", "alice.retired", before["bob"], "1uagr", "--home", home, "--node", node); err == nil || !strings.Contains(err.Error(), "not the one account") {
		t.Errorf("a send by alice's retired key: %v", err)
	}
	e2e.Run(t, "tx", "send", "alice", before["bob"], "1uagr", "--home", home, "--node", node)

	listen := fmt.Sprintf("127.0.0.1:%d", base+16)
	e2e.Start(t, home, "rotated-provider", "provider", "start", "--key", "bob", "--bond", "200000000uagr", "--listen", listen,
		"--model", "agora/tiny-lm", "--price-request", "100", "--price-1k-tokens", "1000", "--claim-interval", "1s", "--home", home, "--node", node)
	e2e.Eventually(t, 30*time.Second, "the rotated provider up", func() error {
		resp, err := http.Get("http://" + listen + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err
	})
	c, err := client.New(node)
	if err != nil {
		t.Fatal(err)
	}
	bob, _ := kr.Get("bob")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e2e.Eventually(t, 30*time.Second, "bob's listing with his new key", func() error {
		info, err := client.Ask(ctx, c, providerpb.QueryProvider, &providerpb.QueryProviderRequest{Address: before["bob"]})
		if err == nil && !bytes.Equal(info.PublicKey, bob.Public()) {
			err = fmt.Errorf("listed key %x, his new key is %x", info.PublicKey, bob.Public())
		}
		return err
	})

	for i := 0; i < 3; i++ {
		out, err := combined(t, "pay", "--key", "alice", "--max", "100000uusdc", "http://"+listen+"/v1/chat/completions",
			"-d", fmt.Sprintf(`{"model":"agora/tiny-lm","messages":[{"role":"user","content":"ROMEO:"}],"max_tokens":8,"seed":%d}`, i), "--home", home, "--node", node)
		if err != nil || !strings.Contains(out, "provider "+before["bob"]) || !strings.Contains(out, "signature valid") {
			t.Fatalf("pay %d to the rotated provider: %v\n%s", i, err, out)
		}
	}
	// The provider claims with its new key, for its old address.
	e2e.Eventually(t, 60*time.Second, "the rotated provider's claim", func() error {
		chs, err := client.Ask(ctx, c, channelpb.QueryChannels, &channelpb.QueryChannelsRequest{Payee: before["bob"]})
		if err != nil {
			return err
		}
		for _, ch := range chs.Channels {
			if ch.Payer == before["alice"] && ch.Claimed > 0 {
				return nil
			}
		}
		return fmt.Errorf("no claim yet on bob's channels: %v", chs.Channels)
	})
}

// combined runs the agora binary and returns its stdout and stderr
// together (agora pay reports the receipt on stderr).
func combined(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, e2e.Binary(t), args...)
	cmd.Env = append(os.Environ(), "AGORA_HOME=", "AGORA_NODE=")
	out, err := cmd.CombinedOutput()
	return string(out), err
}
