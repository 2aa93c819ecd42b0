// Package bank keeps multi-denom balances and the total supply of each
// denom. Native uagr has a fixed supply from genesis; a denom with an issuer
// (uusdc) can be minted by that issuer alone; anyone can burn their own.
package bank

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"sort"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/store"
	"google.golang.org/protobuf/proto"
)

var (
	supplyPrefix = []byte("bank/s/")
	paramsKey    = []byte("bank/params")
)

func supplyKey(denom string) []byte { return append(append([]byte(nil), supplyPrefix...), denom...) }

func getU64(kv store.Reader, key []byte) uint64 {
	v := kv.Get(key)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func setU64(kv store.KV, key []byte, n uint64) {
	if n == 0 {
		kv.Delete(key)
		return
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], n)
	kv.Set(key, b[:])
}

// Balance returns a's balance in denom.
func Balance(kv store.Reader, a addr.Address, denom string) uint64 {
	return getU64(kv, bankpb.BalanceKey(a, denom))
}

// Balances returns all of a's non-zero balances, ordered by denom.
func Balances(kv store.Reader, a addr.Address) []*coin.Coin {
	prefix := bankpb.BalanceKey(a, "")
	it := kv.Iterator(prefix, store.PrefixEnd(prefix))
	defer it.Close()
	var out []*coin.Coin
	for ; it.Valid(); it.Next() {
		out = append(out, coin.New(string(it.Key()[len(prefix):]), binary.BigEndian.Uint64(it.Value())))
	}
	return out
}

// Supply returns the total supply of denom.
func Supply(kv store.Reader, denom string) uint64 { return getU64(kv, supplyKey(denom)) }

// GetParams reads the bank's params.
func GetParams(kv store.Reader) *bankpb.Params {
	p := &bankpb.Params{}
	if v := kv.Get(paramsKey); v != nil {
		if err := proto.Unmarshal(v, p); err != nil {
			panic(store.IOError{Err: fmt.Errorf("bank params corrupt: %w", err)})
		}
	}
	return p
}

func setParams(kv store.KV, p *bankpb.Params) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(p)
	if err != nil {
		panic(err)
	}
	kv.Set(paramsKey, b)
}

// denom returns the registered denom or ErrUnknownDenom.
func denom(kv store.Reader, name string) (*bankpb.Denom, error) {
	for _, d := range GetParams(kv).Denoms {
		if d.Name == name {
			return d, nil
		}
	}
	return nil, fmt.Errorf("bank: denom %q is not one this chain knows (see `agora query supply`): %w", name, codes.ErrUnknownDenom)
}

// sub takes amount of denom from a, or fails without writing.
func sub(kv store.KV, a addr.Address, c *coin.Coin) error {
	have := Balance(kv, a, c.Denom)
	if have < c.Amount {
		return fmt.Errorf("bank: %s has %d%s, needs %s: %w", a, have, c.Denom, coin.String(c), codes.ErrInsufficientFunds)
	}
	setU64(kv, bankpb.BalanceKey(a, c.Denom), have-c.Amount)
	return nil
}

// add credits amount of denom to a.
func add(kv store.KV, a addr.Address, c *coin.Coin) error {
	n, err := coin.Add(Balance(kv, a, c.Denom), c.Amount)
	if err != nil {
		return fmt.Errorf("bank: credit %s to %s: %w", coin.String(c), a, err)
	}
	setU64(kv, bankpb.BalanceKey(a, c.Denom), n)
	return nil
}

// Transfer is one movement of coins out of an account. Every such
// movement on the chain, by any module, goes through Move: it is the one
// place where the agent module's spending policies (through the
// restriction it installs) see money leave an account.
type Transfer struct {
	From, To addr.Address
	Coins    []*coin.Coin
	// For names who the coins are really for when To is a module account
	// that holds them on their behalf: a channel's payee and its royalty
	// recipients. Empty when To itself is the recipient (an account, or a
	// module taking a bond, an escrow or a fee).
	For []addr.Address
	// Fee marks a transaction fee, which policies limit by a fee
	// allowance rather than by their spending limits.
	Fee bool
	// Reward marks a reward paid out of From's slashed stake, which From
	// did not sign for; see Allows.
	Reward bool
}

// Restriction is consulted for each coin of every transfer and burn
// (To is zero for a burn) before it moves. It may refuse the transfer or
// redirect it to another recipient, as the Cosmos SDK's
// SendRestrictionFn does.
type Restriction func(ctx *module.Context, t *Transfer, c *coin.Coin) (to addr.Address, err error)

