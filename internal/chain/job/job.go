// Package job is the batch compute market: a tenant orders a WebAssembly
// job with its price held in escrow, staked providers bid, and at the end
// of the bidding window the chain leases the job to the r cheapest
// eligible bids. Each lessee commits to a hash of its result, then
// reveals it, so no lessee can copy another's answer. Agreeing results are
// paid and the rest of the escrow refunded; disagreeing results go to a
// committee of verifiers that re-runs the job, and the losers are slashed.
// A lessee that misses its deadline is penalised and the job re-leased to
// the next bid, with the escrow intact.
package job

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sort"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/agenda"
	"github.com/agoranet/agora/internal/chain/audit"
	"github.com/agoranet/agora/internal/chain/audit/auditpb"
	"github.com/agoranet/agora/internal/chain/auth"
	"github.com/agoranet/agora/internal/chain/beacon"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/committee"
	"github.com/agoranet/agora/internal/chain/escrow"
	"github.com/agoranet/agora/internal/chain/gas"
	"github.com/agoranet/agora/internal/chain/job/jobpb"
	"github.com/agoranet/agora/internal/chain/module"
	chainprov "github.com/agoranet/agora/internal/chain/provider"
	"github.com/agoranet/agora/internal/chain/provider/providerpb"
	"github.com/agoranet/agora/internal/chain/staking"
	"github.com/agoranet/agora/internal/chain/store"
)

var (
	orderPrefix  = []byte("job/o/")    // id -> Order
	openPrefix   = []byte("job/open/") // id -> nil: orders not yet ended
	tenantPrefix = []byte("job/t/")    // tenant | id -> nil
	nextKey      = []byte("job/next")
	paramsKey    = []byte("job/params")
	poolPrefix   = []byte("job/pool/") // id -> a disputed order's frozen committee pool

	// deadlines is EndBlock's agenda: each order at its next due height.
	deadlines = agenda.New("job/due/")
	// held is the orders' escrow, one hold per order; Order.Escrow mirrors
	// what remains of it, for queries.
	held = escrow.New(jobpb.Escrow, "job/hold/")
)

// GetParams reads the params.
func GetParams(kv store.Reader) *jobpb.Params {
	v := kv.Get(paramsKey)
	if v == nil {
		return jobpb.DefaultParams()
	}
	p := &jobpb.Params{}
	module.MustUnmarshal(v, p)
	return p
}

