package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/verifier"
)

func verifierCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "verifier", Short: "Audit providers' answers and serve on dispute committees"}
	var keyName, listen, bond string
	var tf tlsFlags
	var rate float64
	start := &cobra.Command{
		Use:   "start --key NAME [--listen ADDR] [--sample-rate P] [--bond AMOUNT]",
		Short: "Register as a verifier, audit a sample of posted answers, challenge lies, vote on committees",
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
			b, err := coin.Parse(bond)
			if err != nil {
				return fmt.Errorf("--bond: %w", err)
			}
			// A disputed job's data on storage is paid for from the verifier's key.
			fetch, reader, err := g.storageReader(keyName, "10000000uusdc")
			if err != nil {
				return err
			}
			defer reader.Close()
			v, err := verifier.Start(cmd.Context(), verifier.Config{Listen: listen, TLSCert: tf.cert, TLSKey: tf.key, Key: k.Private, Account: k.Account, Chain: c, SampleRate: rate, Bond: b.Amount, Poll: verifier.DefaultConfig().Poll, Fetch: fetch, Logger: logger()})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "verifier %s: post answers to audit to %s/v1/audit\n", v.Address(), v.URL())
			<-cmd.Context().Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return v.Shutdown(ctx)
		},
	}
	f := start.Flags()
	f.StringVar(&keyName, "key", "", "the verifier's key (required)")
	def := verifier.DefaultConfig()
	f.StringVar(&listen, "listen", def.Listen, "address of the audit feed")
	tf.add(f)
	f.Float64Var(&rate, "sample-rate", def.SampleRate, "fraction p of posted answers re-executed")
	f.StringVar(&bond, "bond", coin.String(coin.New(coin.Native, def.Bond)), "stake to bond if less is bonded")
	_ = start.MarkFlagRequired("key")
	cmd.AddCommand(withConfig(start))
	return cmd
}
