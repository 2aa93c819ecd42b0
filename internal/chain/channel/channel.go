// Package channel implements unidirectional payment channels with
// cumulative vouchers. A payer locks a deposit for a payee; each request
// the payee serves is paid by a new voucher for the running total, checked
// off chain in microseconds; the payee claims the highest voucher now and
// then, many channels in one transaction, together with the Merkle root of
// the receipts it covers, which anchors them for audits.
package channel

import (
	"encoding/binary"
	"fmt"

	"github.com/agoranet/agora/internal/chain/account"
	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/agent"
	"github.com/agoranet/agora/internal/chain/bank"
	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/channel/channelpb"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/escrow"
	"github.com/agoranet/agora/internal/chain/gas"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/provider"
	"github.com/agoranet/agora/internal/chain/store"
)

var (
	channelPrefix = []byte("channel/c/") // id -> Channel
	payerPrefix   = []byte("channel/p/") // payer | id -> nil
	payeePrefix   = []byte("channel/e/") // payee | id -> nil
	anchorPrefix  = []byte("channel/a/") // id | n -> Anchor
	nextIDKey     = []byte("channel/next")
	paramsKey     = []byte("channel/params")

	// owed is what the escrow owes: open channels' deposits less claims.
	owed = escrow.NewOwed("channel/owed/")
)