func be(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// Get returns an order or nil.
func Get(kv store.Reader, id uint64) *jobpb.Order {
	v := kv.Get(cat(orderPrefix, be(id)))
	if v == nil {
		return nil
	}
	o := &jobpb.Order{}
	module.MustUnmarshal(v, o)
	return o
}

func put(kv store.KV, o *jobpb.Order) { kv.Set(cat(orderPrefix, be(o.Id)), module.MustMarshal(o)) }

// ran reports whether a result means the module ran (and the lessees
// earned their price), as opposed to never starting.
func ran(c jobpb.ResultCode) bool {
	return c != jobpb.ResultCode_RESULT_CODE_INVALID_MODULE && c != jobpb.ResultCode_RESULT_CODE_BAD_INPUT && c != jobpb.ResultCode_RESULT_CODE_UNAVAILABLE
}

// Describe says in words what a result means for the tenant.
func Describe(r *jobpb.Result, o *jobpb.Order) string {
	switch r.GetCode() {
	case jobpb.ResultCode_RESULT_CODE_OK:
		return "the job succeeded"
	case jobpb.ResultCode_RESULT_CODE_EXIT:
		return fmt.Sprintf("the module exited with code %d", r.ExitCode)
	case jobpb.ResultCode_RESULT_CODE_TRAP:
		return "the module trapped"
	case jobpb.ResultCode_RESULT_CODE_OUT_OF_FUEL:
		return fmt.Sprintf("the module used all its fuel (%d); order more", o.Fuel)
	case jobpb.ResultCode_RESULT_CODE_OUT_OF_MEMORY:
		return fmt.Sprintf("the module needed more than its %d MiB of memory", o.MemoryMib)
	case jobpb.ResultCode_RESULT_CODE_INVALID_MODULE:
		return "the module is not WebAssembly the sandbox runs (build with GOOS=wasip1 GOARCH=wasm); escrow refunded"
	case jobpb.ResultCode_RESULT_CODE_OUTPUT_TOO_LARGE:
		return "the module wrote more output than the limit"
	case jobpb.ResultCode_RESULT_CODE_BAD_INPUT:
		return "the module or input at the given URL does not match its hash; escrow refunded"
	case jobpb.ResultCode_RESULT_CODE_UNAVAILABLE:
		return "the module or input could not be fetched from its URL; escrow refunded"
	}
	return "unknown result"
}

func live(l *jobpb.Lease) bool {
	return l.Status == jobpb.LeaseStatus_LEASE_STATUS_ACTIVE || l.Status == jobpb.LeaseStatus_LEASE_STATUS_COMMITTED || l.Status == jobpb.LeaseStatus_LEASE_STATUS_REVEALED
}

func liveLeases(o *jobpb.Order) []*jobpb.Lease {
	var out []*jobpb.Lease
	for _, l := range o.Leases {
		if live(l) {
			out = append(out, l)
		}
	}
	return out
}

func allLive(o *jobpb.Order, s jobpb.LeaseStatus) bool {
	ls := liveLeases(o)
	if uint32(len(ls)) != o.Redundancy {
		return false
	}
	for _, l := range ls {
		if l.Status != s {
			return false
		}
	}
	return true
}

// Create opens an order and takes its escrow.
func Create(ctx *module.Context, m *jobpb.MsgCreateOrder) (*jobpb.Order, error) {
	p := GetParams(ctx.KV)
	r, window, deadline := m.Redundancy, m.BidWindow, m.DeadlineBlocks
	if r == 0 {
		r = 2
	}
	if window == 0 {
		window = p.DefaultBidWindow
	}
	if deadline == 0 {
		deadline = p.DefaultDeadlineBlocks
	}
	switch {
	case r > p.MaxRedundancy:
		return nil, fmt.Errorf("job: redundancy %d is over the limit %d: %w", r, p.MaxRedundancy, codes.ErrInvalidRequest)
	case window > p.MaxBidWindow:
		return nil, fmt.Errorf("job: bid window %d blocks is over the limit %d: %w", window, p.MaxBidWindow, codes.ErrInvalidRequest)
	case deadline > p.MaxDeadlineBlocks:
		return nil, fmt.Errorf("job: deadline %d blocks is over the limit %d: %w", deadline, p.MaxDeadlineBlocks, codes.ErrInvalidRequest)
	case m.Fuel > p.MaxFuel:
		return nil, fmt.Errorf("job: fuel %d is over the limit %d: %w", m.Fuel, p.MaxFuel, codes.ErrInvalidRequest)
	case m.MemoryMib > p.MaxMemoryMib:
		return nil, fmt.Errorf("job: memory %d MiB is over the limit %d: %w", m.MemoryMib, p.MaxMemoryMib, codes.ErrInvalidRequest)
	}
	id := uint64(1)
	if v := ctx.KV.Get(nextKey); v != nil {
		id = binary.BigEndian.Uint64(v)
	}
	escrow := m.MaxPrice.Amount * uint64(r) // ValidateBasic bounds it
	if err := held.Hold(ctx, ctx.Signer, id, coin.New(m.MaxPrice.Denom, escrow)); err != nil {
		return nil, fmt.Errorf("job: escrow of %d%s: %w", escrow, m.MaxPrice.Denom, err)
	}
	ctx.KV.Set(nextKey, be(id+1))
	o := &jobpb.Order{Id: id, Tenant: m.Tenant, ModuleHash: m.ModuleHash, ModuleUrl: m.ModuleUrl, InputHash: m.InputHash, InputUrl: m.InputUrl,
		Fuel: m.Fuel, MemoryMib: m.MemoryMib, MaxPrice: m.MaxPrice, Redundancy: r, BidWindow: window, DeadlineBlocks: deadline,
		CreatedAt: ctx.Height, BiddingUntil: ctx.Height + window, Status: jobpb.OrderStatus_ORDER_STATUS_BIDDING, Escrow: escrow}
	ctx.KV.Set(cat(openPrefix, be(id)), []byte{})
	ctx.KV.Set(cat(tenantPrefix, ctx.Signer[:], be(id)), []byte{})
	schedule(ctx, o)
	put(ctx.KV, o)
	ctx.Emit("job_order", module.Key("order_id", module.U64(id)), module.Key("tenant", o.Tenant),
		module.Val("max_price", coin.New(o.MaxPrice.Denom, o.MaxPrice.Amount).String()), module.Val("redundancy", module.U64(uint64(r))),
		module.Val("bidding_until", module.U64(uint64(o.BiddingUntil))))
	return o, nil
}

// Cancel withdraws an order that has not been leased.
func Cancel(ctx *module.Context, m *jobpb.MsgCancelOrder) error {
	o := Get(ctx.KV, m.OrderId)
	switch {
	case o == nil:
		return fmt.Errorf("job: no order %d: %w", m.OrderId, codes.ErrNotFound)
	case o.Tenant != m.Tenant:
		return fmt.Errorf("job: order %d is %s's: %w", o.Id, o.Tenant, codes.ErrUnauthorized)
	case o.Status != jobpb.OrderStatus_ORDER_STATUS_BIDDING || len(o.Leases) > 0:
		return fmt.Errorf("job: order %d is %s; only an order still in its first bidding can be cancelled: %w", o.Id, o.Status, codes.ErrInvalidRequest)
	}
	if err := end(ctx, o, jobpb.OrderStatus_ORDER_STATUS_CANCELLED, "cancelled by the tenant"); err != nil {
		return err
	}
	schedule(ctx, o)
	put(ctx.KV, o)
	return nil
}

// eligible checks that a provider may bid and be leased now.
func eligible(ctx *module.Context, a addr.Address, p *jobpb.Params) error {
	pr := chainprov.Get(ctx.KV, a)
	switch {
	case pr == nil:
		return fmt.Errorf("job: %s is not a registered provider: %w", a, codes.ErrUnauthorized)
	case !providerpb.IsRoutable(pr):
		return fmt.Errorf("job: provider %s is %s; only online providers bid: %w", a, pr.Status, codes.ErrUnauthorized)
	case staking.JailedUntil(ctx.KV, a, ctx.Height) > ctx.Height:
		return fmt.Errorf("job: provider %s is jailed: %w", a, codes.ErrJailed)
	}
	if have, need := staking.Bonded(ctx.KV, a), chainprov.GetParams(ctx.KV).MinStake; have < need {
		return fmt.Errorf("job: provider %s has %duagr bonded, bidding needs %d: %w", a, have, need, codes.ErrInsufficientStake)
	}
	if rep := providerpb.Reputation(pr); rep < p.MinReputationBps {
		return fmt.Errorf("job: provider %s has reputation %d bps, bidding needs %d: %w", a, rep, p.MinReputationBps, codes.ErrUnauthorized)
	}
	return nil
}

// PlaceBid records a provider's bid.
func PlaceBid(ctx *module.Context, m *jobpb.MsgBid) error {
	p := GetParams(ctx.KV)
	o := Get(ctx.KV, m.OrderId)
	switch {
	case o == nil:
		return fmt.Errorf("job: no order %d: %w", m.OrderId, codes.ErrNotFound)
	case o.Status != jobpb.OrderStatus_ORDER_STATUS_BIDDING || ctx.Height > o.BiddingUntil:
		return fmt.Errorf("job: order %d is not taking bids (%s, bidding until height %d): %w", o.Id, o.Status, o.BiddingUntil, codes.ErrInvalidRequest)
	case m.Provider == o.Tenant:
		return fmt.Errorf("job: a tenant cannot bid on its own order: %w", codes.ErrInvalidRequest)
	case m.Price.Denom != o.MaxPrice.Denom:
		return fmt.Errorf("job: order %d pays in %s, not %s: %w", o.Id, o.MaxPrice.Denom, m.Price.Denom, codes.ErrInvalidRequest)
	case m.Price.Amount > o.MaxPrice.Amount:
		return fmt.Errorf("job: bid %d%s is above order %d's maximum price %d%s: %w", m.Price.Amount, m.Price.Denom, o.Id, o.MaxPrice.Amount, o.MaxPrice.Denom, codes.ErrInvalidRequest)
	case uint32(len(o.Bids)) >= p.MaxBids:
		return fmt.Errorf("job: order %d already has the most bids it takes (%d): %w", o.Id, p.MaxBids, codes.ErrInvalidRequest)
	}
	for _, b := range o.Bids {
		if b.Provider == m.Provider {
			return fmt.Errorf("job: %s has already bid on order %d: %w", m.Provider, o.Id, codes.ErrInvalidRequest)
		}
	}
	if err := eligible(ctx, ctx.Signer, p); err != nil {
		return err
	}
	o.Bids = append(o.Bids, &jobpb.Bid{Provider: m.Provider, Price: m.Price.Amount, Height: ctx.Height})
	put(ctx.KV, o)
	ctx.Emit("job_bid", module.Key("order_id", module.U64(o.Id)), module.Key("provider", m.Provider), module.Val("price", module.U64(m.Price.Amount)))
	return nil
}

// nextBids returns the unused bids of eligible providers, cheapest first
// (ties: the earlier bid, then the lower address), skipping providers that
// already hold or held a lease on the order.
func nextBids(ctx *module.Context, o *jobpb.Order, p *jobpb.Params) []*jobpb.Bid {
	leased := map[string]bool{}
	for _, l := range o.Leases {
		leased[l.Provider] = true
	}
	var out []*jobpb.Bid
	for _, b := range o.Bids {
		if b.Used || leased[b.Provider] || eligible(ctx, addr.MustParse(b.Provider), p) != nil {
			continue
		}
		out = append(out, b)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Price != b.Price {
			return a.Price < b.Price
		}
		if a.Height != b.Height {
			return a.Height < b.Height
		}
		return a.Provider < b.Provider
	})
	return out
}

