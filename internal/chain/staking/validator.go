package staking

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/big"
	"slices"

	abci "github.com/cometbft/cometbft/abci/types"
	"google.golang.org/protobuf/proto"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/bank"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/escrow"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/staking/stakingpb"
	"github.com/agoranet/agora/internal/chain/store"
)

// Validators are a role of their own in this module: a validator's
// tokens sit in the delegated pool, not with providers' stake, and its
// delegators hold shares of them. See docs/staking.md and ADR 10.

var (
	valPrefix      = []byte("staking/v/")   // operator -> Validator
	consPrefix     = []byte("staking/vc/")  // consensus address -> operator
	delPrefix      = []byte("staking/d/")   // delegator | validator -> Delegation
	delByValPrefix = []byte("staking/dv/")  // validator | delegator -> nil
	undQueuePrefix = []byte("staking/uq/")  // completes_at | id -> Undelegation
	undByDelPrefix = []byte("staking/ua/")  // delegator | id -> completes_at
	undByValPrefix = []byte("staking/uv/")  // validator | id -> completes_at
	redQueuePrefix = []byte("staking/rq/")  // completes_at | id -> Redelegation
	redByDelPrefix = []byte("staking/ra/")  // delegator | id -> completes_at
	redBySrcPrefix = []byte("staking/rs/")  // src | id -> completes_at
	redIntoPrefix  = []byte("staking/ri/")  // delegator | dst | id -> nil
	setPrefix      = []byte("staking/set/") // operator -> power, the set consensus was last told
	signPrefix     = []byte("staking/sg/")  // operator -> Signing
	missPrefix     = []byte("staking/m/")   // operator | slot -> nil: missed
	nextIDKey      = []byte("staking/next_entry")
	ceilingKey     = []byte("staking/issuance_ceiling")
	unallocatedKey = []byte("staking/unallocated")
	// ownsSetKey marks a chain whose genesis named validators of stake:
	// staking chooses its consensus set. Without it the set is the one
	// fixed in genesis.json, and nobody may add to it by a message.
	ownsSetKey = []byte("staking/owns_set")
	// rotatedPrefix holds, per operator, the consensus key consensus
	// still knows it by, until ValidatorUpdates tells it the new one.
	rotatedPrefix = []byte("staking/rot/") // operator -> old consensus pubkey
)

// OwnsSet reports whether staking chooses the consensus set.
func OwnsSet(kv store.Reader) bool { return kv.Get(ownsSetKey) != nil }

func key(prefix []byte, parts ...[]byte) []byte {
	k := append([]byte(nil), prefix...)
	for _, p := range parts {
		k = append(k, p...)
	}
	return k
}

