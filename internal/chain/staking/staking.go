// Package staking keeps the uagr that accounts put at stake: bonding,
// unbonding after a delay, and the slashing that other modules call when
// a staker is proven to have cheated or gone missing.
//
// Stake that is unbonding can still be slashed until it is paid out, so
// leaving does not escape a penalty for what was done before.
package staking

import (
	"encoding/binary"
	"fmt"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/bank"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/escrow"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/staking/stakingpb"
	"github.com/agoranet/agora/internal/chain/store"
)

var (
	stakePrefix  = []byte("staking/s/")
	queuePrefix  = []byte("staking/q/")    // completes_at | staker -> Unbonding
	byAcctPrefix = []byte("staking/qa/")   // staker | completes_at -> nil
	holdPrefix   = []byte("staking/h/")    // staker -> height its unbonding may not complete before
	needPrefix   = []byte("staking/need/") // staker | module -> the bond that module's registration needs
	paramsKey    = []byte("staking/params")
)

func stakeKey(a addr.Address) []byte { return append(append([]byte(nil), stakePrefix...), a[:]...) }

func be(n int64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(n))
	return b[:]
}

func queueKey(at int64, a addr.Address) []byte {
	k := append(append([]byte(nil), queuePrefix...), be(at)...)
	return append(k, a[:]...)
}

func holdKey(a addr.Address) []byte { return append(append([]byte(nil), holdPrefix...), a[:]...) }

func byAcctKey(a addr.Address, at int64) []byte {
	k := append(append([]byte(nil), byAcctPrefix...), a[:]...)
	return append(k, be(at)...)
}

// GetParams reads the params.
func GetParams(kv store.Reader) *stakingpb.Params {
	v := kv.Get(paramsKey)
	if v == nil {
		return stakingpb.DefaultParams()
	}
	p := &stakingpb.Params{}
	module.MustUnmarshal(v, p)
	return p
}

// Get returns a's stake record (zero if none).
func Get(kv store.Reader, a addr.Address) *stakingpb.Stake {
	s := &stakingpb.Stake{Staker: a.String()}
	if v := kv.Get(stakeKey(a)); v != nil {
		module.MustUnmarshal(v, s)
	}
	return s
}

func put(kv store.KV, a addr.Address, s *stakingpb.Stake) {
	if s.Bonded == 0 && s.Unbonding == 0 && s.JailedUntil == 0 && s.Slashed == 0 && s.Required == 0 {
		kv.Delete(stakeKey(a))
		return
	}
	kv.Set(stakeKey(a), module.MustMarshal(s))
}

// Bonded returns a's bonded stake.
func Bonded(kv store.Reader, a addr.Address) uint64 { return Get(kv, a).Bonded }

// JailedUntil returns the height until which a is jailed, or 0 if it is
// not jailed at height now.
func JailedUntil(kv store.Reader, a addr.Address, now int64) int64 {
	if j := Get(kv, a).JailedUntil; j > now {
		return j
	}
	return 0
}

// Bond moves amount uagr from a into stake.
func Bond(ctx *module.Context, a addr.Address, amount uint64) error {
	if err := bank.Send(ctx, a, stakingpb.BondedPool, []*coin.Coin{coin.New(coin.Native, amount)}); err != nil {
		return fmt.Errorf("staking: bond: %w", err)
	}
	s := Get(ctx.KV, a)
	n, err := coin.Add(s.Bonded, amount)
	if err != nil {
		return err
	}
	s.Bonded = n
	put(ctx.KV, a, s)
	if err := bondedOwed.Add(ctx.KV, coin.Native, amount); err != nil {
		return err
	}
	ctx.Emit("bond", module.Key("staker", a.String()), module.Val("amount", module.U64(amount)+coin.Native))
	return nil
}

// Unbond starts returning amount of a's bonded stake; it is paid out at
// the end of the block unbonding_blocks from now.
func Unbond(ctx *module.Context, a addr.Address, amount uint64) error {
	s := Get(ctx.KV, a)
	if s.Bonded < amount {
		return fmt.Errorf("staking: %s has %duagr bonded, cannot unbond %d: %w", a, s.Bonded, amount, codes.ErrInsufficientStake)
	}
	if s.Bonded-amount < s.Required {
		return fmt.Errorf("staking: %s's registration needs %duagr bonded; it may unbond at most %d of its %d (deregister first to unbond it all): %w",
			a, s.Required, s.Bonded-min(s.Bonded, s.Required), s.Bonded, codes.ErrStakeBacksService)
	}
	return unbond(ctx, a, s, amount)
}

