package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/agoranet/agora/internal/facilitator"
)

func facilitatorCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "facilitator", Short: "An x402 facilitator: /verify, /settle, /supported"}
	var keyName, listen, state string
	var tf tlsFlags
	var payees []string
	start := &cobra.Command{
		Use: "start --key NAME [--listen ADDR]", Short: "Verify and settle x402 payments for servers that do not talk to the chain", Args: cobra.NoArgs,
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
			if state == "" {
				state = filepath.Join(g.home, "facilitator", "settled.log")
			}
			if err := os.MkdirAll(filepath.Dir(state), 0o700); err != nil {
				return err
			}
			s, err := facilitator.Start(facilitator.Config{Listen: listen, TLSCert: tf.cert, TLSKey: tf.key, Key: k.Private, Account: k.Account, Chain: c, ChainID: chainID, StatePath: state, Payees: payees, Logger: logger()})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "facilitator for cosmos:%s at %s\n", chainID, s.URL())
			<-cmd.Context().Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return s.Shutdown(ctx)
		},
	}
	start.Flags().StringVar(&keyName, "key", "", "key that submits settlements and pays their fees (required)")
	start.Flags().StringVar(&listen, "listen", facilitator.DefaultConfig().Listen, "address to serve on")
	tf.add(start.Flags())
	start.Flags().StringVar(&state, "state", "", "file recording settlements, so that none settles twice (default <home>/facilitator/settled.log)")
	start.Flags().StringArrayVar(&payees, "payee", nil, "an address to settle payments to besides the registered providers (repeatable)")
	_ = start.MarkFlagRequired("key")
	cmd.AddCommand(withConfig(start))
	return cmd
}
