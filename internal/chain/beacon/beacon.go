// Package beacon is the chain's randomness beacon: commit–reveal by the
// validators over epochs (RANDAO), so that no proposer can steer the
// committees, samples and challenges drawn from it.
//
// In epoch e each validator in the active set commits to a random value;
// in epoch e+1 it reveals it. When epoch e+1 ends, the beacon of epoch e
// is the hash of the beacon of e-1 and the values revealed, in validator
// order. A validator that committed and did not reveal is slashed a
// little and jailed. A draw asked for during epoch e uses the beacon of
// e: all its reveals come after the request, so no one, the requester
// included, knows the draw when it is asked for. The only choice left to
// an adversary is to withhold its own reveals, each at a slash; see
// docs/staking.md for the bound.
//
// The beacon runs on chains whose validators come from stake. A chain
// with a fixed set (a consortium, most tests) draws from the block hash,
// at once.
package beacon

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/beacon/beaconpb"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/committee"
	"github.com/agoranet/agora/internal/chain/gas"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/staking"
	"github.com/agoranet/agora/internal/chain/store"
)

var (
	paramsKey        = []byte("beacon/params")
	epochKey         = []byte("beacon/epoch")
	latestKey        = []byte("beacon/latest")
	resumeKey        = []byte("beacon/resume") // the first epoch made wholly on this chain, after an import
	commitmentPrefix = []byte("beacon/c/")     // epoch | operator -> Commitment
	beaconPrefix     = []byte("beacon/v/")     // epoch -> Beacon
)

// Keep is how many final beacons the state keeps, for queries and for
// draws that an agenda's per-block bound postponed.
const Keep = 1000

// MaxEpochBlocks bounds epoch_blocks, and so how long a draw can wait
// for its beacon (MaxDrawDelay): two epochs, three across an import (see
// Imported); holds of stake allow for it.
const (
	MaxEpochBlocks = 10_000
	MaxDrawDelay   = 3 * MaxEpochBlocks
)

func be(n int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(n)) }

func commitmentKey(epoch int64, op addr.Address) []byte {
	return append(append(append([]byte(nil), commitmentPrefix...), be(epoch)...), op[:]...)
}

// GetParams reads the params.
func GetParams(kv store.Reader) *beaconpb.Params {
	p := &beaconpb.Params{}
	if v := kv.Get(paramsKey); v != nil {
		module.MustUnmarshal(v, p)
		return p
	}
	return beaconpb.DefaultParams()
}

// On says whether this chain has a beacon: its validators come from stake.
func On(kv store.Reader) bool { return staking.OwnsSet(kv) }

// Current is the epoch under way; nil on a chain without a beacon.
func Current(kv store.Reader) *beaconpb.Epoch {
	v := kv.Get(epochKey)
	if v == nil {
		return nil
	}
	e := &beaconpb.Epoch{}
	module.MustUnmarshal(v, e)
	return e
}

// Get returns the final beacon of an epoch.
func Get(kv store.Reader, epoch int64) (*beaconpb.Beacon, bool) {
	v := kv.Get(append(append([]byte(nil), beaconPrefix...), be(epoch)...))
	if v == nil {
		return nil, false
	}
	b := &beaconpb.Beacon{}
	module.MustUnmarshal(v, b)
	return b, true
}

// Latest returns the newest final beacon.
func Latest(kv store.Reader) (*beaconpb.Beacon, bool) {
	v := kv.Get(latestKey)
	if v == nil {
		return nil, false
	}
	return Get(kv, int64(binary.BigEndian.Uint64(v)))
}

// Commitments returns an epoch's commitments, in validator order.
func Commitments(kv store.Reader, epoch int64) []*beaconpb.Commitment {
	p := append(append([]byte(nil), commitmentPrefix...), be(epoch)...)
	it := kv.Iterator(p, store.PrefixEnd(p))
	defer it.Close()
	var out []*beaconpb.Commitment
	for ; it.Valid(); it.Next() {
		c := &beaconpb.Commitment{}
		module.MustUnmarshal(it.Value(), c)
		out = append(out, c)
	}
	return out
}

func getCommitment(kv store.Reader, epoch int64, op addr.Address) (*beaconpb.Commitment, bool) {
	v := kv.Get(commitmentKey(epoch, op))
	if v == nil {
		return nil, false
	}
	c := &beaconpb.Commitment{}
	module.MustUnmarshal(v, c)
	return c, true
}

// last is the last height of an epoch.
func last(e *beaconpb.Epoch) int64 { return e.StartHeight + e.Blocks - 1 }

