package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/gov/govpb"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/client"
)

func govCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "gov", Short: "Propose, deposit on and vote on changes to the network: params, upgrades, text"}
	var title, summary, deposit string
	// submitKind builds one `gov submit KIND` command; content turns the
	// positional arguments after KEY into the proposal's content.
	submitKind := func(use, short string, nargs int, content func(args []string) (*govpb.Content, error)) *cobra.Command {
		c := &cobra.Command{
			Use: use, Short: short, Args: cobra.ExactArgs(1 + nargs),
			RunE: func(cmd *cobra.Command, args []string) error {
				ct, err := content(args[1:])
				if err != nil {
					return err
				}
				d, err := coin.Parse(deposit)
				if err != nil {
					return fmt.Errorf("--deposit: %w", err)
				}
				return g.submit(cmd, args[0], func(from addr.Address) module.Msg {
					return &govpb.MsgSubmitProposal{Proposer: from.String(), Title: title, Summary: summary, Content: ct, InitialDeposit: d}
				})
			},
		}
		if nargs < 0 {
			c.Args = cobra.MinimumNArgs(2)
		}
		return c
	}
	text := submitKind("text KEY --title T", "A text proposal: a signal the chain records and executes nothing for", 0,
		func([]string) (*govpb.Content, error) {
			return &govpb.Content{Kind: &govpb.Content_Text{Text: &govpb.Text{}}}, nil
		})
	params := submitKind("params KEY MODULE.PARAM=VALUE...", "Change module params, each within the range its module declares", -1,
		func(args []string) (*govpb.Content, error) {
			ch := &govpb.ParamsChange{}
			for _, a := range args {
				name, value, ok := strings.Cut(a, "=")
				mod, param, ok2 := strings.Cut(name, ".")
				if !ok || !ok2 || mod == "" || param == "" || value == "" {
					return nil, fmt.Errorf("%q: write a change as MODULE.PARAM=VALUE, like provider.offline_after_blocks=50 (see `agora query params MODULE`)", a)
				}
				ch.Changes = append(ch.Changes, &govpb.ParamChange{Module: mod, Param: param, Value: value})
			}
			return &govpb.Content{Kind: &govpb.Content_Params{Params: ch}}, nil
		})
	var info string
	upgrade := submitKind("upgrade KEY NAME HEIGHT", "Schedule a software upgrade: every node halts at HEIGHT until it runs a binary that knows NAME", 2,
		func(args []string) (*govpb.Content, error) {
			h, err := strconv.ParseInt(args[1], 10, 64)
			if err != nil || h < 1 {
				return nil, fmt.Errorf("upgrade height %q: want a block height, like 5000", args[1])
			}
			return &govpb.Content{Kind: &govpb.Content_Upgrade{Upgrade: &govpb.UpgradePlan{Name: args[0], Height: h, Info: info}}}, nil
		})
	upgrade.Flags().StringVar(&info, "info", "", "where operators get the new binary (a URL or a version)")
	modelKey := submitKind("model-key KEY REVIEW", "Register the verifying key of a key review the committee's check approved (on a chain where keys need governance)", 1,
		func(args []string) (*govpb.Content, error) {
			id, err := strconv.ParseUint(args[0], 10, 64)
			if err != nil || id == 0 {
				return nil, fmt.Errorf("review %q: want the key review's number, as agora zk propose printed it", args[0])
			}
			return &govpb.Content{Kind: &govpb.Content_ApproveModelKey{ApproveModelKey: &govpb.ApproveModelKey{ReviewId: id}}}, nil
		})
	submit := &cobra.Command{
		Use:   "submit",
		Short: "Submit a proposal with an initial deposit",
		Long: `Submit opens a proposal backed by --deposit (at least the gov param
min_initial_deposit; burned if the proposal never gathers min_deposit
within deposit_period blocks). Once the deposits reach min_deposit, voting
runs for voting_period blocks.`,
	}
	for _, c := range []*cobra.Command{text, params, upgrade, modelKey} {
		c.Flags().StringVar(&title, "title", "", "the proposal's title (required)")
		c.Flags().StringVar(&summary, "summary", "", "what it does and why")
		c.Flags().StringVar(&deposit, "deposit", "", "the initial deposit, like 10000000uagr (required)")
		_ = c.MarkFlagRequired("title")
		_ = c.MarkFlagRequired("deposit")
		submit.AddCommand(c)
	}

	depositCmd := &cobra.Command{
		Use: "deposit KEY PROPOSAL AMOUNT", Short: "Add to a proposal's deposit, so it reaches voting", Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseProposalID(args[1])
			if err != nil {
				return err
			}
			c, err := coin.Parse(args[2])
			if err != nil {
				return err
			}
			return g.submit(cmd, args[0], func(from addr.Address) module.Msg {
				return &govpb.MsgDeposit{Depositor: from.String(), ProposalId: id, Amount: c}
			})
		},
	}
	vote := &cobra.Command{
		Use:   "vote KEY PROPOSAL yes|no|abstain|veto",
		Short: "Vote with your bonded and delegated stake",
		Long: `Vote casts KEY's vote on a proposal in voting. A validator's vote carries
its own stake and that of its delegators who do not vote themselves; a
delegator who votes overrides its validator for its own share. A vote may
be changed until the period ends.`,
		Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseProposalID(args[1])
			if err != nil {
				return err
			}
			opt, ok := voteOptions[strings.ToLower(args[2])]
			if !ok {
				return fmt.Errorf("vote %q: want yes, no, abstain or veto", args[2])
			}
			return g.submit(cmd, args[0], func(from addr.Address) module.Msg {
				return &govpb.MsgVote{Voter: from.String(), ProposalId: id, Option: opt}
			})
		},
	}
	show := &cobra.Command{
		Use: "show PROPOSAL", Short: "A proposal, its tally and its votes", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseProposalID(args[0])
			if err != nil {
				return err
			}
			c, err := g.dial()
			if err != nil {
				return err
			}
			r, err := client.Ask(cmd.Context(), c, govpb.QueryProposal, &govpb.QueryProposalRequest{Id: id})
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), r, func(w io.Writer) {
				printProposal(w, r.Proposal)
				if t := r.Tally; t != nil && r.Proposal.Status == govpb.Status_STATUS_VOTING {
					fmt.Fprintf(w, "  tally now: %s\n", tallyLine(t))
				}
				for _, v := range r.Votes {
					fmt.Fprintf(w, "  vote %s %s\n", v.Voter, optionName(v.Option))
				}
			})
		},
	}
	list := &cobra.Command{
		Use: "list", Short: "Every proposal, newest last", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.dial()
			if err != nil {
				return err
			}
			r, err := client.Ask(cmd.Context(), c, govpb.QueryProposals, &govpb.QueryProposalsRequest{})
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), r, func(w io.Writer) {
				if len(r.Proposals) == 0 {
					fmt.Fprintln(w, "no proposals")
				}
				for _, p := range r.Proposals {
					printProposal(w, p)
				}
			})
		},
	}
	upgradeShow := &cobra.Command{
		Use: "upgrade", Short: "The scheduled upgrade, if any, and the upgrades this chain has run", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.dial()
			if err != nil {
				return err
			}
			r, err := client.Ask(cmd.Context(), c, govpb.QueryUpgrade, &govpb.QueryUpgradeRequest{})
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), r, func(w io.Writer) {
				if r.Plan == nil {
					fmt.Fprintln(w, "no upgrade scheduled")
				} else {
					fmt.Fprintf(w, "upgrade %q scheduled at height %d %s\n", r.Plan.Name, r.Plan.Height, r.Plan.Info)
				}
				for _, d := range r.Done {
					fmt.Fprintf(w, "ran %q at height %d\n", d.Name, d.Height)
				}
			})
		},
	}
	cmd.AddCommand(submit, depositCmd, vote, show, list, upgradeShow)
	return cmd
}

