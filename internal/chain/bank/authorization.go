package bank

import (
	"fmt"

	"github.com/agoranet/agora/internal/chain/account"
	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/gas"
	"github.com/agoranet/agora/internal/chain/module"
)

var noncePrefix = []byte("bank/nonce/")

func nonceKey(from addr.Address, nonce []byte) []byte {
	k := append(append([]byte(nil), noncePrefix...), from[:]...)
	return append(k, nonce...)
}

// NonceUsed reports whether from has used nonce.
func NonceUsed(kv interface{ Get([]byte) []byte }, from addr.Address, nonce []byte) bool {
	return kv.Get(nonceKey(from, nonce)) != nil
}

// TransferWithAuthorization executes a signed authorization once.
func TransferWithAuthorization(ctx *module.Context, a *bankpb.Authorization) error {
	ctx.ConsumeGas(gas.Ed25519Verify, "the authorization's signature")
	from, to, err := bankpb.CheckAuthorization(ctx.ChainID, a)
	if err != nil {
		return err
	}
	if !account.Holds(ctx.KV, from, a.PublicKey) {
		return fmt.Errorf("bank: the authorization is signed by a key %s does not sign with (rotated away, or someone else's): %w", from, codes.ErrSignature)
	}
	if err := CheckRecipient(to); err != nil {
		return err
	}
	now := ctx.TimeUnixNano / 1_000_000_000
	if now <= a.ValidAfter || now >= a.ValidBefore {
		return fmt.Errorf("bank: authorization is valid from %d to %d, block time is %d: %w", a.ValidAfter, a.ValidBefore, now, codes.ErrInvalidRequest)
	}
	if NonceUsed(ctx.KV, from, a.Nonce) {
		return fmt.Errorf("bank: authorization nonce %x already used by %s: %w", a.Nonce, from, codes.ErrSequence)
	}
	ctx.KV.Set(nonceKey(from, a.Nonce), []byte{1})
	if err := Send(ctx, from, to, []*coin.Coin{a.Amount}); err != nil {
		return err
	}
	ctx.Emit("transfer_authorization", module.Key("from", from.String()), module.Key("nonce", fmt.Sprintf("%x", a.Nonce)))
	return nil
}
