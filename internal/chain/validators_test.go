package chain_test

import (
	"bytes"
	"math/big"
	"strings"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"
	cmted25519 "github.com/cometbft/cometbft/crypto/ed25519"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	cmttypes "github.com/cometbft/cometbft/types"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/auth/authpb"
	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/staking"
	"github.com/agoranet/agora/internal/chain/staking/stakingpb"
	"github.com/agoranet/agora/internal/chain/tx"
	"github.com/agoranet/agora/internal/node"
)

// withValidators makes v1 and v2 genesis validators (commission 10% and
// 0%, self-bonds of 50 and 30 agr) with params p (nil: defaults).
func withValidators(p *stakingpb.Params) func(*node.Genesis) {
	return func(g *node.Genesis) {
		g.Validators = []node.Validator{
			{Key: cmttypes.GenesisValidator{PubKey: cmted25519.PubKey(consPub("v1")), Name: "v1"}, Operator: address("v1"), SelfBond: 50_000_000, CommissionBps: 1000},
			{Key: cmttypes.GenesisValidator{PubKey: cmted25519.PubKey(consPub("v2")), Name: "v2"}, Operator: address("v2"), SelfBond: 30_000_000},
		}
		g.Staking = p
	}
}

func (h *harness) balanceOf(a addr.Address) uint64 { return h.balance(a, coin.Native) }

func consPub(name string) []byte { return pub("consensus " + name) }

func consAddr(name string) []byte { return staking.ConsAddress(consPub(name)) }

func (h *harness) validator(name string) *stakingpb.Validator {
	h.t.Helper()
	r, err := ask(h, stakingpb.QueryValidator, &stakingpb.QueryValidatorRequest{Operator: address(name).String()})
	if err != nil {
		h.t.Fatal(err)
	}
	return r.Validator
}

// votes is a last commit in which each named validator of power p signed,
// except those in absent.
func votes(power map[string]int64, absent ...string) func(*abci.RequestFinalizeBlock) {
	return func(req *abci.RequestFinalizeBlock) {
		for _, n := range []string{"v1", "v2", "v3", "v4"} {
			p, ok := power[n]
			if !ok {
				continue
			}
			flag := cmtproto.BlockIDFlagCommit
			for _, a := range absent {
				if a == n {
					flag = cmtproto.BlockIDFlagAbsent
				}
			}
			req.DecidedLastCommit.Votes = append(req.DecidedLastCommit.Votes, abci.VoteInfo{Validator: abci.Validator{Address: consAddr(n), Power: p}, BlockIdFlag: flag})
		}
	}
}

func TestGenesisValidatorsAreTheConsensusSet(t *testing.T) {
	h := newHarness(t, "", withValidators(nil))
	defer h.close()
	h.block()
	if v := h.validator("v1"); v.Power != 50 || v.Tokens != 50_000_000 || v.Shares != 50_000_000 {
		t.Errorf("v1 at genesis: %v", v)
	}
	// A fifth operator bonding more than the smallest joins; with room
	// for two the smallest leaves, in the same block's updates.
	h2 := newHarness(t, "", withValidators(func() *stakingpb.Params { p := stakingpb.DefaultParams(); p.MaxValidators = 2; return p }()))
	defer h2.close()
	raw, err := signTx(key("dave"), 0, &stakingpb.MsgCreateValidator{Operator: address("dave").String(), ConsensusPubkey: consPub("dave"),
		SelfBond: coin.New(coin.Native, 40_000_000), CommissionBps: 500, Moniker: "dave"})
	if err != nil {
		t.Fatal(err)
	}
	h2.pending = [][]byte{raw}
	resp, _ := h2.block()
	if resp.TxResults[0].Code != 0 {
		t.Fatal(resp.TxResults[0].Log)
	}
	got := map[string]int64{}
	for _, u := range resp.ValidatorUpdates {
		got[string(u.PubKey.GetEd25519())] = u.Power
	}
	if len(got) != 2 || got[string(consPub("dave"))] != 40 || got[string(consPub("v2"))] != 0 {
		t.Errorf("updates %v: want dave in at 40 and v2 out", resp.ValidatorUpdates)
	}
	if h2.validator("v2").Power != 0 || h2.validator("dave").Power != 40 {
		t.Errorf("powers after the change: v2 %d, dave %d", h2.validator("v2").Power, h2.validator("dave").Power)
	}
	// Nothing changes, nothing is sent.
	if resp, _ := h2.block(); len(resp.ValidatorUpdates) != 0 {
		t.Errorf("a block that changes no stake sent updates %v", resp.ValidatorUpdates)
	}
}

