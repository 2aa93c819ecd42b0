package agentpb

import (
	"github.com/agoranet/agora/internal/chain/bank/bankpb"
)

func (m *MsgCreateAgent) Signer() string { return m.Owner }

func (m *MsgCreateAgent) ValidateBasic() error {
	if _, err := bankpb.ParseAddr("owner", m.Owner); err != nil {
		return err
	}
	return ValidatePolicy(m.Policy)
}

func (m *MsgSetPolicy) Signer() string { return m.Owner }

func (m *MsgSetPolicy) ValidateBasic() error {
	if _, err := bankpb.ParseAddr("owner", m.Owner); err != nil {
		return err
	}
	if _, err := bankpb.ParseAddr("agent", m.Agent); err != nil {
		return err
	}
	return ValidatePolicy(m.Policy)
}

type ownerMsg interface {
	GetOwner() string
	GetAgent() string
}

func validateOwnerMsg(m ownerMsg) error {
	if _, err := bankpb.ParseAddr("owner", m.GetOwner()); err != nil {
		return err
	}
	_, err := bankpb.ParseAddr("agent", m.GetAgent())
	return err
}

func (m *MsgFreezeAgent) Signer() string { return m.Owner }

func (m *MsgFreezeAgent) ValidateBasic() error { return validateOwnerMsg(m) }

func (m *MsgUnfreezeAgent) Signer() string { return m.Owner }

func (m *MsgUnfreezeAgent) ValidateBasic() error { return validateOwnerMsg(m) }

func (m *MsgRevokeAgent) Signer() string { return m.Owner }

func (m *MsgRevokeAgent) ValidateBasic() error { return validateOwnerMsg(m) }
