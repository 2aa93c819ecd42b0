package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/keyring"
	"github.com/agoranet/agora/internal/node"
)

func initCmd(g *globals) *cobra.Command {
	var chainID, moniker string
	cmd := &cobra.Command{
		Use:   "init --chain-id ID",
		Short: "Create a single-validator node home with a funded operator key",
		Long: `Init writes a node home: CometBFT config, node and validator keys, and a
genesis in which the keyring's "operator" key (created if missing) holds
uagr and is the issuer of uusdc. Start the node with 'agora start'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := node.ValidChainID(chainID); err != nil {
				return err
			}
			comet := node.CometConfig(g.home, moniker, node.DefaultPorts, time.Second)
			if _, err := os.Stat(comet.GenesisFile()); err == nil {
				return fmt.Errorf("%s already has a genesis; use another --home", g.home)
			}
			val, err := node.WriteHome(comet)
			if err != nil {
				return err
			}
			op, err := g.keys().Get("operator")
			if errors.Is(err, keyring.ErrNotFound) {
				op, err = g.keys().Add("operator")
			}
			if err != nil {
				return err
			}
			gen := node.Genesis{ChainID: chainID, Time: time.Now().UTC().Truncate(time.Second), Issuer: op.Address()}
			gen.Validators = append(gen.Validators, node.Validator{Key: val, Operator: op.Address()})
			gen.Accounts = append(gen.Accounts, node.Account{Address: op.Address(), Coins: []*coin.Coin{coin.New(coin.Native, 1_000_000_000_000)}})
			doc, err := gen.Doc()
			if err != nil {
				return err
			}
			if err := doc.SaveAs(comet.GenesisFile()); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Initialised %s for chain %s.\nOperator key %q: %s (funded, uusdc issuer)\nStart it with: agora start --home %s\n", g.home, chainID, "operator", op.Address(), g.home)
			return nil
		},
	}
	cmd.Flags().StringVar(&chainID, "chain-id", "", "the new chain's id (required)")
	cmd.Flags().StringVar(&moniker, "moniker", "agora-node", "the node's name")
	_ = cmd.MarkFlagRequired("chain-id")
	return cmd
}
