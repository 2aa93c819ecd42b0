package main

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spf13/cobra"

	"github.com/agoranet/agora/internal/agentmcp"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/httpserve"
	"github.com/agoranet/agora/sdk"
)

func mcpCmd(g *globals) *cobra.Command {
	var keyName, maxAmount, listen, token string
	var deposit uint64
	cmd := &cobra.Command{
		Use:   "mcp --key NAME --max AMOUNT [--http ADDR [--token T]]",
		Short: "Serve the network to MCP-capable agents as Model Context Protocol tools, paid from a key",
		Long: `Mcp is a Model Context Protocol server. Its tools: list_models (the models
served and their prices), ask_model (a paid, receipt-checked answer from the
best provider, failing over), submit_job and job_result (a WebAssembly batch
job and its agreed output), wallet (balances and spending). Answers and job
escrows are paid from --key within --max and the key's agent policy on
chain; its channels are kept in <home>/payer/ as agora pay keeps them.

By default it speaks MCP on stdin and stdout, for an agent that runs it as
a subprocess ("command": "agora", "args": ["mcp", "--key", ...]). With
--http it serves streamable HTTP (stateless, at /mcp) instead, on a
loopback address only and behind a bearer token (--token, or one it makes
and prints), since every caller spends the key's money.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			k, err := g.keys().Get(keyName)
			if err != nil {
				return err
			}
			budget, err := coin.Parse(maxAmount)
			if err != nil {
				return fmt.Errorf("--max: %w", err)
			}
			if listen != "" {
				host, _, err := net.SplitHostPort(listen)
				if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
					return fmt.Errorf("--http %s: serve MCP on a loopback address (like 127.0.0.1:8090); every caller spends %s's money", listen, keyName)
				}
			}
			w, err := sdk.NewWallet(k.Private, g.node)
			if err == nil && k.Rotated() {
				err = w.ForAccount(k.Address().String())
			}
			if err != nil {
				return err
			}
			b := sdk.Budget{Denom: budget.Denom, Max: budget.Amount, Deposit: deposit}
			agent, err := sdk.OpenAgent(cmd.Context(), w, b, filepath.Join(g.home, "payer", w.ChainID(), w.Address()+".journal"))
			if err != nil {
				return err
			}
			defer agent.Close()
			defer agent.Payer().Close()
			c, err := g.dial()
			if err != nil {
				return err
			}
			server := agentmcp.New(agentmcp.Wallet{Key: k, Agent: agent, Chain: c, Address: k.Address(), Budget: b})
			if listen == "" {
				return server.Run(cmd.Context(), &mcp.StdioTransport{})
			}
			if token == "" {
				t := make([]byte, 24)
				rand.Read(t)
				token = hex.EncodeToString(t)
			}
			h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, &mcp.StreamableHTTPOptions{Stateless: true})
			mux := http.NewServeMux()
			mux.Handle("/mcp", bearer(token, h))
			s, err := httpserve.Listen(listen, mux, logger())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "MCP (streamable HTTP) at %s/mcp; send Authorization: Bearer %s\n", s.URL(), token)
			<-cmd.Context().Done()
			return s.Shutdown(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&keyName, "key", "", "keyring key that pays for answers (required)")
	f.StringVar(&maxAmount, "max", "", "the most to commit, like 100000uusdc (required)")
	f.Uint64Var(&deposit, "deposit", 0, "deposit of each new channel (default: 100 times the first price)")
	f.StringVar(&listen, "http", "", "serve streamable HTTP on this loopback address instead of stdio")
	f.StringVar(&token, "token", "", "with --http, the bearer token callers must send (default: a random one, printed)")
	_ = cmd.MarkFlagRequired("key")
	_ = cmd.MarkFlagRequired("max")
	return cmd
}

// bearer admits only requests that carry token.
func bearer(token string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			w.Header().Set("WWW-Authenticate", "Bearer")
			http.Error(w, "send the token agora mcp printed as 'Authorization: Bearer <token>'", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}
