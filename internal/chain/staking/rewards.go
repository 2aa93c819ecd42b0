package staking

import (
	"encoding/binary"
	"fmt"
	"math/big"

	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/auth/authpb"
	"github.com/agoranet/agora/internal/chain/bank"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/staking/stakingpb"
	"github.com/agoranet/agora/internal/chain/store"
)

// Rewards follow F1 without its slash walk: each validator keeps a
// cumulative reward per share, scaled by rewardScale and held exactly as
// reward_per_share + reward_remainder / shares, and a delegation is owed
// shares × (now − when it last settled) / rewardScale, rounded down once.
// A slash lowers tokens, never shares, so the ratio stays exact across
// slashes; while a validator's shares do not change a delegator gets
// exactly floor(its shares × rewards / all shares). When shares change,
// the fraction below one scaled unit per share is rescaled to the new
// count, rounding down (less than 10^-27 uagr a share). A block costs one
// update per validator that signed, none per delegator.

// rewardScale is 10^27: a reward of 1uagr over 10^18 shares still moves
// the ratio by 10^9.
var rewardScale = new(big.Int).Exp(big.NewInt(10), big.NewInt(27), nil)

func bigOf(b []byte) *big.Int { return new(big.Int).SetBytes(b) }

func bigU(n uint64) *big.Int { return new(big.Int).SetUint64(n) }

// ratio is acc + rem/den over the common denominator den: (acc·den + rem, den).
func ratio(acc, rem []byte, den uint64) (*big.Int, *big.Int) {
	if den == 0 {
		return bigOf(acc), big.NewInt(1)
	}
	n := new(big.Int).Mul(bigOf(acc), bigU(den))
	return n.Add(n, bigOf(rem)), bigU(den)
}

// PendingRewards is what del can withdraw now, besides any commission.
func PendingRewards(v *stakingpb.Validator, del *stakingpb.Delegation) uint64 {
	nowN, nowD := ratio(v.RewardPerShare, v.RewardRemainder, v.Shares)
	startN, startD := ratio(del.RewardStart, del.RewardStartRemainder, del.RewardStartShares)
	// shares × (nowN/nowD − startN/startD) / scale, rounded down.
	d := new(big.Int).Sub(new(big.Int).Mul(nowN, startD), new(big.Int).Mul(startN, nowD))
	if d.Sign() <= 0 {
		return 0
	}
	d.Mul(d, bigU(del.Shares))
	den := new(big.Int).Mul(nowD, startD)
	d.Quo(d, den.Mul(den, rewardScale))
	return d.Uint64()
}

// restart marks del settled at v's ratio now.
func restart(v *stakingpb.Validator, del *stakingpb.Delegation) {
	del.RewardStart, del.RewardStartRemainder, del.RewardStartShares = v.RewardPerShare, v.RewardRemainder, v.Shares
}

// setShares changes v's share count, rescaling the carried remainder.
func setShares(v *stakingpb.Validator, shares uint64) {
	if v.Shares == 0 || shares == 0 {
		v.RewardRemainder = nil
	} else if shares != v.Shares {
		r := new(big.Int).Mul(bigOf(v.RewardRemainder), bigU(shares))
		v.RewardRemainder = r.Quo(r, bigU(v.Shares)).Bytes()
	}
	v.Shares = shares
}

// settle pays del what it has earned and restarts its count; the caller
// saves del, and must call restart again if it then changes v's shares.
func settle(ctx *module.Context, v *stakingpb.Validator, del *stakingpb.Delegation) error {
	r := PendingRewards(v, del)
	restart(v, del)
	if r == 0 {
		return nil
	}
	rewardsOwed.Sub(ctx.KV, coin.Native, r)
	if err := bank.Send(ctx, stakingpb.RewardsPool, addr.MustParse(del.Delegator), nativeCoins(r)); err != nil {
		return fmt.Errorf("staking: pay rewards: %w", err)
	}
	ctx.Emit("withdraw_rewards", module.Key("delegator", del.Delegator), module.Key("validator", del.Validator), module.Val("amount", module.U64(r)+coin.Native))
	return nil
}

// WithdrawRewards pays d its rewards from its delegation to op, and the
// commission if d is op's operator.
func WithdrawRewards(ctx *module.Context, d, op addr.Address) (*stakingpb.MsgWithdrawRewardsResponse, error) {
	v, ok := GetValidator(ctx.KV, op)
	if !ok {
		return nil, fmt.Errorf("staking: %s operates no validator: %w", op, codes.ErrNotFound)
	}
	resp := &stakingpb.MsgWithdrawRewardsResponse{}
	del, ok := GetDelegation(ctx.KV, d, op)
	if !ok && d != op {
		return nil, fmt.Errorf("staking: %s has no delegation to %s: %w", d, op, codes.ErrNotFound)
	}
	if ok {
		resp.Rewards = PendingRewards(v, del)
		if err := settle(ctx, v, del); err != nil {
			return nil, err
		}
		putDelegation(ctx.KV, del)
	}
	if d == op && v.Commission > 0 {
		resp.Commission, v.Commission = v.Commission, 0
		putValidator(ctx.KV, v)
		rewardsOwed.Sub(ctx.KV, coin.Native, resp.Commission)
		if err := bank.Send(ctx, stakingpb.RewardsPool, op, nativeCoins(resp.Commission)); err != nil {
			return nil, fmt.Errorf("staking: pay commission: %w", err)
		}
		ctx.Emit("withdraw_commission", module.Key("validator", op.String()), module.Val("amount", module.U64(resp.Commission)+coin.Native))
	}
	return resp, nil
}

