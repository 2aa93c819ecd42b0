package staking

import (
	"fmt"

	abci "github.com/cometbft/cometbft/abci/types"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/bank"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/staking/stakingpb"
	"github.com/agoranet/agora/internal/chain/store"
)

// forever is the jail of a tombstoned validator.
const forever = 1<<63 - 1

// BeginBlock judges the validators: double-signing evidence that
// consensus verified, then who signed the last block.
func (Module) BeginBlock(ctx *module.Context) error {
	for _, mb := range ctx.Misbehavior {
		if err := doubleSign(ctx, mb); err != nil {
			return err
		}
	}
	for _, vote := range ctx.Votes {
		if err := liveness(ctx, vote); err != nil {
			return err
		}
	}
	return nil
}

// doubleSign slashes and tombstones the validator that signed two blocks
// at one height (or attacked a light client). It never validates again;
// its delegators may undelegate what is left.
func doubleSign(ctx *module.Context, mb abci.Misbehavior) error {
	v, ok := ValidatorByConsAddress(ctx.KV, mb.Validator.Address)
	if !ok || v.Tombstoned {
		return nil // not ours, or already punished: one tombstone per validator
	}
	if _, err := slashValidator(ctx, v, mb.Height, mb.Validator.Power, GetParams(ctx.KV).DoubleSignBps, "double_sign"); err != nil {
		return err
	}
	v, _ = GetValidator(ctx.KV, addr.MustParse(v.Operator))
	v.Tombstoned = true
	jail(ctx, v, forever)
	ctx.Emit("tombstone", module.Key("validator", v.Operator), module.Val("infraction_height", module.U64(uint64(mb.Height))))
	return nil
}

// Penalize slashes bps of the stake op's validator had at the infraction
// height (its power then; 0 for its stake now) and jails it for
// jailBlocks: the duties validators owe other modules (the beacon's
// reveals) are enforced here, reaching stake that has left since the
// infraction as the evidence of a double sign does. A tombstoned
// validator has answered already.
func Penalize(ctx *module.Context, op addr.Address, infraction, power int64, bps uint32, jailBlocks int64, reason string) error {
	v, ok := GetValidator(ctx.KV, op)
	if !ok || v.Tombstoned {
		return nil
	}
	burned, err := slashValidator(ctx, v, infraction, power, bps, reason)
	if err != nil {
		return err
	}
	v, _ = GetValidator(ctx.KV, op)
	if jailBlocks > 0 {
		jail(ctx, v, ctx.Height+jailBlocks)
	}
	ctx.Emit("penalty", module.Key("validator", v.Operator), module.Val("reason", reason), module.Val("burned", module.U64(burned)),
		module.Val("jailed_until", module.U64(uint64(v.JailedUntil))))
	return nil
}

func signingOf(kv store.Reader, op addr.Address) *stakingpb.Signing {
	s := &stakingpb.Signing{}
	if b := kv.Get(key(signPrefix, op[:])); b != nil {
		module.MustUnmarshal(b, s)
	}
	return s
}

// Signing returns a validator's liveness record.
func Signing(kv store.Reader, op addr.Address) *stakingpb.Signing { return signingOf(kv, op) }

func resetSigning(ctx *module.Context, op addr.Address) {
	p := key(missPrefix, op[:])
	var slots [][]byte
	it := ctx.KV.Iterator(p, store.PrefixEnd(p))
	for ; it.Valid(); it.Next() {
		slots = append(slots, append([]byte(nil), it.Key()...))
	}
	it.Close()
	for _, k := range slots {
		ctx.KV.Delete(k)
	}
	ctx.KV.Set(key(signPrefix, op[:]), module.MustMarshal(&stakingpb.Signing{StartHeight: ctx.Height}))
}

// restartWindows forgets every validator's missed blocks, for a new
// window length: each is counted afresh from the next block.
func restartWindows(kv store.KV) {
	var keys [][]byte
	for _, p := range [][]byte{missPrefix, signPrefix} {
		it := kv.Iterator(p, store.PrefixEnd(p))
		for ; it.Valid(); it.Next() {
			keys = append(keys, append([]byte(nil), it.Key()...))
		}
		it.Close()
	}
	for _, k := range keys {
		kv.Delete(k)
	}
}

// liveness counts one vote of the last commit into its validator's window;
// a validator that has missed too many of the window is slashed a little
// and jailed.
func liveness(ctx *module.Context, vote abci.VoteInfo) error {
	v, ok := ValidatorByConsAddress(ctx.KV, vote.Validator.Address)
	if !ok || v.Jailed || v.Tombstoned {
		return nil // already out; consensus lags the set by two blocks
	}
	p := GetParams(ctx.KV)
	op := addr.MustParse(v.Operator)
	s := signingOf(ctx.KV, op)
	slot := key(missPrefix, op[:], u64(uint64(s.Index%p.SignedBlocksWindow)))
	missed := vote.BlockIdFlag == cmtproto.BlockIDFlagAbsent
	was := ctx.KV.Get(slot) != nil
	switch {
	case missed && !was:
		ctx.KV.Set(slot, []byte{})
		s.Missed++
	case !missed && was:
		ctx.KV.Delete(slot)
		s.Missed--
	}
	s.Index++
	allowed := p.SignedBlocksWindow - p.SignedBlocksWindow*int64(p.MinSignedBps)/stakingpb.BPS
	if s.Index >= p.SignedBlocksWindow && s.Missed > allowed {
		missedN := s.Missed
		if _, err := slashValidator(ctx, v, ctx.Height-1, v.Power, p.DowntimeBps, "downtime"); err != nil {
			return err
		}
		v, _ = GetValidator(ctx.KV, op)
		jail(ctx, v, ctx.Height+p.DowntimeJailBlocks)
		resetSigning(ctx, op)
		ctx.Emit("jail", module.Key("validator", v.Operator), module.Val("missed", module.U64(uint64(missedN))),
			module.Val("window", module.U64(uint64(p.SignedBlocksWindow))), module.Val("jailed_until", module.U64(uint64(v.JailedUntil))))
		return nil
	}
	ctx.KV.Set(key(signPrefix, op[:]), module.MustMarshal(s))
	return nil
}