func u64(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

// What the validator pools owe: every validator's tokens, every
// undelegation, and the rewards credited and not withdrawn.
var (
	delegatedOwed    = escrow.NewOwed("staking/delegated_owed/")
	undelegatingOwed = escrow.NewOwed("staking/undelegating_owed/")
	rewardsOwed      = escrow.NewOwed("staking/rewards_owed/")
)

// ConsAddress is the consensus address of an ed25519 consensus key, as
// CometBFT names validators in commits and evidence.
func ConsAddress(pubkey []byte) []byte {
	h := sha256.Sum256(pubkey)
	return h[:20]
}

// GetValidator returns the validator operated by op.
func GetValidator(kv store.Reader, op addr.Address) (*stakingpb.Validator, bool) {
	v := kv.Get(key(valPrefix, op[:]))
	if v == nil {
		return nil, false
	}
	val := &stakingpb.Validator{}
	module.MustUnmarshal(v, val)
	return val, true
}

func putValidator(kv store.KV, v *stakingpb.Validator) {
	op := addr.MustParse(v.Operator)
	kv.Set(key(valPrefix, op[:]), module.MustMarshal(v))
}

// ValidatorByConsAddress returns the validator whose consensus key has
// address cons, including tombstoned ones.
func ValidatorByConsAddress(kv store.Reader, cons []byte) (*stakingpb.Validator, bool) {
	op := kv.Get(key(consPrefix, cons))
	if op == nil {
		return nil, false
	}
	var a addr.Address
	copy(a[:], op)
	return GetValidator(kv, a)
}

// Validators lists every validator, by operator.
func Validators(kv store.Reader) []*stakingpb.Validator {
	it := kv.Iterator(valPrefix, store.PrefixEnd(valPrefix))
	defer it.Close()
	var out []*stakingpb.Validator
	for ; it.Valid(); it.Next() {
		v := &stakingpb.Validator{}
		module.MustUnmarshal(it.Value(), v)
		out = append(out, v)
	}
	return out
}

// GetDelegation returns d's delegation to validator v.
func GetDelegation(kv store.Reader, d, v addr.Address) (*stakingpb.Delegation, bool) {
	b := kv.Get(key(delPrefix, d[:], v[:]))
	if b == nil {
		return nil, false
	}
	del := &stakingpb.Delegation{}
	module.MustUnmarshal(b, del)
	return del, true
}

func putDelegation(kv store.KV, del *stakingpb.Delegation) {
	d, v := addr.MustParse(del.Delegator), addr.MustParse(del.Validator)
	if del.Shares == 0 {
		kv.Delete(key(delPrefix, d[:], v[:]))
		kv.Delete(key(delByValPrefix, v[:], d[:]))
		return
	}
	kv.Set(key(delPrefix, d[:], v[:]), module.MustMarshal(del))
	kv.Set(key(delByValPrefix, v[:], d[:]), []byte{})
}

// Delegations lists d's delegations.
func Delegations(kv store.Reader, d addr.Address) []*stakingpb.Delegation {
	p := key(delPrefix, d[:])
	it := kv.Iterator(p, store.PrefixEnd(p))
	defer it.Close()
	var out []*stakingpb.Delegation
	for ; it.Valid(); it.Next() {
		del := &stakingpb.Delegation{}
		module.MustUnmarshal(it.Value(), del)
		out = append(out, del)
	}
	return out
}

// Delegators lists the delegators of validator v (its operator first if
// it delegates to itself, then by address).
func Delegators(kv store.Reader, v addr.Address) []addr.Address {
	p := key(delByValPrefix, v[:])
	it := kv.Iterator(p, store.PrefixEnd(p))
	defer it.Close()
	var out []addr.Address
	for ; it.Valid(); it.Next() {
		var a addr.Address
		copy(a[:], it.Key()[len(p):])
		out = append(out, a)
	}
	return out
}

// TokensOf is what shares of v are worth now.
func TokensOf(v *stakingpb.Validator, shares uint64) uint64 {
	if v.Shares == 0 {
		return 0
	}
	return mulDiv(shares, v.Tokens, v.Shares)
}

// mulDiv is a*b/c rounded down, without overflow; the result fits when
// a <= c.
func mulDiv(a, b, c uint64) uint64 {
	n := new(big.Int).Mul(new(big.Int).SetUint64(a), new(big.Int).SetUint64(b))
	return n.Quo(n, new(big.Int).SetUint64(c)).Uint64()
}

func mulDivUp(a, b, c uint64) (uint64, bool) {
	n := new(big.Int).Mul(new(big.Int).SetUint64(a), new(big.Int).SetUint64(b))
	n.Add(n, new(big.Int).SetUint64(c-1))
	n.Quo(n, new(big.Int).SetUint64(c))
	return n.Uint64(), n.IsUint64()
}

func cutBps(n uint64, bps uint32) uint64 {
	return n/stakingpb.BPS*uint64(bps) + n%stakingpb.BPS*uint64(bps)/stakingpb.BPS
}

func nativeCoins(n uint64) []*coin.Coin { return []*coin.Coin{coin.New(coin.Native, n)} }

// CreateValidator declares a validator operated by the signer, bonding
// its self-delegation. It joins the active set at the end of the block if
// its tokens rank within max_validators.
func CreateValidator(ctx *module.Context, op addr.Address, m *stakingpb.MsgCreateValidator) error {
	p := GetParams(ctx.KV)
	if !OwnsSet(ctx.KV) {
		return fmt.Errorf("staking: this chain's validators are fixed by its genesis (it names no validators of stake), so none can join by a message; "+
			"start a chain whose genesis bonds its validators (agora init, testnet and devnet do): %w", codes.ErrInvalidRequest)
	}
	if _, ok := GetValidator(ctx.KV, op); ok {
		return fmt.Errorf("staking: %s already operates a validator; one per operator account: %w", op, codes.ErrValidatorExists)
	}
	cons := ConsAddress(m.ConsensusPubkey)
	if other := ctx.KV.Get(key(consPrefix, cons)); other != nil {
		var a addr.Address
		copy(a[:], other)
		return fmt.Errorf("staking: consensus key %X is already %s's; each validator needs its own (a second node with the same key would double-sign): %w", m.ConsensusPubkey, a, codes.ErrValidatorExists)
	}
	if m.SelfBond.Amount < p.MinSelfDelegation {
		return fmt.Errorf("staking: a validator needs at least %duagr of its operator's own stake, got %s: %w", p.MinSelfDelegation, coin.String(m.SelfBond), codes.ErrInsufficientStake)
	}
	v := &stakingpb.Validator{Operator: op.String(), ConsensusPubkey: m.ConsensusPubkey, CommissionBps: m.CommissionBps, Moniker: m.Moniker, CreatedAt: ctx.Height}
	putValidator(ctx.KV, v)
	ctx.KV.Set(key(consPrefix, cons), op[:])
	ctx.Emit("create_validator", module.Key("validator", op.String()), module.Val("consensus_address", fmt.Sprintf("%X", cons)),
		module.Val("commission_bps", module.U64(uint64(m.CommissionBps))))
	return Delegate(ctx, op, op, m.SelfBond.Amount)
}

// EditValidator renames a validator or lowers its commission.
func EditValidator(ctx *module.Context, op addr.Address, m *stakingpb.MsgEditValidator) error {
	v, ok := GetValidator(ctx.KV, op)
	if !ok {
		return fmt.Errorf("staking: %s operates no validator: %w", op, codes.ErrNotFound)
	}
	if m.CommissionBps > v.CommissionBps {
		return fmt.Errorf("staking: commission may only be lowered (%d bps now, %d asked): delegators chose the terms they joined on; "+
			"create a new validator for higher terms: %w", v.CommissionBps, m.CommissionBps, codes.ErrInvalidRequest)
	}
	v.CommissionBps = m.CommissionBps
	if m.Moniker != "" {
		v.Moniker = m.Moniker
	}
	putValidator(ctx.KV, v)
	ctx.Emit("edit_validator", module.Key("validator", op.String()), module.Val("commission_bps", module.U64(uint64(v.CommissionBps))))
	return nil
}

// Delegate bonds amount uagr of d to validator op.
func Delegate(ctx *module.Context, d, op addr.Address, amount uint64) error {
	v, ok := GetValidator(ctx.KV, op)
	if !ok {
		return fmt.Errorf("staking: %s operates no validator: %w", op, codes.ErrNotFound)
	}
	if v.Tombstoned {
		return fmt.Errorf("staking: validator %s was tombstoned for double-signing and will never validate again: %w", op, codes.ErrJailed)
	}
	if v.Jailed && d != op {
		// The operator may top up its own stake while jailed: a slash may
		// have left it under min_self_delegation, which unjailing needs.
		return fmt.Errorf("staking: validator %s is jailed (until height %d); delegate once it unjails: %w", op, v.JailedUntil, codes.ErrJailed)
	}
	if v.Shares > 0 && v.Tokens == 0 {
		return fmt.Errorf("staking: validator %s has lost all its tokens to slashing: %w", op, codes.ErrInvalidRequest)
	}
	if err := bank.Send(ctx, d, stakingpb.DelegatedPool, nativeCoins(amount)); err != nil {
		return fmt.Errorf("staking: delegate: %w", err)
	}
	return addDelegation(ctx, v, d, amount)
}

// addDelegation credits amount tokens, already in the delegated pool, to
// d's delegation to v.
func addDelegation(ctx *module.Context, v *stakingpb.Validator, d addr.Address, amount uint64) error {
	op := addr.MustParse(v.Operator)
	del, ok := GetDelegation(ctx.KV, d, op)
	if !ok {
		del = &stakingpb.Delegation{Delegator: d.String(), Validator: v.Operator}
		restart(v, del)
	} else if err := settle(ctx, v, del); err != nil {
		return err
	}
	shares := amount
	if v.Shares > 0 {
		shares = mulDiv(amount, v.Shares, v.Tokens)
	}
	if shares == 0 {
		return fmt.Errorf("staking: %duagr buys no share of %s at its rate (%d tokens for %d shares): %w", amount, op, v.Tokens, v.Shares, codes.ErrInvalidAmount)
	}
	var err error
	if v.Tokens, err = coin.Add(v.Tokens, amount); err != nil {
		return err
	}
	total, err := coin.Add(v.Shares, shares)
	if err != nil {
		return err
	}
	setShares(v, total)
	if del.Shares, err = coin.Add(del.Shares, shares); err != nil {
		return err
	}
	putValidator(ctx.KV, v)
	putDelegation(ctx.KV, del)
	if err := delegatedOwed.Add(ctx.KV, coin.Native, amount); err != nil {
		return err
	}
	ctx.Emit("delegate", module.Key("delegator", d.String()), module.Key("validator", v.Operator),
		module.Val("amount", module.U64(amount)+coin.Native), module.Val("shares", module.U64(shares)))
	return nil
}

// removeShares takes tokens worth at least amount from d's delegation to
// v (rounding the shares up, so no one leaves with more than they own)
// and returns the tokens taken, which leave the validator.
func removeShares(ctx *module.Context, v *stakingpb.Validator, d addr.Address, amount uint64) (uint64, error) {
	op := addr.MustParse(v.Operator)
	del, ok := GetDelegation(ctx.KV, d, op)
	if !ok {
		return 0, fmt.Errorf("staking: %s has no delegation to %s: %w", d, op, codes.ErrNotFound)
	}
	if err := settle(ctx, v, del); err != nil {
		return 0, err
	}
	have := TokensOf(v, del.Shares)
	if amount > have {
		return 0, fmt.Errorf("staking: %s's delegation to %s is worth %duagr, less than %d: %w", d, op, have, amount, codes.ErrInsufficientStake)
	}
	shares, _ := mulDivUp(amount, v.Shares, v.Tokens)
	shares = min(shares, del.Shares)
	if amount == have {
		shares = del.Shares
	}
	tokens := TokensOf(v, shares)
	if d == op {
		rest := have - tokens
		if p := GetParams(ctx.KV); rest > 0 && rest < p.MinSelfDelegation {
			return 0, fmt.Errorf("staking: the operator's own stake in %s may not fall below %duagr while it remains (it would be %d); "+
				"undelegate all %d to retire the validator: %w", op, p.MinSelfDelegation, rest, have, codes.ErrInsufficientStake)
		}
	}
	del.Shares -= shares
	setShares(v, v.Shares-shares)
	v.Tokens -= tokens
	putDelegation(ctx.KV, del)
	putValidator(ctx.KV, v)
	delegatedOwed.Sub(ctx.KV, coin.Native, tokens)
	return tokens, nil
}

func nextEntryID(kv store.KV) uint64 {
	var n uint64
	if v := kv.Get(nextIDKey); v != nil {
		n = binary.BigEndian.Uint64(v)
	}
	kv.Set(nextIDKey, u64(n+1))
	return n
}

// Undelegate starts returning amount of d's delegation to op; it is paid
// out unbonding_blocks from now and can be slashed until then for what
// the validator did while it was bonded.
func Undelegate(ctx *module.Context, d, op addr.Address, amount uint64) error {
	v, ok := GetValidator(ctx.KV, op)
	if !ok {
		return fmt.Errorf("staking: %s operates no validator: %w", op, codes.ErrNotFound)
	}
	tokens, err := removeShares(ctx, v, d, amount)
	if err != nil {
		return err
	}
	if tokens == 0 {
		return nil
	}
	if err := bank.Send(ctx, stakingpb.DelegatedPool, stakingpb.UndelegatingPool, nativeCoins(tokens)); err != nil {
		return fmt.Errorf("staking: undelegate: %w", err)
	}
	if err := undelegatingOwed.Add(ctx.KV, coin.Native, tokens); err != nil {
		return err
	}
	id := nextEntryID(ctx.KV)
	at := ctx.Height + GetParams(ctx.KV).UnbondingBlocks
	u := &stakingpb.Undelegation{Delegator: d.String(), Validator: op.String(), Amount: tokens, CreatedAt: ctx.Height, CompletesAt: at, Id: id}
	putUndelegation(ctx.KV, u)
	if err := keepsAValidator(ctx.KV); err != nil {
		return err
	}
	ctx.Emit("undelegate", module.Key("delegator", d.String()), module.Key("validator", op.String()),
		module.Val("amount", module.U64(tokens)+coin.Native), module.Val("completes_at", module.U64(uint64(at))))
	return nil
}

func putUndelegation(kv store.KV, u *stakingpb.Undelegation) {
	d, v := addr.MustParse(u.Delegator), addr.MustParse(u.Validator)
	at := u64(uint64(u.CompletesAt))
	kv.Set(key(undQueuePrefix, at, u64(u.Id)), module.MustMarshal(u))
	kv.Set(key(undByDelPrefix, d[:], u64(u.Id)), at)
	kv.Set(key(undByValPrefix, v[:], u64(u.Id)), at)
}

func deleteUndelegation(kv store.KV, u *stakingpb.Undelegation) {
	d, v := addr.MustParse(u.Delegator), addr.MustParse(u.Validator)
	kv.Delete(key(undQueuePrefix, u64(uint64(u.CompletesAt)), u64(u.Id)))
	kv.Delete(key(undByDelPrefix, d[:], u64(u.Id)))
	kv.Delete(key(undByValPrefix, v[:], u64(u.Id)))
}

// entries reads the queue records an index (owner | id -> completes_at)
// points at.
func entries[T any, P interface {
	*T
	proto.Message
}](kv store.Reader, index []byte, owner addr.Address, queue []byte) []P {
	p := key(index, owner[:])
	it := kv.Iterator(p, store.PrefixEnd(p))
	defer it.Close()
	var out []P
	for ; it.Valid(); it.Next() {
		id := it.Key()[len(p):]
		e := P(new(T))
		module.MustUnmarshal(kv.Get(key(queue, it.Value(), id)), e)
		out = append(out, e)
	}
	return out
}

// Undelegations lists d's undelegations in progress.
func Undelegations(kv store.Reader, d addr.Address) []*stakingpb.Undelegation {
	return entries[stakingpb.Undelegation](kv, undByDelPrefix, d, undQueuePrefix)
}

// Redelegations lists d's redelegations in progress.
func Redelegations(kv store.Reader, d addr.Address) []*stakingpb.Redelegation {
	return entries[stakingpb.Redelegation](kv, redByDelPrefix, d, redQueuePrefix)
}

// Redelegate moves amount of d's delegation from src to dst at once. The
// moved stake still answers for src's faults from before the move until
// the unbonding period has passed, and cannot be moved on from dst until
// then (so a chain of moves cannot outrun a slash).
func Redelegate(ctx *module.Context, d, src, dst addr.Address, amount uint64) error {
	if p := key(redIntoPrefix, d[:], src[:]); hasPrefix(ctx.KV, p) {
		return fmt.Errorf("staking: %s's stake in %s arrived by a redelegation that has not completed; move it on once it has: %w", d, src, codes.ErrInvalidRequest)
	}
	from, ok := GetValidator(ctx.KV, src)
	if !ok {
		return fmt.Errorf("staking: %s operates no validator: %w", src, codes.ErrNotFound)
	}
	to, ok := GetValidator(ctx.KV, dst)
	if !ok {
		return fmt.Errorf("staking: %s operates no validator: %w", dst, codes.ErrNotFound)
	}
	if to.Tombstoned || to.Jailed {
		return fmt.Errorf("staking: validator %s is jailed; redelegate to it once it unjails: %w", dst, codes.ErrJailed)
	}
	if to.Shares > 0 && to.Tokens == 0 {
		return fmt.Errorf("staking: validator %s has lost all its tokens to slashing: %w", dst, codes.ErrInvalidRequest)
	}
	tokens, err := removeShares(ctx, from, d, amount)
	if err != nil {
		return err
	}
	if tokens == 0 {
		return nil
	}
	before := uint64(0)
	if del, ok := GetDelegation(ctx.KV, d, dst); ok {
		before = del.Shares
	}
	// The tokens stay in the delegated pool: removeShares took them off
	// the running total and addDelegation puts them back.
	if err := addDelegation(ctx, to, d, tokens); err != nil {
		return err
	}
	del, _ := GetDelegation(ctx.KV, d, dst)
	id := nextEntryID(ctx.KV)
	at := ctx.Height + GetParams(ctx.KV).UnbondingBlocks
	r := &stakingpb.Redelegation{Delegator: d.String(), Src: src.String(), Dst: dst.String(), Amount: tokens, Shares: del.Shares - before, CreatedAt: ctx.Height, CompletesAt: at, Id: id}
	putRedelegation(ctx.KV, r)
	if err := keepsAValidator(ctx.KV); err != nil {
		return err
	}
	ctx.Emit("redelegate", module.Key("delegator", d.String()), module.Key("src", src.String()), module.Key("dst", dst.String()),
		module.Val("amount", module.U64(tokens)+coin.Native), module.Val("completes_at", module.U64(uint64(at))))
	return nil
}

func hasPrefix(kv store.Reader, p []byte) bool {
	it := kv.Iterator(p, store.PrefixEnd(p))
	defer it.Close()
	return it.Valid()
}

func putRedelegation(kv store.KV, r *stakingpb.Redelegation) {
	d, src, dst := addr.MustParse(r.Delegator), addr.MustParse(r.Src), addr.MustParse(r.Dst)
	at := u64(uint64(r.CompletesAt))
	kv.Set(key(redQueuePrefix, at, u64(r.Id)), module.MustMarshal(r))
	kv.Set(key(redByDelPrefix, d[:], u64(r.Id)), at)
	kv.Set(key(redBySrcPrefix, src[:], u64(r.Id)), at)
	kv.Set(key(redIntoPrefix, d[:], dst[:], u64(r.Id)), []byte{})
}

func deleteRedelegation(kv store.KV, r *stakingpb.Redelegation) {
	d, src, dst := addr.MustParse(r.Delegator), addr.MustParse(r.Src), addr.MustParse(r.Dst)
	kv.Delete(key(redQueuePrefix, u64(uint64(r.CompletesAt)), u64(r.Id)))
	kv.Delete(key(redByDelPrefix, d[:], u64(r.Id)))
	kv.Delete(key(redBySrcPrefix, src[:], u64(r.Id)))
	kv.Delete(key(redIntoPrefix, d[:], dst[:], u64(r.Id)))
}

// Unjail returns a jailed validator to the candidates once its jail has
// passed, if its operator still has the minimum self-delegation.
func Unjail(ctx *module.Context, op addr.Address) error {
	v, ok := GetValidator(ctx.KV, op)
	if !ok {
		return fmt.Errorf("staking: %s operates no validator: %w", op, codes.ErrNotFound)
	}
	if v.Tombstoned {
		return fmt.Errorf("staking: validator %s was tombstoned for double-signing and can never unjail: %w", op, codes.ErrJailed)
	}
	if !v.Jailed {
		return fmt.Errorf("staking: validator %s is not jailed: %w", op, codes.ErrInvalidRequest)
	}
	if ctx.Height < v.JailedUntil {
		return fmt.Errorf("staking: validator %s is jailed until height %d (now %d): %w", op, v.JailedUntil, ctx.Height, codes.ErrJailed)
	}
	if self := selfTokens(ctx.KV, v); self < GetParams(ctx.KV).MinSelfDelegation {
		return fmt.Errorf("staking: validator %s's operator has %duagr of its own stake in it, below the minimum %d; delegate more first: %w",
			op, self, GetParams(ctx.KV).MinSelfDelegation, codes.ErrInsufficientStake)
	}
	v.Jailed = false
	putValidator(ctx.KV, v)
	ctx.Emit("unjail", module.Key("validator", op.String()))
	return nil
}

func selfTokens(kv store.Reader, v *stakingpb.Validator) uint64 {
	op := addr.MustParse(v.Operator)
	del, ok := GetDelegation(kv, op, op)
	if !ok {
		return 0
	}
	return TokensOf(v, del.Shares)
}

func jail(ctx *module.Context, v *stakingpb.Validator, until int64) {
	v.Jailed = true
	v.JailedUntil = max(v.JailedUntil, until)
	putValidator(ctx.KV, v)
}

// RotateConsensusKey replaces op's consensus key with pubkey. The old
// key keeps pointing at op, so evidence against what it signed still
// slashes op, and it can never be used again; consensus swaps the keys at
// the end of the block. One rotation per unbonding period: a key is
// answerable for that long, and a validator that rotates as often as it
// likes could leave a trail of keys no one can watch.
func RotateConsensusKey(ctx *module.Context, op addr.Address, pubkey []byte) error {
	v, ok := GetValidator(ctx.KV, op)
	if !ok {
		return fmt.Errorf("staking: %s operates no validator: %w", op, codes.ErrNotFound)
	}
	if v.Tombstoned {
		return fmt.Errorf("staking: validator %s was tombstoned; its keys are retired for good: %w", op, codes.ErrJailed)
	}
	p := GetParams(ctx.KV)
	if v.KeyRotatedAt > 0 && ctx.Height < v.KeyRotatedAt+p.UnbondingBlocks {
		return fmt.Errorf("staking: validator %s rotated its consensus key at height %d; the next rotation is allowed from height %d (one per unbonding period): %w",
			op, v.KeyRotatedAt, v.KeyRotatedAt+p.UnbondingBlocks, codes.ErrInvalidRequest)
	}
	cons := ConsAddress(pubkey)
	if other := ctx.KV.Get(key(consPrefix, cons)); other != nil {
		return fmt.Errorf("staking: consensus key %X has been used before; rotate to a fresh key: %w", pubkey, codes.ErrValidatorExists)
	}
	if ctx.KV.Get(key(rotatedPrefix, op[:])) == nil {
		// The key consensus knows it by; a second rotation in one block
		// is refused above, so this is the key in consensus's set.
		ctx.KV.Set(key(rotatedPrefix, op[:]), v.ConsensusPubkey)
	}
	old := v.ConsensusPubkey
	v.ConsensusPubkey = pubkey
	v.KeyRotatedAt = ctx.Height
	putValidator(ctx.KV, v)
	ctx.KV.Set(key(consPrefix, cons), op[:])
	ctx.Emit("rotate_consensus_key", module.Key("validator", op.String()), module.Val("old", fmt.Sprintf("%X", ConsAddress(old))),
		module.Val("new", fmt.Sprintf("%X", cons)))
	return nil
}

// eligible lists the validators that may be in the active set: not
// jailed, with power at least 1 and an operator holding the minimum
// self-delegation.
func eligible(kv store.Reader, p *stakingpb.Params) []*stakingpb.Validator {
	var out []*stakingpb.Validator
	for _, v := range Validators(kv) {
		if v.Jailed || v.Tombstoned || v.Tokens/stakingpb.PowerReduction == 0 || selfTokens(kv, v) < p.MinSelfDelegation {
			continue
		}
		out = append(out, v)
	}
	return out
}

// keepsAValidator refuses a move of stake that would leave no validator
// eligible: consensus cannot run on an empty set, and keeping the old one
// would leave power with keys that have nothing at stake.
func keepsAValidator(kv store.Reader) error {
	if OwnsSet(kv) && len(eligible(kv, GetParams(kv))) == 0 {
		return fmt.Errorf("staking: this would leave no validator with the stake to validate, and the chain cannot run without one; "+
			"another validator must bond first: %w", codes.ErrInsufficientStake)
	}
	return nil
}

// ValidatorUpdates chooses the active set, the top max_validators by
// tokens among the validators that are not jailed, whose operator has the
// minimum self-delegation and whose power is at least 1, and returns how
// it differs from the set consensus was last told.
func (Module) ValidatorUpdates(ctx *module.Context) ([]abci.ValidatorUpdate, error) {
	if !OwnsSet(ctx.KV) {
		return nil, nil // the set fixed in genesis.json
	}
	p := GetParams(ctx.KV)
	eligible := eligible(ctx.KV, p)
	slices.SortStableFunc(eligible, func(a, b *stakingpb.Validator) int {
		if a.Tokens != b.Tokens {
			if a.Tokens > b.Tokens {
				return -1
			}
			return 1
		}
		oa, ob := addr.MustParse(a.Operator), addr.MustParse(b.Operator)
		return bytes.Compare(oa[:], ob[:])
	})
	if len(eligible) > int(p.MaxValidators) {
		eligible = eligible[:p.MaxValidators]
	}
	if len(eligible) == 0 && hasPrefix(ctx.KV, setPrefix) {
		// Consensus cannot run with no validators. No message can empty
		// the set (keepsAValidator), but jails and a governance rise of
		// min_self_delegation can: keep the last set and say so, rather
		// than halt the chain.
		ctx.Emit("validator_set_kept", module.Val("reason", "no validator is eligible"))
		return nil, nil
	}
	// The new set, by operator, against the stored one.
	next := make([]setEntry, 0, len(eligible))
	for _, v := range eligible {
		next = append(next, setEntry{op: addr.MustParse(v.Operator), power: int64(v.Tokens / stakingpb.PowerReduction), pubkey: v.ConsensusPubkey})
	}
	slices.SortFunc(next, func(a, b setEntry) int { return bytes.Compare(a.op[:], b.op[:]) })
	var updates []abci.ValidatorUpdate
	last := lastSet(ctx.KV)
	// A validator that rotated its key leaves consensus under the old
	// one and, if it still ranks, joins under the new one below.
	rotated := map[addr.Address]bool{}
	for _, r := range rotations(ctx.KV) {
		ctx.KV.Delete(key(rotatedPrefix, r.op[:]))
		for i := range last {
			if last[i].op == r.op {
				updates = append(updates, validatorUpdate(r.pubkey, 0))
				ctx.KV.Delete(key(setPrefix, r.op[:]))
				rotated[r.op] = true
				v, _ := GetValidator(ctx.KV, r.op)
				v.Power = 0 // until it joins again under its new key, below
				putValidator(ctx.KV, v)
			}
		}
	}
	last = slices.DeleteFunc(last, func(e setEntry) bool { return rotated[e.op] })
	i, j := 0, 0
	for i < len(last) || j < len(next) {
		switch {
		case j == len(next) || (i < len(last) && bytes.Compare(last[i].op[:], next[j].op[:]) < 0):
			// Left the set.
			v, _ := GetValidator(ctx.KV, last[i].op)
			updates = append(updates, validatorUpdate(v.ConsensusPubkey, 0))
			ctx.KV.Delete(key(setPrefix, last[i].op[:]))
			v.Power = 0
			putValidator(ctx.KV, v)
			ctx.Emit("validator_left", module.Key("validator", v.Operator))
			i++
		case i == len(last) || bytes.Compare(next[j].op[:], last[i].op[:]) < 0:
			// Joined it: its liveness is counted from now.
			n := next[j]
			updates = append(updates, validatorUpdate(n.pubkey, n.power))
			ctx.KV.Set(key(setPrefix, n.op[:]), u64(uint64(n.power)))
			resetSigning(ctx, n.op)
			v, _ := GetValidator(ctx.KV, n.op)
			v.Power = n.power
			putValidator(ctx.KV, v)
			ctx.Emit("validator_joined", module.Key("validator", v.Operator), module.Val("power", module.U64(uint64(n.power))))
			j++
		default:
			if last[i].power != next[j].power {
				n := next[j]
				updates = append(updates, validatorUpdate(n.pubkey, n.power))
				ctx.KV.Set(key(setPrefix, n.op[:]), u64(uint64(n.power)))
				v, _ := GetValidator(ctx.KV, n.op)
				v.Power = n.power
				putValidator(ctx.KV, v)
			}
			i++
			j++
		}
	}
	return updates, nil
}

func validatorUpdate(pubkey []byte, power int64) abci.ValidatorUpdate {
	return abci.Ed25519ValidatorUpdate(pubkey, power)
}

type setEntry struct {
	op     addr.Address
	power  int64
	pubkey []byte
}

func lastSet(kv store.Reader) []setEntry {
	it := kv.Iterator(setPrefix, store.PrefixEnd(setPrefix))
	defer it.Close()
	var out []setEntry
	for ; it.Valid(); it.Next() {
		var op addr.Address
		copy(op[:], it.Key()[len(setPrefix):])
		out = append(out, setEntry{op: op, power: int64(binary.BigEndian.Uint64(it.Value()))})
	}
	return out
}

// completeEntries pays out the undelegations and ends the redelegations
// that complete at this height.
func completeEntries(ctx *module.Context) error {
	end := key(undQueuePrefix, u64(uint64(ctx.Height+1)))
	var due []*stakingpb.Undelegation
	it := ctx.KV.Iterator(undQueuePrefix, end)
	for ; it.Valid(); it.Next() {
		u := &stakingpb.Undelegation{}
		module.MustUnmarshal(it.Value(), u)
		due = append(due, u)
	}
	it.Close()
	for _, u := range due {
		deleteUndelegation(ctx.KV, u)
		if u.Amount == 0 {
			continue
		}
		undelegatingOwed.Sub(ctx.KV, coin.Native, u.Amount)
		d := addr.MustParse(u.Delegator)
		if err := bank.Send(ctx, stakingpb.UndelegatingPool, d, nativeCoins(u.Amount)); err != nil {
			return fmt.Errorf("staking: pay out undelegation of %s: %w", d, err)
		}
		ctx.Emit("undelegated", module.Key("delegator", u.Delegator), module.Key("validator", u.Validator), module.Val("amount", module.U64(u.Amount)+coin.Native))
	}
	end = key(redQueuePrefix, u64(uint64(ctx.Height+1)))
	var redone []*stakingpb.Redelegation
	it = ctx.KV.Iterator(redQueuePrefix, end)
	for ; it.Valid(); it.Next() {
		r := &stakingpb.Redelegation{}
		module.MustUnmarshal(it.Value(), r)
		redone = append(redone, r)
	}
	it.Close()
	for _, r := range redone {
		deleteRedelegation(ctx.KV, r)
	}
	return nil
}

// rotations lists the validators whose consensus key changed since
// consensus was last told, with the key it knows them by.
func rotations(kv store.Reader) []setEntry {
	it := kv.Iterator(rotatedPrefix, store.PrefixEnd(rotatedPrefix))
	defer it.Close()
	var out []setEntry
	for ; it.Valid(); it.Next() {
		var op addr.Address
		copy(op[:], it.Key()[len(rotatedPrefix):])
		out = append(out, setEntry{op: op, pubkey: append([]byte(nil), it.Value()...)})
	}
	return out
}

// SetMember is a validator in the set consensus was last told.
type SetMember struct {
	Operator addr.Address
	Pubkey   []byte // ed25519
	Power    int64
}

// ConsensusSet is the set consensus was last told, by operator address;
// empty on a chain of fixed validators. An exported genesis lists it.
func ConsensusSet(kv store.Reader) []SetMember {
	var out []SetMember
	for _, e := range lastSet(kv) {
		v, _ := GetValidator(kv, e.op)
		out = append(out, SetMember{Operator: e.op, Pubkey: v.ConsensusPubkey, Power: e.power})
	}
	return out
}
