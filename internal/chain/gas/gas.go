// Package gas meters the work a transaction makes every node do, in the
// manner of the Cosmos SDK's gas meter: each state read and write costs a
// flat amount plus an amount per byte, and each signature or proof check a
// fixed amount that matches its measured time. One unit of gas is about
// one nanosecond of execution on the reference machine (2 cores, the CI
// machine), so a block's gas limit bounds how long it takes to execute.
//
// The signer sets a gas limit and pays for it in full (fee ≥ limit × the
// minimum gas price); running out stops the tx, reverts its messages and
// keeps the fee. Metering is deterministic: the same tx on the same state
// uses the same gas on every node.
package gas

import (
	"fmt"

	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/store"
)

// The cost table, in gas. docs/chain.md reproduces it; change both.
const (
	// TxByte is charged per byte of the encoded tx: every node stores
	// and gossips it.
	TxByte = 10
	// Ed25519Verify is one ed25519 signature check (about 30 µs with the
	// standard library on the reference machine; curve25519-voi is faster,
	// the price keeps a margin).
	Ed25519Verify = 30_000
	// Groth16Verify is one Groth16 proof check on BN254 for digits-mlp
	// (1.7 ms measured).
	Groth16Verify = 1_800_000
	// Sha256Block is one SHA-256 compression (64 bytes), for Merkle paths.
	Sha256Block = 100

	ReadFlat     = 1_000
	ReadPerByte  = 3
	WriteFlat    = 2_000
	WritePerByte = 30
	DeleteFlat   = 1_000
	IterFlat     = 1_000 // opening an iterator
	IterNextFlat = 30

	// EndBlockStep is the work an EndBlock does later for what a tx puts
	// on an agenda (an order's deadline, a dispute's or a key review's
	// settlement), about 45 µs an order measured; the tx that schedules it
	// pays, since no tx runs when it is done.
	EndBlockStep = 50_000
)

// OutOfGas is what Consume panics with when a tx exceeds its limit. The app
// recovers it into ErrOutOfGas; a panic unwinds a module from any depth
// without every helper having to return an error for it.
type OutOfGas struct {
	Limit, Wanted uint64
	What          string
}

func (o OutOfGas) Error() string {
	return fmt.Sprintf("out of gas: %s needs %d gas in all, the tx's limit is %d", o.What, o.Wanted, o.Limit)
}

// Meter counts the gas a tx uses against its limit.
type Meter struct {
	limit, used uint64
}

// NewMeter returns a meter with a limit.
func NewMeter(limit uint64) *Meter { return &Meter{limit: limit} }

// Consume adds n gas for what, panicking with OutOfGas past the limit.
// A nil meter (block hooks, queries) counts nothing.
func (m *Meter) Consume(n uint64, what string) {
	if m == nil {
		return
	}
	used := m.used + n
	if used < m.used || used > m.limit {
		m.used = m.limit
		panic(OutOfGas{Limit: m.limit, Wanted: used, What: what})
	}
	m.used = used
}

// Used is the gas used so far.
func (m *Meter) Used() uint64 {
	if m == nil {
		return 0
	}
	return m.used
}

// Limit is the meter's limit.
func (m *Meter) Limit() uint64 {
	if m == nil {
		return 0
	}
	return m.limit
}

// Error turns a recovered OutOfGas into the error a tx result carries.
func (o OutOfGas) Err() error {
	return fmt.Errorf("%s; raise the tx's gas limit (agora tx ... --gas auto estimates it): %w", o.Error(), codes.ErrOutOfGas)
}

// KV is a store whose every access is charged to a meter.
type KV struct {
	Parent store.KV
	Meter  *Meter
}

// Get implements store.Reader.
func (k KV) Get(key []byte) []byte {
	v := k.Parent.Get(key)
	k.Meter.Consume(ReadFlat+ReadPerByte*uint64(len(key)+len(v)), "a state read")
	return v
}

// Set implements store.KV.
func (k KV) Set(key, value []byte) {
	k.Meter.Consume(WriteFlat+WritePerByte*uint64(len(key)+len(value)), "a state write")
	k.Parent.Set(key, value)
}

// Delete implements store.KV.
func (k KV) Delete(key []byte) {
	k.Meter.Consume(DeleteFlat, "a state delete")
	k.Parent.Delete(key)
}

// Iterator implements store.Reader; each step is charged as it is taken.
func (k KV) Iterator(start, end []byte) store.Iterator {
	k.Meter.Consume(IterFlat, "an iteration")
	it := &iterator{Iterator: k.Parent.Iterator(start, end), m: k.Meter}
	it.charge()
	return it
}

type iterator struct {
	store.Iterator
	m *Meter
}

func (it *iterator) charge() {
	if !it.Valid() {
		return
	}
	n := IterNextFlat + ReadPerByte*uint64(len(it.Key())+len(it.Value()))
	if it.m != nil && it.m.used+n > it.m.limit {
		it.Iterator.Close() // Consume panics: release the cursor first
	}
	it.m.Consume(n, "an iteration step")
}

func (it *iterator) Next() {
	it.Iterator.Next()
	it.charge()
}
