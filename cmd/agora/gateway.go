package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/gateway"
	"github.com/agoranet/agora/internal/route"
)

func gatewayCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "gateway", Short: "One OpenAI-compatible endpoint over many providers"}
	var keyName, listen, spend, deposit string
	start := &cobra.Command{
		Use:   "start --key NAME [--listen ADDR]",
		Short: "Route, fail over, pay providers and bill API keys until interrupted",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			k, err := g.keys().Get(keyName)
			if err != nil {
				return err
			}
			c, err := g.dial()
			if err != nil {
				return err
			}
			chainID, err := c.ChainID(cmd.Context())
			if err != nil {
				return err
			}
			sp, err := coin.Parse(spend)
			if err != nil {
				return fmt.Errorf("--spend: %w", err)
			}
			dp, err := coin.Parse(deposit)
			if err != nil {
				return fmt.Errorf("--deposit: %w", err)
			}
			s, err := gateway.Start(cmd.Context(), gateway.Config{Listen: listen, Key: k.Private, ChainID: chainID, Chain: c, NodeURL: g.node,
				KeysPath: filepath.Join(g.home, "gateway", "keys.jsonl"), Denom: sp.Denom, Spend: sp.Amount, Deposit: dp.Amount,
				Route: route.DefaultConfig(), Logger: logger(), PaymentsLog: filepath.Join(g.home, "gateway", "vouchers.log")})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "gateway at %s/v1 (API keys in %s)\n", s.URL(), filepath.Join(g.home, "gateway", "keys.jsonl"))
			<-cmd.Context().Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return s.Shutdown(ctx)
		},
	}
	f := start.Flags()
	f.StringVar(&keyName, "key", "", "key that pays providers and signs the gateway's receipts (required)")
	def := gateway.DefaultConfig()
	f.StringVar(&listen, "listen", def.Listen, "address to serve on")
	f.StringVar(&spend, "spend", coin.String(coin.New(def.Denom, def.Spend)), "the most the gateway commits to providers, and its denom")
	f.StringVar(&deposit, "deposit", coin.String(coin.New(def.Denom, def.Deposit)), "deposit of each channel to a provider")
	_ = start.MarkFlagRequired("key")

	var credit string
	keyCmd := &cobra.Command{Use: "key", Short: "API keys with prepaid balances"}
	create := &cobra.Command{
		Use: "create --credit AMOUNT", Short: "Create an API key for the gateway in --home", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := coin.Parse(credit)
			if err != nil {
				return fmt.Errorf("--credit: %w", err)
			}
			path := filepath.Join(g.home, "gateway", "keys.jsonl")
			key, id, err := gateway.Create(path, c.Denom, c.Amount)
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), map[string]string{"key": key, "id": id, "credit": coin.String(c)}, func(w io.Writer) {
				fmt.Fprintf(w, "API key %s (id %s) with %s; use it as 'Authorization: Bearer %s'. It is shown once.\n", key, id, coin.String(c), key)
			})
		},
	}
	create.Flags().StringVar(&credit, "credit", "1000000uusdc", "prepaid balance")
	keyCmd.AddCommand(create)
	cmd.AddCommand(withConfig(start), keyCmd)
	return cmd
}