// TestRewardsToTheUnit runs blocks with fees and issuance, with v2 now
// and then absent, and checks that each delegator withdraws exactly the
// share this test computes on its own from the rules in docs/staking.md.
func TestRewardsToTheUnit(t *testing.T) {
	h := newHarness(t, "", withValidators(nil))
	defer h.close()
	// Delegations first; the shares then stay fixed.
	dels := []struct {
		who, to string
		amount  uint64
	}{{"dave", "v1", 70_000_000}, {"erin", "v1", 13_000_001}, {"frank", "v2", 7_000_003}, {"v3", "v1", 999_999}}
	for _, d := range dels {
		h.mustSend(d.who, &stakingpb.MsgDelegate{Delegator: address(d.who).String(), Validator: address(d.to).String(), Amount: coin.New(coin.Native, d.amount)})
	}
	shares := map[string]map[string]uint64{"v1": {"v1": 50_000_000}, "v2": {"v2": 30_000_000}}
	for _, d := range dels {
		shares[d.to][d.who] += d.amount
	}
	total := map[string]uint64{}
	for v, m := range shares {
		for _, s := range m {
			total[v] += s
		}
	}
	power := map[string]int64{"v1": int64(total["v1"] / 1_000_000), "v2": int64(total["v2"] / 1_000_000)}
	comm := map[string]uint64{"v1": 1000, "v2": 0}
	// The ceiling: 2% of the genesis supply a year of 1 s blocks.
	sup, err := ask(h, bankpb.QuerySupply, &bankpb.QuerySupplyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var supply uint64
	for _, c := range sup.Supply {
		if c.Denom == coin.Native {
			supply = c.Amount
		}
	}
	// Issued since genesis: the supply then is less what was issued.
	supply -= h.balanceOf(stakingpb.RewardsPool)
	issuance := min(stakingpb.DefaultParams().IssuancePerBlock, supply*200/10_000/(365*24*3600))
	// Whatever the delegation blocks left over, and what the model says
	// each delegator and operator is owed from here on.
	carry := new(big.Int)
	{
		// Rewards so far (the delegation blocks had no votes: all carried).
		carry.SetUint64(h.balanceOf(stakingpb.RewardsPool))
	}
	owed := map[string]*big.Rat{}
	commission := map[string]uint64{}
	for _, m := range shares {
		for who := range m {
			owed[who] = new(big.Rat)
		}
	}
	const blocks = 40
	fee := uint64(0)
	for b := 0; b < blocks; b++ {
		// Every other block carries a tx whose fee joins the pot.
		fees := uint64(0)
		if b%2 == 0 {
			fee = 20_000 + uint64(b)*7
			raw, err := tx.Sign(key("alice"), tx.Header{ChainID: testChain, Sequence: h.sequence("alice"), GasLimit: testGas, Fee: coin.New(coin.Native, fee)}, &bankpb.MsgSend{From: address("alice").String(), To: address("bob").String(), Amount: []*coin.Coin{coin.New(coin.Native, 1)}})
			if err != nil {
				t.Fatal(err)
			}
			h.pending = [][]byte{raw}
			fees = fee
		}
		var absent []string
		if b%3 == 1 {
			absent = []string{"v2"}
		}
		proposer := "v1"
		if b%4 == 3 {
			proposer = "v2"
		}
		resp, _ := h.blockWith(func(req *abci.RequestFinalizeBlock) {
			votes(power, absent...)(req)
			req.ProposerAddress = consAddr(proposer)
		})
		for _, r := range resp.TxResults {
			if r.Code != 0 {
				t.Fatal(r.Log)
			}
		}
		// The model: pot, proposer bonus, shares by signed power.
		pot := new(big.Int).Add(carry, new(big.Int).SetUint64(fees+issuance)).Uint64()
		bonus := pot * 500 / 10_000
		rest := pot - bonus
		signed := map[string]int64{}
		var sum int64
		for v, p := range power {
			if len(absent) == 0 || absent[0] != v {
				signed[v] = p
				sum += p
			}
		}
		given := uint64(0)
		reward := map[string]uint64{}
		for v, p := range signed {
			s := new(big.Int).Div(new(big.Int).Mul(new(big.Int).SetUint64(rest), big.NewInt(p)), big.NewInt(sum)).Uint64()
			reward[v] += s
			given += s
		}
		reward[proposer] += bonus
		given += bonus
		carry.SetUint64(pot - given)
		for v, r := range reward {
			c := r * comm[v] / 10_000
			commission[v] += c
			for who, s := range shares[v] {
				owed[who].Add(owed[who], new(big.Rat).SetFrac(new(big.Int).Mul(new(big.Int).SetUint64(r-c), new(big.Int).SetUint64(s)), new(big.Int).SetUint64(total[v])))
			}
		}
	}
	// Every delegator withdraws in one block.
	for v, m := range shares {
		for who := range m {
			before := h.balance(address(who), coin.Native)
			r := h.send(who, &stakingpb.MsgWithdrawRewards{Delegator: address(who).String(), Validator: address(v).String()})
			if r.Code != 0 {
				t.Fatal(r.Log)
			}
			paid := h.balance(address(who), coin.Native) + authpb.MinFee(authpb.DefaultParams(), testGas) - before
			want := new(big.Int).Quo(owed[who].Num(), owed[who].Denom()).Uint64()
			if who == v {
				want += commission[v]
			}
			if paid != want {
				t.Errorf("%s withdrew %d from %s, the model says %d", who, paid, v, want)
			}
			if want == 0 {
				t.Errorf("%s was owed nothing: the test is not testing", who)
			}
		}
	}
	if err := checkInvariant(h); err != nil {
		t.Fatal(err)
	}
}

func TestDoubleSigningSlashesAndTombstones(t *testing.T) {
	h := newHarness(t, "", withValidators(nil))
	defer h.close()
	v1 := address("v1").String()
	h.mustSend("dave", &stakingpb.MsgDelegate{Delegator: address("dave").String(), Validator: v1, Amount: coin.New(coin.Native, 20_000_000)})
	h.mustSend("erin", &stakingpb.MsgDelegate{Delegator: address("erin").String(), Validator: v1, Amount: coin.New(coin.Native, 10_000_000)})
	// Erin leaves two blocks before the infraction (consensus applies a
	// block's updates two blocks on), dave after it: only dave's stake
	// signed when v1 signed twice, 70 agr with v1's own.
	h.mustSend("erin", &stakingpb.MsgUndelegate{Delegator: address("erin").String(), Validator: v1, Amount: coin.New(coin.Native, 10_000_000)})
	h.block()
	infraction := h.height + 1
	h.block()
	h.mustSend("dave", &stakingpb.MsgUndelegate{Delegator: address("dave").String(), Validator: v1, Amount: coin.New(coin.Native, 5_000_000)})
	resp, _ := h.blockWith(func(req *abci.RequestFinalizeBlock) {
		req.Misbehavior = []abci.Misbehavior{{Type: abci.MisbehaviorType_DUPLICATE_VOTE, Validator: abci.Validator{Address: consAddr("v1"), Power: 70}, Height: infraction}}
	})
	v := h.validator("v1")
	if !v.Tombstoned || !v.Jailed {
		t.Fatalf("after double-signing v1 is %v", v)
	}
	// 5% of the 70 agr that signed: dave's undelegation answers for its
	// share, v1's tokens for the rest; erin's left before.
	if v.Tokens != 65_000_000-3_250_000 || v.Slashed != 3_250_000+250_000 {
		t.Errorf("v1 holds %d, slashed %d", v.Tokens, v.Slashed)
	}
	d, err := ask(h, stakingpb.QueryDelegations, &stakingpb.QueryDelegationsRequest{Delegator: address("dave").String()})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Undelegations) != 1 || d.Undelegations[0].Amount != 4_750_000 {
		t.Errorf("dave's undelegation after the slash: %v", d.Undelegations)
	}
	e, _ := ask(h, stakingpb.QueryDelegations, &stakingpb.QueryDelegationsRequest{Delegator: address("erin").String()})
	if len(e.Undelegations) != 1 || e.Undelegations[0].Amount != 10_000_000 {
		t.Errorf("erin's undelegation, begun before the infraction: %v", e.Undelegations)
	}
	removed := false
	for _, u := range resp.ValidatorUpdates {
		if bytes.Equal(u.PubKey.GetEd25519(), consPub("v1")) && u.Power == 0 {
			removed = true
		}
	}
	if !removed {
		t.Errorf("the tombstoned v1 was not removed from the set: %v", resp.ValidatorUpdates)
	}
	// Evidence of the same validator again changes nothing; it can
	// neither take delegations nor unjail.
	h.blockWith(func(req *abci.RequestFinalizeBlock) {
		req.Misbehavior = []abci.Misbehavior{{Type: abci.MisbehaviorType_DUPLICATE_VOTE, Validator: abci.Validator{Address: consAddr("v1"), Power: 65}, Height: infraction}}
	})
	if again := h.validator("v1"); again.Tokens != v.Tokens {
		t.Errorf("a second report slashed again: %d -> %d", v.Tokens, again.Tokens)
	}
	if r := h.send("frank", &stakingpb.MsgDelegate{Delegator: address("frank").String(), Validator: v1, Amount: coin.New(coin.Native, 1_000_000)}); r.Code != codes.ErrJailed.Code {
		t.Errorf("delegation to a tombstoned validator: code %d %s", r.Code, r.Log)
	}
	if r := h.send("v1", &stakingpb.MsgUnjail{Operator: v1}); r.Code != codes.ErrJailed.Code {
		t.Errorf("unjail of a tombstoned validator: code %d %s", r.Code, r.Log)
	}
	if err := checkInvariant(h); err != nil {
		t.Fatal(err)
	}
}