var voteOptions = map[string]govpb.Option{
	"yes": govpb.Option_OPTION_YES, "no": govpb.Option_OPTION_NO,
	"abstain": govpb.Option_OPTION_ABSTAIN, "veto": govpb.Option_OPTION_VETO,
}

func optionName(o govpb.Option) string {
	return strings.ToLower(strings.TrimPrefix(o.String(), "OPTION_"))
}

func parseProposalID(s string) (uint64, error) {
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil || id == 0 {
		return 0, fmt.Errorf("proposal %q: want its number, as `agora gov list` shows", s)
	}
	return id, nil
}

func tallyLine(t *govpb.Tally) string {
	return fmt.Sprintf("yes %d  no %d  abstain %d  veto %d  of %d bonded", t.Yes, t.No, t.Abstain, t.Veto, t.Total)
}

func printProposal(w io.Writer, p *govpb.Proposal) {
	status := strings.ToLower(strings.TrimPrefix(p.Status.String(), "STATUS_"))
	fmt.Fprintf(w, "proposal %d  %s  %q by %s\n", p.Id, status, p.Title, p.Proposer)
	switch k := p.Content.GetKind().(type) {
	case *govpb.Content_Params:
		for _, c := range k.Params.Changes {
			fmt.Fprintf(w, "  set %s.%s = %s\n", c.Module, c.Param, c.Value)
		}
	case *govpb.Content_Upgrade:
		fmt.Fprintf(w, "  upgrade %q at height %d %s\n", k.Upgrade.Name, k.Upgrade.Height, k.Upgrade.Info)
	case *govpb.Content_ApproveModelKey:
		fmt.Fprintf(w, "  approve the verifying key of key review %d\n", k.ApproveModelKey.ReviewId)
	}
	switch p.Status {
	case govpb.Status_STATUS_DEPOSIT:
		fmt.Fprintf(w, "  deposit %duagr; needs the min_deposit by height %d\n", p.Deposit, p.DepositEnd)
	case govpb.Status_STATUS_VOTING:
		ext := ""
		if p.Extended {
			ext = " (extended: quorum came late)"
		}
		fmt.Fprintf(w, "  deposit %duagr; voting from height %d to %d%s\n", p.Deposit, p.VotingStart, p.VotingEnd, ext)
	default:
		if p.Tally != nil {
			fmt.Fprintf(w, "  final tally: %s\n", tallyLine(p.Tally))
		}
		if p.Failure != "" {
			fmt.Fprintf(w, "  execution failed, nothing applied: %s\n", p.Failure)
		}
	}
}
