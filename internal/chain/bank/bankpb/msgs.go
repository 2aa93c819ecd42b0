package bankpb

import (
	"fmt"
	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
)

// MaxOutputs bounds a MsgMultiSend.
const MaxOutputs = 256

// ParseAddr parses a bech32 address field of a message, naming the field
// in the error.
func ParseAddr(field, s string) (addr.Address, error) {
	a, err := addr.Parse(s)
	if err != nil {
		return a, fmt.Errorf("%s: %v: %w", field, err, codes.ErrInvalidAddress)
	}
	if a.String() != s {
		return a, fmt.Errorf("%s: %q is not in canonical lower-case form: %w", field, s, codes.ErrInvalidAddress)
	}
	return a, nil
}

func (m *MsgSend) Signer() string { return m.From }

func (m *MsgSend) ValidateBasic() error {
	if _, err := ParseAddr("from", m.From); err != nil {
		return err
	}
	if _, err := ParseAddr("to", m.To); err != nil {
		return err
	}
	return coin.Validate(m.Amount)
}

func (m *MsgMultiSend) Signer() string { return m.From }

func (m *MsgMultiSend) ValidateBasic() error {
	if _, err := ParseAddr("from", m.From); err != nil {
		return err
	}
	if len(m.Outputs) == 0 || len(m.Outputs) > MaxOutputs {
		return fmt.Errorf("multi-send needs 1 to %d outputs, got %d: %w", MaxOutputs, len(m.Outputs), codes.ErrInvalidRequest)
	}
	for i, o := range m.Outputs {
		if _, err := ParseAddr(fmt.Sprintf("outputs[%d].to", i), o.To); err != nil {
			return err
		}
		if err := coin.Validate(o.Amount); err != nil {
			return fmt.Errorf("outputs[%d]: %w", i, err)
		}
	}
	return nil
}

func (m *MsgMint) Signer() string { return m.Issuer }

func (m *MsgMint) ValidateBasic() error {
	if _, err := ParseAddr("issuer", m.Issuer); err != nil {
		return err
	}
	if _, err := ParseAddr("to", m.To); err != nil {
		return err
	}
	return coin.ValidatePositive(m.Amount)
}

func (m *MsgBurn) Signer() string { return m.From }

func (m *MsgBurn) ValidateBasic() error {
	if _, err := ParseAddr("from", m.From); err != nil {
		return err
	}
	return coin.ValidatePositive(m.Amount)
}
