// Package govpb is the wire format of the gov module: proposals, votes,
// their messages and queries.
package govpb

import (
	"fmt"
	"strconv"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/module"
)

// Name is the module's name and store prefix.
const Name = "gov"

// Deposits is the module account holding proposals' deposits.
var Deposits = addr.Module("gov/deposits")

// DefaultParams are a new chain's params: x/gov's tally (quorum 33.4%,
// threshold 50%, veto 33.4%) over short periods, for devnets.
func DefaultParams() *Params {
	return &Params{
		MinDeposit:        10_000_000,
		MinInitialDeposit: 1_000_000,
		DepositPeriod:     200,
		VotingPeriod:      100,
		QuorumBps:         3_340,
		ThresholdBps:      5_000,
		VetoBps:           3_340,
		LateWindowBlocks:  20,
		ExtensionBlocks:   20,
	}
}

// The module's queries.
var (
	QueryProposal  = module.Query[*QueryProposalRequest, *QueryProposalResponse]{Path: "/gov/proposal"}
	QueryProposals = module.Query[*QueryProposalsRequest, *QueryProposalsResponse]{Path: "/gov/proposals"}
	QueryParams    = module.Query[*QueryParamsRequest, *Params]{Path: "/gov/params"}
	QueryUpgrade   = module.Query[*QueryUpgradeRequest, *QueryUpgradeResponse]{Path: "/gov/upgrade"}
)

func (m *MsgSubmitProposal) Signer() string { return m.Proposer }

func (m *MsgSubmitProposal) ValidateBasic() error {
	if _, err := bankpb.ParseAddr("proposer", m.Proposer); err != nil {
		return err
	}
	if m.Title == "" || len(m.Title) > 140 {
		return fmt.Errorf("gov: a proposal needs a title of 1 to 140 bytes, got %d: %w", len(m.Title), codes.ErrInvalidRequest)
	}
	if len(m.Summary) > 10_000 {
		return fmt.Errorf("gov: summary is %d bytes; at most 10000 (link to a longer text): %w", len(m.Summary), codes.ErrInvalidRequest)
	}
	if err := validateDeposit(m.InitialDeposit); err != nil {
		return err
	}
	if m.Content == nil || m.Content.Kind == nil {
		return fmt.Errorf("gov: a proposal needs content: text, params, upgrade or approve_model_key: %w", codes.ErrInvalidRequest)
	}
	switch k := m.Content.Kind.(type) {
	case *Content_Params:
		if len(k.Params.Changes) == 0 || len(k.Params.Changes) > 50 {
			return fmt.Errorf("gov: a params proposal changes 1 to 50 params, not %d: %w", len(k.Params.Changes), codes.ErrInvalidRequest)
		}
		for _, c := range k.Params.Changes {
			if c.Module == "" || c.Param == "" {
				return fmt.Errorf("gov: a param change names a module and a param: %w", codes.ErrInvalidRequest)
			}
			if _, err := strconv.ParseInt(c.Value, 10, 64); err != nil {
				if _, err := strconv.ParseUint(c.Value, 10, 64); err != nil {
					return fmt.Errorf("gov: %s.%s = %q is not an integer: %w", c.Module, c.Param, c.Value, codes.ErrInvalidRequest)
				}
			}
		}
	case *Content_Upgrade:
		if k.Upgrade.Name == "" || len(k.Upgrade.Name) > 64 || k.Upgrade.Height < 1 {
			return fmt.Errorf("gov: an upgrade needs a name (1 to 64 bytes) and a height: %w", codes.ErrInvalidRequest)
		}
	case *Content_ApproveModelKey:
		if k.ApproveModelKey.ReviewId == 0 {
			return fmt.Errorf("gov: name the key review to approve (its id, as agora zk propose printed it): %w", codes.ErrInvalidRequest)
		}
	}
	return nil
}

func validateDeposit(c *coin.Coin) error {
	if err := coin.ValidatePositive(c); err != nil {
		return fmt.Errorf("gov: a deposit must be positive: %w", err)
	}
	if c.Denom != coin.Native {
		return fmt.Errorf("gov: deposits are in %s, not %s: %w", coin.Native, c.Denom, codes.ErrInvalidAmount)
	}
	return nil
}

func (m *MsgDeposit) Signer() string { return m.Depositor }

func (m *MsgDeposit) ValidateBasic() error {
	if _, err := bankpb.ParseAddr("depositor", m.Depositor); err != nil {
		return err
	}
	return validateDeposit(m.Amount)
}

func (m *MsgVote) Signer() string { return m.Voter }

func (m *MsgVote) ValidateBasic() error {
	if _, err := bankpb.ParseAddr("voter", m.Voter); err != nil {
		return err
	}
	if _, ok := Option_name[int32(m.Option)]; !ok || m.Option == Option_OPTION_UNSPECIFIED {
		return fmt.Errorf("gov: vote yes, no, abstain or veto: %w", codes.ErrInvalidRequest)
	}
	return nil
}
