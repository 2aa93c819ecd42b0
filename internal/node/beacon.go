package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agoranet/agora/internal/chain/beacon/beaconpb"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/staking/stakingpb"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/durable"
	"github.com/agoranet/agora/internal/keyring"
)

// beaconer is a validator node's part in the randomness beacon: in each
// epoch it commits to a fresh random value from the operator key, and in
// the next it reveals it. A value is on disk before its commitment is
// broadcast, so a node killed in between reveals it after a restart
// rather than being slashed for a missing reveal.
type beaconer struct {
	key  *keyring.Key
	path string // <home>/data/beacon-values.json
	log  *slog.Logger
	c    *client.Client

	chainID string
	// This validator's values, by chain id and epoch: a chain started
	// from an exported state carries the epoch numbers on, and a value
	// revealed on the old chain is public.
	values map[valueKey][]byte
	// The epochs with nothing more to do: committed (or not a validator
	// then), revealed (or nothing to reveal), warned of a lost value.
	committed, revealed, warned map[int64]bool
}

// runBeacon takes part in the beacon until ctx ends. It does nothing on
// a chain without one, or while the operator runs no active validator.
func runBeacon(ctx context.Context, wg *sync.WaitGroup, rpc string, key *keyring.Key, home string, log *slog.Logger) error {
	c, err := client.New(rpc)
	if err != nil {
		return err
	}
	b := &beaconer{key: key, path: filepath.Join(home, "data", "beacon-values.json"), log: log, c: c,
		values: map[valueKey][]byte{}, committed: map[int64]bool{}, revealed: map[int64]bool{}, warned: map[int64]bool{}}
	if err := b.load(); err != nil {
		c.Close()
		return err
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer c.Close()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if !b.step(ctx) {
					return
				}
			}
		}
	}()
	return nil
}

func (b *beaconer) load() error {
	raw, err := os.ReadFile(b.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("node: beacon values: %w", err)
	}
	var m map[string]string
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("node: %s is not the beacon values this node writes (%v); move it aside only if you accept a slash for the reveals it held", b.path, err)
	}
	for k, v := range m {
		i := strings.LastIndexByte(k, '/')
		ok := i > 0
		chain, epoch := k[:max(i, 0)], k[i+1:]
		e, err1 := strconv.ParseInt(epoch, 10, 64)
		val, err2 := hex.DecodeString(v)
		if !ok || err1 != nil || err2 != nil || len(val) != beaconpb.ValueSize {
			return fmt.Errorf("node: %s holds a bad entry %q (want \"chain-id/epoch\": 64 hex digits)", b.path, k)
		}
		b.values[valueKey{chain, e}] = val
	}
	return nil
}

type valueKey struct {
	chain string
	epoch int64
}

// save writes the values of the last few epochs, whole and synced, before
// any of them is committed to.
func (b *beaconer) save(current int64) error {
	m := map[string]string{}
	for k, v := range b.values {
		if k.chain != b.chainID || k.epoch < current-4 {
			delete(b.values, k)
			continue
		}
		m[k.chain+"/"+strconv.FormatInt(k.epoch, 10)] = hex.EncodeToString(v)
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return durable.Replace(b.path, raw)
}

// step does what the epoch under way asks: reveal the last epoch's
// value, commit to this one's. It returns false when there is nothing to
// do on this chain, ever.
func (b *beaconer) step(ctx context.Context) bool {
	st, err := client.Ask(ctx, b.c, beaconpb.QueryStatus, &beaconpb.QueryStatusRequest{})
	if errors.Is(err, codes.ErrNotFound) && strings.Contains(err.Error(), "no beacon") {
		b.log.Info("this chain has a fixed validator set and no beacon; the node sends no commitments")
		return false
	}
	if err != nil {
		return true // not up yet, or a hiccup: next tick
	}
	if b.chainID == "" {
		if b.chainID, err = b.c.ChainID(ctx); err != nil {
			return true
		}
	}
	e := st.Epoch
	me := b.key.Address().String()
	for _, m := range []map[int64]bool{b.committed, b.revealed, b.warned} {
		for k := range m {
			if k < e.Number-4 {
				delete(m, k)
			}
		}
	}
	if prev := e.Number - 1; prev >= 0 && !b.revealed[prev] {
		b.reveal(ctx, prev, me)
	}
	if !b.committed[e.Number] {
		b.commit(ctx, e, me)
	}
	return true
}

func (b *beaconer) mine(ctx context.Context, epoch int64, me string) (*beaconpb.Commitment, error) {
	cs, err := client.Ask(ctx, b.c, beaconpb.QueryCommitments, &beaconpb.QueryCommitmentsRequest{Epoch: epoch})
	if err != nil {
		return nil, err
	}
	for _, c := range cs.Commitments {
		if c.Validator == me {
			return c, nil
		}
	}
	return nil, nil
}

func (b *beaconer) reveal(ctx context.Context, epoch int64, me string) {
	c, err := b.mine(ctx, epoch, me)
	if err != nil {
		return
	}
	if c == nil || c.Value != nil {
		b.revealed[epoch] = true
		return
	}
	v := b.values[valueKey{b.chainID, epoch}]
	if v == nil {
		if !b.warned[epoch] {
			b.warned[epoch] = true
			b.log.Error("beacon: this validator committed in an epoch whose value this node does not have; it will be penalised for the missing reveal", "epoch", epoch, "file", b.path)
		}
		return
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := b.c.Submit(sctx, b.key, "", &beaconpb.MsgReveal{Validator: me, Epoch: epoch, Value: v}); err != nil {
		b.log.Warn("beacon: reveal not yet accepted", "epoch", epoch, "err", err)
		return
	}
	b.revealed[epoch] = true
}

func (b *beaconer) commit(ctx context.Context, e *beaconpb.Epoch, me string) {
	s, err := b.c.Status(ctx)
	if err != nil {
		return
	}
	// A commitment landing in the next epoch is refused: leave the last
	// two blocks alone.
	if s.Height+2 > e.StartHeight+e.Blocks-1 {
		return
	}
	v, err := client.Ask(ctx, b.c, stakingpb.QueryValidator, &stakingpb.QueryValidatorRequest{Operator: me})
	if err != nil || v.Validator == nil || v.Validator.Power == 0 || v.Validator.Jailed {
		return // not (or not now) in the active set
	}
	c, err := b.mine(ctx, e.Number, me)
	if err != nil {
		return
	}
	if c != nil {
		b.committed[e.Number] = true
		return
	}
	k := valueKey{b.chainID, e.Number}
	value := b.values[k]
	if value == nil {
		value = make([]byte, beaconpb.ValueSize)
		rand.Read(value)
		b.values[k] = value
		if err := b.save(e.Number); err != nil {
			delete(b.values, k)
			b.log.Error("beacon: cannot keep a value on disk, so it commits to none", "err", err)
			return
		}
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := b.c.Submit(sctx, b.key, "", &beaconpb.MsgCommit{Validator: me, Epoch: e.Number, Commitment: beaconpb.Commit(b.chainID, e.Number, me, value)}); err != nil {
		b.log.Warn("beacon: commitment not accepted", "epoch", e.Number, "err", err)
		return
	}
	b.committed[e.Number] = true
}