// SetRequired records the bond a's registration with module by (a
// provider, a storage node) needs; Unbond will not take bonded stake below
// the sum over a's registrations, each obligation being backed on its
// own. 0 releases by's part.
func SetRequired(ctx *module.Context, a addr.Address, by string, amount uint64) {
	k := append(append(append([]byte(nil), needPrefix...), a[:]...), by...)
	if amount == 0 {
		ctx.KV.Delete(k)
	} else {
		ctx.KV.Set(k, be(int64(amount)))
	}
	start := append(append([]byte(nil), needPrefix...), a[:]...)
	it := ctx.KV.Iterator(start, store.PrefixEnd(start))
	var total uint64
	for ; it.Valid(); it.Next() {
		n := binary.BigEndian.Uint64(it.Value())
		total = min(total+n, ^uint64(0)>>1) // saturating: no module asks near 2^63
	}
	it.Close()
	s := Get(ctx.KV, a)
	s.Required = total
	put(ctx.KV, a, s)
}

// Required is the bond a's registration with module by needs.
func Required(kv store.Reader, a addr.Address, by string) uint64 {
	v := kv.Get(append(append(append([]byte(nil), needPrefix...), a[:]...), by...))
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// HoldUntil keeps a's stake slashable until height: stake it unbonds
// completes no earlier. Modules call it for obligations that outlive the
// unbonding period: a deregistered provider's receipts stay challengeable
// for the challenge window, a committee member's vote is due at the end of
// the reveal window, a lessee's result can be disputed after its deadline.
// A later hold never shortens an earlier one.
func HoldUntil(ctx *module.Context, a addr.Address, height int64) {
	if height <= heldUntil(ctx, a) {
		return
	}
	ctx.KV.Set(holdKey(a), be(height))
}

// heldUntil is a's hold, forgetting it once it has passed.
func heldUntil(ctx *module.Context, a addr.Address) int64 {
	k := holdKey(a)
	v := ctx.KV.Get(k)
	if v == nil {
		return 0
	}
	h := int64(binary.BigEndian.Uint64(v))
	if h <= ctx.Height {
		ctx.KV.Delete(k)
		return 0
	}
	return h
}

// UnbondAll releases a's registration and starts unbonding all its bonded
// stake: for an agent its owner revokes (the payout then reaches the
// owner; see agent.Restrict). Slashing still applies while it unbonds.
func UnbondAll(ctx *module.Context, a addr.Address) error {
	start := append(append([]byte(nil), needPrefix...), a[:]...)
	it := ctx.KV.Iterator(start, store.PrefixEnd(start))
	var keys [][]byte
	for ; it.Valid(); it.Next() {
		keys = append(keys, append([]byte(nil), it.Key()...))
	}
	it.Close()
	for _, k := range keys {
		ctx.KV.Delete(k)
	}
	s := Get(ctx.KV, a)
	s.Required = 0
	if s.Bonded == 0 {
		put(ctx.KV, a, s)
		return nil
	}
	return unbond(ctx, a, s, s.Bonded)
}

func unbond(ctx *module.Context, a addr.Address, s *stakingpb.Stake, amount uint64) error {
	if err := bank.Send(ctx, stakingpb.BondedPool, stakingpb.UnbondingPool, []*coin.Coin{coin.New(coin.Native, amount)}); err != nil {
		return fmt.Errorf("staking: unbond: %w", err)
	}
	s.Bonded -= amount
	s.Unbonding += amount
	put(ctx.KV, a, s)
	bondedOwed.Sub(ctx.KV, coin.Native, amount)
	if err := unbondingOwed.Add(ctx.KV, coin.Native, amount); err != nil {
		return err
	}
	at := max(ctx.Height+GetParams(ctx.KV).UnbondingBlocks, heldUntil(ctx, a))
	u := &stakingpb.Unbonding{Staker: a.String(), CompletesAt: at}
	if v := ctx.KV.Get(queueKey(at, a)); v != nil {
		module.MustUnmarshal(v, u)
	}
	u.Amount += amount
	ctx.KV.Set(queueKey(at, a), module.MustMarshal(u))
	ctx.KV.Set(byAcctKey(a, at), []byte{})
	ctx.Emit("unbond", module.Key("staker", a.String()), module.Val("amount", module.U64(amount)+coin.Native), module.Val("completes_at", module.U64(uint64(at))))
	return nil
}

// Unbondings lists a's stake on its way back, earliest first.
func Unbondings(kv store.Reader, a addr.Address) []*stakingpb.Unbonding {
	prefix := byAcctKey(a, 0)[:len(byAcctPrefix)+addr.Len]
	it := kv.Iterator(prefix, store.PrefixEnd(prefix))
	defer it.Close()
	var out []*stakingpb.Unbonding
	for ; it.Valid(); it.Next() {
		at := int64(binary.BigEndian.Uint64(it.Key()[len(prefix):]))
		u := &stakingpb.Unbonding{}
		module.MustUnmarshal(kv.Get(queueKey(at, a)), u)
		out = append(out, u)
	}
	return out
}

// onSlash is told of every slash, after it: the provider module takes a
// provider whose stake fell below the minimum out of routing at once.
var onSlash func(ctx *module.Context, a addr.Address)

// OnSlash installs the slash hook. The app installs it at start-up;
// modules never call it.
func OnSlash(fn func(ctx *module.Context, a addr.Address)) { onSlash = fn }

// SlashTo is Slash that pays rewardBps of what it takes to beneficiary
// (a challenger who proved the cheat) and burns the rest.
func SlashTo(ctx *module.Context, a addr.Address, bps uint32, jailBlocks int64, reason string, beneficiary addr.Address, rewardBps uint32) (uint64, error) {
	return slash(ctx, a, bps, jailBlocks, reason, beneficiary, rewardBps)
}

// Slash burns bps/10000 of a's bonded and unbonding stake and jails a for
// jailBlocks. It returns what was taken. Other modules call it when a
// staker is proven to have cheated (reason says what for).
func Slash(ctx *module.Context, a addr.Address, bps uint32, jailBlocks int64, reason string) (uint64, error) {
	return slash(ctx, a, bps, jailBlocks, reason, addr.Address{}, 0)
}

func slash(ctx *module.Context, a addr.Address, bps uint32, jailBlocks int64, reason string, beneficiary addr.Address, rewardBps uint32) (uint64, error) {
	if bps > stakingpb.BPS || rewardBps > stakingpb.BPS {
		return 0, fmt.Errorf("staking: slash of %d bps (reward %d bps) is over 100%%: %w", bps, rewardBps, codes.ErrInvalidRequest)
	}
	s := Get(ctx.KV, a)
	cut := func(n uint64, bps uint32) uint64 {
		return n/stakingpb.BPS*uint64(bps) + n%stakingpb.BPS*uint64(bps)/stakingpb.BPS
	}
	// What is taken from each pool: bonded stake, then each unbonding entry.
	fromBonded := cut(s.Bonded, bps)
	s.Bonded -= fromBonded
	fromUnbonding := uint64(0)
	for _, u := range Unbondings(ctx.KV, a) {
		c := cut(u.Amount, bps)
		if c == 0 {
			continue
		}
		u.Amount -= c
		s.Unbonding -= c
		fromUnbonding += c
		ctx.KV.Set(queueKey(u.CompletesAt, a), module.MustMarshal(u))
	}
	taken := fromBonded + fromUnbonding
	bondedOwed.Sub(ctx.KV, coin.Native, fromBonded)
	unbondingOwed.Sub(ctx.KV, coin.Native, fromUnbonding)
	// A beneficiary's reward is paid out of what was taken, bonded pool
	// first; the rest is burned.
	reward := uint64(0)
	if !beneficiary.IsZero() {
		reward = cut(taken, rewardBps)
	}
	// A slashed agent's stake is its owner's: it reaches the beneficiary
	// only if the agent's policy would let it pay them, and is burned with
	// the rest otherwise, so an agent cannot pay an accomplice by lying.
	if reward > 0 {
		if err := bank.Allows(ctx, bank.Transfer{From: a, To: beneficiary, Coins: []*coin.Coin{coin.New(coin.Native, reward)}, Reward: true}); err != nil {
			ctx.Emit("slash_reward_withheld", module.Key("staker", a.String()), module.Key("beneficiary", beneficiary.String()), module.Val("reason", err.Error()))
			reward = 0
		}
	}
	pay := func(pool addr.Address, amount uint64) error {
		r := min(reward, amount)
		if r > 0 {
			if err := bank.Send(ctx, pool, beneficiary, []*coin.Coin{coin.New(coin.Native, r)}); err != nil {
				return err
			}
			reward -= r
		}
		if amount-r > 0 {
			return bank.Burn(ctx, pool, coin.New(coin.Native, amount-r))
		}
		return nil
	}
	if err := pay(stakingpb.BondedPool, fromBonded); err != nil {
		return 0, fmt.Errorf("staking: slash: %w", err)
	}
	if err := pay(stakingpb.UnbondingPool, fromUnbonding); err != nil {
		return 0, fmt.Errorf("staking: slash: %w", err)
	}
	s.Slashed += taken
	if until := ctx.Height + jailBlocks; jailBlocks > 0 && until > s.JailedUntil {
		s.JailedUntil = until
	}
	put(ctx.KV, a, s)
	ctx.Emit("slash", module.Key("staker", a.String()), module.Val("taken", module.U64(taken)+coin.Native),
		module.Val("bps", module.U64(uint64(bps))), module.Val("jailed_until", module.U64(uint64(s.JailedUntil))), module.Key("reason", reason))
	if onSlash != nil {
		onSlash(ctx, a)
	}
	return taken, nil
}

// EndBlock pays the block's rewards, then out the unbondings, undelegations
// and redelegations that complete at this height.
func (Module) EndBlock(ctx *module.Context) error {
	if err := distribute(ctx); err != nil {
		return err
	}
	if err := completeEntries(ctx); err != nil {
		return err
	}
	return completeUnbondings(ctx)
}

// completeUnbondings pays out the providers' unbondings that complete at
// this height.
func completeUnbondings(ctx *module.Context) error {
	end := queueKey(ctx.Height+1, addr.Address{})
	it := ctx.KV.Iterator(queuePrefix, end)
	var due []*stakingpb.Unbonding
	var keys [][]byte
	for ; it.Valid(); it.Next() {
		u := &stakingpb.Unbonding{}
		module.MustUnmarshal(it.Value(), u)
		due = append(due, u)
		keys = append(keys, append([]byte(nil), it.Key()...))
	}
	it.Close()
	for i, u := range due {
		a := addr.MustParse(u.Staker)
		ctx.KV.Delete(keys[i])
		ctx.KV.Delete(byAcctKey(a, u.CompletesAt))
		s := Get(ctx.KV, a)
		s.Unbonding -= u.Amount
		put(ctx.KV, a, s)
		if u.Amount == 0 {
			continue
		}
		unbondingOwed.Sub(ctx.KV, coin.Native, u.Amount)
		if err := bank.Send(ctx, stakingpb.UnbondingPool, a, []*coin.Coin{coin.New(coin.Native, u.Amount)}); err != nil {
			return fmt.Errorf("staking: pay out unbonding of %s: %w", a, err)
		}
		ctx.Emit("unbonded", module.Key("staker", a.String()), module.Val("amount", module.U64(u.Amount)+coin.Native))
	}
	return nil
}

// What the pools owe: the bonded pool every staker's bonded stake, the
// unbonding pool every unbonding entry.
var (
	bondedOwed    = escrow.NewOwed("staking/bonded_owed/")
	unbondingOwed = escrow.NewOwed("staking/unbonding_owed/")
)

// Solvent is the end-of-block check: each pool holds at least what it owes.
func Solvent(kv store.Reader) error {
	if err := bondedOwed.Covered(kv, stakingpb.BondedPool, "staking bonded pool"); err != nil {
		return err
	}
	if err := delegatedOwed.Covered(kv, stakingpb.DelegatedPool, "staking delegated pool"); err != nil {
		return err
	}
	if err := undelegatingOwed.Covered(kv, stakingpb.UndelegatingPool, "staking undelegating pool"); err != nil {
		return err
	}
	if err := rewardsOwed.Covered(kv, stakingpb.RewardsPool, "staking rewards pool"); err != nil {
		return err
	}
	return unbondingOwed.Covered(kv, stakingpb.UnbondingPool, "staking unbonding pool")
}

// CheckInvariant is the full check, for tests: the stake records add up
// to the running totals, which the pools hold.
func CheckInvariant(kv store.Reader) error {
	var bonded, unbonding uint64
	it := kv.Iterator(stakePrefix, store.PrefixEnd(stakePrefix))
	for ; it.Valid(); it.Next() {
		st := &stakingpb.Stake{}
		module.MustUnmarshal(it.Value(), st)
		bonded += st.Bonded
		unbonding += st.Unbonding
	}
	it.Close()
	if bonded != bondedOwed.Of(kv, coin.Native) || unbonding != unbondingOwed.Of(kv, coin.Native) {
		return fmt.Errorf("staking: stake records hold %d bonded and %d unbonding, the running totals say %d and %d",
			bonded, unbonding, bondedOwed.Of(kv, coin.Native), unbondingOwed.Of(kv, coin.Native))
	}
	if err := bondedOwed.Exact(kv, stakingpb.BondedPool, "staking bonded pool"); err != nil {
		return err
	}
	if err := unbondingOwed.Exact(kv, stakingpb.UnbondingPool, "staking unbonding pool"); err != nil {
		return err
	}
	return checkValidators(kv)
}

// checkValidators is the full check of the validator pools: tokens add
// up to the delegated pool, each validator's shares to its delegations,
// undelegations to the undelegating pool, and no delegation is owed more
// rewards than the rewards pool holds.
func checkValidators(kv store.Reader) error {
	var tokens, pending uint64
	for _, v := range Validators(kv) {
		tokens += v.Tokens
		pending += v.Commission
		op := addr.MustParse(v.Operator)
		var shares uint64
		for _, d := range Delegators(kv, op) {
			del, ok := GetDelegation(kv, d, op)
			if !ok {
				return fmt.Errorf("staking: validator %s lists delegator %s, who has no delegation to it", op, d)
			}
			shares += del.Shares
			pending += PendingRewards(v, del)
		}
		if shares != v.Shares {
			return fmt.Errorf("staking: validator %s has %d shares, its delegations %d", op, v.Shares, shares)
		}
	}
	if tokens != delegatedOwed.Of(kv, coin.Native) {
		return fmt.Errorf("staking: validators hold %d tokens, the running total says %d", tokens, delegatedOwed.Of(kv, coin.Native))
	}
	var und uint64
	it := kv.Iterator(undQueuePrefix, store.PrefixEnd(undQueuePrefix))
	for ; it.Valid(); it.Next() {
		u := &stakingpb.Undelegation{}
		module.MustUnmarshal(it.Value(), u)
		und += u.Amount
	}
	it.Close()
	if und != undelegatingOwed.Of(kv, coin.Native) {
		return fmt.Errorf("staking: undelegations hold %d, the running total says %d", und, undelegatingOwed.Of(kv, coin.Native))
	}
	if pending+getU64(kv, unallocatedKey) > rewardsOwed.Of(kv, coin.Native) {
		return fmt.Errorf("staking: %d of rewards and commission are withdrawable and %d unallocated, more than the %d the rewards pool owes",
			pending, getU64(kv, unallocatedKey), rewardsOwed.Of(kv, coin.Native))
	}
	if err := delegatedOwed.Exact(kv, stakingpb.DelegatedPool, "staking delegated pool"); err != nil {
		return err
	}
	if err := undelegatingOwed.Exact(kv, stakingpb.UndelegatingPool, "staking undelegating pool"); err != nil {
		return err
	}
	return rewardsOwed.Exact(kv, stakingpb.RewardsPool, "staking rewards pool")
}

// AttributeRequired records every stake's Required, from before
// registrations were counted per module, as module by's: the
// storage-v1 upgrade's migration, when only providers required stake.
func AttributeRequired(ctx *module.Context, by string) {
	it := ctx.KV.Iterator(stakePrefix, store.PrefixEnd(stakePrefix))
	var needs []*stakingpb.Stake
	for ; it.Valid(); it.Next() {
		s := &stakingpb.Stake{}
		module.MustUnmarshal(it.Value(), s)
		if s.Required > 0 {
			needs = append(needs, s)
		}
	}
	it.Close()
	for _, s := range needs {
		SetRequired(ctx, addr.MustParse(s.Staker), by, s.Required)
	}
}