func addLease(ctx *module.Context, o *jobpb.Order, b *jobpb.Bid) {
	b.Used = true
	l := &jobpb.Lease{Provider: b.Provider, Price: b.Price, LeasedAt: ctx.Height, Deadline: ctx.Height + o.DeadlineBlocks, Status: jobpb.LeaseStatus_LEASE_STATUS_ACTIVE}
	o.Leases = append(o.Leases, l)
	// The lessee's stake answers for a missed deadline and for a wrong
	// result that a committee finds after the reveals.
	ap := audit.GetParams(ctx.KV)
	staking.HoldUntil(ctx, addr.MustParse(l.Provider), l.Deadline+GetParams(ctx.KV).RevealBlocks+max(ap.CommitBlocks, o.DeadlineBlocks)+ap.RevealBlocks+beacon.MaxDrawDelay+3*audit.MaxDueDelay)
	ctx.Emit("job_lease", module.Key("order_id", module.U64(o.Id)), module.Key("provider", l.Provider),
		module.Val("price", module.U64(l.Price)), module.Val("deadline", module.U64(uint64(l.Deadline))))
}

// fill leases the order's empty slots to the next bids. With too few bids
// it reopens bidding once per slot the order lost; after that, or past
// MaxReleases, the order fails and the escrow goes back.
func fill(ctx *module.Context, o *jobpb.Order) error {
	p := GetParams(ctx.KV)
	need := int(o.Redundancy) - len(liveLeases(o))
	if need <= 0 {
		return nil
	}
	if o.Releases > p.MaxReleases {
		return end(ctx, o, jobpb.OrderStatus_ORDER_STATUS_FAILED, fmt.Sprintf("lessees missed their deadlines %d times; the order gave up", o.Releases))
	}
	bids := nextBids(ctx, o, p)
	if len(bids) < need {
		if o.Status == jobpb.OrderStatus_ORDER_STATUS_BIDDING {
			return end(ctx, o, jobpb.OrderStatus_ORDER_STATUS_FAILED, fmt.Sprintf("%d eligible bid(s) at or below the maximum price; redundancy %d needs %d", len(bids), o.Redundancy, need))
		}
		o.Status = jobpb.OrderStatus_ORDER_STATUS_BIDDING
		o.BiddingUntil = ctx.Height + o.BidWindow
		ctx.Emit("job_rebid", module.Key("order_id", module.U64(o.Id)), module.Val("bidding_until", module.U64(uint64(o.BiddingUntil))))
		return nil
	}
	for _, b := range bids[:need] {
		addLease(ctx, o, b)
	}
	o.Status = jobpb.OrderStatus_ORDER_STATUS_RUNNING
	return nil
}

