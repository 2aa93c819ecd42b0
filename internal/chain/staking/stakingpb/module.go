package stakingpb

import (
	"fmt"

	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
)

func (m *MsgBond) Signer() string { return m.Staker }

func (m *MsgBond) ValidateBasic() error { return validate(m.Staker, m.Amount) }

func (m *MsgUnbond) Signer() string { return m.Staker }

func (m *MsgUnbond) ValidateBasic() error { return validate(m.Staker, m.Amount) }

func validate(staker string, amount *coin.Coin) error {
	if _, err := bankpb.ParseAddr("staker", staker); err != nil {
		return err
	}
	if err := coin.ValidatePositive(amount); err != nil {
		return err
	}
	if amount.Denom != coin.Native {
		return fmt.Errorf("staking: stake is in %s, not %s: %w", coin.Native, amount.Denom, codes.ErrInvalidAmount)
	}
	return nil
}
