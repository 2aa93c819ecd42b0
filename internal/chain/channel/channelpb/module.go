package channelpb

import (
	"crypto/ed25519"
	"fmt"

	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/provider/providerpb"
)

func (m *MsgOpenChannel) Signer() string { return m.Payer }

func (m *MsgOpenChannel) ValidateBasic() error {
	if _, err := bankpb.ParseAddr("payer", m.Payer); err != nil {
		return err
	}
	if _, err := bankpb.ParseAddr("payee", m.Payee); err != nil {
		return err
	}
	if m.Payer == m.Payee {
		return fmt.Errorf("channel: payer and payee are the same: %w", codes.ErrInvalidRequest)
	}
	if m.ModelId != "" {
		if err := providerpb.ValidModelID(m.ModelId); err != nil {
			return err
		}
	}
	if len(m.PayerKey) != ed25519.PublicKeySize {
		return fmt.Errorf("channel: payer_key must be a 32-byte ed25519 key: %w", codes.ErrInvalidRequest)
	}
	if len(m.SessionKey) != 0 && len(m.SessionKey) != ed25519.PublicKeySize {
		return fmt.Errorf("channel: session_key must be empty or a 32-byte ed25519 key: %w", codes.ErrInvalidRequest)
	}
	return coin.ValidatePositive(m.Deposit)
}

func (m *MsgFundChannel) Signer() string { return m.Payer }

func (m *MsgFundChannel) ValidateBasic() error {
	if _, err := bankpb.ParseAddr("payer", m.Payer); err != nil {
		return err
	}
	return coin.ValidatePositive(m.Amount)
}

func (m *MsgExtendChannel) Signer() string { return m.Payer }

func (m *MsgExtendChannel) ValidateBasic() error {
	_, err := bankpb.ParseAddr("payer", m.Payer)
	return err
}

func (m *MsgClaim) Signer() string { return m.Payee }

func (m *MsgClaim) ValidateBasic() error {
	if _, err := bankpb.ParseAddr("payee", m.Payee); err != nil {
		return err
	}
	if len(m.Claims) == 0 {
		return fmt.Errorf("channel: a claim message needs at least one claim: %w", codes.ErrInvalidRequest)
	}
	seen := map[uint64]bool{}
	for i, c := range m.Claims {
		if c.Voucher == nil {
			return fmt.Errorf("channel: claims[%d] has no voucher: %w", i, codes.ErrInvalidRequest)
		}
		if seen[c.Voucher.ChannelId] {
			return fmt.Errorf("channel: channel %d claimed twice in one message: %w", c.Voucher.ChannelId, codes.ErrInvalidRequest)
		}
		seen[c.Voucher.ChannelId] = true
	}
	return nil
}

func (m *MsgCloseChannel) Signer() string { return m.Payee }

func (m *MsgCloseChannel) ValidateBasic() error {
	_, err := bankpb.ParseAddr("payee", m.Payee)
	return err
}

func (m *MsgSettleExpired) Signer() string { return m.Payer }

func (m *MsgSettleExpired) ValidateBasic() error {
	_, err := bankpb.ParseAddr("payer", m.Payer)
	return err
}

func (m *MsgRevokeSessionKey) Signer() string { return m.Payer }

func (m *MsgRevokeSessionKey) ValidateBasic() error {
	_, err := bankpb.ParseAddr("payer", m.Payer)
	return err
}