// miss penalises a lessee that let a deadline pass; half of what is taken
// compensates the tenant for the delay.
func miss(ctx *module.Context, o *jobpb.Order, l *jobpb.Lease, why string) error {
	l.Status, l.Reason = jobpb.LeaseStatus_LEASE_STATUS_MISSED, why
	o.Releases++
	a := addr.MustParse(l.Provider)
	if _, err := staking.SlashTo(ctx, a, GetParams(ctx.KV).MissPenaltyBps, 0, "missed a job deadline", addr.MustParse(o.Tenant), 5000); err != nil {
		return err
	}
	chainprov.AddJobOutcome(ctx, a, false)
	ctx.Emit("job_miss", module.Key("order_id", module.U64(o.Id)), module.Key("provider", l.Provider), module.Val("reason", why))
	return nil
}

func leaseOf(o *jobpb.Order, provider string, want jobpb.LeaseStatus) *jobpb.Lease {
	for _, l := range o.Leases {
		if l.Provider == provider && l.Status == want {
			return l
		}
	}
	return nil
}

// CommitResult records a lessee's hidden result.
func CommitResult(ctx *module.Context, m *jobpb.MsgCommitResult) error {
	o := Get(ctx.KV, m.OrderId)
	if o == nil {
		return fmt.Errorf("job: no order %d: %w", m.OrderId, codes.ErrNotFound)
	}
	l := leaseOf(o, m.Provider, jobpb.LeaseStatus_LEASE_STATUS_ACTIVE)
	switch {
	case l == nil:
		return fmt.Errorf("job: %s holds no running lease on order %d (%s): %w", m.Provider, o.Id, o.Status, codes.ErrUnauthorized)
	case ctx.Height > l.Deadline:
		return fmt.Errorf("job: the lease's deadline was height %d: %w", l.Deadline, codes.ErrInvalidRequest)
	}
	l.Status, l.Commitment = jobpb.LeaseStatus_LEASE_STATUS_COMMITTED, m.Commitment
	ctx.Emit("job_commit", module.Key("order_id", module.U64(o.Id)), module.Key("provider", m.Provider))
	if allLive(o, jobpb.LeaseStatus_LEASE_STATUS_COMMITTED) {
		o.Status = jobpb.OrderStatus_ORDER_STATUS_REVEALING
		o.RevealUntil = ctx.Height + GetParams(ctx.KV).RevealBlocks
		ctx.Emit("job_reveal", module.Key("order_id", module.U64(o.Id)), module.Val("reveal_until", module.U64(uint64(o.RevealUntil))))
	}
	schedule(ctx, o)
	put(ctx.KV, o)
	return nil
}