func TestDowntimeJailsThenUnjail(t *testing.T) {
	p := stakingpb.DefaultParams()
	p.SignedBlocksWindow, p.DowntimeJailBlocks = 20, 30
	h := newHarness(t, "", withValidators(p))
	defer h.close()
	power := map[string]int64{"v1": 50, "v2": 30}
	// v2 misses 10 of 20 (allowed), then one more.
	jailedAt := int64(0)
	for i := 0; i < 40 && jailedAt == 0; i++ {
		var absent []string
		if i%2 == 0 || i >= 20 {
			absent = []string{"v2"}
		}
		h.blockWith(votes(power, absent...))
		if h.validator("v2").Jailed {
			jailedAt = h.height
		}
	}
	if jailedAt == 0 {
		t.Fatal("v2 missing most blocks was never jailed")
	}
	v := h.validator("v2")
	if v.Tokens != 30_000_000-30_000_000/10_000 || v.JailedUntil != jailedAt+30 || v.Power != 0 {
		t.Errorf("jailed v2: tokens %d, jailed until %d (at %d), power %d", v.Tokens, v.JailedUntil, jailedAt, v.Power)
	}
	v2 := address("v2").String()
	if r := h.send("v2", &stakingpb.MsgUnjail{Operator: v2}); r.Code != codes.ErrJailed.Code {
		t.Errorf("unjail before the jail ends: code %d %s", r.Code, r.Log)
	}
	if r := h.send("dave", &stakingpb.MsgDelegate{Delegator: address("dave").String(), Validator: v2, Amount: coin.New(coin.Native, 1_000_000)}); r.Code != codes.ErrJailed.Code {
		t.Errorf("delegation to a jailed validator: code %d %s", r.Code, r.Log)
	}
	for h.height < v.JailedUntil {
		h.blockWith(votes(map[string]int64{"v1": 50}))
	}
	h.mustSend("v2", &stakingpb.MsgUnjail{Operator: v2})
	if v := h.validator("v2"); v.Jailed || v.Power != 29 {
		t.Errorf("after unjail v2 is jailed %v with power %d", v.Jailed, v.Power)
	}
}