// credit gives a validator amount of rewards: commission first, the rest
// to its shares. It returns what it could not give (a validator with no
// shares left), for the next block's pot.
func credit(ctx *module.Context, v *stakingpb.Validator, amount uint64) uint64 {
	if amount == 0 {
		return 0
	}
	if v.Shares == 0 {
		return amount
	}
	c := cutBps(amount, v.CommissionBps)
	v.Commission += c
	n := new(big.Int).Mul(new(big.Int).SetUint64(amount-c), rewardScale)
	n.Add(n, bigOf(v.RewardRemainder))
	q, r := new(big.Int).QuoRem(n, new(big.Int).SetUint64(v.Shares), new(big.Int))
	v.RewardPerShare = q.Add(q, bigOf(v.RewardPerShare)).Bytes()
	v.RewardRemainder = r.Bytes()
	putValidator(ctx.KV, v)
	return 0
}

func getU64(kv store.Reader, k []byte) uint64 {
	if v := kv.Get(k); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// Issuance is what a block creates: issuance_per_block, never more than
// the ceiling fixed at genesis (2% of the genesis supply a year).
func Issuance(kv store.Reader) uint64 {
	return min(GetParams(kv).IssuancePerBlock, getU64(kv, ceilingKey))
}

// IssuanceCeilingBps is the most the chain issues in a year, in basis
// points of the supply at genesis.
const IssuanceCeilingBps = 200

func setCeiling(kv store.KV, supply, blockTimeMs uint64) {
	if blockTimeMs == 0 {
		blockTimeMs = 1000
	}
	blocksPerYear := uint64(365*24*3600*1000) / blockTimeMs
	kv.Set(ceilingKey, u64(mulDiv(supply, IssuanceCeilingBps, stakingpb.BPS)/max(blocksPerYear, 1)))
}

// distribute pays the block's fees and issuance (and what earlier blocks
// could not give) to the validators that signed the last block, by
// power, with a bonus to this block's proposer.
func distribute(ctx *module.Context) error {
	if !hasPrefix(ctx.KV, setPrefix) {
		return nil // no validator set of stake (a chain of fixed validators): fees stay in the fee pool
	}
	pot := getU64(ctx.KV, unallocatedKey)
	if fees := bank.Balance(ctx.KV, authpb.FeePool, coin.Native); fees > 0 {
		if err := bank.Send(ctx, authpb.FeePool, stakingpb.RewardsPool, nativeCoins(fees)); err != nil {
			return fmt.Errorf("staking: collect fees: %w", err)
		}
		if err := rewardsOwed.Add(ctx.KV, coin.Native, fees); err != nil {
			return err
		}
		pot += fees
	}
	if n := Issuance(ctx.KV); n > 0 {
		if err := bank.Issue(ctx, stakingpb.RewardsPool, n); err != nil {
			return err
		}
		if err := rewardsOwed.Add(ctx.KV, coin.Native, n); err != nil {
			return err
		}
		pot += n
	}
	if pot == 0 {
		return nil
	}
	type signer struct {
		v     *stakingpb.Validator
		power uint64
	}
	var signers []signer
	var total uint64
	for _, vote := range ctx.Votes {
		if vote.BlockIdFlag == cmtproto.BlockIDFlagAbsent || vote.Validator.Power <= 0 {
			continue
		}
		v, ok := ValidatorByConsAddress(ctx.KV, vote.Validator.Address)
		if !ok || v.Tombstoned {
			continue
		}
		signers = append(signers, signer{v, uint64(vote.Validator.Power)})
		total += uint64(vote.Validator.Power)
	}
	left := pot
	if total > 0 {
		bonus := uint64(0)
		proposer, ok := ValidatorByConsAddress(ctx.KV, ctx.Proposer)
		if ok && !proposer.Tombstoned {
			bonus = cutBps(pot, GetParams(ctx.KV).ProposerBonusBps)
		} else {
			proposer = nil
		}
		rest := pot - bonus
		// Each validator is credited once: its share of the rest, and the
		// bonus if it proposed (so commission is rounded once).
		amounts := make([]uint64, len(signers))
		for i, s := range signers {
			amounts[i] = mulDiv(rest, s.power, total)
		}
		if proposer != nil {
			found := false
			for i, s := range signers {
				if s.v.Operator == proposer.Operator {
					amounts[i] += bonus
					found = true
				}
			}
			if !found {
				signers = append(signers, signer{proposer, 0})
				amounts = append(amounts, bonus)
			}
		}
		for i, s := range signers {
			v, _ := GetValidator(ctx.KV, addr.MustParse(s.v.Operator))
			left -= amounts[i] - credit(ctx, v, amounts[i])
		}
	}
	ctx.KV.Set(unallocatedKey, u64(left))
	ctx.Emit("rewards", module.Val("amount", module.U64(pot-left)+coin.Native), module.Val("carried", module.U64(left)+coin.Native))
	return nil
}