func be(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// GetParams reads the params.
func GetParams(kv store.Reader) *channelpb.Params {
	p := channelpb.DefaultParams()
	if v := kv.Get(paramsKey); v != nil {
		module.MustUnmarshal(v, p)
	}
	return p
}

// Get returns a channel or nil.
func Get(kv store.Reader, id uint64) *channelpb.Channel {
	v := kv.Get(cat(channelPrefix, be(id)))
	if v == nil {
		return nil
	}
	c := &channelpb.Channel{}
	module.MustUnmarshal(v, c)
	return c
}

func put(kv store.KV, c *channelpb.Channel) {
	kv.Set(cat(channelPrefix, be(c.Id)), module.MustMarshal(c))
}

func mustGet(kv store.Reader, id uint64) (*channelpb.Channel, error) {
	c := Get(kv, id)
	if c == nil {
		return nil, fmt.Errorf("channel: no channel %d: %w", id, codes.ErrNotFound)
	}
	return c, nil
}

// Open creates a channel and escrows its deposit.
func Open(ctx *module.Context, m *channelpb.MsgOpenChannel) (*channelpb.Channel, error) {
	payer, payee := addr.MustParse(m.Payer), addr.MustParse(m.Payee)
	if err := bank.CheckRecipient(payee); err != nil {
		return nil, fmt.Errorf("channel: payee: %w", err)
	}
	// The channel's vouchers are checked against this key for its life,
	// even if the payer rotates away from it later (docs/accounts.md).
	if !account.Holds(ctx.KV, payer, m.PayerKey) {
		return nil, fmt.Errorf("channel: payer_key is not the key %s signs with: %w", payer, codes.ErrSignature)
	}
	p := GetParams(ctx.KV)
	if m.ExpiresAt <= ctx.Height || m.ExpiresAt > ctx.Height+p.MaxLifetimeBlocks {
		return nil, fmt.Errorf("channel: expiry %d must be after the current height %d and at most %d blocks ahead: %w", m.ExpiresAt, ctx.Height, p.MaxLifetimeBlocks, codes.ErrInvalidRequest)
	}
	// The service's royalties are fixed for the channel's life: the payer
	// agrees to them now, and the payee cannot change where its money goes.
	var royalties []*channelpb.Share
	if m.ModelId != "" {
		svc := provider.GetService(ctx.KV, payee, m.ModelId)
		if svc == nil {
			return nil, fmt.Errorf("channel: %s offers no model %s: %w", payee, m.ModelId, codes.ErrNotFound)
		}
		for _, r := range svc.Royalties {
			royalties = append(royalties, &channelpb.Share{Recipient: r.Recipient, Bps: r.Bps})
		}
	}
	if err := deposit(ctx, payer, payee, royalties, m.Deposit); err != nil {
		return nil, fmt.Errorf("channel: deposit: %w", err)
	}
	id := uint64(1)
	if v := ctx.KV.Get(nextIDKey); v != nil {
		id = binary.BigEndian.Uint64(v)
	}
	ctx.KV.Set(nextIDKey, be(id+1))
	c := &channelpb.Channel{Id: id, Payer: m.Payer, Payee: m.Payee, ModelId: m.ModelId, Denom: m.Deposit.Denom, Deposit: m.Deposit.Amount,
		ExpiresAt: m.ExpiresAt, PayerKey: m.PayerKey, SessionKey: m.SessionKey, OpenedAt: ctx.Height, Royalties: royalties}
	put(ctx.KV, c)
	ctx.KV.Set(cat(payerPrefix, payer[:], be(id)), []byte{})
	ctx.KV.Set(cat(payeePrefix, payee[:], be(id)), []byte{})
	ctx.Emit("open_channel", module.Key("channel_id", module.U64(id)), module.Key("payer", m.Payer), module.Key("payee", m.Payee),
		module.Val("deposit", coin.String(m.Deposit)), module.Val("expires_at", module.U64(uint64(m.ExpiresAt))))
	return c, nil
}

// deposit moves a payer's coins into escrow for a channel's payee and
// royalty recipients, who are who the payer's policy must allow.
func deposit(ctx *module.Context, payer, payee addr.Address, royalties []*channelpb.Share, c *coin.Coin) error {
	t := bank.Transfer{From: payer, To: channelpb.Escrow, Coins: []*coin.Coin{c}, For: []addr.Address{payee}}
	for _, r := range royalties {
		t.For = append(t.For, addr.MustParse(r.Recipient))
	}
	if err := bank.Move(ctx, t); err != nil {
		return err
	}
	return owed.Add(ctx.KV, c.Denom, c.Amount)
}

func mustBePayer(c *channelpb.Channel, who addr.Address) error {
	if c.Payer != who.String() {
		return fmt.Errorf("channel: only the payer %s may do this to channel %d: %w", c.Payer, c.Id, codes.ErrUnauthorized)
	}
	if c.Closed {
		return fmt.Errorf("channel: channel %d is closed: %w", c.Id, codes.ErrInvalidRequest)
	}
	return nil
}

// Fund adds to a channel's deposit.
func Fund(ctx *module.Context, m *channelpb.MsgFundChannel) error {
	c, err := mustGet(ctx.KV, m.ChannelId)
	if err != nil {
		return err
	}
	if err := mustBePayer(c, ctx.Signer); err != nil {
		return err
	}
	if m.Amount.Denom != c.Denom {
		return fmt.Errorf("channel: channel %d is in %s, not %s: %w", c.Id, c.Denom, m.Amount.Denom, codes.ErrInvalidAmount)
	}
	if ctx.Height > c.ExpiresAt {
		return fmt.Errorf("channel: channel %d expired at %d; extend it first: %w", c.Id, c.ExpiresAt, codes.ErrInvalidRequest)
	}
	if err := deposit(ctx, ctx.Signer, addr.MustParse(c.Payee), c.Royalties, m.Amount); err != nil {
		return err
	}
	if c.Deposit, err = coin.Add(c.Deposit, m.Amount.Amount); err != nil {
		return err
	}
	put(ctx.KV, c)
	ctx.Emit("fund_channel", module.Key("channel_id", module.U64(c.Id)), module.Val("amount", coin.String(m.Amount)))
	return nil
}

// Extend moves a channel's expiry later.
func Extend(ctx *module.Context, m *channelpb.MsgExtendChannel) error {
	c, err := mustGet(ctx.KV, m.ChannelId)
	if err != nil {
		return err
	}
	if err := mustBePayer(c, ctx.Signer); err != nil {
		return err
	}
	if m.ExpiresAt <= c.ExpiresAt || m.ExpiresAt > ctx.Height+GetParams(ctx.KV).MaxLifetimeBlocks {
		return fmt.Errorf("channel: new expiry %d must be after %d and within the max lifetime: %w", m.ExpiresAt, c.ExpiresAt, codes.ErrInvalidRequest)
	}
	c.ExpiresAt = m.ExpiresAt
	put(ctx.KV, c)
	ctx.Emit("extend_channel", module.Key("channel_id", module.U64(c.Id)), module.Val("expires_at", module.U64(uint64(m.ExpiresAt))))
	return nil
}

// claim pays the increase of one claim over the last, split with the
// service's royalty recipients, and anchors its receipts.
func claim(ctx *module.Context, payee addr.Address, cl *channelpb.Claim) error {
	if cl.Voucher == nil {
		return fmt.Errorf("channel: claim without a voucher: %w", codes.ErrInvalidRequest)
	}
	c, err := mustGet(ctx.KV, cl.Voucher.ChannelId)
	if err != nil {
		return err
	}
	if c.Payee != payee.String() {
		return fmt.Errorf("channel: channel %d pays %s, not %s: %w", c.Id, c.Payee, payee, codes.ErrUnauthorized)
	}
	if c.Closed {
		return fmt.Errorf("channel: channel %d is closed: %w", c.Id, codes.ErrInvalidRequest)
	}
	if ctx.Height > c.ExpiresAt {
		return fmt.Errorf("channel: channel %d expired at height %d: %w", c.Id, c.ExpiresAt, codes.ErrInvalidRequest)
	}
	ctx.ConsumeGas(gas.Ed25519Verify, "a voucher's signature")
	if len(c.SessionKey) != 0 {
		ctx.ConsumeGas(gas.Ed25519Verify, "a voucher's signature by the session key")
	}
	if err := channelpb.VerifyVoucher(ctx.ChainID, c, cl.Voucher, ctx.Height); err != nil {
		return err
	}
	if cl.Amount > cl.Voucher.Cumulative {
		return fmt.Errorf("channel: claim of %d is above the voucher's %d: %w", cl.Amount, cl.Voucher.Cumulative, codes.ErrInvalidAmount)
	}
	if cl.Amount <= c.Claimed {
		return fmt.Errorf("channel: claim of %d on channel %d does not exceed the %d already claimed: %w", cl.Amount, c.Id, c.Claimed, codes.ErrInvalidAmount)
	}
	if cl.Amount > c.Deposit {
		return fmt.Errorf("channel: claim of %d is above channel %d's deposit of %d: %w", cl.Amount, c.Id, c.Deposit, codes.ErrInsufficientFunds)
	}
	if len(cl.ReceiptsRoot) != 0 && len(cl.ReceiptsRoot) != 32 {
		return fmt.Errorf("channel: receipts root must be 32 bytes: %w", codes.ErrInvalidRequest)
	}
	pay := cl.Amount - c.Claimed
	rest := pay
	owed.Sub(ctx.KV, c.Denom, pay)
	{
		for _, r := range c.Royalties {
			share := pay/10_000*uint64(r.Bps) + pay%10_000*uint64(r.Bps)/10_000
			if share == 0 {
				continue
			}
			if err := bank.Send(ctx, channelpb.Escrow, addr.MustParse(r.Recipient), []*coin.Coin{coin.New(c.Denom, share)}); err != nil {
				return err
			}
			rest -= share
		}
	}
	if rest > 0 {
		if err := bank.Send(ctx, channelpb.Escrow, payee, []*coin.Coin{coin.New(c.Denom, rest)}); err != nil {
			return err
		}
	}
	n := c.Receipts
	ctx.KV.Set(cat(anchorPrefix, be(c.Id), be(n)), module.MustMarshal(&channelpb.Anchor{ChannelId: c.Id, Root: cl.ReceiptsRoot, Count: cl.ReceiptsCount, From: c.Claimed, To: cl.Amount, Height: ctx.Height}))
	c.Claimed = cl.Amount
	c.Receipts += cl.ReceiptsCount
	put(ctx.KV, c)
	provider.AddAnchored(ctx, payee, cl.ReceiptsCount)
	ctx.Emit("claim", module.Key("channel_id", module.U64(c.Id)), module.Key("payee", c.Payee), module.Val("paid", module.U64(pay)+c.Denom),
		module.Val("cumulative", module.U64(cl.Amount)), module.Val("receipts", module.U64(cl.ReceiptsCount)), module.Val("receipts_root", fmt.Sprintf("%x", cl.ReceiptsRoot)))
	return nil
}

// refund returns what is left in a channel to its payer and closes it.
func refund(ctx *module.Context, c *channelpb.Channel) error {
	if left := c.Deposit - c.Claimed; left > 0 {
		owed.Sub(ctx.KV, c.Denom, left)
		if err := bank.Send(ctx, channelpb.Escrow, addr.MustParse(c.Payer), []*coin.Coin{coin.New(c.Denom, left)}); err != nil {
			return err
		}
	}
	c.Closed = true
	put(ctx.KV, c)
	ctx.Emit("close_channel", module.Key("channel_id", module.U64(c.Id)), module.Val("refunded", module.U64(c.Deposit-c.Claimed)+c.Denom))
	return nil
}

// Close is the payee's final claim and the refund of the rest.
func Close(ctx *module.Context, m *channelpb.MsgCloseChannel) error {
	if m.Final != nil {
		if m.Final.Voucher == nil || m.Final.Voucher.ChannelId != m.ChannelId {
			return fmt.Errorf("channel: the final claim is for another channel: %w", codes.ErrInvalidRequest)
		}
		if err := claim(ctx, ctx.Signer, m.Final); err != nil {
			return err
		}
	}
	c, err := mustGet(ctx.KV, m.ChannelId)
	if err != nil {
		return err
	}
	if c.Payee != ctx.Signer.String() {
		return fmt.Errorf("channel: only the payee %s may close channel %d: %w", c.Payee, c.Id, codes.ErrUnauthorized)
	}
	if c.Closed {
		return fmt.Errorf("channel: channel %d is already closed: %w", c.Id, codes.ErrInvalidRequest)
	}
	return refund(ctx, c)
}

// RevokeSessionKey stops a channel's session key, after
// SessionRevokeDelay blocks on chain and at once at the payee's gate.
func RevokeSessionKey(ctx *module.Context, m *channelpb.MsgRevokeSessionKey) error {
	c, err := mustGet(ctx.KV, m.ChannelId)
	if err != nil {
		return err
	}
	if err := mustBePayer(c, ctx.Signer); err != nil {
		return err
	}
	if len(c.SessionKey) == 0 || c.SessionRevokedAt != 0 {
		return fmt.Errorf("channel: channel %d has no session key to revoke: %w", c.Id, codes.ErrInvalidRequest)
	}
	c.SessionRevokedAt = ctx.Height + channelpb.SessionRevokeDelay
	put(ctx.KV, c)
	ctx.Emit("revoke_session_key", module.Key("channel_id", module.U64(c.Id)), module.Val("effective_at", module.U64(uint64(c.SessionRevokedAt))))
	return nil
}

// SettleExpired refunds the payer once the channel has expired.
func SettleExpired(ctx *module.Context, m *channelpb.MsgSettleExpired) error {
	c, err := mustGet(ctx.KV, m.ChannelId)
	if err != nil {
		return err
	}
	// The owner of a revoked agent settles its channels: the refund then
	// reaches the owner (see agent.Restrict).
	if err := mustBePayer(c, ctx.Signer); err != nil && !agent.Owns(ctx.KV, ctx.Signer, addr.MustParse(c.Payer)) {
		return err
	}
	if c.Closed {
		return fmt.Errorf("channel: channel %d is closed: %w", c.Id, codes.ErrInvalidRequest)
	}
	if ctx.Height <= c.ExpiresAt {
		return fmt.Errorf("channel: channel %d is open until height %d; the payee may still claim: %w", c.Id, c.ExpiresAt, codes.ErrInvalidRequest)
	}
	return refund(ctx, c)
}

// List returns channels by payer or payee (one of them), oldest first.
func List(kv store.Reader, payer, payee string) ([]*channelpb.Channel, error) {
	var prefix []byte
	switch {
	case payer != "":
		a, err := bankpb.ParseAddr("payer", payer)
		if err != nil {
			return nil, err
		}
		prefix = cat(payerPrefix, a[:])
	case payee != "":
		a, err := bankpb.ParseAddr("payee", payee)
		if err != nil {
			return nil, err
		}
		prefix = cat(payeePrefix, a[:])
	default:
		return nil, fmt.Errorf("channel: list channels by payer or payee: %w", codes.ErrInvalidRequest)
	}
	it := kv.Iterator(prefix, store.PrefixEnd(prefix))
	defer it.Close()
	var out []*channelpb.Channel
	for ; it.Valid(); it.Next() {
		out = append(out, Get(kv, binary.BigEndian.Uint64(it.Key()[len(prefix):])))
	}
	return out, nil
}

// Anchors returns a channel's anchored receipt roots.
func Anchors(kv store.Reader, id uint64) []*channelpb.Anchor {
	prefix := cat(anchorPrefix, be(id))
	it := kv.Iterator(prefix, store.PrefixEnd(prefix))
	defer it.Close()
	var out []*channelpb.Anchor
	for ; it.Valid(); it.Next() {
		a := &channelpb.Anchor{}
		module.MustUnmarshal(it.Value(), a)
		out = append(out, a)
	}
	return out
}

// Solvent is the end-of-block check: the escrow holds at least what open
// channels are owed.
func Solvent(kv store.Reader) error { return owed.Covered(kv, channelpb.Escrow, "channel escrow") }

// CheckInvariant is the full check, for tests: every channel's deposit
// less its claims adds up to the running total, which the escrow holds.
func CheckInvariant(kv store.Reader) error {
	sums := map[string]uint64{}
	it := kv.Iterator(channelPrefix, store.PrefixEnd(channelPrefix))
	for ; it.Valid(); it.Next() {
		c := &channelpb.Channel{}
		module.MustUnmarshal(it.Value(), c)
		if !c.Closed {
			sums[c.Denom] += c.Deposit - c.Claimed
		}
	}
	it.Close()
	for _, d := range bank.GetParams(kv).Denoms {
		if sums[d.Name] != owed.Of(kv, d.Name) {
			return fmt.Errorf("channel: open channels are owed %d%s, the running total says %d", sums[d.Name], d.Name, owed.Of(kv, d.Name))
		}
	}
	return owed.Exact(kv, channelpb.Escrow, "channel escrow")
}
