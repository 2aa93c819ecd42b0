package channelpb

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/sig"
)

// Name is the module's name and store prefix.
const Name = "channel"

// Escrow holds every channel's deposit.
var Escrow = addr.Module("channel/escrow")

// VoucherDomain separates voucher signatures from all else.
const VoucherDomain = "agora/voucher/v1\x00"

// DefaultParams are a new chain's params.
func DefaultParams() *Params { return &Params{MaxClaimsPerMsg: 5000, MaxLifetimeBlocks: 10_000_000} }

// VoucherSignBytes is what a voucher's signer signs.
func VoucherSignBytes(chainID string, channelID, cumulative uint64) []byte {
	b := make([]byte, 0, len(VoucherDomain)+4+len(chainID)+16)
	b = append(b, VoucherDomain...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(chainID)))
	b = append(b, chainID...)
	b = binary.BigEndian.AppendUint64(b, channelID)
	return binary.BigEndian.AppendUint64(b, cumulative)
}

// SignVoucher makes a voucher for cumulative on a channel.
func SignVoucher(key ed25519.PrivateKey, chainID string, channelID, cumulative uint64) *Voucher {
	return &Voucher{ChannelId: channelID, Cumulative: cumulative, Signature: sig.Sign(key, VoucherSignBytes(chainID, channelID, cumulative))}
}

// SessionRevokeDelay is how many blocks after MsgRevokeSessionKey the
// chain still takes claims of vouchers the session key signed: the payee
// claims them meanwhile (its gate refuses new ones at once), so a payer
// cannot revoke its way out of answers it has had.
const SessionRevokeDelay = 50

// VerifyVoucher checks a voucher's signature against the channel's keys
// at height (0, off chain: a session key whose revocation is announced
// signs nothing more). It reads no state, so the payee can run it on
// every request.
func VerifyVoucher(chainID string, c *Channel, v *Voucher, height int64) error {
	if v == nil || v.ChannelId != c.Id {
		return fmt.Errorf("channel: voucher is for another channel: %w", codes.ErrInvalidRequest)
	}
	if len(v.Signature) != ed25519.SignatureSize {
		return fmt.Errorf("channel: voucher signature has %d bytes: %w", len(v.Signature), codes.ErrSignature)
	}
	msg := VoucherSignBytes(chainID, c.Id, v.Cumulative)
	if sig.Verify(c.PayerKey, msg, v.Signature) {
		return nil
	}
	revoked := c.SessionRevokedAt != 0 && (height == 0 || height >= c.SessionRevokedAt)
	if !revoked && sig.Verify(c.SessionKey, msg, v.Signature) {
		return nil
	}
	return fmt.Errorf("channel: voucher for channel %d is not signed by its payer or session key: %w", c.Id, codes.ErrSignature)
}
