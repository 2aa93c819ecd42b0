package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/agoranet/agora/internal/chain"
	"github.com/agoranet/agora/internal/keyring"
	"github.com/agoranet/agora/internal/node"
)

func startCmd(g *globals) *cobra.Command {
	var operatorKey string
	cmd := &cobra.Command{
		Use:   "start",
		Short: "Run the node in --home until interrupted",
		Long: `Run the node in --home until interrupted.

A validator's node takes its part in the randomness beacon itself: it
commits and reveals from the key named by --operator-key in the home's
keyring (the account that operates the validator). Without that key the
node only validates, and its validator is slashed for every commitment it
makes by hand and does not reveal.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			comet, err := node.LoadCometConfig(g.home)
			if err != nil {
				return err
			}
			var op *keyring.Key
			if operatorKey != "" {
				op, err = g.keys().Get(operatorKey)
				if errors.Is(err, keyring.ErrNotFound) {
					op, err = nil, nil // a full node, or a validator operated from elsewhere
				}
				if err != nil {
					return err
				}
			}
			n, err := node.Start(node.Config{Comet: comet, App: chain.DefaultConfig(), Logger: logger(), Operator: op})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "node running: RPC %s, home %s\n", n.RPC(), g.home)
			select {
			case <-cmd.Context().Done():
				return n.Stop()
			case <-n.Halted():
				// Consensus cannot go on with this binary (an upgrade
				// height it lacks, or a fault): say why and exit non-zero,
				// so a supervisor notices. The block stays in the store and
				// the binary that can execute it replays it on start.
				return errors.Join(n.HaltErr(), n.Stop())
			}
		},
	}
	cmd.Flags().StringVar(&operatorKey, "operator-key", "operator", "keyring key of the validator's operator, for the beacon's commits and reveals (\"\" for none)")
	return cmd
}
