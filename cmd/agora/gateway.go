package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/gateway"
	"github.com/agoranet/agora/internal/ledger"
	"github.com/agoranet/agora/internal/route"
)

func gatewayCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "gateway", Short: "One OpenAI-compatible endpoint over many providers"}
	var db string
	cmd.PersistentFlags().StringVar(&db, "db", "", "the API-key ledger: a postgres:// URL that replicas share, or a SQLite file (default <home>/gateway/ledger.db)")
	ledgerCfg := func() gateway.Config { return gateway.Config{Home: gateway.Home(g.home), DB: db} }
	cmd.AddCommand(withConfig(gatewayStartCmd(g, &db)), gatewayKeyCmd(g, ledgerCfg), gatewayBackupCmd(g, ledgerCfg))
	return cmd
}

func gatewayStartCmd(g *globals, db *string) *cobra.Command {
	var keyName, listen, spend, deposit, audit string
	var tf tlsFlags
	start := &cobra.Command{
		Use:   "start --key NAME [--listen ADDR] [--db URL]",
		Short: "Route, fail over, pay providers and bill API keys until interrupted",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			k, err := g.keys().Get(keyName)
			if err != nil {
				return err
			}
			c, err := g.dial()
			if err != nil {
				return err
			}
			chainID, err := c.ChainID(cmd.Context())
			if err != nil {
				return err
			}
			sp, err := coin.Parse(spend)
			if err != nil {
				return fmt.Errorf("--spend: %w", err)
			}
			dp, err := coin.Parse(deposit)
			if err != nil {
				return fmt.Errorf("--deposit: %w", err)
			}
			s, err := gateway.Start(cmd.Context(), gateway.Config{Listen: listen, TLSCert: tf.cert, TLSKey: tf.key, A2AModel: gateway.DefaultConfig().A2AModel, Key: k.Private, Account: k.Account, ChainID: chainID, Chain: c, NodeURL: g.node,
				Home: gateway.Home(g.home), DB: *db, Denom: sp.Denom, Spend: sp.Amount, Deposit: dp.Amount, Route: route.DefaultConfig(), Logger: logger()})
			if err != nil {
				return err
			}
			if audit != "" {
				s.SetAuditFeed(audit)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "gateway at %s/v1 (API keys in %s)\n", s.URL(), s.Ledger())
			<-cmd.Context().Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return s.Shutdown(ctx)
		},
	}
	f := start.Flags()
	f.StringVar(&keyName, "key", "", "key that pays providers and signs the gateway's receipts (required); each replica has its own")
	def := gateway.DefaultConfig()
	f.StringVar(&listen, "listen", def.Listen, "address to serve on")
	tf.add(f)
	f.StringVar(&spend, "spend", coin.String(coin.New(def.Denom, def.Spend)), "the most the gateway commits to providers, and its denom")
	f.StringVar(&deposit, "deposit", coin.String(coin.New(def.Denom, def.Deposit)), "deposit of each channel to a provider")
	f.StringVar(&audit, "audit", "", "a verifier's URL: show it every answer bought from providers, signed, so it can check them and challenge lies")
	_ = start.MarkFlagRequired("key")
	return start
}

func gatewayKeyCmd(g *globals, cfg func() gateway.Config) *cobra.Command {
	keyCmd := &cobra.Command{Use: "key", Short: "API keys with prepaid balances, in the gateway's ledger"}
	withLedger := func(cmd *cobra.Command, fn func(l *ledger.Ledger) error) error {
		l, err := gateway.OpenLedger(cmd.Context(), cfg())
		if err != nil {
			return err
		}
		defer l.Close()
		return fn(l)
	}
	var credit string
	create := &cobra.Command{
		Use: "create --credit AMOUNT", Short: "Create an API key with a prepaid balance", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := coin.Parse(credit)
			if err != nil {
				return fmt.Errorf("--credit: %w", err)
			}
			return withLedger(cmd, func(l *ledger.Ledger) error {
				key, id, err := l.CreateKey(cmd.Context(), c.Denom, c.Amount)
				if err != nil {
					return err
				}
				return g.emit(cmd.OutOrStdout(), map[string]string{"key": key, "id": id, "credit": coin.String(c)}, func(w io.Writer) {
					fmt.Fprintf(w, "API key %s (id %s) with %s; use it as 'Authorization: Bearer %s'. It is shown once.\n", key, id, coin.String(c), key)
				})
			})
		},
	}
	create.Flags().StringVar(&credit, "credit", "1000000uusdc", "prepaid balance")
	list := &cobra.Command{
		Use: "list", Short: "Every key's balance, what requests in flight hold and what it has spent", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withLedger(cmd, func(l *ledger.Ledger) error {
				accts, err := l.Accounts(cmd.Context())
				if err != nil {
					return err
				}
				if accts == nil {
					accts = []ledger.Account{}
				}
				return g.emit(cmd.OutOrStdout(), map[string]any{"keys": accts}, func(w io.Writer) {
					table(w, "ID\tBALANCE\tRESERVED\tSPENT", func(tw io.Writer) {
						for _, a := range accts {
							fmt.Fprintf(tw, "%s\t%d%s\t%d\t%d\n", a.ID, a.Balance, a.Denom, a.Reserved, a.Debited)
						}
					})
				})
			})
		},
	}
	topup := &cobra.Command{
		Use: "topup ID AMOUNT", Short: "Add to a key's balance (ID as key list shows it)", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := coin.Parse(args[1])
			if err != nil {
				return err
			}
			return withLedger(cmd, func(l *ledger.Ledger) error {
				a, err := l.TopUp(cmd.Context(), args[0], c.Denom, c.Amount)
				if err != nil {
					return err
				}
				return g.emit(cmd.OutOrStdout(), a, func(w io.Writer) {
					fmt.Fprintf(w, "key %s now holds %d%s\n", a.ID, a.Balance, a.Denom)
				})
			})
		},
	}
	keyCmd.AddCommand(create, list, topup)
	return keyCmd
}

func gatewayBackupCmd(g *globals, cfg func() gateway.Config) *cobra.Command {
	var out string
	backup := &cobra.Command{
		Use:   "backup --out FILE",
		Short: "Write a consistent copy of the API-key ledger, while the gateway runs",
		Long: `Backup copies the SQLite ledger in one read transaction (the gateway keeps
serving). To restore, stop the gateway and put the copy in place of
<home>/gateway/ledger.db. A PostgreSQL ledger is backed up with pg_dump.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := gateway.OpenLedger(cmd.Context(), cfg())
			if err != nil {
				return err
			}
			defer l.Close()
			if err := l.Backup(cmd.Context(), out); err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), map[string]string{"ledger": l.Where(), "backup": out}, func(w io.Writer) {
				fmt.Fprintf(w, "backed up %s to %s\n", l.Where(), out)
			})
		},
	}
	backup.Flags().StringVar(&out, "out", "", "the file to write (it must not exist)")
	_ = backup.MarkFlagRequired("out")
	return backup
}