// CommitValue records a validator's commitment for the epoch under way.
// Only validators in the active set commit: the beacon is theirs to make
// and, with a slash for a missing reveal, theirs to answer for.
func CommitValue(ctx *module.Context, m *beaconpb.MsgCommit) error {
	e := Current(ctx.KV)
	if e == nil {
		return fmt.Errorf("beacon: this chain's validators are fixed at genesis, so it has no beacon (its draws use block hashes): %w", codes.ErrInvalidRequest)
	}
	op := ctx.Signer
	v, ok := staking.GetValidator(ctx.KV, op)
	switch {
	case !ok:
		return fmt.Errorf("beacon: %s operates no validator; only validators commit: %w", op, codes.ErrNotFound)
	case v.Jailed || v.Tombstoned:
		return fmt.Errorf("beacon: validator %s is jailed; unjail it and commit in a later epoch: %w", op, codes.ErrJailed)
	case v.Power == 0:
		return fmt.Errorf("beacon: validator %s is not in the active set; only its members commit: %w", op, codes.ErrUnauthorized)
	case m.Epoch != e.Number:
		return fmt.Errorf("beacon: epoch %d is under way (heights %d to %d); a commitment is for it, not for %d: %w",
			e.Number, e.StartHeight, last(e), m.Epoch, codes.ErrInvalidRequest)
	}
	if _, ok := getCommitment(ctx.KV, e.Number, op); ok {
		return fmt.Errorf("beacon: %s has committed for epoch %d already: %w", op, e.Number, codes.ErrInvalidRequest)
	}
	ctx.ConsumeGas(gas.EndBlockStep, "the commitment's settlement at the end of the next epoch")
	ctx.KV.Set(commitmentKey(e.Number, op), module.MustMarshal(&beaconpb.Commitment{Validator: op.String(), Commitment: m.Commitment, Height: ctx.Height, Power: v.Power}))
	ctx.Emit("beacon_commit", module.Key("validator", op.String()), module.Val("epoch", module.U64(uint64(e.Number))))
	return nil
}

// RevealValue opens a validator's commitment of the previous epoch.
func RevealValue(ctx *module.Context, m *beaconpb.MsgReveal) error {
	e := Current(ctx.KV)
	if e == nil {
		return fmt.Errorf("beacon: this chain's validators are fixed at genesis, so it has no beacon: %w", codes.ErrInvalidRequest)
	}
	if m.Epoch != e.Number-1 {
		return fmt.Errorf("beacon: epoch %d is under way (heights %d to %d) and takes the reveals of epoch %d's commitments, not of %d's: %w",
			e.Number, e.StartHeight, last(e), e.Number-1, m.Epoch, codes.ErrInvalidRequest)
	}
	op := ctx.Signer
	c, ok := getCommitment(ctx.KV, m.Epoch, op)
	switch {
	case !ok:
		return fmt.Errorf("beacon: %s made no commitment in epoch %d: %w", op, m.Epoch, codes.ErrNotFound)
	case c.Value != nil:
		return fmt.Errorf("beacon: %s has revealed its value for epoch %d already: %w", op, m.Epoch, codes.ErrInvalidRequest)
	case !bytes.Equal(beaconpb.Commit(ctx.ChainID, m.Epoch, op.String(), m.Value), c.Commitment):
		return fmt.Errorf("beacon: the value does not match %s's commitment for epoch %d: %w", op, m.Epoch, codes.ErrInvalidRequest)
	}
	c.Value = m.Value
	ctx.KV.Set(commitmentKey(m.Epoch, op), module.MustMarshal(c))
	ctx.Emit("beacon_reveal", module.Key("validator", op.String()), module.Val("epoch", module.U64(uint64(m.Epoch))))
	return nil
}

// genesisSeed stands in for the beacon before epoch 0.
func genesisSeed(chainID string) []byte {
	h := sha256.Sum256([]byte("agora/beacon/v1 genesis\x00" + chainID))
	return h[:]
}

// begin starts the first epoch at height.
func begin(kv store.KV, height int64) {
	kv.Set(epochKey, module.MustMarshal(&beaconpb.Epoch{Number: 0, StartHeight: height, Blocks: GetParams(kv).EpochBlocks}))
}

// EndBlock closes the epoch whose last block this is: the beacon of the
// one before becomes final, and the next epoch starts with the current
// epoch_blocks.
func (Module) EndBlock(ctx *module.Context) error {
	if !On(ctx.KV) {
		return nil
	}
	e := Current(ctx.KV)
	if e == nil { // a chain that predates the beacon starts one now
		begin(ctx.KV, ctx.Height+1)
		return nil
	}
	if ctx.Height < last(e) {
		return nil
	}
	if e.Number > 0 {
		if err := finalize(ctx, e.Number-1); err != nil {
			return err
		}
	}
	ctx.KV.Set(epochKey, module.MustMarshal(&beaconpb.Epoch{Number: e.Number + 1, StartHeight: ctx.Height + 1, Blocks: GetParams(ctx.KV).EpochBlocks}))
	return nil
}

