package main

import (
	"crypto/ed25519"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/agent/agentpb"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/module"
)

// policyFlags binds the flags that describe an agent policy.
func policyFlags(cmd *cobra.Command) func() *agentpb.Policy {
	p := &agentpb.Policy{}
	var recipients, msgs string
	f := cmd.Flags()
	f.StringVar(&p.Denom, "denom", coin.Stable, "the one denom the agent may spend")
	f.Uint64Var(&p.MaxPerTx, "per-tx", 0, "most per transaction (0: no limit)")
	f.Uint64Var(&p.MaxPerPeriod, "per-period", 0, "most per period (0: no limit)")
	f.Int64Var(&p.PeriodBlocks, "period-blocks", 0, "period length in blocks")
	f.Uint64Var(&p.MaxLifetime, "lifetime", 0, "most ever (0: no limit)")
	f.StringVar(&recipients, "recipients", "", "comma-separated addresses it may pay (empty: any)")
	f.StringVar(&msgs, "msgs", "", "comma-separated message names it may send, like agora.bank.v1.MsgSend (empty: any)")
	f.Int64Var(&p.ExpiresAt, "expires-at", 0, "height after which it may do nothing (0: never)")
	f.Uint64Var(&p.FeeAllowance, "fee-allowance", 10_000_000, "uagr the agent may pay in tx fees in its life (0: none, so it cannot send txs)")
	f.Uint64Var(&p.FeeAllowancePerPeriod, "fee-allowance-per-period", 0, "uagr of fees per period (0: no period limit)")
	return func() *agentpb.Policy {
		if recipients != "" {
			p.AllowedRecipients = strings.Split(recipients, ",")
		}
		if msgs != "" {
			p.AllowedMsgs = strings.Split(msgs, ",")
		}
		return p
	}
}

func agentCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "agent", Short: "Agent accounts whose spending the chain limits"}
	cmd.AddCommand(agentCreateCmd(g), agentPolicyCmd(g),
		agentOwnerCmd(g, "freeze", "Stop the agent from spending until unfrozen", func(o, a string) module.Msg { return &agentpb.MsgFreezeAgent{Owner: o, Agent: a} }),
		agentOwnerCmd(g, "unfreeze", "Let a frozen agent spend again", func(o, a string) module.Msg { return &agentpb.MsgUnfreezeAgent{Owner: o, Agent: a} }),
		agentOwnerCmd(g, "revoke", "End the agent for good and sweep its funds to the owner", func(o, a string) module.Msg { return &agentpb.MsgRevokeAgent{Owner: o, Agent: a} }),
		agentShowCmd(g))
	return cmd
}

func agentCreateCmd(g *globals) *cobra.Command {
	create := &cobra.Command{
		Use:   "create OWNER_KEY AGENT_KEY [policy flags]",
		Short: "Make AGENT_KEY (a keyring key) an agent of OWNER_KEY with a spending policy",
		Args:  cobra.ExactArgs(2),
	}
	createPolicy := policyFlags(create)
	create.RunE = func(cmd *cobra.Command, args []string) error {
		ak, err := g.keys().Get(args[1])
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
		return g.submit(cmd, args[0], func(owner addr.Address) module.Msg {
			return &agentpb.MsgCreateAgent{Owner: owner.String(), AgentKey: ak.Public(),
				Consent: ed25519.Sign(ak.Private, agentpb.ConsentBytes(chainID, owner.String())), Policy: createPolicy()}
		})
	}
	return create
}

func agentPolicyCmd(g *globals) *cobra.Command {
	policy := &cobra.Command{Use: "policy OWNER_KEY AGENT_ADDR [policy flags]", Short: "Replace an agent's policy", Args: cobra.ExactArgs(2)}
	newPolicy := policyFlags(policy)
	policy.RunE = func(cmd *cobra.Command, args []string) error {
		a, err := g.parseAddr(args[1])
		if err != nil {
			return err
		}
		return g.submit(cmd, args[0], func(owner addr.Address) module.Msg {
			return &agentpb.MsgSetPolicy{Owner: owner.String(), Agent: a.String(), Policy: newPolicy()}
		})
	}
	return policy
}

func agentShowCmd(g *globals) *cobra.Command {
	show := &cobra.Command{
		Use: "show ADDR", Short: "An agent's policy, spending and what remains", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := queryAddr(g, cmd, agentpb.QueryAgent, args[0])
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), r, func(w io.Writer) {
				ag, p := r.Agent, r.Agent.Policy
				lim := func(n uint64) string {
					if n == 0 || n == ^uint64(0) {
						return "no limit"
					}
					return fmt.Sprintf("%d%s", n, p.Denom)
				}
				fmt.Fprintf(w, "agent %s of %s (frozen %v, revoked %v)\n", ag.Address, ag.Owner, ag.Frozen, ag.Revoked)
				fmt.Fprintf(w, "  per tx %s, per %d blocks %s, lifetime %s\n", lim(p.MaxPerTx), p.PeriodBlocks, lim(p.MaxPerPeriod), lim(p.MaxLifetime))
				fmt.Fprintf(w, "  spent %d%s in all, %d this period; remaining %s this period, %s in its life\n", ag.SpentTotal, p.Denom, ag.SpentInPeriod, lim(r.RemainingInPeriod), lim(r.RemainingLifetime))
			})
		},
	}
	return show
}

// agentOwnerCmd is a command by which an owner acts on its agent.
func agentOwnerCmd(g *globals, use, short string, build func(owner, agent string) module.Msg) *cobra.Command {
	return &cobra.Command{
		Use: use + " OWNER_KEY AGENT_ADDR", Short: short, Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := g.parseAddr(args[1])
			if err != nil {
				return err
			}
			return g.submit(cmd, args[0], func(owner addr.Address) module.Msg { return build(owner.String(), a.String()) })
		},
	}
}