func TestValidatorBadInput(t *testing.T) {
	p := stakingpb.DefaultParams()
	p.MinSelfDelegation = 10_000_000
	h := newHarness(t, "", withValidators(p))
	defer h.close()
	h.block()
	dave, v1, v2 := address("dave").String(), address("v1").String(), address("v2").String()
	for _, tc := range []struct {
		name string
		by   string
		msg  module.Msg
		code uint32
	}{
		{"too little self-bond", "dave", &stakingpb.MsgCreateValidator{Operator: dave, ConsensusPubkey: consPub("dave"), SelfBond: coin.New(coin.Native, 9_999_999)}, codes.ErrInsufficientStake.Code},
		{"a consensus key in use", "dave", &stakingpb.MsgCreateValidator{Operator: dave, ConsensusPubkey: consPub("v1"), SelfBond: coin.New(coin.Native, 20_000_000)}, codes.ErrValidatorExists.Code},
		{"a second validator", "v1", &stakingpb.MsgCreateValidator{Operator: v1, ConsensusPubkey: consPub("other"), SelfBond: coin.New(coin.Native, 20_000_000)}, codes.ErrValidatorExists.Code},
		{"a short consensus key", "dave", &stakingpb.MsgCreateValidator{Operator: dave, ConsensusPubkey: []byte{1, 2}, SelfBond: coin.New(coin.Native, 20_000_000)}, codes.ErrInvalidRequest.Code},
		{"a commission over 100%", "dave", &stakingpb.MsgCreateValidator{Operator: dave, ConsensusPubkey: consPub("dave"), SelfBond: coin.New(coin.Native, 20_000_000), CommissionBps: 10_001}, codes.ErrInvalidRequest.Code},
		{"a commission raised", "v1", &stakingpb.MsgEditValidator{Operator: v1, CommissionBps: 1001}, codes.ErrInvalidRequest.Code},
		{"to no validator", "dave", &stakingpb.MsgDelegate{Delegator: dave, Validator: dave, Amount: coin.New(coin.Native, 1)}, codes.ErrNotFound.Code},
		{"more than delegated", "v1", &stakingpb.MsgUndelegate{Delegator: v1, Validator: v1, Amount: coin.New(coin.Native, 50_000_001)}, codes.ErrInsufficientStake.Code},
		{"self-delegation below the minimum", "v1", &stakingpb.MsgUndelegate{Delegator: v1, Validator: v1, Amount: coin.New(coin.Native, 40_000_001)}, codes.ErrInsufficientStake.Code},
		{"redelegation to itself", "v1", &stakingpb.MsgRedelegate{Delegator: v1, Src: v1, Dst: v1, Amount: coin.New(coin.Native, 1)}, codes.ErrInvalidRequest.Code},
		{"unjail when not jailed", "v1", &stakingpb.MsgUnjail{Operator: v1}, codes.ErrInvalidRequest.Code},
		{"stake in uusdc", "dave", &stakingpb.MsgDelegate{Delegator: dave, Validator: v1, Amount: coin.New(coin.Stable, 1)}, codes.ErrInvalidAmount.Code},
	} {
		before := h.validator("v1")
		r := h.send(tc.by, tc.msg)
		if r.Code != tc.code {
			t.Errorf("%s: code %d (%s), want %d", tc.name, r.Code, r.Log, tc.code)
		}
		if after := h.validator("v1"); after.Tokens != before.Tokens || after.Shares != before.Shares || after.CommissionBps != before.CommissionBps {
			t.Errorf("%s changed v1: %v -> %v", tc.name, before, after)
		}
	}
	// A redelegation cannot be moved on until it completes.
	h.mustSend("dave", &stakingpb.MsgDelegate{Delegator: dave, Validator: v1, Amount: coin.New(coin.Native, 5_000_000)})
	h.mustSend("dave", &stakingpb.MsgRedelegate{Delegator: dave, Src: v1, Dst: v2, Amount: coin.New(coin.Native, 5_000_000)})
	if r := h.send("dave", &stakingpb.MsgRedelegate{Delegator: dave, Src: v2, Dst: v1, Amount: coin.New(coin.Native, 1_000_000)}); r.Code != codes.ErrInvalidRequest.Code {
		t.Errorf("a redelegation moved on at once: code %d %s", r.Code, r.Log)
	}
	if err := checkInvariant(h); err != nil {
		t.Fatal(err)
	}
}