// slashValidator burns bps of the stake that signed for v at the
// infraction height: power units of it, as consensus counted them there
// (0: as many as v has tokens now). CometBFT applies the validator updates
// of a block two blocks later, so stake that left v in the block before
// the infraction still signed it: the undelegations from v and the
// redelegations out of it begun since then answer first, then v's tokens
// for the rest. Stake that joined after the infraction thus pays only in
// proportion, and stake that left just before cannot escape.
func slashValidator(ctx *module.Context, v *stakingpb.Validator, infraction, power int64, bps uint32, reason string) (uint64, error) {
	op := addr.MustParse(v.Operator)
	burn := func(pool addr.Address, n uint64) error {
		if n == 0 {
			return nil
		}
		return bank.Burn(ctx, pool, coin.New(coin.Native, n))
	}
	signed := v.Tokens
	if power > 0 {
		signed = uint64(power) * stakingpb.PowerReduction
	}
	owed := cutBps(signed, bps)
	since := infraction - 1
	var taken uint64
	for _, u := range entries[stakingpb.Undelegation](ctx.KV, undByValPrefix, op, undQueuePrefix) {
		if u.CreatedAt < since {
			continue
		}
		c := cutBps(u.Amount, bps)
		u.Amount -= c
		putUndelegation(ctx.KV, u)
		undelegatingOwed.Sub(ctx.KV, coin.Native, c)
		if err := burn(stakingpb.UndelegatingPool, c); err != nil {
			return 0, fmt.Errorf("staking: slash %s: %w", op, err)
		}
		taken += c
	}
	for _, r := range entries[stakingpb.Redelegation](ctx.KV, redBySrcPrefix, op, redQueuePrefix) {
		if r.CreatedAt < since {
			continue
		}
		c, err := slashRedelegation(ctx, r, cutBps(r.Amount, bps))
		if err != nil {
			return 0, fmt.Errorf("staking: slash %s: %w", op, err)
		}
		taken += c
	}
	v, _ = GetValidator(ctx.KV, op)
	fromTokens := min(owed-min(owed, taken), v.Tokens)
	v.Tokens -= fromTokens
	delegatedOwed.Sub(ctx.KV, coin.Native, fromTokens)
	if err := burn(stakingpb.DelegatedPool, fromTokens); err != nil {
		return 0, fmt.Errorf("staking: slash %s: %w", op, err)
	}
	taken += fromTokens
	v.Slashed += taken
	putValidator(ctx.KV, v)
	ctx.Emit("slash_validator", module.Key("validator", v.Operator), module.Key("reason", reason),
		module.Val("taken", module.U64(taken)+coin.Native), module.Val("bps", module.U64(uint64(bps))),
		module.Val("infraction_height", module.U64(uint64(infraction))))
	return taken, nil
}

// slashRedelegation burns up to amount of what r moved: from the
// delegator's stake at the destination, and for what has since left it,
// from the delegator's undelegations out of the destination begun since
// the move (a redelegation followed by an undelegation must not outrun
// the source's slash).
func slashRedelegation(ctx *module.Context, r *stakingpb.Redelegation, amount uint64) (uint64, error) {
	d, dst := addr.MustParse(r.Delegator), addr.MustParse(r.Dst)
	var taken uint64
	v, ok := GetValidator(ctx.KV, dst)
	del, okDel := GetDelegation(ctx.KV, d, dst)
	if ok && okDel && v.Shares > 0 && v.Tokens > 0 && amount > 0 {
		if err := settle(ctx, v, del); err != nil {
			return 0, err
		}
		shares, _ := mulDivUp(amount, v.Shares, v.Tokens)
		shares = min(shares, del.Shares, r.Shares)
		tokens := TokensOf(v, shares)
		del.Shares -= shares
		setShares(v, v.Shares-shares)
		v.Tokens -= tokens
		r.Shares -= shares
		putDelegation(ctx.KV, del)
		putValidator(ctx.KV, v)
		putRedelegation(ctx.KV, r)
		delegatedOwed.Sub(ctx.KV, coin.Native, tokens)
		if tokens > 0 {
			if err := bank.Burn(ctx, stakingpb.DelegatedPool, coin.New(coin.Native, tokens)); err != nil {
				return 0, err
			}
		}
		taken = tokens
	}
	for _, u := range Undelegations(ctx.KV, d) {
		if taken >= amount {
			break
		}
		if u.Validator != r.Dst || u.CreatedAt < r.CreatedAt {
			continue
		}
		c := min(amount-taken, u.Amount)
		u.Amount -= c
		putUndelegation(ctx.KV, u)
		undelegatingOwed.Sub(ctx.KV, coin.Native, c)
		if c > 0 {
			if err := bank.Burn(ctx, stakingpb.UndelegatingPool, coin.New(coin.Native, c)); err != nil {
				return 0, err
			}
		}
		taken += c
	}
	return taken, nil
}
