package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/channel/channelpb"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/paygate"
	"github.com/agoranet/agora/internal/provider"
)

func channelCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "channel", Short: "Payment channels: a deposit the payee draws on with vouchers"}
	cmd.AddCommand(channelOpenCmd(g), channelFundCmd(g), channelListCmd(g), channelClaimCmd(g), channelCloseCmd(g), channelSettleCmd(g), channelRevokeSessionCmd(g))
	return cmd
}

func channelID(s string) (uint64, error) {
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a channel id", s)
	}
	return id, nil
}

func channelOpenCmd(g *globals) *cobra.Command {
	var model string
	var expiresIn int64
	open := &cobra.Command{
		Use: "open PAYER_KEY PAYEE_ADDR DEPOSIT [--model ID] [--expires-in BLOCKS]", Short: "Open a channel with a deposit", Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			payee, err := g.parseAddr(args[1])
			if err != nil {
				return err
			}
			dep, err := coin.Parse(args[2])
			if err != nil {
				return err
			}
			k, err := g.keys().Get(args[0])
			if err != nil {
				return err
			}
			c, err := g.dial()
			if err != nil {
				return err
			}
			st, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			return g.submit(cmd, args[0], func(payer addr.Address) module.Msg {
				return &channelpb.MsgOpenChannel{Payer: payer.String(), Payee: payee.String(), ModelId: model, Deposit: dep,
					ExpiresAt: st.Height + expiresIn, PayerKey: k.Public()}
			})
		},
	}
	open.Flags().StringVar(&model, "model", "", "the model id (sha256) the channel pays for; its royalties apply")
	open.Flags().Int64Var(&expiresIn, "expires-in", 10_000, "blocks until the channel expires")
	return open
}

func channelFundCmd(g *globals) *cobra.Command {
	fund := &cobra.Command{
		Use: "fund PAYER_KEY CHANNEL_ID AMOUNT", Short: "Add to a channel's deposit", Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := channelID(args[1])
			if err != nil {
				return err
			}
			amt, err := coin.Parse(args[2])
			if err != nil {
				return err
			}
			return g.submit(cmd, args[0], func(payer addr.Address) module.Msg {
				return &channelpb.MsgFundChannel{Payer: payer.String(), ChannelId: id, Amount: amt}
			})
		},
	}
	return fund
}

func channelListCmd(g *globals) *cobra.Command {
	var asPayee bool
	list := &cobra.Command{
		Use: "list ADDR [--payee]", Short: "Channels an address pays (or, with --payee, is paid by)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := g.parseAddr(args[0])
			if err != nil {
				return err
			}
			q := &channelpb.QueryChannelsRequest{Payer: a.String()}
			if asPayee {
				q = &channelpb.QueryChannelsRequest{Payee: a.String()}
			}
			c, err := g.dial()
			if err != nil {
				return err
			}
			r, err := client.Ask(cmd.Context(), c, channelpb.QueryChannels, q)
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), r, func(w io.Writer) {
				table(w, "ID\tPAYER\tPAYEE\tDEPOSIT\tCLAIMED\tEXPIRES\tRECEIPTS\tSTATE", func(tw io.Writer) {
					for _, ch := range r.Channels {
						state := "open"
						if ch.Closed {
							state = "closed"
						}
						fmt.Fprintf(tw, "%d\t%s\t%s\t%d%s\t%d\t%d\t%d\t%s\n", ch.Id, ch.Payer, ch.Payee, ch.Deposit, ch.Denom, ch.Claimed, ch.ExpiresAt, ch.Receipts, state)
					}
				})
			})
		},
	}
	list.Flags().BoolVar(&asPayee, "payee", false, "list the channels that pay ADDR")
	return list
}

func channelClaimCmd(g *globals) *cobra.Command {
	var logPath string
	claim := &cobra.Command{
		Use:   "claim PAYEE_KEY [--log FILE]",
		Short: "Claim everything charged and unclaimed in a provider's voucher log (the provider also does this by itself)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := g.keys().Get(args[0])
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
			if logPath == "" {
				logPath = filepath.Join(provider.Home(g.home, k.Name), "vouchers.log")
			}
			if _, err := os.Stat(logPath); err != nil {
				return fmt.Errorf("no voucher log at %s: %s has not run a provider in this home; pass --log FILE", logPath, k.Name)
			}
			cfg := paygate.DefaultConfig()
			cfg.Key, cfg.Account, cfg.Chain, cfg.ChainID, cfg.LogPath = k.Private, k.Account, c, chainID, logPath
			gate, err := paygate.Open(cfg)
			if err != nil {
				return err
			}
			defer gate.Close()
			if err := gate.Claim(cmd.Context()); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "claimed what was unclaimed in", logPath)
			return nil
		},
	}
	claim.Flags().StringVar(&logPath, "log", "", "voucher log (default <home>/providers/KEY/vouchers.log, where agora provider start keeps it)")
	return claim
}

func channelCloseCmd(g *globals) *cobra.Command {
	closeCmd := &cobra.Command{
		Use: "close PAYEE_KEY CHANNEL_ID", Short: "As the payee, close a channel and refund the payer the rest", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := channelID(args[1])
			if err != nil {
				return err
			}
			return g.submit(cmd, args[0], func(payee addr.Address) module.Msg {
				return &channelpb.MsgCloseChannel{Payee: payee.String(), ChannelId: id}
			})
		},
	}
	return closeCmd
}

func channelSettleCmd(g *globals) *cobra.Command {
	settle := &cobra.Command{
		Use: "settle PAYER_KEY CHANNEL_ID", Short: "As the payer (or the owner of a revoked agent that paid), take back what an expired channel did not pay out", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := channelID(args[1])
			if err != nil {
				return err
			}
			return g.submit(cmd, args[0], func(payer addr.Address) module.Msg {
				return &channelpb.MsgSettleExpired{Payer: payer.String(), ChannelId: id}
			})
		},
	}
	return settle
}

func channelRevokeSessionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "revoke-session PAYER_KEY CHANNEL_ID", Short: "As the payer, stop a channel's session key (payees refuse it at once, the chain after 50 blocks)", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := channelID(args[1])
			if err != nil {
				return err
			}
			return g.submit(cmd, args[0], func(payer addr.Address) module.Msg {
				return &channelpb.MsgRevokeSessionKey{Payer: payer.String(), ChannelId: id}
			})
		},
	}
}