// doubleSignAt delivers consensus's evidence that name, of the given
// power there, signed twice at height.
func doubleSignAt(h *harness, name string, power, height int64) {
	h.blockWith(func(req *abci.RequestFinalizeBlock) {
		req.Misbehavior = []abci.Misbehavior{{Type: abci.MisbehaviorType_DUPLICATE_VOTE, Validator: abci.Validator{Address: consAddr(name), Power: power}, Height: height}}
	})
}

func undelegationsOf(t *testing.T, h *harness, who string) []*stakingpb.Undelegation {
	t.Helper()
	d, err := ask(h, stakingpb.QueryDelegations, &stakingpb.QueryDelegationsRequest{Delegator: address(who).String()})
	if err != nil {
		t.Fatal(err)
	}
	return d.Undelegations
}

// Regression (review of the staking commit): consensus applies a block's
// validator updates two blocks on, so stake that leaves in the block
// before an infraction still signed it; the slash used to reach only
// entries begun at the infraction height, and an operator could retire
// its whole stake one block before double-signing at full power.
func TestStakeLeavingTheBlockBeforeADoubleSignIsSlashed(t *testing.T) {
	h := newHarness(t, "", withValidators(nil))
	defer h.close()
	dave, v1 := address("dave").String(), address("v1").String()
	h.mustSend("dave", &stakingpb.MsgDelegate{Delegator: dave, Validator: v1, Amount: coin.New(coin.Native, 20_000_000)})
	r1, _ := signTx(key("dave"), h.sequence("dave"), &stakingpb.MsgUndelegate{Delegator: dave, Validator: v1, Amount: coin.New(coin.Native, 20_000_000)})
	r2, _ := signTx(key("v1"), h.sequence("v1"), &stakingpb.MsgUndelegate{Delegator: v1, Validator: v1, Amount: coin.New(coin.Native, 50_000_000)})
	h.pending = [][]byte{r1, r2}
	resp, _ := h.block()
	for _, r := range resp.TxResults {
		if r.Code != 0 {
			t.Fatal(r.Log)
		}
	}
	infraction := h.height + 1 // v1 still signs with 70 here
	h.block()
	doubleSignAt(h, "v1", 70, infraction)
	v := h.validator("v1")
	d, o := undelegationsOf(t, h, "dave"), undelegationsOf(t, h, "v1")
	if v.Slashed != 3_500_000 || d[0].Amount != 19_000_000 || o[0].Amount != 47_500_000 {
		t.Errorf("v1 signed twice with 70 agr that left the block before: slashed %d, dave's undelegation %d, the operator's %d; want 3500000, 19000000, 47500000",
			v.Slashed, d[0].Amount, o[0].Amount)
	}
	if err := checkInvariant(h); err != nil {
		t.Fatal(err)
	}
}