var (
	restriction Restriction
	blocked     = map[addr.Address]bool{}
)

// BlockRecipients names the module accounts that users' messages may not
// send to (a send, a multi-send, an authorization, a mint). The app calls
// it at start-up with every module's accounts.
func BlockRecipients(accounts ...addr.Address) {
	for _, a := range accounts {
		blocked[a] = true
	}
}

// CheckRecipient refuses a module account as the recipient a user's
// message names: of a send, or of payments to come (a channel's payee, a
// service's royalties).
func CheckRecipient(to addr.Address) error {
	if blocked[to] {
		return fmt.Errorf("bank: %s is a module account; coins reach it only through its module's messages: %w", to, codes.ErrUnauthorized)
	}
	return nil
}

// SetRestriction installs the restriction. The app installs the agent
// module's at start-up, before any block; modules never call it.
func SetRestriction(r Restriction) { restriction = r }

func restrict(ctx *module.Context, t *Transfer, c *coin.Coin) (addr.Address, error) {
	if restriction == nil {
		return t.To, nil
	}
	return restriction(ctx, t, c)
}

// Allows runs the restriction on a transfer without moving anything, for
// money that leaves From's hands by another road: a slashed staker's
// stake, already in the staking pool, paying its challenger a reward. An
// agent's stake is its owner's money, and its policy decides whom it may
// reach either way. What the policy counts (spending) it counts here.
func Allows(ctx *module.Context, t Transfer) error {
	for _, c := range t.Coins {
		if _, err := restrict(ctx, &t, c); err != nil {
			return err
		}
	}
	return nil
}

// Move executes a transfer. On error nothing has been written that the
// caller's cache would keep: callers run it in a cache that is discarded
// on failure.
func Move(ctx *module.Context, t Transfer) error {
	for _, c := range t.Coins {
		if _, err := denom(ctx.KV, c.Denom); err != nil {
			return err
		}
		to, err := restrict(ctx, &t, c)
		if err != nil {
			return err
		}
		if err := sub(ctx.KV, t.From, c); err != nil {
			return err
		}
		if err := add(ctx.KV, to, c); err != nil {
			return err
		}
		ctx.Emit("transfer", module.Key("sender", t.From.String()), module.Key("recipient", to.String()), module.Val("amount", coin.String(c)))
	}
	return nil
}

// Send moves coins from one account to another (Move of a plain transfer).
func Send(ctx *module.Context, from, to addr.Address, coins []*coin.Coin) error {
	return Move(ctx, Transfer{From: from, To: to, Coins: coins})
}

// Mint creates coins of an issued denom; only the issuer may.
func Mint(ctx *module.Context, issuer, to addr.Address, c *coin.Coin) error {
	d, err := denom(ctx.KV, c.Denom)
	if err != nil {
		return err
	}
	if d.Issuer == "" {
		return fmt.Errorf("bank: %s has a fixed supply and cannot be minted: %w", c.Denom, codes.ErrUnauthorized)
	}
	if d.Issuer != issuer.String() {
		return fmt.Errorf("bank: only the issuer %s may mint %s, not %s: %w", d.Issuer, c.Denom, issuer, codes.ErrUnauthorized)
	}
	supply, err := coin.Add(Supply(ctx.KV, c.Denom), c.Amount)
	if err != nil {
		return fmt.Errorf("bank: mint %s: %w", coin.String(c), err)
	}
	if err := add(ctx.KV, to, c); err != nil {
		return err
	}
	setU64(ctx.KV, supplyKey(c.Denom), supply)
	ctx.Emit("mint", module.Key("issuer", issuer.String()), module.Key("recipient", to.String()), module.Val("amount", coin.String(c)))
	return nil
}

// Issue creates uagr as block rewards into to. Only the staking module
// calls it, within the issuance ceiling it fixed at genesis; no message
// reaches it.
func Issue(ctx *module.Context, to addr.Address, amount uint64) error {
	c := coin.New(coin.Native, amount)
	supply, err := coin.Add(Supply(ctx.KV, c.Denom), amount)
	if err != nil {
		return fmt.Errorf("bank: issue %s: %w", coin.String(c), err)
	}
	if err := add(ctx.KV, to, c); err != nil {
		return err
	}
	setU64(ctx.KV, supplyKey(c.Denom), supply)
	ctx.Emit("issue", module.Key("recipient", to.String()), module.Val("amount", coin.String(c)))
	return nil
}