// RevealResult opens a lessee's result. A reveal that does not match the
// commitment is refused; a lessee that never reveals a matching result is
// penalised when the reveal window closes.
func RevealResult(ctx *module.Context, m *jobpb.MsgRevealResult) error {
	o := Get(ctx.KV, m.OrderId)
	if o == nil {
		return fmt.Errorf("job: no order %d: %w", m.OrderId, codes.ErrNotFound)
	}
	if o.Status != jobpb.OrderStatus_ORDER_STATUS_REVEALING {
		return fmt.Errorf("job: order %d is %s, not revealing: %w", o.Id, o.Status, codes.ErrInvalidRequest)
	}
	l := leaseOf(o, m.Provider, jobpb.LeaseStatus_LEASE_STATUS_COMMITTED)
	switch {
	case l == nil:
		return fmt.Errorf("job: %s has no committed lease on order %d to reveal: %w", m.Provider, o.Id, codes.ErrUnauthorized)
	case ctx.Height > o.RevealUntil:
		return fmt.Errorf("job: order %d took reveals until height %d: %w", o.Id, o.RevealUntil, codes.ErrInvalidRequest)
	case !bytes.Equal(jobpb.ResultCommitment(o.Id, m.Provider, m.Result, m.Salt), l.Commitment):
		return fmt.Errorf("job: the revealed result and salt do not match %s's commitment on order %d: %w", m.Provider, o.Id, codes.ErrInvalidRequest)
	}
	l.Status, l.Result, l.OutputUrl = jobpb.LeaseStatus_LEASE_STATUS_REVEALED, m.Result, m.OutputUrl
	ctx.Emit("job_reveal_result", module.Key("order_id", module.U64(o.Id)), module.Key("provider", m.Provider), module.Val("code", m.Result.Code.String()))
	if allLive(o, jobpb.LeaseStatus_LEASE_STATUS_REVEALED) {
		if err := compare(ctx, o); err != nil {
			return err
		}
	}
	schedule(ctx, o)
	put(ctx.KV, o)
	return nil
}

// compare ends an order whose revealed results agree, and sends it to a
// committee otherwise.
func compare(ctx *module.Context, o *jobpb.Order) error {
	var revealed []*jobpb.Lease
	for _, l := range o.Leases {
		if l.Status == jobpb.LeaseStatus_LEASE_STATUS_REVEALED {
			revealed = append(revealed, l)
		}
	}
	agree := len(revealed) == int(o.Redundancy)
	for _, l := range revealed {
		agree = agree && jobpb.Same(l.Result, revealed[0].Result)
	}
	if agree {
		return finish(ctx, o, revealed[0].Result, revealed)
	}
	return dispute(ctx, o, "the lessees' results disagree")
}

// dispute sends o to a committee of verifiers (none of them the tenant
// or a lessee) to re-run the job; why says what calls for it. The
// committee is drawn from a beacon no one knows yet: at once on a chain
// without one, else when it is final (see step).
func dispute(ctx *module.Context, o *jobpb.Order, why string) error {
	ap := audit.GetParams(ctx.KV)
	pool := jobPool(ctx.KV, ap, o)
	if len(pool) < int(ap.CommitteeSize) {
		return end(ctx, o, jobpb.OrderStatus_ORDER_STATUS_FAILED, fmt.Sprintf("%s and %d verifiers are eligible for a committee of %d", why, len(pool), ap.CommitteeSize))
	}
	o.Status, o.Reason = jobpb.OrderStatus_ORDER_STATUS_DISPUTED, why
	ctx.Emit("job_dispute", module.Key("order_id", module.U64(o.Id)), module.Val("reason", why))
	// The pool and its weights are frozen now, before anyone can know
	// the beacon: see committee.Weigh.
	frozen := audit.Weigh(ctx.KV, pool)
	epoch := beacon.Request(ctx)
	if seed, ok := beacon.Seed(ctx, epoch, "job", o.Id); ok {
		return drawJob(ctx, o, frozen, seed)
	}
	o.BeaconEpoch, o.DrawAt = epoch, beacon.ReadyAt(ctx.KV, ctx.Height, epoch)
	ctx.KV.Set(cat(poolPrefix, be(o.Id)), committee.Encode(frozen))
	return nil
}

// jobPool is who may judge o: every staked verifier but its tenant and
// lessees.
func jobPool(kv store.Reader, ap *auditpb.Params, o *jobpb.Order) []addr.Address {
	excluded := map[string]bool{o.Tenant: true}
	for _, l := range o.Leases {
		excluded[l.Provider] = true
	}
	var pool []addr.Address
	for _, v := range audit.Verifiers(kv, ap.VerifierMinStake) {
		if !excluded[v.String()] {
			pool = append(pool, v)
		}
	}
	return pool
}

