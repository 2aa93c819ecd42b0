package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/agoranet/agora/internal/model"
	"github.com/agoranet/agora/internal/zk"
)

func zkCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "zk", Short: "Zero-knowledge proofs of digits-mlp inference"}
	var out, beacon string
	var contributors int
	setup := &cobra.Command{
		Use:   "setup [--contributors N] [--beacon TEXT] [--out DIR]",
		Short: "Run the Groth16 setup for agora/digits-mlp as a multi-party ceremony",
		Long: `Setup runs gnark's two-phase MPC ceremony: every contributor adds
randomness, each contribution is verified against the last, and a public
beacon (say, a future block hash) seals both phases. The keys are sound if
any one contributor destroyed its randomness. Writes digits-mlp.pk and
digits-mlp.vk; register the verifying key on chain with the model.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := model.Lookup(model.DigitsName)
			if err != nil {
				return err
			}
			sys, err := zk.Ceremony(m.MLP, contributors, []byte(beacon))
			if err != nil {
				return err
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			pk, vk := filepath.Join(out, "digits-mlp.pk"), filepath.Join(out, "digits-mlp.vk")
			if err := sys.Save(pk, vk); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d contributions verified; keys in %s and %s (%d constraints)\n", contributors, pk, vk, sys.CS.GetNbConstraints())
			return nil
		},
	}
	setup.Flags().IntVar(&contributors, "contributors", 3, "contributions to each phase")
	setup.Flags().StringVar(&beacon, "beacon", "", "public randomness that seals the ceremony (a future block hash)")
	setup.Flags().StringVar(&out, "out", "zk", "directory for the keys")
	cmd.AddCommand(setup)
	return cmd
}
