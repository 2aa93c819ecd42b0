package main

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/agoranet/agora/internal/node"
)

func devnetCmd() *cobra.Command {
	cfg := node.DefaultDevnetConfig("")
	cmd := &cobra.Command{
		Use:   "devnet",
		Short: "Run a whole Agora network in one process on loopback",
		Long: `Devnet starts one validator with fast blocks and funded dev keys (alice,
bob, issuer) in its own home (default $HOME/.agora/devnet, or --home if
given). State is kept across restarts; --reset starts over.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Home = filepath.Join(g.home, "devnet")
			if cmd.Flags().Changed("home") {
				cfg.Home = g.home
			}
			cfg.Logger = logger()
			d, err := node.StartDevnet(cfg)
			if err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), d.Banner())
			<-cmd.Context().Done()
			fmt.Fprintln(cmd.OutOrStdout(), "stopping devnet")
			return d.Stop()
		},
	}
	f := cmd.Flags()
	f.BoolVar(&cfg.Reset, "reset", false, "wipe the devnet's state and keys first")
	f.IntVar(&cfg.BasePort, "base-port", cfg.BasePort, "first port: P2P here, RPC at +1")
	f.DurationVar(&cfg.BlockTime, "block-time", cfg.BlockTime, "pause between blocks")
	return cmd
}
