package jobpb

import (
	"fmt"

	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/provider/providerpb"
)

func checkURL(field, s string, optional bool) error {
	if s == "" && optional {
		return nil
	}
	if err := providerpb.ValidEndpoint(s); err != nil {
		return fmt.Errorf("job: %s %q must be an http(s) URL of at most 256 bytes: %w", field, s, codes.ErrInvalidRequest)
	}
	return nil
}

func checkHash(field string, h []byte) error {
	if len(h) != 32 {
		return fmt.Errorf("job: %s must be a 32-byte sha256, got %d bytes: %w", field, len(h), codes.ErrInvalidRequest)
	}
	return nil
}

func (m *MsgCreateOrder) Signer() string { return m.Tenant }

func (m *MsgCreateOrder) ValidateBasic() error {
	if _, err := bankpb.ParseAddr("tenant", m.Tenant); err != nil {
		return err
	}
	for _, err := range []error{checkHash("module_hash", m.ModuleHash), checkURL("module_url", m.ModuleUrl, false),
		checkHash("input_hash", m.InputHash), checkURL("input_url", m.InputUrl, false), coin.ValidatePositive(m.MaxPrice)} {
		if err != nil {
			return err
		}
	}
	switch {
	case m.Fuel == 0:
		return fmt.Errorf("job: fuel must be positive: %w", codes.ErrInvalidRequest)
	case m.MemoryMib == 0:
		return fmt.Errorf("job: memory_mib must be positive: %w", codes.ErrInvalidRequest)
	case m.BidWindow < 0 || m.DeadlineBlocks < 0:
		return fmt.Errorf("job: bid_window and deadline_blocks cannot be negative: %w", codes.ErrInvalidRequest)
	case m.Redundancy > 255 || m.MaxPrice.Amount > ^uint64(0)/uint64(max(m.Redundancy, 2)):
		return fmt.Errorf("job: max_price × redundancy overflows: %w", codes.ErrInvalidAmount)
	}
	return nil
}

func (m *MsgCancelOrder) Signer() string { return m.Tenant }

func (m *MsgCancelOrder) ValidateBasic() error {
	_, err := bankpb.ParseAddr("tenant", m.Tenant)
	return err
}

func (m *MsgBid) Signer() string { return m.Provider }

func (m *MsgBid) ValidateBasic() error {
	if _, err := bankpb.ParseAddr("provider", m.Provider); err != nil {
		return err
	}
	return coin.ValidatePositive(m.Price)
}

func (m *MsgCommitResult) Signer() string { return m.Provider }

func (m *MsgCommitResult) ValidateBasic() error {
	if _, err := bankpb.ParseAddr("provider", m.Provider); err != nil {
		return err
	}
	return checkHash("commitment", m.Commitment)
}

func (m *MsgRevealResult) Signer() string { return m.Provider }

func (m *MsgRevealResult) ValidateBasic() error {
	if _, err := bankpb.ParseAddr("provider", m.Provider); err != nil {
		return err
	}
	if err := validResult(m.Result); err != nil {
		return err
	}
	if len(m.Salt) < 16 || len(m.Salt) > 64 {
		return fmt.Errorf("job: a salt is 16 to 64 bytes: %w", codes.ErrInvalidRequest)
	}
	return checkURL("output_url", m.OutputUrl, true)
}

func (m *MsgCommitVote) Signer() string { return m.Verifier }

func (m *MsgCommitVote) ValidateBasic() error {
	if _, err := bankpb.ParseAddr("verifier", m.Verifier); err != nil {
		return err
	}
	return checkHash("commitment", m.Commitment)
}

func (m *MsgRevealVote) Signer() string { return m.Verifier }

func (m *MsgRevealVote) ValidateBasic() error {
	if _, err := bankpb.ParseAddr("verifier", m.Verifier); err != nil {
		return err
	}
	if err := validResult(m.Result); err != nil {
		return err
	}
	if len(m.Salt) < 16 || len(m.Salt) > 64 {
		return fmt.Errorf("job: a salt is 16 to 64 bytes: %w", codes.ErrInvalidRequest)
	}
	return nil
}