// drawJob draws o's committee from its frozen pool and seed and opens its
// vote from this block; members that left since the dispute are dropped,
// and with none left o fails.
func drawJob(ctx *module.Context, o *jobpb.Order, frozen []committee.Candidate, seed []byte) error {
	ap := audit.GetParams(ctx.KV)
	o.DrawAt = 0
	members := audit.DrawMembers(ctx.KV, ap, frozen, seed)
	if len(members) == 0 {
		return end(ctx, o, jobpb.OrderStatus_ORDER_STATUS_FAILED, o.Reason+", and every verifier drawn has left")
	}
	// Members re-run the job, so they get the time a lessee had, up to
	// MaxVoteBlocks: a member's stake is held until its vote is due, and a
	// tenant must not be able to lock a verifier's stake for a deadline
	// it chose.
	o.VoteCommitUntil = ctx.Height + max(ap.CommitBlocks, min(o.DeadlineBlocks, MaxVoteBlocks))
	o.VoteRevealUntil = o.VoteCommitUntil + ap.RevealBlocks
	attrs := []module.Attr{module.Key("order_id", module.U64(o.Id))}
	for _, v := range members {
		o.Votes = append(o.Votes, &jobpb.Vote{Verifier: v.String()})
		staking.HoldUntil(ctx, v, o.VoteRevealUntil+audit.MaxDueDelay)
		attrs = append(attrs, module.Key("member", v.String()))
	}
	ctx.Emit("committee", attrs...)
	return nil
}

func memberVote(ctx *module.Context, id uint64, verifier string) (*jobpb.Order, *jobpb.Vote, error) {
	o := Get(ctx.KV, id)
	if o == nil || o.Status != jobpb.OrderStatus_ORDER_STATUS_DISPUTED {
		return nil, nil, fmt.Errorf("job: no disputed order %d: %w", id, codes.ErrNotFound)
	}
	for _, v := range o.Votes {
		if v.Verifier == verifier {
			return o, v, nil
		}
	}
	return nil, nil, fmt.Errorf("job: %s is not on order %d's committee: %w", verifier, id, codes.ErrUnauthorized)
}

// CommitVote records a committee member's hidden result.
func CommitVote(ctx *module.Context, m *jobpb.MsgCommitVote) error {
	o, v, err := memberVote(ctx, m.OrderId, m.Verifier)
	if err != nil {
		return err
	}
	switch {
	case ctx.Height > o.VoteCommitUntil:
		return fmt.Errorf("job: order %d took votes until height %d: %w", o.Id, o.VoteCommitUntil, codes.ErrInvalidRequest)
	case len(v.Commitment) != 0:
		return fmt.Errorf("job: %s has already voted on order %d: %w", m.Verifier, o.Id, codes.ErrInvalidRequest)
	}
	v.Commitment = m.Commitment
	put(ctx.KV, o)
	ctx.Emit("job_commit_vote", module.Key("order_id", module.U64(o.Id)), module.Key("member", m.Verifier))
	return nil
}

// RevealVote opens a committee member's result.
func RevealVote(ctx *module.Context, m *jobpb.MsgRevealVote) error {
	o, v, err := memberVote(ctx, m.OrderId, m.Verifier)
	if err != nil {
		return err
	}
	switch {
	case ctx.Height <= o.VoteCommitUntil:
		return fmt.Errorf("job: order %d's votes open after height %d: %w", o.Id, o.VoteCommitUntil, codes.ErrInvalidRequest)
	case ctx.Height > o.VoteRevealUntil:
		return fmt.Errorf("job: order %d took reveals until height %d: %w", o.Id, o.VoteRevealUntil, codes.ErrInvalidRequest)
	case v.Result != nil:
		return fmt.Errorf("job: %s has already revealed on order %d: %w", m.Verifier, o.Id, codes.ErrInvalidRequest)
	case !bytes.Equal(jobpb.ResultCommitment(o.Id, m.Verifier, m.Result, m.Salt), v.Commitment):
		return fmt.Errorf("job: the revealed vote does not match %s's commitment: %w", m.Verifier, codes.ErrInvalidRequest)
	}
	v.Result = m.Result
	put(ctx.KV, o)
	ctx.Emit("job_reveal_vote", module.Key("order_id", module.U64(o.Id)), module.Key("member", m.Verifier))
	return nil
}

