package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/agoranet/agora/internal/devnet"
)

func devnetCmd(g *globals) *cobra.Command {
	cfg := devnet.DefaultConfig("")
	var free bool
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
			if cfg.Reset { // before the log file below opens in the home
				if err := devnet.Wipe(cfg.Home); err != nil {
					return err
				}
				cfg.Reset = false
			}
			// The devnet's logs go to a file unless $AGORA_LOG asks for them,
			// so the banner stays readable.
			if os.Getenv("AGORA_LOG") != "" {
				cfg.Logger = logger()
			} else {
				if err := os.MkdirAll(cfg.Home, 0o700); err != nil {
					return err
				}
				f, err := os.OpenFile(filepath.Join(cfg.Home, "devnet.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
				if err != nil {
					return err
				}
				defer f.Close()
				cfg.Logger = slog.New(slog.NewTextHandler(f, nil))
			}
			cfg.Paid = !free
			d, err := devnet.Start(cfg)
			if err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), d.Banner())
			fmt.Fprintf(cmd.OutOrStdout(), "Logs: %s (or set AGORA_LOG=info to see them here)\n", filepath.Join(cfg.Home, "devnet.log"))
			<-cmd.Context().Done()
			fmt.Fprintln(cmd.OutOrStdout(), "stopping devnet")
			return d.Stop()
		},
	}
	f := cmd.Flags()
	f.BoolVar(&cfg.Reset, "reset", false, "wipe the devnet's state and keys first")
	f.IntVar(&cfg.Providers, "providers", cfg.Providers, "providers to run in the devnet's process (0: bring your own with agora provider start)")
	f.BoolVar(&free, "free", false, "providers answer without payment (default: they charge uusdc over x402)")
	f.BoolVar(&cfg.TLS, "tls", false, "serve the providers and the gateway over HTTPS with a self-signed certificate (<home>/tls/cert.pem); providers register its key on chain and the gateway reaches them by it")
	f.IntVar(&cfg.BasePort, "base-port", cfg.BasePort, "first port: P2P here, RPC at +1")
	f.DurationVar(&cfg.BlockTime, "block-time", cfg.BlockTime, "pause between blocks")
	return cmd
}
