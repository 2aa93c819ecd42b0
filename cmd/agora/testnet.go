package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/agoranet/agora/internal/devnet"
	"github.com/agoranet/agora/internal/node"
)

func testnetCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "testnet", Short: "Multi-validator networks on loopback, one process per node"}
	cfg := devnet.TestnetConfig{Validators: 4, ChainID: "agora-testnet-1", BasePort: 36656, BlockTime: 300 * time.Millisecond}
	init := &cobra.Command{
		Use:   "init --validators N --out DIR",
		Short: "Write N node homes with a shared genesis and persistent peers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			configs, err := devnet.InitTestnet(cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Wrote %d node homes for chain %s. Start each with:\n", len(configs), cfg.ChainID)
			for i, c := range configs {
				fmt.Fprintf(cmd.OutOrStdout(), "  agora start --home %s   # RPC http://127.0.0.1:%d\n", c.RootDir, node.PortsFrom(cfg.BasePort, i).RPC)
			}
			return nil
		},
	}
	f := init.Flags()
	f.IntVar(&cfg.Validators, "validators", cfg.Validators, "number of validators")
	f.StringVar(&cfg.Out, "out", "", "directory for the node homes (required)")
	f.StringVar(&cfg.ChainID, "chain-id", cfg.ChainID, "chain id")
	f.IntVar(&cfg.BasePort, "base-port", cfg.BasePort, "node i uses base+10i (P2P) and base+10i+1 (RPC)")
	f.DurationVar(&cfg.BlockTime, "block-time", cfg.BlockTime, "pause between blocks")
	_ = init.MarkFlagRequired("out")
	cmd.AddCommand(init)
	return cmd
}