// Regression (review): a redelegation away from a validator after its
// infraction, followed by an undelegation from the destination, used to
// escape the source's slash altogether.
func TestRedelegatingThenUndelegatingDoesNotOutrunASlash(t *testing.T) {
	h := newHarness(t, "", withValidators(nil))
	defer h.close()
	dave, erin, v1, v2 := address("dave").String(), address("erin").String(), address("v1").String(), address("v2").String()
	h.mustSend("dave", &stakingpb.MsgDelegate{Delegator: dave, Validator: v1, Amount: coin.New(coin.Native, 20_000_000)})
	h.mustSend("erin", &stakingpb.MsgDelegate{Delegator: erin, Validator: v1, Amount: coin.New(coin.Native, 20_000_000)})
	h.block()
	h.block()
	infraction := h.height + 1
	h.block() // v1 signs twice here, with 90 agr
	h.mustSend("erin", &stakingpb.MsgUndelegate{Delegator: erin, Validator: v1, Amount: coin.New(coin.Native, 20_000_000)})
	h.mustSend("dave", &stakingpb.MsgRedelegate{Delegator: dave, Src: v1, Dst: v2, Amount: coin.New(coin.Native, 20_000_000)})
	h.mustSend("dave", &stakingpb.MsgUndelegate{Delegator: dave, Validator: v2, Amount: coin.New(coin.Native, 20_000_000)})
	doubleSignAt(h, "v1", 90, infraction)
	e, d := undelegationsOf(t, h, "erin"), undelegationsOf(t, h, "dave")
	if e[0].Amount != 19_000_000 || d[0].Amount != 19_000_000 {
		t.Errorf("5%% of what signed: erin (undelegated) keeps %d, dave (redelegated, then undelegated) %d; want 19000000 each", e[0].Amount, d[0].Amount)
	}
	if v := h.validator("v1"); v.Slashed != 4_500_000 {
		t.Errorf("v1 slashed %d of the 90 agr that signed; want 4500000", v.Slashed)
	}
	if err := checkInvariant(h); err != nil {
		t.Fatal(err)
	}
}