// settleVotes decides a disputed order by the committee's majority: the
// lessees who revealed it are paid, those who revealed anything else are
// slashed, and members who did not vote with the majority lose a little.
func settleVotes(ctx *module.Context, o *jobpb.Order) error {
	var majority *jobpb.Result
	for _, v := range o.Votes {
		n := 0
		for _, w := range o.Votes {
			if v.Result != nil && jobpb.Same(v.Result, w.Result) {
				n++
			}
		}
		if n*2 > len(o.Votes) {
			majority = v.Result
			break
		}
	}
	ap := audit.GetParams(ctx.KV)
	for _, v := range o.Votes {
		if majority != nil && jobpb.Same(v.Result, majority) || majority == nil && v.Result != nil {
			continue
		}
		if _, err := staking.Slash(ctx, addr.MustParse(v.Verifier), ap.MissPenaltyBps, 0, "job vote missed or overruled"); err != nil {
			return err
		}
	}
	if majority == nil {
		return end(ctx, o, jobpb.OrderStatus_ORDER_STATUS_FAILED, "the lessees' results disagree and the committee reached no majority")
	}
	var winners []*jobpb.Lease
	for _, l := range o.Leases {
		if l.Status != jobpb.LeaseStatus_LEASE_STATUS_REVEALED {
			continue
		}
		if jobpb.Same(l.Result, majority) {
			winners = append(winners, l)
			continue
		}
		l.Status, l.Reason = jobpb.LeaseStatus_LEASE_STATUS_OUTVOTED, "its result lost to the committee's"
		a := addr.MustParse(l.Provider)
		if _, err := staking.SlashTo(ctx, a, GetParams(ctx.KV).WrongResultSlashBps, 0, "returned a wrong job result", addr.MustParse(o.Tenant), 5000); err != nil {
			return err
		}
		chainprov.AddJobOutcome(ctx, a, false)
		ctx.Emit("job_outvoted", module.Key("order_id", module.U64(o.Id)), module.Key("provider", l.Provider))
	}
	if len(winners) == 0 {
		return end(ctx, o, jobpb.OrderStatus_ORDER_STATUS_FAILED, "no lessee revealed the result the committee found")
	}
	return finish(ctx, o, majority, winners)
}

// finish ends an order with an agreed result: the winners are paid their
// bids if the module ran, and the rest of the escrow is refunded.
func finish(ctx *module.Context, o *jobpb.Order, r *jobpb.Result, winners []*jobpb.Lease) error {
	o.Result = r
	for _, l := range winners {
		a := addr.MustParse(l.Provider)
		chainprov.AddJobOutcome(ctx, a, true)
		if !ran(r.Code) {
			l.Status = jobpb.LeaseStatus_LEASE_STATUS_UNPAID
			continue
		}
		if err := held.Pay(ctx, o.Id, a, l.Price); err != nil {
			return err
		}
		l.Status = jobpb.LeaseStatus_LEASE_STATUS_PAID
		o.Escrow -= l.Price
		o.Paid += l.Price
	}
	if r.Code == jobpb.ResultCode_RESULT_CODE_OK {
		return end(ctx, o, jobpb.OrderStatus_ORDER_STATUS_COMPLETED, "")
	}
	return end(ctx, o, jobpb.OrderStatus_ORDER_STATUS_FAILED, Describe(r, o))
}

// end closes an order: unpaid live leases are released, the escrow left
// goes back to the tenant.
func end(ctx *module.Context, o *jobpb.Order, status jobpb.OrderStatus, reason string) error {
	for _, l := range o.Leases {
		if live(l) {
			l.Status = jobpb.LeaseStatus_LEASE_STATUS_UNPAID
		}
	}
	refund, err := held.Close(ctx, o.Id, addr.MustParse(o.Tenant))
	if err != nil {
		return err
	}
	o.Refunded += refund
	o.Escrow = 0
	o.Status, o.Reason, o.FinishedAt = status, reason, ctx.Height
	ctx.KV.Delete(cat(openPrefix, be(o.Id)))
	ctx.KV.Delete(cat(poolPrefix, be(o.Id)))
	ctx.Emit("job_done", module.Key("order_id", module.U64(o.Id)), module.Key("tenant", o.Tenant), module.Val("status", status.String()),
		module.Val("paid", module.U64(o.Paid)), module.Val("refunded", module.U64(o.Refunded)), module.Val("reason", reason))
	return nil
}

func ended(o *jobpb.Order) bool {
	return o.Status == jobpb.OrderStatus_ORDER_STATUS_COMPLETED || o.Status == jobpb.OrderStatus_ORDER_STATUS_FAILED || o.Status == jobpb.OrderStatus_ORDER_STATUS_CANCELLED
}

// nextDue is the height at which EndBlock must next look at o: the end of
// bidding, the earliest commit deadline, the end of reveals or of votes.
func nextDue(o *jobpb.Order) int64 {
	switch o.Status {
	case jobpb.OrderStatus_ORDER_STATUS_BIDDING:
		return o.BiddingUntil
	case jobpb.OrderStatus_ORDER_STATUS_RUNNING:
		var due int64
		for _, l := range o.Leases {
			if l.Status == jobpb.LeaseStatus_LEASE_STATUS_ACTIVE && (due == 0 || l.Deadline < due) {
				due = l.Deadline
			}
		}
		return due
	case jobpb.OrderStatus_ORDER_STATUS_REVEALING:
		return o.RevealUntil
	case jobpb.OrderStatus_ORDER_STATUS_DISPUTED:
		if o.DrawAt != 0 {
			return o.DrawAt
		}
		return o.VoteRevealUntil
	}
	return 0
}

