package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	cmted25519 "github.com/cometbft/cometbft/crypto/ed25519"
	cmtjson "github.com/cometbft/cometbft/libs/json"
	cmttypes "github.com/cometbft/cometbft/types"
	"github.com/spf13/cobra"

	"github.com/agoranet/agora/internal/chain"
	"github.com/agoranet/agora/internal/node"
)

func exportCmd(g *globals) *cobra.Command {
	var chainID, out string
	cmd := &cobra.Command{
		Use:   "export --chain-id NEW-ID [--out FILE]",
		Short: "Write a genesis from the stopped node's state, for a new chain that starts where this one stopped",
		Long: `Export reads the state of the node in --home at its last committed height
and writes a genesis.json from it: every key of the state, the validator
set consensus was last told, this chain's consensus params, and an
initial_height one past the exported height, so every height recorded in
state keeps its meaning. Stop the node first.

The new chain needs a new id: txs, vouchers, receipts and beacon
commitments are signed for a chain id, and with the same id on both
chains what is signed for one would be good on the other.

To start the new chain, every validator stops its node, takes the one
exported genesis (check its hash with the others), moves its home's data/
away (keeping data/priv_validator_state.json), puts the genesis in
config/genesis.json and starts. docs/governance.md walks through it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if chainID == "" {
				return fmt.Errorf("name the new chain with --chain-id (like agora-2): it must differ from the old one's, so nothing signed for one chain is good on the other")
			}
			if err := node.ValidChainID(chainID); err != nil {
				return err
			}
			comet, err := node.LoadCometConfig(g.home)
			if err != nil {
				return err
			}
			cfg := chain.DefaultConfig()
			cfg.Dir = filepath.Join(comet.DBDir(), "state")
			if _, err := os.Stat(cfg.Dir); err != nil {
				return fmt.Errorf("no state at %s: the node in %s has not run yet", cfg.Dir, g.home)
			}
			app, err := chain.New(cfg)
			if err != nil {
				if strings.Contains(err.Error(), "resource temporarily unavailable") || strings.Contains(err.Error(), "lock") {
					return fmt.Errorf("the state in %s is in use: stop the node first (%v)", cfg.Dir, err)
				}
				return err
			}
			defer app.Close()
			e, err := app.Export()
			if err != nil {
				return err
			}
			old, err := cmttypes.GenesisDocFromFile(comet.GenesisFile())
			if err != nil {
				return fmt.Errorf("read %s: %w", comet.GenesisFile(), err)
			}
			doc := &cmttypes.GenesisDoc{
				GenesisTime:     time.Now().UTC().Truncate(time.Second),
				ChainID:         chainID,
				InitialHeight:   e.Height + 1,
				ConsensusParams: old.ConsensusParams,
				Validators:      old.Validators, // a chain of fixed validators keeps its own
			}
			if chainID == old.ChainID {
				return fmt.Errorf("--chain-id %s is this chain's own id; the new chain needs another (like %s-2), so nothing signed for one chain is good on the other", chainID, chainID)
			}
			if len(e.Validators) > 0 {
				doc.Validators = nil
				for _, v := range e.Validators {
					pk := cmted25519.PubKey(v.Pubkey)
					doc.Validators = append(doc.Validators, cmttypes.GenesisValidator{Address: pk.Address(), PubKey: pk, Power: v.Power, Name: v.Operator.String()})
				}
			}
			if doc.AppState, err = e.AppState(); err != nil {
				return err
			}
			if err := doc.ValidateAndComplete(); err != nil {
				return fmt.Errorf("the exported genesis does not validate: %w", err)
			}
			if out == "" {
				b, err := cmtjson.MarshalIndent(doc, "", "  ")
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(append(b, '\n'))
				return err
			}
			if err := doc.SaveAs(out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "exported %s at height %d (%d keys, %d validators) to %s; the new chain %s starts at height %d\n",
				old.ChainID, e.Height, len(e.State), len(doc.Validators), out, doc.ChainID, doc.InitialHeight)
			return nil
		},
	}
	cmd.Flags().StringVar(&chainID, "chain-id", "", "the new chain's id, which must differ from the old one's (required)")
	cmd.Flags().StringVar(&out, "out", "", "write the genesis to FILE (default: standard output)")
	return cmd
}
