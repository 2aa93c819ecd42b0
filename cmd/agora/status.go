package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
)

func statusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "status", Short: "The node's chain, height and app hash", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.dial()
			if err != nil {
				return err
			}
			st, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			out := struct {
				ChainID    string `json:"chain_id"`
				Height     int64  `json:"height,string"`
				AppHash    string `json:"app_hash"`
				BlockTime  string `json:"block_time"`
				CatchingUp bool   `json:"catching_up"`
				NodeID     string `json:"node_id"`
				Moniker    string `json:"moniker"`
			}{st.ChainID, st.Height, fmt.Sprintf("%X", st.AppHash),
				st.BlockTime.UTC().Format(time.RFC3339Nano), st.CatchingUp, st.NodeID, st.Moniker}
			return g.emit(cmd.OutOrStdout(), out, func(w io.Writer) {
				fmt.Fprintf(w, "chain-id     %s\nheight       %d\napp hash     %s\nblock time   %s\ncatching up  %v\nnode         %s (%s)\n",
					out.ChainID, out.Height, out.AppHash, out.BlockTime, out.CatchingUp, out.Moniker, out.NodeID)
			})
		},
	}
}