// schedule puts o on EndBlock's agenda at its next due height.
func schedule(ctx *module.Context, o *jobpb.Order) {
	due := nextDue(o)
	if ended(o) {
		due = 0
	}
	if due != 0 && due != o.NextDue {
		ctx.ConsumeGas(gas.EndBlockStep, "the order's next EndBlock step") // a no-op in EndBlock
	}
	deadlines.Move(ctx.KV, o.NextDue, due, o.Id)
	o.NextDue = due
}

// MaxVoteBlocks bounds a job committee's commit window: more than a
// re-run of the most fuel an order may buy (max_fuel, about ten minutes)
// takes at one-second blocks.
const MaxVoteBlocks = 5_000

// EndBlock moves the orders whose deadline has come, earliest first, at
// most agenda.PerBlock of them: tenants choose bid windows and deadlines,
// so orders created over many blocks can fall due at one height; those
// past the bound are moved in the blocks after.
func (Module) EndBlock(ctx *module.Context) error {
	for _, id := range deadlines.Due(ctx.KV, ctx.Height, agenda.PerBlock(auth.GetParams(ctx.KV).BlockGasLimit)) {
		o := Get(ctx.KV, id)
		o.NextDue = 0
		if err := step(ctx, o); err != nil {
			return err
		}
		schedule(ctx, o)
		put(ctx.KV, o)
	}
	return nil
}

// step does what o's due height calls for.
func step(ctx *module.Context, o *jobpb.Order) error {
	switch o.Status {
	case jobpb.OrderStatus_ORDER_STATUS_BIDDING:
		if ctx.Height >= o.BiddingUntil {
			return fill(ctx, o)
		}
	case jobpb.OrderStatus_ORDER_STATUS_RUNNING:
		missed := false
		for _, l := range o.Leases {
			if l.Status == jobpb.LeaseStatus_LEASE_STATUS_ACTIVE && ctx.Height >= l.Deadline {
				if err := miss(ctx, o, l, fmt.Sprintf("did not commit a result by height %d", l.Deadline)); err != nil {
					return err
				}
				missed = true
			}
		}
		if missed {
			return fill(ctx, o)
		}
	case jobpb.OrderStatus_ORDER_STATUS_REVEALING:
		if ctx.Height < o.RevealUntil {
			return nil
		}
		revealed := 0
		for _, l := range o.Leases {
			switch l.Status {
			case jobpb.LeaseStatus_LEASE_STATUS_COMMITTED:
				if err := miss(ctx, o, l, fmt.Sprintf("did not reveal a result matching its commitment by height %d", o.RevealUntil)); err != nil {
					return err
				}
			case jobpb.LeaseStatus_LEASE_STATUS_REVEALED:
				revealed++
			}
		}
		// With some results public, a new lessee could copy them: the
		// committee decides between what was revealed. With none, the
		// job is simply leased again.
		if revealed > 0 {
			return dispute(ctx, o, "a lessee did not reveal its result")
		}
		o.Status = jobpb.OrderStatus_ORDER_STATUS_RUNNING
		return fill(ctx, o)
	case jobpb.OrderStatus_ORDER_STATUS_DISPUTED:
		if o.DrawAt != 0 {
			seed, ok := beacon.Seed(ctx, o.BeaconEpoch, "job", o.Id)
			if !ok {
				o.DrawAt = max(ctx.Height+1, beacon.ReadyAt(ctx.KV, ctx.Height, o.BeaconEpoch))
				return nil
			}
			return drawJob(ctx, o, audit.Frozen(ctx.KV, cat(poolPrefix, be(o.Id))), seed)
		}
		if ctx.Height >= o.VoteRevealUntil {
			return settleVotes(ctx, o)
		}
	}
	return nil
}

// List returns orders, by id: a tenant's (or everyone's), and only those
// not yet ended if openOnly.
func List(kv store.Reader, tenant string, openOnly bool, limit int) []*jobpb.Order {
	var prefix []byte
	switch {
	case tenant != "":
		a, err := addr.Parse(tenant)
		if err != nil {
			return nil
		}
		prefix = cat(tenantPrefix, a[:])
	case openOnly:
		prefix = openPrefix
	default:
		prefix = orderPrefix
	}
	it := kv.Iterator(prefix, store.PrefixEnd(prefix))
	defer it.Close()
	var out []*jobpb.Order
	for ; it.Valid() && len(out) < limit; it.Next() {
		o := Get(kv, binary.BigEndian.Uint64(it.Key()[len(it.Key())-8:]))
		if o == nil || openOnly && ended(o) {
			continue
		}
		out = append(out, o)
	}
	return out
}
