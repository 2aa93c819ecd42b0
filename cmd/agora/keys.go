package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
)

type keyJSON struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	PubKey  string `json:"pubkey"`
}

func keysCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Manage the account keys in <home>/keyring"}
	cmd.AddCommand(keysAddCmd(g), keysListCmd(g), keysShowCmd(g), keysImportCmd(g), keysExportCmd(g))
	return cmd
}

func keysAddCmd(g *globals) *cobra.Command {
	add := &cobra.Command{
		Use: "add NAME", Short: "Create a new key", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := g.keys().Add(args[0])
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), keyJSON{k.Name, k.Address().String(), fmt.Sprintf("%x", k.Public())}, func(w io.Writer) {
				fmt.Fprintf(w, "created %s: %s\n", k.Name, k.Address())
			})
		},
	}
	return add
}

func keysListCmd(g *globals) *cobra.Command {
	list := &cobra.Command{
		Use: "list", Short: "List keys", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ks, err := g.keys().List()
			if err != nil {
				return err
			}
			out := []keyJSON{}
			for _, k := range ks {
				out = append(out, keyJSON{k.Name, k.Address().String(), fmt.Sprintf("%x", k.Public())})
			}
			return g.emit(cmd.OutOrStdout(), out, func(w io.Writer) {
				table(w, "NAME\tADDRESS", func(tw io.Writer) {
					for _, k := range out {
						fmt.Fprintf(tw, "%s\t%s\n", k.Name, k.Address)
					}
				})
			})
		},
	}
	return list
}

func keysShowCmd(g *globals) *cobra.Command {
	var onlyAddr bool
	show := &cobra.Command{
		Use: "show NAME", Short: "Show a key's address and public key", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := g.keys().Get(args[0])
			if err != nil {
				return err
			}
			if onlyAddr {
				fmt.Fprintln(cmd.OutOrStdout(), k.Address())
				return nil
			}
			j := keyJSON{k.Name, k.Address().String(), fmt.Sprintf("%x", k.Public())}
			return g.emit(cmd.OutOrStdout(), j, func(w io.Writer) {
				fmt.Fprintf(w, "name     %s\naddress  %s\npubkey   %s\n", j.Name, j.Address, j.PubKey)
			})
		},
	}
	show.Flags().BoolVar(&onlyAddr, "address", false, "print only the bech32 address")
	return show
}

func keysImportCmd(g *globals) *cobra.Command {
	imp := &cobra.Command{
		Use: "import NAME [SEED_HEX]", Short: "Import a key from its hex seed (argument or stdin)", Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			seed := ""
			if len(args) == 2 {
				seed = args[1]
			} else {
				b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 4096))
				if err != nil {
					return err
				}
				seed = strings.TrimSpace(string(b))
			}
			k, err := g.keys().Import(args[0], seed)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "imported %s: %s\n", k.Name, k.Address())
			return nil
		},
	}
	return imp
}

func keysExportCmd(g *globals) *cobra.Command {
	exp := &cobra.Command{
		Use: "export NAME", Short: "Print a key's secret seed as hex (keep it secret)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.keys().Export(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), s)
			return nil
		},
	}
	return exp
}