// Burn destroys coins held by from.
func Burn(ctx *module.Context, from addr.Address, c *coin.Coin) error {
	if _, err := denom(ctx.KV, c.Denom); err != nil {
		return err
	}
	if _, err := restrict(ctx, &Transfer{From: from, Coins: []*coin.Coin{c}}, c); err != nil {
		return err
	}
	if err := sub(ctx.KV, from, c); err != nil {
		return err
	}
	setU64(ctx.KV, supplyKey(c.Denom), Supply(ctx.KV, c.Denom)-c.Amount)
	ctx.Emit("burn", module.Key("burner", from.String()), module.Val("amount", coin.String(c)))
	return nil
}

// CheckInvariant verifies that each denom's supply equals the sum of all
// balances in it. A failure means a bug in the state machine.
func CheckInvariant(kv store.Reader) error {
	sums := map[string]uint64{}
	it := kv.Iterator(bankpb.BalancePrefix, store.PrefixEnd(bankpb.BalancePrefix))
	for ; it.Valid(); it.Next() {
		d := string(it.Key()[len(bankpb.BalancePrefix)+addr.Len:])
		s, err := coin.Add(sums[d], binary.BigEndian.Uint64(it.Value()))
		if err != nil {
			it.Close()
			return fmt.Errorf("bank: invariant: balances of %s overflow", d)
		}
		sums[d] = s
	}
	it.Close()
	for _, d := range GetParams(kv).Denoms {
		if got, want := sums[d.Name], Supply(kv, d.Name); got != want {
			return fmt.Errorf("bank: invariant: balances of %s sum to %d, supply says %d", d.Name, got, want)
		}
		delete(sums, d.Name)
	}
	if len(sums) != 0 {
		return fmt.Errorf("bank: invariant: balances in %d unregistered denoms", len(sums))
	}
	return nil
}

// Changes is a block's writes as store.Cache reports them.
type Changes interface {
	Changes(prefix []byte, fn func(key, old, new []byte))
}

// CheckBlock is the end-of-block supply check: in each denom, what the
// block's writes added to balances less what they took equals what it
// minted less what it burned. It reads only the keys the block wrote.
func CheckBlock(ch Changes) error {
	type sums struct{ balUp, balDown, supUp, supDown [2]uint64 } // 128-bit
	add := func(acc *[2]uint64, n uint64) {
		var carry uint64
		acc[1], carry = bits.Add64(acc[1], n, 0)
		acc[0] += carry
	}
	per := map[string]*sums{}
	var denoms []string
	at := func(d string) *sums {
		s, ok := per[d]
		if !ok {
			s = &sums{}
			per[d] = s
			denoms = append(denoms, d)
		}
		return s
	}
	delta := func(old, new []byte, up, down *[2]uint64) {
		o, n := u64(old), u64(new)
		if n >= o {
			add(up, n-o)
		} else {
			add(down, o-n)
		}
	}
	ch.Changes(bankpb.BalancePrefix, func(k, old, new []byte) {
		s := at(string(k[len(bankpb.BalancePrefix)+addr.Len:]))
		delta(old, new, &s.balUp, &s.balDown)
	})
	ch.Changes(supplyPrefix, func(k, old, new []byte) {
		s := at(string(k[len(supplyPrefix):]))
		delta(old, new, &s.supUp, &s.supDown)
	})
	sort.Strings(denoms)
	for _, d := range denoms {
		s := per[d]
		var l, r [2]uint64 // balUp + supDown == supUp + balDown
		add(&l, s.balUp[1])
		l[0] += s.balUp[0]
		add(&l, s.supDown[1])
		l[0] += s.supDown[0]
		add(&r, s.supUp[1])
		r[0] += s.supUp[0]
		add(&r, s.balDown[1])
		r[0] += s.balDown[0]
		if l != r {
			return fmt.Errorf("bank: invariant: this block raised balances of %s by %s and lowered them by %s, but minted %s and burned %s",
				d, fmt128(s.balUp), fmt128(s.balDown), fmt128(s.supUp), fmt128(s.supDown))
		}
	}
	return nil
}

func fmt128(n [2]uint64) string {
	if n[0] == 0 {
		return fmt.Sprint(n[1])
	}
	return fmt.Sprintf("%d*2^64+%d", n[0], n[1])
}

func u64(v []byte) uint64 {
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}
