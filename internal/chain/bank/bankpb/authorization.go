package bankpb

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/sig"
)

// AuthorizationDomain separates authorization signatures from all else.
const AuthorizationDomain = "agora/transfer-authorization/v1\x00"

func lenPrefixed(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// AuthorizationSignBytes is what `from` signs: every field but the key and
// signature, bound to the chain.
func AuthorizationSignBytes(chainID string, a *Authorization) []byte {
	b := []byte(AuthorizationDomain)
	b = lenPrefixed(b, chainID)
	b = lenPrefixed(b, a.From)
	b = lenPrefixed(b, a.To)
	b = lenPrefixed(b, a.GetAmount().GetDenom())
	b = binary.BigEndian.AppendUint64(b, a.GetAmount().GetAmount())
	b = binary.BigEndian.AppendUint64(b, uint64(a.ValidAfter))
	b = binary.BigEndian.AppendUint64(b, uint64(a.ValidBefore))
	return append(b, a.Nonce...)
}

// SignAuthorization fills in the key and signature.
func SignAuthorization(key ed25519.PrivateKey, chainID string, a *Authorization) {
	a.PublicKey = key.Public().(ed25519.PublicKey)
	a.Signature = sig.Sign(key, AuthorizationSignBytes(chainID, a))
}

// CheckAuthorization verifies everything about a that does not need state
// but the chain-id and time: its shape and that its key signed it. Whether
// that key is From's is a question for the state, which the caller must
// ask: an account may have rotated its key (account.Holds on chain,
// authpb.QueryKey off it).
func CheckAuthorization(chainID string, a *Authorization) (from, to addr.Address, err error) {
	if a == nil {
		return from, to, fmt.Errorf("bank: no authorization: %w", codes.ErrInvalidRequest)
	}
	if from, err = ParseAddr("authorization.from", a.From); err != nil {
		return
	}
	if to, err = ParseAddr("authorization.to", a.To); err != nil {
		return
	}
	if err = coin.ValidatePositive(a.Amount); err != nil {
		return
	}
	if len(a.Nonce) != 32 {
		return from, to, fmt.Errorf("bank: authorization nonce must be 32 bytes: %w", codes.ErrInvalidRequest)
	}
	if a.ValidBefore <= a.ValidAfter {
		return from, to, fmt.Errorf("bank: authorization valid_before must be after valid_after: %w", codes.ErrInvalidRequest)
	}
	if len(a.PublicKey) != ed25519.PublicKeySize {
		return from, to, fmt.Errorf("bank: authorization key has %d bytes, want %d: %w", len(a.PublicKey), ed25519.PublicKeySize, codes.ErrSignature)
	}
	if !sig.Verify(a.PublicKey, AuthorizationSignBytes(chainID, a), a.Signature) {
		return from, to, fmt.Errorf("bank: authorization signature does not verify: %w", codes.ErrSignature)
	}
	return from, to, nil
}

func (m *MsgTransferWithAuthorization) Signer() string { return m.Submitter }

func (m *MsgTransferWithAuthorization) ValidateBasic() error {
	if _, err := ParseAddr("submitter", m.Submitter); err != nil {
		return err
	}
	a := m.Authorization
	if a == nil {
		return fmt.Errorf("bank: no authorization: %w", codes.ErrInvalidRequest)
	}
	if _, err := ParseAddr("authorization.from", a.From); err != nil {
		return err
	}
	if _, err := ParseAddr("authorization.to", a.To); err != nil {
		return err
	}
	return coin.ValidatePositive(a.Amount)
}
