package agentpb

import (
	"encoding/binary"
	"fmt"
	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
)

// Name is the module's name and store prefix.
const Name = "agent"

// ConsentDomain separates an agent key's consent from all else.
const ConsentDomain = "agora/agent-consent/v1\x00"

// ConsentBytes is what the agent key signs to accept owner's control.
func ConsentBytes(chainID string, owner string) []byte {
	b := []byte(ConsentDomain)
	b = binary.BigEndian.AppendUint32(b, uint32(len(chainID)))
	b = append(b, chainID...)
	return append(b, owner...)
}

func ValidatePolicy(p *Policy) error {
	if p == nil {
		return fmt.Errorf("agent: no policy: %w", codes.ErrInvalidRequest)
	}
	if !coin.ValidDenom(p.Denom) {
		return fmt.Errorf("agent: policy denom %q is not valid: %w", p.Denom, codes.ErrInvalidRequest)
	}
	if (p.MaxPerPeriod > 0 || p.FeeAllowancePerPeriod > 0) && p.PeriodBlocks < 1 {
		return fmt.Errorf("agent: a per-period maximum or fee allowance needs period_blocks >= 1: %w", codes.ErrInvalidRequest)
	}
	if len(p.AllowedRecipients) > 64 || len(p.AllowedMsgs) > 64 {
		return fmt.Errorf("agent: at most 64 allowed recipients and 64 allowed messages: %w", codes.ErrInvalidRequest)
	}
	for i, r := range p.AllowedRecipients {
		if _, err := bankpb.ParseAddr(fmt.Sprintf("allowed_recipients[%d]", i), r); err != nil {
			return err
		}
	}
	return nil
}