// Regression (review): a validator jailed with its operator's stake just
// at min_self_delegation fell under it by the downtime slash, and could
// then neither unjail (below the minimum) nor top up (jailed).
func TestAJailedOperatorCanTopUpAndUnjail(t *testing.T) {
	p := stakingpb.DefaultParams()
	p.SignedBlocksWindow, p.DowntimeJailBlocks, p.MinSelfDelegation = 20, 5, 30_000_000
	h := newHarness(t, "", withValidators(p))
	defer h.close()
	h.block()
	power := map[string]int64{"v1": 50, "v2": 30}
	for i := 0; i < 40 && !h.validator("v2").Jailed; i++ {
		h.blockWith(votes(power, "v2"))
	}
	v := h.validator("v2")
	if !v.Jailed {
		t.Fatal("v2 was not jailed")
	}
	for h.height < v.JailedUntil {
		h.block()
	}
	v2 := address("v2").String()
	if r := h.send("v2", &stakingpb.MsgUnjail{Operator: v2}); r.Code != codes.ErrInsufficientStake.Code {
		t.Fatalf("unjail under the minimum: code %d %s", r.Code, r.Log)
	}
	if r := h.send("dave", &stakingpb.MsgDelegate{Delegator: address("dave").String(), Validator: v2, Amount: coin.New(coin.Native, 1_000_000)}); r.Code != codes.ErrJailed.Code {
		t.Errorf("another delegator delegated to a jailed validator: code %d", r.Code)
	}
	h.mustSend("v2", &stakingpb.MsgDelegate{Delegator: v2, Validator: v2, Amount: coin.New(coin.Native, 1_000_000)})
	h.mustSend("v2", &stakingpb.MsgUnjail{Operator: v2})
	if h.validator("v2").Jailed {
		t.Error("v2 still jailed after topping up and unjailing")
	}
}

// Regression (review): on a chain whose consensus set is fixed by
// genesis.json, anyone could add a consensus key by declaring a
// validator; and the last validator of stake could retire and keep its
// power with nothing at stake.
func TestTheSetCannotBeJoinedWhenFixedNorEmptied(t *testing.T) {
	fixed := newHarness(t, "")
	defer fixed.close()
	r := fixed.send("dave", &stakingpb.MsgCreateValidator{Operator: address("dave").String(), ConsensusPubkey: consPub("dave"), SelfBond: coin.New(coin.Native, 500_000_000)})
	if r.Code != codes.ErrInvalidRequest.Code || !strings.Contains(r.Log, "fixed by its genesis") {
		t.Errorf("declaring a validator on a chain of fixed validators: code %d %s", r.Code, r.Log)
	}

	h := newHarness(t, "", withValidators(nil))
	defer h.close()
	v1, v2 := address("v1").String(), address("v2").String()
	h.mustSend("v2", &stakingpb.MsgUndelegate{Delegator: v2, Validator: v2, Amount: coin.New(coin.Native, 30_000_000)})
	r = h.send("v1", &stakingpb.MsgUndelegate{Delegator: v1, Validator: v1, Amount: coin.New(coin.Native, 50_000_000)})
	if r.Code != codes.ErrInsufficientStake.Code {
		t.Errorf("the last validator retired: code %d %s", r.Code, r.Log)
	}
	if v := h.validator("v1"); v.Tokens != 50_000_000 {
		t.Errorf("a refused undelegation changed v1's tokens to %d", v.Tokens)
	}
}

