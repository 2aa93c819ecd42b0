// Package escrow holds coins for a module until they are paid out: a job's
// price until its lessees are paid, a challenger's bond until the dispute
// is decided, and later storage deals, data sales and training rewards.
//
// Each hold is a record of its own under the module's prefix, keyed by the
// object it is for, so that a payout can never take more than was held for
// that object, and a hold ends exactly once: after Close, nothing more can
// be paid from it or refunded twice. The coins themselves sit in the
// module's escrow account, and CheckInvariant proves the account holds
// exactly the sum of its open holds.
package escrow

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strings"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/bank"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/store"
)

// Account is one module's escrow: the account that holds the coins and the
// key prefix of its holds.
type Account struct {
	Addr   addr.Address
	prefix []byte
	owed   Owed
}

// New is the escrow held by account a, with its holds under prefix (like
// "job/hold/") and their total per denom beside it ("job/hold_owed/").
func New(a addr.Address, prefix string) Account {
	return Account{Addr: a, prefix: []byte(prefix), owed: NewOwed(strings.TrimSuffix(prefix, "/") + "_owed/")}
}

func (e Account) key(id uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(nil), e.prefix...), id)
}

// A hold is stored as amount (8 bytes, big-endian) followed by the denom.
func encode(c *coin.Coin) []byte {
	return append(binary.BigEndian.AppendUint64(nil, c.Amount), c.Denom...)
}

func decode(v []byte) *coin.Coin {
	return coin.New(string(v[8:]), binary.BigEndian.Uint64(v[:8]))
}

// Held is what remains of hold id, or nil when there is none (never opened,
// or closed).
func (e Account) Held(kv store.Reader, id uint64) *coin.Coin {
	v := kv.Get(e.key(id))
	if v == nil {
		return nil
	}
	return decode(v)
}

// Hold moves c from the payer into escrow as hold id, which must not be
// open already (modules hold under ids they allocate fresh).
func (e Account) Hold(ctx *module.Context, from addr.Address, id uint64, c *coin.Coin) error {
	if c == nil || c.Amount == 0 {
		return fmt.Errorf("escrow: hold %d of nothing: %w", id, codes.ErrInvalidRequest)
	}
	if ctx.KV.Get(e.key(id)) != nil {
		return fmt.Errorf("escrow: hold %d already exists: %w", id, codes.ErrInvalidRequest)
	}
	if err := bank.Send(ctx, from, e.Addr, []*coin.Coin{c}); err != nil {
		return err
	}
	ctx.KV.Set(e.key(id), encode(c))
	return e.owed.Add(ctx.KV, c.Denom, c.Amount)
}

// take lowers hold id by amount, refusing to go below zero.
func (e Account) take(ctx *module.Context, id, amount uint64) (*coin.Coin, error) {
	h := e.Held(ctx.KV, id)
	switch {
	case h == nil:
		return nil, fmt.Errorf("escrow: no open hold %d: %w", id, codes.ErrNotFound)
	case amount > h.Amount:
		return nil, fmt.Errorf("escrow: hold %d has %d%s left, not %d: %w", id, h.Amount, h.Denom, amount, codes.ErrInsufficientFunds)
	}
	ctx.KV.Set(e.key(id), encode(coin.New(h.Denom, h.Amount-amount)))
	e.owed.Sub(ctx.KV, h.Denom, amount)
	return coin.New(h.Denom, amount), nil
}

// Pay pays amount of hold id to to; the hold stays open with the rest.
func (e Account) Pay(ctx *module.Context, id uint64, to addr.Address, amount uint64) error {
	if amount == 0 {
		return nil
	}
	c, err := e.take(ctx, id, amount)
	if err != nil {
		return err
	}
	return bank.Send(ctx, e.Addr, to, []*coin.Coin{c})
}

// Burn destroys amount of hold id (a forfeited bond's remainder).
func (e Account) Burn(ctx *module.Context, id uint64, amount uint64) error {
	if amount == 0 {
		return nil
	}
	c, err := e.take(ctx, id, amount)
	if err != nil {
		return err
	}
	return bank.Burn(ctx, e.Addr, c)
}

// Close ends hold id, paying what remains to to, and returns that amount.
// Closing a hold that is not open is an error, so no hold is refunded twice.
func (e Account) Close(ctx *module.Context, id uint64, to addr.Address) (uint64, error) {
	h := e.Held(ctx.KV, id)
	if h == nil {
		return 0, fmt.Errorf("escrow: no open hold %d: %w", id, codes.ErrNotFound)
	}
	ctx.KV.Delete(e.key(id))
	e.owed.Sub(ctx.KV, h.Denom, h.Amount)
	if h.Amount > 0 {
		if err := bank.Send(ctx, e.Addr, to, []*coin.Coin{h}); err != nil {
			return 0, err
		}
	}
	return h.Amount, nil
}

