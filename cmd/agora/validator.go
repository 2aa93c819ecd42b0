package main

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/cometbft/cometbft/privval"
	"github.com/spf13/cobra"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/staking/stakingpb"
	"github.com/agoranet/agora/internal/client"
)

func validatorCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "validator", Short: "Run for the validator set, and see who is in it"}
	var selfBond, moniker, nodeHome string
	var commission uint32
	create := &cobra.Command{
		Use:   "create KEY --self-bond AMOUNT [--commission BPS] [--node-home DIR]",
		Short: "Declare the node in --node-home a validator operated by KEY, bonding its own stake",
		Long: `Create declares a validator: the consensus key of the node in --node-home
(its config/priv_validator_key.json), operated by the keyring key KEY,
which bonds --self-bond of its own uagr. It joins the active set at the end
of the block if its stake ranks among the top max_validators. Its
commission (basis points of its rewards) may later be lowered, never raised.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := coin.Parse(selfBond)
			if err != nil {
				return fmt.Errorf("--self-bond: %w", err)
			}
			if nodeHome == "" {
				nodeHome = g.home
			}
			keyFile := filepath.Join(nodeHome, "config", "priv_validator_key.json")
			pv, err := loadValidatorKey(keyFile)
			if err != nil {
				return err
			}
			return g.submit(cmd, args[0], func(from addr.Address) module.Msg {
				return &stakingpb.MsgCreateValidator{Operator: from.String(), ConsensusPubkey: pv, SelfBond: c, CommissionBps: commission, Moniker: moniker}
			})
		},
	}
	create.Flags().StringVar(&selfBond, "self-bond", "", "the operator's own stake, like 10000000uagr (required)")
	create.Flags().Uint32Var(&commission, "commission", 500, "commission in basis points (500 = 5%)")
	create.Flags().StringVar(&moniker, "moniker", "", "a name for the validator")
	create.Flags().StringVar(&nodeHome, "node-home", "", "the node home holding the consensus key (default: --home)")
	_ = create.MarkFlagRequired("self-bond")

	var editCommission uint32
	var editMoniker string
	edit := &cobra.Command{
		Use: "edit KEY --commission BPS [--moniker NAME]", Short: "Lower a validator's commission or rename it", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.submit(cmd, args[0], func(from addr.Address) module.Msg {
				return &stakingpb.MsgEditValidator{Operator: from.String(), CommissionBps: editCommission, Moniker: editMoniker}
			})
		},
	}
	edit.Flags().Uint32Var(&editCommission, "commission", 0, "the new commission in basis points; at most the current one")
	edit.Flags().StringVar(&editMoniker, "moniker", "", "a new name")
	_ = edit.MarkFlagRequired("commission")

	unjail := &cobra.Command{
		Use: "unjail KEY", Short: "Return a jailed validator to the candidates once its jail has passed", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.submit(cmd, args[0], func(from addr.Address) module.Msg { return &stakingpb.MsgUnjail{Operator: from.String()} })
		},
	}
	var newKeyHome string
	rotate := &cobra.Command{
		Use:   "rotate-key KEY --new-key-home DIR",
		Short: "Replace the validator's consensus key with the one in DIR's config/priv_validator_key.json",
		Long: `Rotate-key replaces the consensus key of the validator operated by KEY,
after a compromise or a move to a new signer, keeping its stake,
delegations and history. Make the new key with 'agora init --home DIR'
(or take your remote signer's), submit this, then put the new key file in
the node's config/ and restart it: consensus switches keys two blocks
after the tx's block, and missing those blocks costs nothing. The old key
can never be used again and still answers for what it signed. One
rotation per unbonding period.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pv, err := loadValidatorKey(filepath.Join(newKeyHome, "config", "priv_validator_key.json"))
			if err != nil {
				return err
			}
			return g.submit(cmd, args[0], func(from addr.Address) module.Msg {
				return &stakingpb.MsgRotateConsensusKey{Operator: from.String(), NewConsensusPubkey: pv}
			})
		},
	}
	rotate.Flags().StringVar(&newKeyHome, "new-key-home", "", "a node home holding the new consensus key (required)")
	_ = rotate.MarkFlagRequired("new-key-home")
	list := &cobra.Command{
		Use: "list", Short: "Every validator: power, stake, commission and status", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.dial()
			if err != nil {
				return err
			}
			r, err := client.Ask(cmd.Context(), c, stakingpb.QueryValidators, &stakingpb.QueryValidatorsRequest{})
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), r, func(w io.Writer) {
				if len(r.Validators) == 0 {
					fmt.Fprintln(w, "no validators of stake (a chain of fixed validators)")
				}
				for _, v := range r.Validators {
					printValidator(w, v)
				}
			})
		},
	}
	show := &cobra.Command{
		Use: "show OPERATOR", Short: "One validator, with its liveness over the signed-blocks window", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := g.parseAddr(args[0])
			if err != nil {
				return err
			}
			c, err := g.dial()
			if err != nil {
				return err
			}
			r, err := client.Ask(cmd.Context(), c, stakingpb.QueryValidator, &stakingpb.QueryValidatorRequest{Operator: a.String()})
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), r, func(w io.Writer) {
				printValidator(w, r.Validator)
				if r.Validator.Power > 0 {
					fmt.Fprintf(w, "  missed %d of the last %d blocks counted (in the set since height %d)\n", r.Signing.Missed, r.Signing.Index, r.Signing.StartHeight)
				}
				if r.Validator.Commission > 0 {
					fmt.Fprintf(w, "  commission to withdraw %duagr\n", r.Validator.Commission)
				}
			})
		},
	}
	cmd.AddCommand(create, edit, unjail, rotate, list, show)
	return cmd
}

