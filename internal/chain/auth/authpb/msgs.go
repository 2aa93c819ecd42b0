package authpb

import (
	"crypto/ed25519"
	"fmt"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/codes"
)

// RotateKeyDomain separates a rotation's proof of possession from every
// other thing a key signs.
const RotateKeyDomain = "agora/rotate-key/v1\x00"

// RotateKeySignBytes is what the new key signs to prove it is held by
// whoever binds it to account: the chain, the account and the key it
// replaces, so the proof cannot be replayed on another chain, for another
// account, or for a later rotation.
func RotateKeySignBytes(chainID, account string, oldKey []byte) []byte {
	out := make([]byte, 0, len(RotateKeyDomain)+len(chainID)+len(account)+len(oldKey)+2)
	out = append(out, RotateKeyDomain...)
	out = append(out, chainID...)
	out = append(out, 0)
	out = append(out, account...)
	out = append(out, 0)
	return append(out, oldKey...)
}

func (m *MsgRotateKey) Signer() string { return m.Account }

func (m *MsgRotateKey) ValidateBasic() error {
	a, err := addr.Parse(m.Account)
	if err != nil || a.String() != m.Account {
		return fmt.Errorf("auth: account %q is not a canonical address: %w", m.Account, codes.ErrInvalidAddress)
	}
	if len(m.NewPublicKey) != ed25519.PublicKeySize {
		return fmt.Errorf("auth: new_public_key has %d bytes, want %d (ed25519): %w", len(m.NewPublicKey), ed25519.PublicKeySize, codes.ErrInvalidRequest)
	}
	if len(m.Proof) != ed25519.SignatureSize {
		return fmt.Errorf("auth: proof has %d bytes, want an ed25519 signature (%d) by the new key: %w", len(m.Proof), ed25519.SignatureSize, codes.ErrInvalidRequest)
	}
	return nil
}
