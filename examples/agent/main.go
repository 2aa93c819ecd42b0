// Command agent is an autonomous agent that buys inference on Agora: it
// finds the providers of a model on chain, pays them per request over x402
// payment channels with the SDK, checks every answer's receipt, and stops
// when its budget is spent.
//
//	go run ./examples/agent --home ~/.agora/devnet --key agent --budget 20000uusdc
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"

	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/provider/providerpb"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/keyring"
	"github.com/agoranet/agora/internal/openai"
	"github.com/agoranet/agora/internal/receipt"
	"github.com/agoranet/agora/sdk"
)

type config struct {
	node, home, key, model string
	budget                 *coin.Coin
	requests               int
}

type stats struct {
	answers, receiptsChecked int
	spent                    uint64
	providers                map[string]int
	channels                 []uint64
	stoppedByBudget          bool
}

func main() {
	var cfg config
	var budget string
	home, _ := os.UserHomeDir()
	flag.StringVar(&cfg.node, "node", "http://127.0.0.1:26657", "chain RPC")
	flag.StringVar(&cfg.home, "home", filepath.Join(home, ".agora", "devnet"), "home with the keyring")
	flag.StringVar(&cfg.key, "key", "agent", "key that pays")
	flag.StringVar(&cfg.model, "model", "agora/tiny-lm", "model to buy")
	flag.StringVar(&budget, "budget", "20000uusdc", "the most to spend")
	flag.IntVar(&cfg.requests, "requests", 100, "requests to make (or until the budget is spent)")
	flag.Parse()
	var err error
	if cfg.budget, err = coin.Parse(budget); err != nil {
		log.Fatal(err)
	}
	st, err := run(context.Background(), cfg, os.Stdout)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d answers from %d providers, %d receipts checked, spent %d%s (budget %s)%s\n", st.answers, len(st.providers), st.receiptsChecked,
		st.spent, cfg.budget.Denom, coin.String(cfg.budget), map[bool]string{true: "; stopped at the budget", false: ""}[st.stoppedByBudget])
}

func run(ctx context.Context, cfg config, out io.Writer) (*stats, error) {
	k, err := keyring.Open(filepath.Join(cfg.home, "keyring")).Get(cfg.key)
	if err != nil {
		return nil, err
	}
	c, err := client.New(cfg.node)
	if err != nil {
		return nil, err
	}
	// Discover: online providers of the model, from the chain.
	found, err := client.Ask(ctx, c, providerpb.QueryProviders, &providerpb.QueryProvidersRequest{Model: cfg.model, OnlineOnly: true})
	if err != nil {
		return nil, err
	}
	if len(found.Providers) == 0 {
		return nil, fmt.Errorf("no provider of %s is online", cfg.model)
	}
	w, err := sdk.NewWallet(k.Private, cfg.node)
	if err != nil {
		return nil, err
	}
	payer := sdk.NewPayer(w, sdk.Budget{Denom: cfg.budget.Denom, Max: cfg.budget.Amount})
	hc := &http.Client{Transport: payer}
	st := &stats{providers: map[string]int{}}
	for i := 0; i < cfg.requests; i++ {
		p := found.Providers[i%len(found.Providers)].Provider
		body := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"Tell me of kings, request %d."}],"max_tokens":40,"seed":%d}`, cfg.model, i, i)
		resp, err := hc.Post(p.Endpoint+"/v1/chat/completions", "application/json", bytes.NewBufferString(body))
		if errors.Is(sdk.Refused(resp, err), sdk.ErrBudget) {
			if resp != nil {
				resp.Body.Close()
			}
			st.stoppedByBudget = true
			break
		}
		if err != nil {
			return st, err
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return st, fmt.Errorf("%s answered %d: %s", p.Endpoint, resp.StatusCode, answer)
		}
		// Trust, but verify: the receipt must be the provider's and cover
		// exactly this request and this answer.
		r, err := receipt.Decode(resp.Header.Get(receipt.Header))
		if err != nil {
			return st, fmt.Errorf("answer %d: %w", i, err)
		}
		canonical, err := openai.CanonicalRequest("chat.completions", []byte(body))
		if err != nil {
			return st, err
		}
		if r.Provider != p.Operator {
			return st, fmt.Errorf("answer %d is signed by %s, not the provider %s", i, r.Provider, p.Operator)
		}
		if err := receipt.Check(r, canonical, answer); err != nil {
			return st, fmt.Errorf("answer %d: %w", i, err)
		}
		st.receiptsChecked++
		st.answers++
		st.providers[p.Operator]++
		if out != nil && i%25 == 0 {
			fmt.Fprintf(out, "answer %d from %s, paid %s so far\n", i, p.Operator, fmt.Sprint(payer.Spent()))
		}
	}
	st.spent = payer.Spent()
	st.channels = payer.Channels()
	return st, nil
}