// loadValidatorKey reads a node's consensus public key.
func loadValidatorKey(keyFile string) ([]byte, error) {
	pv, err := func() (pv *privval.FilePV, err error) {
		defer func() {
			if r := recover(); r != nil { // privval panics on a missing or bad file
				err = fmt.Errorf("%v", r)
			}
		}()
		return privval.LoadFilePVEmptyState(keyFile, ""), nil
	}()
	if err != nil {
		return nil, fmt.Errorf("cannot read the consensus key %s (%v); run 'agora init' for a node home or pass --node-home", keyFile, err)
	}
	return pv.Key.PubKey.Bytes(), nil
}

func printValidator(w io.Writer, v *stakingpb.Validator) {
	status := "candidate"
	switch {
	case v.Tombstoned:
		status = "tombstoned (double-signed)"
	case v.Jailed:
		status = fmt.Sprintf("jailed until height %d", v.JailedUntil)
	case v.Power > 0:
		status = fmt.Sprintf("active, power %d", v.Power)
	}
	fmt.Fprintf(w, "%s  %-12s %s\n  tokens %duagr  shares %d  commission %d bps  slashed %duagr\n", v.Operator, v.Moniker, status, v.Tokens, v.Shares, v.CommissionBps, v.Slashed)
}

// delegationCmds are the delegator's txs, under `agora tx`.
func delegationCmds(g *globals) []*cobra.Command {
	amountTx := func(use, short string, n int, build func(from addr.Address, vals []addr.Address, c *coin.Coin) module.Msg) *cobra.Command {
		return &cobra.Command{
			Use: use, Short: short, Args: cobra.ExactArgs(n + 2),
			RunE: func(cmd *cobra.Command, args []string) error {
				var vals []addr.Address
				for _, s := range args[1 : 1+n] {
					a, err := g.parseAddr(s)
					if err != nil {
						return err
					}
					vals = append(vals, a)
				}
				c, err := coin.Parse(args[1+n])
				if err != nil {
					return err
				}
				return g.submit(cmd, args[0], func(from addr.Address) module.Msg { return build(from, vals, c) })
			},
		}
	}
	delegate := amountTx("delegate KEY VALIDATOR AMOUNT", "Delegate uagr to a validator (VALIDATOR is its operator's address)", 1,
		func(from addr.Address, v []addr.Address, c *coin.Coin) module.Msg {
			return &stakingpb.MsgDelegate{Delegator: from.String(), Validator: v[0].String(), Amount: c}
		})
	undelegate := amountTx("undelegate KEY VALIDATOR AMOUNT", "Start returning a delegation; it arrives after the unbonding period", 1,
		func(from addr.Address, v []addr.Address, c *coin.Coin) module.Msg {
			return &stakingpb.MsgUndelegate{Delegator: from.String(), Validator: v[0].String(), Amount: c}
		})
	redelegate := amountTx("redelegate KEY SRC DST AMOUNT", "Move a delegation to another validator at once", 2,
		func(from addr.Address, v []addr.Address, c *coin.Coin) module.Msg {
			return &stakingpb.MsgRedelegate{Delegator: from.String(), Src: v[0].String(), Dst: v[1].String(), Amount: c}
		})
	withdraw := &cobra.Command{
		Use: "withdraw-rewards KEY VALIDATOR", Short: "Withdraw the rewards of a delegation (and the commission, for the operator)", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := g.parseAddr(args[1])
			if err != nil {
				return err
			}
			return g.submit(cmd, args[0], func(from addr.Address) module.Msg {
				return &stakingpb.MsgWithdrawRewards{Delegator: from.String(), Validator: v.String()}
			})
		},
	}
	return []*cobra.Command{delegate, undelegate, redelegate, withdraw}
}

func queryDelegationsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "delegations ADDR", Short: "A delegator's delegations, their worth and rewards, and stake on its way back", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := g.parseAddr(args[0])
			if err != nil {
				return err
			}
			c, err := g.dial()
			if err != nil {
				return err
			}
			r, err := client.Ask(cmd.Context(), c, stakingpb.QueryDelegations, &stakingpb.QueryDelegationsRequest{Delegator: a.String()})
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), r, func(w io.Writer) {
				for _, d := range r.Delegations {
					fmt.Fprintf(w, "to %s  %duagr  rewards %duagr\n", d.Delegation.Validator, d.Tokens, d.Rewards)
				}
				for _, u := range r.Undelegations {
					fmt.Fprintf(w, "from %s  %duagr returns at height %d\n", u.Validator, u.Amount, u.CompletesAt)
				}
				for _, rd := range r.Redelegations {
					fmt.Fprintf(w, "moved %duagr from %s to %s; answers for %s until height %d\n", rd.Amount, rd.Src, rd.Dst, rd.Src, rd.CompletesAt)
				}
				if len(r.Delegations)+len(r.Undelegations)+len(r.Redelegations) == 0 {
					fmt.Fprintln(w, "no delegations")
				}
			})
		},
	}
}