// CheckInvariant verifies that the escrow account holds, in each denom,
// exactly the sum of its open holds: no coin is in escrow for nothing, and
// no hold promises coins that are not there.
func (e Account) CheckInvariant(kv store.Reader) error {
	sums := map[string]uint64{}
	it := kv.Iterator(e.prefix, store.PrefixEnd(e.prefix))
	for ; it.Valid(); it.Next() {
		c := decode(it.Value())
		sums[c.Denom] += c.Amount
	}
	it.Close()
	for _, b := range bank.Balances(kv, e.Addr) {
		if sums[b.Denom] != b.Amount {
			return fmt.Errorf("escrow %s: the account has %d%s, its holds add up to %d", e.prefix, b.Amount, b.Denom, sums[b.Denom])
		}
		delete(sums, b.Denom)
	}
	denoms := make([]string, 0, len(sums))
	for d := range sums { //agora:sorted
		denoms = append(denoms, d)
	}
	sort.Strings(denoms)
	for _, d := range denoms {
		if sums[d] != 0 {
			return fmt.Errorf("escrow %s: its holds add up to %d%s, the account has none", e.prefix, sums[d], d)
		}
	}
	return e.owed.Exact(kv, e.Addr, fmt.Sprintf("escrow %s", e.prefix))
}

// Solvent is the end-of-block check: the account holds at least the
// running total of its holds.
func (e Account) Solvent(kv store.Reader) error {
	return e.owed.Covered(kv, e.Addr, fmt.Sprintf("escrow %s", e.prefix))
}

// Owed is a module's running total, per denom, of what its account owes:
// kept as it goes, so that checking the account's solvency at the end of
// every block costs a few reads, not a scan of every record.
type Owed struct{ prefix []byte }

// NewOwed keeps totals under prefix (like "channel/owed/").
func NewOwed(prefix string) Owed { return Owed{prefix: []byte(prefix)} }

func (o Owed) key(denom string) []byte { return append(append([]byte(nil), o.prefix...), denom...) }

// Of is what is owed in denom.
func (o Owed) Of(kv store.Reader, denom string) uint64 {
	v := kv.Get(o.key(denom))
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// Add raises what is owed in denom by n.
func (o Owed) Add(kv store.KV, denom string, n uint64) error {
	t, err := coin.Add(o.Of(kv, denom), n)
	if err != nil {
		return fmt.Errorf("escrow: total owed in %s: %w", denom, err)
	}
	o.set(kv, denom, t)
	return nil
}

// Sub lowers what is owed in denom by n; going below zero is a bug.
func (o Owed) Sub(kv store.KV, denom string, n uint64) {
	t := o.Of(kv, denom)
	if n > t {
		panic(fmt.Sprintf("escrow: %s pays out %d%s but owes only %d", o.prefix, n, denom, t))
	}
	o.set(kv, denom, t-n)
}

func (o Owed) set(kv store.KV, denom string, n uint64) {
	if n == 0 {
		kv.Delete(o.key(denom))
		return
	}
	kv.Set(o.key(denom), binary.BigEndian.AppendUint64(nil, n))
}

// Covered checks that account a holds at least what is owed, in every
// denom. (At least: a coin that reaches a module account by a path no one
// foresaw must not halt the chain; the tests' full checks want exactly.)
func (o Owed) Covered(kv store.Reader, a addr.Address, what string) error {
	it := kv.Iterator(o.prefix, store.PrefixEnd(o.prefix))
	owed := map[string]uint64{}
	var denoms []string
	for ; it.Valid(); it.Next() {
		d := string(it.Key()[len(o.prefix):])
		owed[d] = binary.BigEndian.Uint64(it.Value())
		denoms = append(denoms, d)
	}
	it.Close()
	for _, d := range denoms {
		if have, want := bank.Balance(kv, a, d), owed[d]; have < want {
			return fmt.Errorf("%s: the account %s holds %d%s, and %d%s is owed", what, a, have, d, want, d)
		}
	}
	return nil
}

// Exact checks that account a holds exactly what is owed, in every denom
// either side names: the full check, for tests.
func (o Owed) Exact(kv store.Reader, a addr.Address, what string) error {
	if err := o.Covered(kv, a, what); err != nil {
		return err
	}
	for _, b := range bank.Balances(kv, a) {
		if want := o.Of(kv, b.Denom); b.Amount != want {
			return fmt.Errorf("%s: the account %s holds %d%s, and %d%s is owed", what, a, b.Amount, b.Denom, want, b.Denom)
		}
	}
	return nil
}
