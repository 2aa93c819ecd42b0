package chain_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"testing"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/audit/auditpb"
	"github.com/agoranet/agora/internal/chain/beacon/beaconpb"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/committee"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/staking/stakingpb"
	"github.com/agoranet/agora/internal/node"
)

func withBeacon(p *beaconpb.Params) func(*node.Genesis) {
	return func(g *node.Genesis) { g.Beacon = p }
}

func beaconStatus(t *testing.T, h *harness) *beaconpb.QueryStatusResponse {
	t.Helper()
	s, err := ask(h, beaconpb.QueryStatus, &beaconpb.QueryStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// untilEpoch runs blocks until epoch n is under way.
func untilEpoch(t *testing.T, h *harness, n int64) {
	t.Helper()
	for i := 0; beaconStatus(t, h).Epoch.Number < n; i++ {
		if i > 1000 {
			t.Fatalf("epoch %d never came", n)
		}
		h.block()
	}
}

// TestBeacon: validators commit in one epoch and reveal in the next; the
// beacon is the hash the docs give, computed here independently; a
// validator that committed and did not reveal loses miss_bps and is
// jailed; and each bad commit or reveal is refused with its code and no
// state change.
func TestBeacon(t *testing.T) {
	p := &beaconpb.Params{EpochBlocks: 20, MissBps: 100, MissJailBlocks: 50}
	h := newHarness(t, t.TempDir(), withValidators(nil), withBeacon(p))
	defer h.close()
	h.block()
	if s := beaconStatus(t, h); s.Epoch.Number != 0 || s.Epoch.StartHeight != 1 || s.Epoch.Blocks != 20 || s.Latest != nil {
		t.Fatalf("after the first block: %v", s)
	}
	a, b := bytes.Repeat([]byte{0xa}, 32), bytes.Repeat([]byte{0xb}, 32)
	commit := func(who string, epoch int64, value []byte) *beaconpb.MsgCommit {
		return &beaconpb.MsgCommit{Validator: address(who).String(), Epoch: epoch, Commitment: beaconpb.Commit(testChain, epoch, address(who).String(), value)}
	}
	reveal := func(who string, epoch int64, value []byte) *beaconpb.MsgReveal {
		return &beaconpb.MsgReveal{Validator: address(who).String(), Epoch: epoch, Value: value}
	}
	refused := []struct {
		name string
		who  string
		msg  module.Msg
		code uint32
	}{
		{"a commitment by someone who validates nothing", "alice", commit("alice", 0, a), codes.ErrNotFound.Code},
		{"a commitment for a later epoch", "v1", commit("v1", 1, a), codes.ErrInvalidRequest.Code},
		{"a reveal before the reveal epoch", "v1", reveal("v1", 0, a), codes.ErrInvalidRequest.Code},
		{"a commitment of 31 bytes", "v1", &beaconpb.MsgCommit{Validator: address("v1").String(), Commitment: make([]byte, 31)}, codes.ErrInvalidRequest.Code},
	}
	for _, r := range refused {
		if res := h.send(r.who, r.msg); res.Code != r.code {
			t.Errorf("%s: code %d (%s), want %d", r.name, res.Code, res.Log, r.code)
		}
	}
	h.mustSend("v1", commit("v1", 0, a))
	h.mustSend("v2", commit("v2", 0, b))
	if r := h.send("v1", commit("v1", 0, b)); r.Code != codes.ErrInvalidRequest.Code {
		t.Errorf("a second commitment: code %d %s", r.Code, r.Log)
	}
	untilEpoch(t, h, 1)
	if r := h.send("v1", reveal("v1", 0, b)); r.Code != codes.ErrInvalidRequest.Code {
		t.Errorf("a reveal that does not match its commitment: code %d %s", r.Code, r.Log)
	}
	if r := h.send("erin", reveal("erin", 0, a)); r.Code != codes.ErrNotFound.Code {
		t.Errorf("a reveal without a commitment: code %d %s", r.Code, r.Log)
	}
	h.mustSend("v1", reveal("v1", 0, a))
	if r := h.send("v1", reveal("v1", 0, a)); r.Code != codes.ErrInvalidRequest.Code {
		t.Errorf("a second reveal: code %d %s", r.Code, r.Log)
	}
	// v2 never reveals, and unbonds half its stake first: the slash is
	// of the stake behind its commitment all the same (found by review:
	// it was of the stake left at the end of the epoch).
	before := h.validator("v2")
	half := before.Tokens / 2
	h.mustSend("v2", &stakingpb.MsgUndelegate{Delegator: address("v2").String(), Validator: address("v2").String(), Amount: coin.New("uagr", half)})
	untilEpoch(t, h, 2)
	s := beaconStatus(t, h)
	if s.Latest == nil || s.Latest.Epoch != 0 || s.Latest.Commitments != 2 || s.Latest.Reveals != 1 {
		t.Fatalf("the beacon of epoch 0: %v", s.Latest)
	}
	genesis := sha256.Sum256([]byte("agora/beacon/v1 genesis\x00" + testChain))
	v1 := address("v1")
	want := sha256.Sum256(bytes.Join([][]byte{[]byte("agora/beacon/v1 value\x00"), genesis[:], binary.BigEndian.AppendUint64(nil, 0), v1[:], a}, nil))
	if !bytes.Equal(s.Latest.Value, want[:]) {
		t.Errorf("beacon %x, want %x", s.Latest.Value, want)
	}
	after := h.validator("v2")
	owed := uint64(before.Power) * stakingpb.PowerReduction * uint64(p.MissBps) / 10_000
	if !after.Jailed || after.JailedUntil != s.Latest.FinalHeight+p.MissJailBlocks || after.Slashed != owed {
		t.Errorf("v2 withheld its reveal: jailed %v until %d, slashed %d of power %d, want %d", after.Jailed, after.JailedUntil, after.Slashed, before.Power, owed)
	}
	if v := h.validator("v1"); v.Jailed || v.Slashed != 0 {
		t.Errorf("v1 revealed and was punished: %v", v)
	}
	// Epoch 1 had no commitments: its beacon still moves, from the block
	// hash, and nobody is punished.
	untilEpoch(t, h, 3)
	if s := beaconStatus(t, h); s.Latest.Epoch != 1 || s.Latest.Reveals != 0 || bytes.Equal(s.Latest.Value, want[:]) {
		t.Errorf("an epoch without reveals: %v", s.Latest)
	}
	if err := checkInvariant(h); err != nil {
		t.Fatal(err)
	}
}

// TestCommitteeWaitsForTheBeacon: on a chain with a beacon, a key
// review's committee is not drawn when it is proposed, from a block hash
// its proposer's block could grind, but when the beacon of the epoch
// under way is final; it is the draw the docs describe from that beacon,
// and no one can vote before it. The draw is from the pool and stakes of
// the proposal's block: a verifier that joins, or bonds more, once the
// reveals are public (before the draw) cannot steer it (found by review:
// the draw read the live pool, and a whale joining then was all but
// certain to be drawn).
func TestCommitteeWaitsForTheBeacon(t *testing.T) {
	whale := func(g *node.Genesis) {
		g.Accounts = append(g.Accounts, node.Account{Address: address("gina"), Coins: []*coin.Coin{coin.New("uagr", 1_000_000_000_000)}})
	}
	k := newKeyChain(t, withValidators(nil), withBeacon(&beaconpb.Params{EpochBlocks: 8, MissBps: 10, MissJailBlocks: 10}), whale)
	defer k.close()
	epoch := beaconStatus(t, k.harness).Epoch.Number
	if r := k.propose("v4", []byte("a key"), "erin", "frank"); r.Code != 0 {
		t.Fatalf("propose: %s", r.Log)
	}
	var pool []addr.Address
	for _, n := range []string{"v1", "v2", "v3", "erin", "frank", "dave"} { // every verifier but the proposer
		pool = append(pool, address(n))
	}
	slices.SortFunc(pool, func(a, b addr.Address) int { return bytes.Compare(a[:], b[:]) })
	bonded := map[addr.Address]uint64{}
	for _, a := range pool {
		s, _ := ask(k.harness, stakingpb.QueryStake, &stakingpb.QueryStakeRequest{Address: a.String()})
		bonded[a] = s.Stake.Bonded
	}
	gina := address("gina").String()
	for _, m := range []module.Msg{&stakingpb.MsgBond{Staker: gina, Amount: coin.New("uagr", 500_000_000_000)}, &auditpb.MsgRegisterVerifier{Verifier: gina}} {
		if res := k.send("gina", m); res.Code != 0 {
			t.Fatalf("gina: %s", res.Log)
		}
	}
	if res := k.send("frank", &stakingpb.MsgBond{Staker: address("frank").String(), Amount: coin.New("uagr", 700_000_000)}); res.Code != 0 {
		t.Fatalf("frank bonds more: %s", res.Log)
	}
	r, err := ask(k.harness, auditpb.QueryReview, &auditpb.QueryKeyReviewRequest{Id: 1})
	if err != nil || len(r.Votes) != 0 || r.DrawAt == 0 || r.BeaconEpoch != epoch {
		t.Fatalf("a review on a beacon chain at once: %v %v", r, err)
	}
	if res := k.send("v1", &auditpb.MsgCommitKeyVote{Verifier: address("v1").String(), ReviewId: 1, Commitment: make([]byte, 32)}); res.Code != codes.ErrUnauthorized.Code {
		t.Errorf("a vote before the draw: code %d %s", res.Code, res.Log)
	}
	for k.height < r.DrawAt {
		k.block()
	}
	drawn, _ := ask(k.harness, auditpb.QueryReview, &auditpb.QueryKeyReviewRequest{Id: 1})
	b, err := ask(k.harness, beaconpb.QueryBeacon, &beaconpb.QueryBeaconRequest{Epoch: epoch})
	if err != nil || b.Beacon.FinalHeight != r.DrawAt {
		t.Fatalf("the beacon of epoch %d: %v %v", epoch, b, err)
	}
	weight := func(a addr.Address) uint64 { return bonded[a] }
	want := committee.Draw(pool, weight, int(auditpb.DefaultParams().CommitteeSize), committee.Seed(b.Beacon.Value, "audit-key", 1))
	var got []string
	for _, v := range drawn.Votes {
		got = append(got, v.Verifier)
	}
	if len(got) != len(want) || drawn.DrawAt != 0 || drawn.CommitUntil <= r.DrawAt {
		t.Fatalf("the drawn review: %v", drawn)
	}
	for i := range want {
		if got[i] != want[i].String() {
			t.Fatalf("committee %v, want %v", got, want)
		}
	}
}