// finalize makes epoch's beacon from its reveals and penalises the
// validators that committed and did not reveal.
func finalize(ctx *module.Context, epoch int64) error {
	prev := genesisSeed(ctx.ChainID)
	if b, ok := Get(ctx.KV, epoch-1); ok {
		prev = b.Value
	}
	h := sha256.New()
	h.Write([]byte("agora/beacon/v1 value\x00"))
	h.Write(prev)
	h.Write(be(epoch))
	p := GetParams(ctx.KV)
	out := &beaconpb.Beacon{Epoch: epoch, FinalHeight: ctx.Height}
	var missed []*beaconpb.Commitment
	for _, c := range Commitments(ctx.KV, epoch) {
		op := addr.MustParse(c.Validator)
		out.Commitments++
		ctx.KV.Delete(commitmentKey(epoch, op))
		if c.Value == nil {
			missed = append(missed, c)
			continue
		}
		out.Reveals++
		h.Write(op[:])
		h.Write(c.Value)
	}
	if out.Reveals == 0 {
		// No validator revealed (none runs the automation, or all
		// withheld): the beacon is at worst the block hash, which only
		// this block's proposer could have ground.
		h.Write(ctx.Seed)
	}
	out.Value = h.Sum(nil)
	ctx.KV.Set(append(append([]byte(nil), beaconPrefix...), be(epoch)...), module.MustMarshal(out))
	ctx.KV.Set(latestKey, be(epoch))
	ctx.KV.Delete(append(append([]byte(nil), beaconPrefix...), be(epoch-Keep)...))
	ctx.Emit("beacon", module.Key("epoch", module.U64(uint64(epoch))), module.Val("value", hex.EncodeToString(out.Value)),
		module.Val("commitments", module.U64(uint64(out.Commitments))), module.Val("reveals", module.U64(uint64(out.Reveals))))
	// The slash is of the stake that stood behind the commitment: stake
	// that left between the commitment and the missed reveal answers too,
	// so a validator cannot unbond first and withhold for free.
	for _, c := range missed {
		if err := staking.Penalize(ctx, addr.MustParse(c.Validator), c.Height, c.Power, p.MissBps, p.MissJailBlocks, "beacon_miss"); err != nil {
			return err
		}
	}
	return nil
}

// Request names the beacon a draw asked for now will use: the epoch under
// way, whose reveals all come after this block. It is -1 on a chain
// without a beacon, where the draw is made at once from the block hash.
func Request(ctx *module.Context) int64 {
	if e := Current(ctx.KV); e != nil && On(ctx.KV) {
		return e.Number
	}
	return -1
}

// Seed is the seed of the draw for purpose and id from epoch's beacon
// (from the block's hash, for epoch -1), or false while that beacon is
// not final. Different purposes and ids draw independently.
func Seed(ctx *module.Context, epoch int64, purpose string, id uint64) ([]byte, bool) {
	if epoch < 0 {
		return committee.Seed(ctx.Seed, purpose, id), true
	}
	epoch = max(epoch, resume(ctx.KV))
	b, ok := Get(ctx.KV, epoch)
	if !ok {
		e := Current(ctx.KV)
		if e != nil && epoch >= e.Number-1 {
			return nil, false
		}
		// Past and gone (kept beacons are pruned after Keep epochs, and
		// agendas never put a draw off that long): the newest beacon
		// rather than a draw that waits forever.
		if b, ok = Latest(ctx.KV); !ok {
			return committee.Seed(ctx.Seed, purpose, id), true
		}
	}
	return committee.Seed(b.Value, purpose, id), true
}

// resume is the first epoch whose beacon was made wholly on this chain:
// a draw asked for on the chain this one was exported from waits for it,
// since the reveals of that chain's last epochs were dropped (see
// Imported).
func resume(kv store.Reader) int64 {
	if v := kv.Get(resumeKey); v != nil {
		return int64(binary.BigEndian.Uint64(v))
	}
	return 0
}

// ReadyAt is the height at whose EndBlock epoch's beacon is final, as far
// as the schedule is known now (a new epoch_blocks can move it later);
// the modules that draw run their EndBlock after this one's, so they can
// draw in that very block. A beacon already final is ready now.
func ReadyAt(kv store.Reader, height, epoch int64) int64 {
	epoch = max(epoch, resume(kv))
	e := Current(kv)
	switch {
	case e == nil || epoch < e.Number-1:
		return height
	case epoch == e.Number-1:
		return last(e)
	}
	// The next epoch's length is fixed when it starts.
	return last(e) + GetParams(kv).EpochBlocks*(epoch-e.Number+1)
}