// A validator rotates its consensus key: consensus is told to drop the old
// key and add the new one with the same power in that block; the old key
// still answers for what it signed (evidence against it slashes the
// validator) and can never be used again; a second rotation waits an
// unbonding period.
func TestConsensusKeyRotation(t *testing.T) {
	h := newHarness(t, "", withValidators(nil))
	defer h.close()
	v1 := address("v1").String()
	h.block()
	raw, _ := signTx(key("v1"), h.sequence("v1"), &stakingpb.MsgRotateConsensusKey{Operator: v1, NewConsensusPubkey: consPub("v1 new")})
	h.pending = [][]byte{raw}
	resp, _ := h.block()
	if r := resp.TxResults[0]; r.Code != 0 {
		t.Fatal(r.Log)
	}
	var removed, added bool
	for _, u := range resp.ValidatorUpdates {
		removed = removed || (bytes.Equal(u.PubKey.GetEd25519(), consPub("v1")) && u.Power == 0)
		added = added || (bytes.Equal(u.PubKey.GetEd25519(), consPub("v1 new")) && u.Power == 50)
	}
	if !removed || !added || len(resp.ValidatorUpdates) != 2 {
		t.Fatalf("updates for the rotation: %v", resp.ValidatorUpdates)
	}
	if v := h.validator("v1"); !bytes.Equal(v.ConsensusPubkey, consPub("v1 new")) || v.Power != 50 {
		t.Errorf("after the rotation: %v", v)
	}
	// Votes under either key count for v1; the next block tells
	// consensus nothing more.
	if resp, _ := h.block(); len(resp.ValidatorUpdates) != 0 {
		t.Errorf("a second round of updates: %v", resp.ValidatorUpdates)
	}
	// Bad input: the old key, a key in use, a second rotation too soon,
	// a non-validator.
	dave := address("dave").String()
	for _, c := range []struct {
		name, by string
		msg      *stakingpb.MsgRotateConsensusKey
		code     uint32
	}{
		{"back to the old key", "v2", &stakingpb.MsgRotateConsensusKey{Operator: address("v2").String(), NewConsensusPubkey: consPub("v1")}, codes.ErrValidatorExists.Code},
		{"a key in use", "v2", &stakingpb.MsgRotateConsensusKey{Operator: address("v2").String(), NewConsensusPubkey: consPub("v1 new")}, codes.ErrValidatorExists.Code},
		{"too soon", "v1", &stakingpb.MsgRotateConsensusKey{Operator: v1, NewConsensusPubkey: consPub("v1 newer")}, codes.ErrInvalidRequest.Code},
		{"no validator", "dave", &stakingpb.MsgRotateConsensusKey{Operator: dave, NewConsensusPubkey: consPub("dave")}, codes.ErrNotFound.Code},
		{"a short key", "v1", &stakingpb.MsgRotateConsensusKey{Operator: v1, NewConsensusPubkey: []byte{1}}, codes.ErrInvalidRequest.Code},
	} {
		if r := h.send(c.by, c.msg); r.Code != c.code {
			t.Errorf("%s: code %d (%s), want %d", c.name, r.Code, r.Log, c.code)
		}
	}
	// The old key's double-sign, from before the rotation, still slashes.
	doubleSignAt(h, "v1", 50, h.height-2)
	if v := h.validator("v1"); !v.Tombstoned || v.Slashed == 0 {
		t.Errorf("evidence against the old key: %v", v)
	}
	if err := checkInvariant(h); err != nil {
		t.Fatal(err)
	}
}
