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

func (m *MsgCreateValidator) Signer() string { return m.Operator }

func (m *MsgCreateValidator) ValidateBasic() error {
	if err := validate(m.Operator, m.SelfBond); err != nil {
		return err
	}
	if len(m.ConsensusPubkey) != 32 {
		return fmt.Errorf("staking: a consensus key is a 32-byte ed25519 public key, got %d bytes (give the node's priv_validator_key.json): %w", len(m.ConsensusPubkey), codes.ErrInvalidRequest)
	}
	return validateTerms(m.CommissionBps, m.Moniker)
}

func (m *MsgEditValidator) Signer() string { return m.Operator }

func (m *MsgEditValidator) ValidateBasic() error {
	if _, err := bankpb.ParseAddr("operator", m.Operator); err != nil {
		return err
	}
	return validateTerms(m.CommissionBps, m.Moniker)
}

func validateTerms(commission uint32, moniker string) error {
	if commission > MaxCommissionBps {
		return fmt.Errorf("staking: commission %d bps is over 100%% (10000 bps): %w", commission, codes.ErrInvalidRequest)
	}
	if len(moniker) > 70 {
		return fmt.Errorf("staking: moniker is %d bytes; at most 70: %w", len(moniker), codes.ErrInvalidRequest)
	}
	return nil
}

func (m *MsgDelegate) Signer() string { return m.Delegator }

func (m *MsgDelegate) ValidateBasic() error {
	return validateDelegation(m.Delegator, m.Amount, m.Validator)
}

func (m *MsgUndelegate) Signer() string { return m.Delegator }

func (m *MsgUndelegate) ValidateBasic() error {
	return validateDelegation(m.Delegator, m.Amount, m.Validator)
}

func (m *MsgRedelegate) Signer() string { return m.Delegator }

func (m *MsgRedelegate) ValidateBasic() error {
	if err := validateDelegation(m.Delegator, m.Amount, m.Src, m.Dst); err != nil {
		return err
	}
	if m.Src == m.Dst {
		return fmt.Errorf("staking: redelegation from %s to itself: %w", m.Src, codes.ErrInvalidRequest)
	}
	return nil
}

func validateDelegation(delegator string, amount *coin.Coin, validators ...string) error {
	if err := validate(delegator, amount); err != nil {
		return err
	}
	for _, v := range validators {
		if _, err := bankpb.ParseAddr("validator", v); err != nil {
			return err
		}
	}
	return nil
}

func (m *MsgWithdrawRewards) Signer() string { return m.Delegator }

func (m *MsgWithdrawRewards) ValidateBasic() error {
	if _, err := bankpb.ParseAddr("delegator", m.Delegator); err != nil {
		return err
	}
	_, err := bankpb.ParseAddr("validator", m.Validator)
	return err
}

func (m *MsgUnjail) Signer() string { return m.Operator }

func (m *MsgUnjail) ValidateBasic() error {
	_, err := bankpb.ParseAddr("operator", m.Operator)
	return err
}

func (m *MsgRotateConsensusKey) Signer() string { return m.Operator }

func (m *MsgRotateConsensusKey) ValidateBasic() error {
	if _, err := bankpb.ParseAddr("operator", m.Operator); err != nil {
		return err
	}
	if len(m.NewConsensusPubkey) != 32 {
		return fmt.Errorf("staking: a consensus key is a 32-byte ed25519 public key, got %d bytes (give the new node key's priv_validator_key.json): %w", len(m.NewConsensusPubkey), codes.ErrInvalidRequest)
	}
	return nil
}
