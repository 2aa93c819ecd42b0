package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/agoranet/agora/internal/chain/auth/authpb"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/keyring"
	"github.com/agoranet/agora/internal/sig"
)

type keyJSON struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	PubKey  string `json:"pubkey"`
}

func keysCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Manage the account keys in <home>/keyring"}
	cmd.AddCommand(keysAddCmd(g), keysListCmd(g), keysShowCmd(g), keysImportCmd(g), keysExportCmd(g), keysRotateCmd(g), keysMigrateCmd(g))
	return cmd
}

func keysAddCmd(g *globals) *cobra.Command {
	add := &cobra.Command{
		Use: "add NAME", Short: "Create a new key", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			g.sealing = true
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
			k, err := g.keys().Peek(args[0])
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
	var account string
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
			g.sealing = true
			k, err := g.keys().Import(args[0], seed)
			if err != nil {
				return err
			}
			if account != "" {
				a, err := g.parseAddr(account)
				if err != nil {
					return err
				}
				if err := g.keys().SetAccount(k.Name, a); err != nil {
					return err
				}
				k.Account = a
			}
			fmt.Fprintf(cmd.OutOrStdout(), "imported %s: %s\n", k.Name, k.Address())
			return nil
		},
	}
	imp.Flags().StringVar(&account, "account", "", "the account the key signs for, if it rotated to this key (default: the key's own address)")
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

type rotateJSON struct {
	Account string `json:"account"`
	PubKey  string `json:"pubkey"`
	Retired string `json:"retired"`
	Height  int64  `json:"height,omitempty"`
}

func keysRotateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rotate NAME",
		Short: "Replace the key's account key on the chain with a new one; the address, funds and stake stay",
		Long: `Rotate makes a new key, binds it to NAME's account on the chain (MsgRotateKey,
signed by the current key, with the new key's proof of possession) and then
makes it NAME in the keyring. The old key is kept as NAME.retired; it signs
for nothing any more. The new key is written to NAME.next before the chain
is asked, so a rotation interrupted at any point is finished by running
this again. Daemons (provider, gateway, ...) that sign with NAME must be
restarted to load the new key.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			g.sealing = true
			kr := g.keys()
			cur, err := kr.Get(name)
			if err != nil {
				return err
			}
			c, err := g.dial()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			next, err := kr.AddPending(name)
			if err != nil {
				return err
			}
			account := cur.Address().String()
			done, err := client.Ask(ctx, c, authpb.QueryKey, &authpb.QueryKeyRequest{Account: account, PublicKey: next.Public()})
			if err != nil {
				return err
			}
			var height int64
			if !done.Current {
				now, err := client.Ask(ctx, c, authpb.QueryKey, &authpb.QueryKeyRequest{Account: account, PublicKey: cur.Public()})
				if err != nil {
					return err
				}
				if !now.Current {
					return fmt.Errorf("%s's key is not the one account %s signs with on this chain (retired at height %d); import the current key with `agora keys import --account`", name, account, now.RetiredAt)
				}
				chainID, err := c.ChainID(ctx)
				if err != nil {
					return err
				}
				proof := sig.Sign(next.Private, authpb.RotateKeySignBytes(chainID, account, cur.Public()))
				res, err := submitTx(ctx, c, cur, g.memo, &authpb.MsgRotateKey{Account: account, NewPublicKey: next.Public(), Proof: proof})
				if err != nil {
					return fmt.Errorf("%w (the new key is kept as %s; run this again to finish)", err, keyring.Pending(name))
				}
				height = res.Height
			}
			if err := kr.FinishRotation(name); err != nil {
				return err
			}
			out := rotateJSON{Account: account, PubKey: fmt.Sprintf("%x", next.Public()), Retired: keyring.Retired(name), Height: height}
			return g.emit(cmd.OutOrStdout(), out, func(w io.Writer) {
				fmt.Fprintf(w, "rotated %s: account %s now signs with %s; the old key is %s\n", name, account, out.PubKey, out.Retired)
			})
		},
	}
}

func keysMigrateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Rewrite every key in --keyring-backend: seal plain keys with a passphrase (file), or open sealed ones (test)",
		Long: `Migrate rewrites each key of the keyring in the backend --keyring-backend
names: with file, every plain key is sealed with the passphrase (asked
twice, or $AGORA_KEYRING_PASSPHRASE); with test, every sealed key is
written back in plain. Each file is replaced atomically, so an interrupted
migration leaves every key readable; run it again to finish.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			g.sealing = true
			kr := g.keys()
			n, err := kr.Migrate()
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), map[string]any{"backend": string(kr.Backend()), "rewritten": n}, func(w io.Writer) {
				fmt.Fprintf(w, "%d keys rewritten for the %s backend in %s\n", n, kr.Backend(), kr.Dir())
			})
		},
	}
}
