package verifier_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agoranet/agora/internal/chain/audit/auditpb"
	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/provider/providerpb"
	"github.com/agoranet/agora/internal/chain/staking/stakingpb"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/devnet"
	"github.com/agoranet/agora/internal/e2e"
	"github.com/agoranet/agora/internal/provider"
	"github.com/agoranet/agora/internal/verifier"
)

// TestFaultyProviderIsCaught: on a devnet where one provider corrupts 10%
// of its answers, a verifier auditing the gateway's answers catches it,
// challenges, a committee of three other verifiers re-executes and votes,
// and the chain slashes the liar — and never an honest provider.
func TestFaultyProviderIsCaught(t *testing.T) {
	if testing.Short() {
		t.Skip("a devnet, four verifiers and paid load; skipped with -short")
	}
	d := e2e.Devnet(t, nil)
	// provider3 lies about a tenth of its answers, picked by the request's
	// hash so that the same request gets the same lie every time.
	d.Providers[2].SetHooks(provider.Hooks{Corrupt: func(canonical []byte) bool {
		h := sha256.Sum256(canonical)
		return binary.BigEndian.Uint16(h[:2]) < 65536/10
	}})
	c, err := client.New(d.Node.RPC())
	if err != nil {
		t.Fatal(err)
	}
	// Room for the load (about a minute under -race on two cores) and the
	// minute the last disputes may take to be decided.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	vs := startVerifiers(t, ctx, d, c)
	d.Gateway.SetAuditFeed(vs[0].URL())

	stake := func(name string) (uint64, uint64) { return stakeOf(t, ctx, d, c, name) }
	sent := 0
	slashed := false
	byProvider := map[string]int{}
	defer func() { t.Logf("answers by provider: %v; the auditor: %+v", byProvider, vs[0].Stats()) }()
	// Steady load from four clients at a time, so the gateway spreads it
	// over the providers; at most 600 requests.
	var mu sync.Mutex
	for sent < 600 && !slashed {
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func(base int) {
				defer wg.Done()
				for i := 0; i < 5; i++ {
					body := fmt.Sprintf(`{"model":"agora/tiny-lm","messages":[{"role":"user","content":"KING:"}],"max_tokens":16,"seed":%d}`, base+i)
					req, _ := http.NewRequest(http.MethodPost, d.Gateway.URL()+"/v1/chat/completions", strings.NewReader(body))
					req.Header.Set("Authorization", "Bearer "+devnet.APIKey)
					req.Header.Set("Content-Type", "application/json")
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					mu.Lock()
					byProvider[resp.Header.Get("Agora-Provider")]++
					mu.Unlock()
				}
			}(sent + 5*w)
		}
		wg.Wait()
		sent += 20
		if s, _ := stake("provider3"); s < devnet.ProviderStake {
			slashed = true
		}
	}
	e2e.Eventually(t, 60*time.Second, "the faulty provider is slashed", func() error {
		if s, lost := stake("provider3"); s >= devnet.ProviderStake || lost == 0 {
			return fmt.Errorf("provider3: stake %d, disputes lost %d (after %d requests; the auditor: %+v)\n%s", s, lost, sent, vs[0].Stats(), disputes(ctx, c))
		}
		return nil
	})
	s, lost := stake("provider3")
	t.Logf("after %d requests: provider3 stake %d, disputes lost %d", sent, s, lost)
	for _, name := range []string{"provider1", "provider2"} {
		if s, lost := stake(name); s != devnet.ProviderStake || lost != 0 {
			t.Errorf("honest %s: stake %d, disputes lost %d", name, s, lost)
		}
	}
}

func addrOf(k ed25519.PrivateKey) string {
	return bankAddr(k.Public().(ed25519.PublicKey))
}

// startVerifiers funds, bonds and starts four verifiers (one to audit,
// three for the committee), stopped with the test.
func startVerifiers(t *testing.T, ctx context.Context, d *devnet.Devnet, c *client.Client) []*verifier.Server {
	t.Helper()
	alice, _ := d.Keyring.Get("alice")
	var keys []ed25519.PrivateKey
	fund := &bankpb.MsgMultiSend{From: alice.Address().String()}
	for i := 0; i < 4; i++ {
		seed := sha256.Sum256([]byte(fmt.Sprintf("verifier %d", i)))
		k := ed25519.NewKeyFromSeed(seed[:])
		keys = append(keys, k)
		a := addrOf(k)
		fund.Outputs = append(fund.Outputs, &bankpb.Output{To: a, Amount: []*coin.Coin{coin.New(coin.Native, 1_000_000_000)}})
	}
	if _, err := c.Submit(ctx, alice, "", fund); err != nil {
		t.Fatal(err)
	}
	var vs []*verifier.Server
	for i, k := range keys {
		vc, _ := client.New(d.Node.RPC())
		v, err := verifier.Start(ctx, verifier.Config{Listen: "127.0.0.1:0", Key: k, Chain: vc, SampleRate: 1, Bond: 200_000_000, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
		if err != nil {
			t.Fatalf("verifier %d: %v", i, err)
		}
		t.Cleanup(func() { v.Shutdown(context.Background()) })
		vs = append(vs, v)
	}
	return vs
}

// disputes describes every dispute on chain, for a failure's message.
func disputes(ctx context.Context, c *client.Client) string {
	var b strings.Builder
	if st, err := c.Status(ctx); err == nil {
		fmt.Fprintf(&b, "at height %d:\n", st.Height)
	}
	for id := uint64(1); ; id++ {
		r, err := client.Ask(ctx, c, auditpb.QueryDispute, &auditpb.QueryDisputeRequest{Id: id})
		if err != nil {
			return b.String()
		}
		d := r.Dispute
		fmt.Fprintf(&b, "  dispute %d: %s draw at %d, commit until %d, reveal until %d; votes:", d.Id, d.Status, d.DrawAt, d.CommitUntil, d.RevealUntil)
		for _, v := range d.Votes {
			fmt.Fprintf(&b, " [%s committed %t revealed %t]", v.Verifier[len(v.Verifier)-6:], len(v.Commitment) > 0, len(v.ResponseHash) > 0)
		}
		b.WriteString("\n")
	}
}

// stakeOf is a provider's bonded stake and the disputes it has lost.
func stakeOf(t *testing.T, ctx context.Context, d *devnet.Devnet, c *client.Client, name string) (uint64, uint64) {
	k, _ := d.Keyring.Get(name)
	st, err := client.Ask(ctx, c, stakingpb.QueryStake, &stakingpb.QueryStakeRequest{Address: k.Address().String()})
	if err != nil {
		t.Fatal(err)
	}
	info, err := client.Ask(ctx, c, providerpb.QueryProvider, &providerpb.QueryProviderRequest{Address: k.Address().String()})
	if err != nil {
		t.Fatal(err)
	}
	return st.Stake.Bonded, info.Provider.GetDisputesLost()
}
