// Package storage is the storage market as a chain module. Storage nodes
// register with stake, capacity and an endpoint. A deal carries an
// object's manifest and escrows its whole price; the chain places the n
// pieces of every segment on n distinct nodes, stake-weighted and seeded
// by the block. Every epoch the block that opens it names one leaf of
// every piece (storagepb.Challenge); the node holding the piece answers
// with the leaf and its Merkle path to the piece's root, many answers to
// a tx, and is paid that epoch's share from escrow. A piece whose answer
// does not come in time is lost: its node is slashed and suspended, and
// the chain hands the piece to another node, which rebuilds it from k
// others and is paid for the repair from the deal's reserve. When the
// last epoch is over, what remains of the escrow goes back to the owner.
//
// State per piece is one record, one agenda entry and one index entry,
// whatever the number of epochs: answers are not kept, only the last
// epoch each piece proved (docs/storage.md, "State").
package storage

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/bits"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/agenda"
	"github.com/agoranet/agora/internal/chain/auth"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/escrow"
	"github.com/agoranet/agora/internal/chain/gas"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/staking"
	"github.com/agoranet/agora/internal/chain/storage/storagepb"
	"github.com/agoranet/agora/internal/chain/store"
	"github.com/agoranet/agora/internal/chain/tx"
)

var (
	nodePrefix     = []byte("storage/n/")  // operator -> StorageNode
	dealPrefix     = []byte("storage/d/")  // id -> Deal
	piecePrefix    = []byte("storage/p/")  // deal | segment | index -> Piece
	assignedPrefix = []byte("storage/np/") // operator | deal | segment | index -> nil
	ownerPrefix    = []byte("storage/o/")  // owner | deal -> nil
	cidPrefix      = []byte("storage/c/")  // cid | deal -> nil
	manifestPrefix = []byte("storage/m/")  // deal -> its manifest, written once
	epochKey       = []byte("storage/epoch")
	nextKey        = []byte("storage/next")
	nodesKey       = []byte("storage/nodes") // how many nodes are registered
	paramsKey      = []byte("storage/params")

	// due is EndBlock's agenda: every piece, at the height its next
	// answer is due by (or, once lost, at its deal's last height).
	due = agenda.New("storage/due/")
	// repairs is the segments waiting for repair (id PieceID(deal, seg,
	// 0)), so that a block's repairs are bounded however many pieces it
	// loses.
	repairs = agenda.New("storage/rep/")
	// held is the deals' escrow, one hold per deal.
	held = escrow.New(storagepb.Escrow, "storage/hold/")
)

func be(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func pieceKey(deal uint64, seg, idx uint32) []byte {
	return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(cat(piecePrefix, be(deal)), seg), idx)
}

func assignedKey(op addr.Address, deal uint64, seg, idx uint32) []byte {
	return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(cat(assignedPrefix, op[:], be(deal)), seg), idx)
}

// GetParams reads the params.
func GetParams(kv store.Reader) *storagepb.Params {
	v := kv.Get(paramsKey)
	if v == nil {
		return storagepb.DefaultParams()
	}
	p := &storagepb.Params{}
	module.MustUnmarshal(v, p)
	return p
}

// GetNode returns a node or nil.
func GetNode(kv store.Reader, op addr.Address) *storagepb.StorageNode {
	v := kv.Get(cat(nodePrefix, op[:]))
	if v == nil {
		return nil
	}
	n := &storagepb.StorageNode{}
	module.MustUnmarshal(v, n)
	return n
}

func putNode(kv store.KV, op addr.Address, n *storagepb.StorageNode) {
	kv.Set(cat(nodePrefix, op[:]), module.MustMarshal(n))
}

// Nodes lists the registered nodes by operator address.
func Nodes(kv store.Reader) []*storagepb.StorageNode {
	it := kv.Iterator(nodePrefix, store.PrefixEnd(nodePrefix))
	defer it.Close()
	var out []*storagepb.StorageNode
	for ; it.Valid(); it.Next() {
		n := &storagepb.StorageNode{}
		module.MustUnmarshal(it.Value(), n)
		out = append(out, n)
	}
	return out
}

// GetDeal returns a deal or nil.
func GetDeal(kv store.Reader, id uint64) *storagepb.Deal {
	v := kv.Get(cat(dealPrefix, be(id)))
	if v == nil {
		return nil
	}
	d := &storagepb.Deal{}
	module.MustUnmarshal(v, d)
	return d
}

func putDeal(kv store.KV, d *storagepb.Deal) {
	kv.Set(cat(dealPrefix, be(d.Id)), module.MustMarshal(d))
}

// GetPiece returns a piece or nil.
func GetPiece(kv store.Reader, deal uint64, seg, idx uint32) *storagepb.Piece {
	v := kv.Get(pieceKey(deal, seg, idx))
	if v == nil {
		return nil
	}
	p := &storagepb.Piece{}
	module.MustUnmarshal(v, p)
	return p
}

func putPiece(kv store.KV, p *storagepb.Piece) {
	kv.Set(pieceKey(p.Deal, p.Segment, p.Index), module.MustMarshal(p))
}

// Pieces lists a deal's pieces, or one segment's when seg >= 0, in order.
func Pieces(kv store.Reader, deal uint64, seg int64) []*storagepb.Piece {
	start := cat(piecePrefix, be(deal))
	if seg >= 0 {
		start = binary.BigEndian.AppendUint32(start, uint32(seg))
	}
	it := kv.Iterator(start, store.PrefixEnd(start))
	defer it.Close()
	var out []*storagepb.Piece
	for ; it.Valid(); it.Next() {
		p := &storagepb.Piece{}
		module.MustUnmarshal(it.Value(), p)
		out = append(out, p)
	}
	return out
}

// Assigned lists the pieces placed on op, at most limit.
func Assigned(kv store.Reader, op addr.Address, limit int) []*storagepb.Piece {
	start := cat(assignedPrefix, op[:])
	it := kv.Iterator(start, store.PrefixEnd(start))
	defer it.Close()
	var out []*storagepb.Piece
	for ; it.Valid() && len(out) < limit; it.Next() {
		k := it.Key()[len(start):]
		if p := GetPiece(kv, binary.BigEndian.Uint64(k), binary.BigEndian.Uint32(k[8:]), binary.BigEndian.Uint32(k[12:])); p != nil {
			out = append(out, p)
		}
	}
	return out
}

// DealsOf lists the deals of owner, at most limit.
func DealsOf(kv store.Reader, owner addr.Address, limit int) []*storagepb.Deal {
	start := cat(ownerPrefix, owner[:])
	it := kv.Iterator(start, store.PrefixEnd(start))
	defer it.Close()
	var out []*storagepb.Deal
	for ; it.Valid() && len(out) < limit; it.Next() {
		if d := GetDeal(kv, binary.BigEndian.Uint64(it.Key()[len(start):])); d != nil {
			out = append(out, d)
		}
	}
	return out
}

// DealOf returns the newest open deal of the object cid, or nil.
func DealOf(kv store.Reader, cid []byte) *storagepb.Deal {
	start := cat(cidPrefix, []byte{byte(len(cid))}, cid)
	it := kv.Iterator(start, store.PrefixEnd(start))
	defer it.Close()
	var id uint64
	for ; it.Valid(); it.Next() {
		id = binary.BigEndian.Uint64(it.Key()[len(start):])
	}
	if id == 0 {
		return nil
	}
	return GetDeal(kv, id)
}

// CurrentEpoch is the epoch whose challenges are out.
func CurrentEpoch(kv store.Reader) *storagepb.Epoch {
	e := &storagepb.Epoch{}
	if v := kv.Get(epochKey); v != nil {
		module.MustUnmarshal(v, e)
	}
	return e
}

// dueHeight is the last height at which epoch's answers are taken.
func dueHeight(p *storagepb.Params, epoch int64) int64 {
	return epoch*p.EpochBlocks + p.WindowBlocks
}

// Register adds a storage node, updates its details, or brings a
// suspended one back once its suspension is over.
func Register(ctx *module.Context, op addr.Address, m *storagepb.MsgRegisterNode) error {
	p := GetParams(ctx.KV)
	if have := staking.Bonded(ctx.KV, op); have < p.MinStake {
		return fmt.Errorf("storage: %s has %duagr bonded, a storage node needs %d (agora tx bond): %w", op, have, p.MinStake, codes.ErrInsufficientStake)
	}
	if until := staking.JailedUntil(ctx.KV, op, ctx.Height); until > 0 {
		return fmt.Errorf("storage: %s is jailed until height %d: %w", op, until, codes.ErrJailed)
	}
	n := GetNode(ctx.KV, op)
	if n == nil {
		count := getU64(ctx.KV, nodesKey)
		if count >= uint64(p.MaxNodes) {
			return fmt.Errorf("storage: the chain already has %d storage nodes, its limit (param max_nodes): %w", count, codes.ErrInvalidRequest)
		}
		ctx.KV.Set(nodesKey, be(count+1))
		n = &storagepb.StorageNode{Operator: op.String(), RegisteredAt: ctx.Height, Status: storagepb.NodeStatus_NODE_STATUS_ACTIVE}
	}
	switch n.Status {
	case storagepb.NodeStatus_NODE_STATUS_EXCLUDED:
		return fmt.Errorf("storage: %s was suspended %d times and is excluded; register a new operator: %w", op, n.Suspensions, codes.ErrInvalidRequest)
	case storagepb.NodeStatus_NODE_STATUS_SUSPENDED:
		back := n.SuspendedEpoch + p.SuspendEpochs
		if cur := ctx.Height / p.EpochBlocks; cur < back {
			return fmt.Errorf("storage: %s is suspended until epoch %d (now %d) for a missed proof: %w", op, back, cur, codes.ErrJailed)
		}
		n.Status = storagepb.NodeStatus_NODE_STATUS_ACTIVE
		ctx.Emit("storage_node_active", module.Key("operator", op.String()))
	}
	if m.Capacity < n.Used {
		return fmt.Errorf("storage: capacity %d is below the %d bytes already placed on %s: %w", m.Capacity, n.Used, op, codes.ErrInvalidRequest)
	}
	n.Endpoint, n.Region, n.Capacity = m.Endpoint, m.Region, m.Capacity
	n.RetrievalDenom, n.RetrievalPricePerGib = m.RetrievalDenom, m.RetrievalPricePerGib
	putNode(ctx.KV, op, n)
	// The stake backs the pieces: it may not be unbonded from under them.
	if staking.Required(ctx.KV, op, storagepb.Name) != p.MinStake {
		staking.SetRequired(ctx, op, storagepb.Name, p.MinStake)
	}
	ctx.Emit("storage_register", module.Key("operator", op.String()), module.Val("endpoint", m.Endpoint), module.Val("capacity", module.U64(m.Capacity)))
	return nil
}

func getU64(kv store.Reader, k []byte) uint64 {
	if v := kv.Get(k); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// candidate is a node placement may choose, with its weight (its stake).
type candidate struct {
	op     addr.Address
	node   *storagepb.StorageNode
	weight uint64
	free   uint64
	mark   uint64 // the pool's gen when taken for the set being placed
	dirty  bool   // its node's record changed
}

// pool is the nodes placement may use: active, unjailed, with the
// minimum stake bonded, and which of them the set being placed (a
// segment's pieces, a probe's probers) has taken already.
type pool struct {
	cs  []*candidate
	by  map[addr.Address]*candidate
	gen uint64
}

// maxWeight caps a node's weight, so that the sum over max_nodes nodes
// cannot overflow.
const maxWeight = 1 << 50

func newPool(ctx *module.Context, p *storagepb.Params) *pool {
	pl := &pool{by: map[addr.Address]*candidate{}}
	for _, n := range Nodes(ctx.KV) {
		if n.Status != storagepb.NodeStatus_NODE_STATUS_ACTIVE {
			continue
		}
		op := addr.MustParse(n.Operator)
		if staking.JailedUntil(ctx.KV, op, ctx.Height) > 0 {
			continue
		}
		stake := staking.Bonded(ctx.KV, op)
		if stake < p.MinStake {
			continue
		}
		c := &candidate{op: op, node: n, weight: min(stake, maxWeight), free: n.Capacity - n.Used}
		pl.cs = append(pl.cs, c)
		pl.by[op] = c
	}
	return pl
}

// fresh starts a new set: nothing is taken.
func (pl *pool) fresh() { pl.gen++ }

// take marks a's node taken for the current set (it holds a piece of the
// segment already, or lost one).
func (pl *pool) take(a addr.Address) {
	if c := pl.by[a]; c != nil {
		c.mark = pl.gen
	}
}

// save writes the nodes placement changed, once each.
func (pl *pool) save(ctx *module.Context) {
	for _, c := range pl.cs {
		if c.dirty {
			putNode(ctx.KV, c.op, c.node)
			c.dirty = false
		}
	}
}

// PlacementDomain separates placement draws from every other hash.
const PlacementDomain = "agora/storage/placement/v1"

// draw picks a node not taken in the current set with room for size,
// weighted by stake, from the seed, and takes it; nil when none is left.
func (pl *pool) draw(ctx *module.Context, size uint64, deal uint64, seg, idx uint32, attempt uint32) *candidate {
	ctx.ConsumeGas(gas.ReadFlat/10*uint64(len(pl.cs)), "placement")
	ok := func(c *candidate) bool { return c.free >= size && c.mark != pl.gen }
	var total uint64
	for _, c := range pl.cs {
		if ok(c) {
			total += c.weight
		}
	}
	if total == 0 {
		return nil
	}
	var b [20]byte
	binary.BigEndian.PutUint64(b[:8], deal)
	binary.BigEndian.PutUint32(b[8:12], seg)
	binary.BigEndian.PutUint32(b[12:16], idx)
	binary.BigEndian.PutUint32(b[16:], attempt)
	// The block's hash seeds placement; outside a block (CheckTx) the
	// epoch's seed stands in, which places the same way but for the seed.
	seed := ctx.Seed
	if len(seed) == 0 {
		seed = CurrentEpoch(ctx.KV).Seed
	}
	h := sha256.Sum256(cat([]byte(PlacementDomain), seed, b[:]))
	r := binary.BigEndian.Uint64(h[:8]) % total
	for _, c := range pl.cs {
		if !ok(c) {
			continue
		}
		if r < c.weight {
			c.mark = pl.gen
			return c
		}
		r -= c.weight
	}
	return nil
}

// assign places piece pc on c; the pool's save writes c's node after.
func assign(ctx *module.Context, pc *storagepb.Piece, c *candidate) {
	c.free -= pc.Size
	c.node.Used += pc.Size
	c.dirty = true
	pc.Node = c.op.String()
	ctx.KV.Set(assignedKey(c.op, pc.Deal, pc.Segment, pc.Index), []byte{})
}

// unassign takes pc off its node (a loss or the deal's end).
func unassign(ctx *module.Context, pc *storagepb.Piece) {
	if pc.Node == "" {
		return
	}
	op := addr.MustParse(pc.Node)
	if n := GetNode(ctx.KV, op); n != nil {
		n.Used -= min(n.Used, pc.Size)
		putNode(ctx.KV, op, n)
	}
	ctx.KV.Delete(assignedKey(op, pc.Deal, pc.Segment, pc.Index))
	pc.Node = ""
}

// MaxProvableLeaf is the largest leaf a deal may have: its answers, a
// leaf and a path each, must fit several to a tx.
const MaxProvableLeaf = 16 << 10

// CreateDeal escrows a deal's price and places its pieces.
func CreateDeal(ctx *module.Context, owner addr.Address, m *storagepb.MsgCreateDeal) (*storagepb.Deal, error) {
	p := GetParams(ctx.KV)
	if len(m.Manifest) > int(p.MaxManifestBytes) {
		return nil, fmt.Errorf("storage: the manifest is %d bytes, over this chain's %d (param max_manifest_bytes): store the file as several objects: %w", len(m.Manifest), p.MaxManifestBytes, codes.ErrInvalidRequest)
	}
	if m.DurationEpochs > p.MaxDurationEpochs {
		return nil, fmt.Errorf("storage: %d epochs is over the most a deal may last, %d: %w", m.DurationEpochs, p.MaxDurationEpochs, codes.ErrInvalidRequest)
	}
	ctx.ConsumeGas(gas.Sha256Block*uint64(len(m.Manifest)/64+1)*2, "manifest")
	man, err := storagepb.ParseManifest(m.Manifest)
	if err != nil {
		return nil, fmt.Errorf("storage: %v: %w", err, codes.ErrInvalidRequest)
	}
	if len(man.Segments) == 0 {
		return nil, fmt.Errorf("storage: an empty object has nothing to store; its CID names it already: %w", codes.ErrInvalidRequest)
	}
	if man.LeafSize > MaxProvableLeaf {
		return nil, fmt.Errorf("storage: %d-byte leaves cannot be proven: an answer carries a leaf, and a tx is at most %d bytes; code the object with leaves of at most %d: %w", man.LeafSize, tx.MaxBytes, MaxProvableLeaf, codes.ErrInvalidRequest)
	}
	id := getU64(ctx.KV, nextKey) + 1
	if id > storagepb.MaxDealID {
		return nil, fmt.Errorf("storage: out of deal ids: %w", codes.ErrInvalidRequest)
	}
	ctx.KV.Set(nextKey, be(id))
	cur := ctx.Height / p.EpochBlocks
	d := &storagepb.Deal{Id: id, Owner: owner.String(), Cid: storagepb.CIDOf(m.Manifest), Size: man.Size, K: man.K, N: man.N, LeafSize: man.LeafSize,
		Segments: uint32(len(man.Segments)), Denom: m.Denom, PricePerGibEpoch: m.PricePerGibEpoch, FirstEpoch: cur + 1, LastEpoch: cur + m.DurationEpochs,
		Status: storagepb.DealStatus_DEAL_STATUS_ACTIVE, CreatedAt: ctx.Height, Manifest: m.Manifest}

	// The price: every piece's share for every epoch, and the reserve.
	var perEpoch uint64
	for _, s := range man.Segments {
		pay, ok := storagepb.Per(s.PieceSize, d.PricePerGibEpoch)
		if !ok || pay > ^uint64(0)/uint64(d.N) || perEpoch+pay*uint64(d.N) < perEpoch {
			return nil, fmt.Errorf("storage: the deal's price overflows: %w", codes.ErrInvalidAmount)
		}
		perEpoch += pay * uint64(d.N)
	}
	epochs := uint64(m.DurationEpochs)
	if perEpoch > ^uint64(0)/epochs {
		return nil, fmt.Errorf("storage: the deal's price overflows: %w", codes.ErrInvalidAmount)
	}
	storageCost := perEpoch * epochs
	hi, lo := bits.Mul64(storageCost, uint64(p.RepairReserveBps))
	if hi != 0 {
		return nil, fmt.Errorf("storage: the deal's reserve overflows: %w", codes.ErrInvalidAmount)
	}
	d.RepairReserve = lo / 10_000
	if storageCost+d.RepairReserve < storageCost {
		return nil, fmt.Errorf("storage: the deal's price overflows: %w", codes.ErrInvalidAmount)
	}
	d.Escrow = storageCost + d.RepairReserve
	if err := held.Hold(ctx, owner, id, coin.New(d.Denom, d.Escrow)); err != nil {
		return nil, fmt.Errorf("storage: escrow of %d%s for %d epochs of %d pieces: %w", d.Escrow, d.Denom, epochs, len(man.Segments)*int(d.N), err)
	}

	// Placement: each segment's n pieces on n distinct operators. Each
	// piece pays up front for the EndBlock work it may cause (its misses,
	// its repair, its retirement).
	pl := newPool(ctx, p)
	at := dueHeight(p, d.FirstEpoch)
	for si, s := range man.Segments {
		pl.fresh()
		for i := range man.N {
			ctx.ConsumeGas(gas.EndBlockStep, "storage piece")
			pc := &storagepb.Piece{Deal: id, Segment: uint32(si), Index: i, Root: s.PieceRoots[i], Size: s.PieceSize,
				Status: storagepb.PieceStatus_PIECE_STATUS_PENDING, DueEpoch: d.FirstEpoch, AcceptBy: d.FirstEpoch + p.AcceptEpochs - 1}
			c := pl.draw(ctx, s.PieceSize, id, uint32(si), i, 0)
			if c == nil {
				return nil, fmt.Errorf("storage: only %d storage nodes with room for a %d-byte piece can take segment %d, which needs %d on distinct operators: use a smaller n, or wait for more nodes: %w", i, s.PieceSize, si, man.N, codes.ErrInvalidRequest)
			}
			assign(ctx, pc, c)
			putPiece(ctx.KV, pc)
			due.Add(ctx.KV, at, storagepb.PieceID(id, pc.Segment, pc.Index))
		}
	}
	pl.save(ctx)
	d.OpenPieces = uint32(len(man.Segments)) * man.N
	// The manifest is kept apart from the deal, which every proof and
	// miss rewrites.
	ctx.KV.Set(cat(manifestPrefix, be(id)), m.Manifest)
	d.Manifest = nil
	putDeal(ctx.KV, d)
	ctx.KV.Set(cat(ownerPrefix, owner[:], be(id)), []byte{})
	ctx.KV.Set(cat(cidPrefix, []byte{byte(len(d.Cid))}, d.Cid, be(id)), []byte{})
	ctx.Emit("storage_deal", module.Key("deal", module.U64(id)), module.Key("owner", owner.String()), module.Val("escrow", module.U64(d.Escrow)+d.Denom))
	return d, nil
}

// Prove takes a batch of answers for the current epoch and pays for each.
func Prove(ctx *module.Context, op addr.Address, m *storagepb.MsgProve) (uint64, error) {
	p := GetParams(ctx.KV)
	if len(m.Answers) > int(p.MaxAnswers) {
		return 0, fmt.Errorf("storage: %d answers, over the %d one proof may carry; send several: %w", len(m.Answers), p.MaxAnswers, codes.ErrInvalidRequest)
	}
	e := CurrentEpoch(ctx.KV)
	if m.Epoch != e.Number || ctx.Height > e.WindowEnd || ctx.Height <= e.Start {
		return 0, fmt.Errorf("storage: answers for epoch %d are not taken at height %d (epoch %d takes answers from %d to %d): %w", m.Epoch, ctx.Height, e.Number, e.Start+1, e.WindowEnd, codes.ErrInvalidRequest)
	}
	n := GetNode(ctx.KV, op)
	if n == nil {
		return 0, fmt.Errorf("storage: %s is not a storage node: %w", op, codes.ErrNotFound)
	}
	var paid uint64
	deals := map[uint64]*storagepb.Deal{}
	var order []uint64
	for i, a := range m.Answers {
		d := deals[a.Deal]
		if d == nil {
			if d = GetDeal(ctx.KV, a.Deal); d == nil {
				return 0, fmt.Errorf("storage: answer %d: no deal %d: %w", i, a.Deal, codes.ErrNotFound)
			}
			deals[a.Deal] = d
			order = append(order, a.Deal)
		}
		pc := GetPiece(ctx.KV, a.Deal, a.Segment, a.Index)
		switch {
		case pc == nil:
			return 0, fmt.Errorf("storage: answer %d: deal %d has no piece %d of segment %d: %w", i, a.Deal, a.Index, a.Segment, codes.ErrNotFound)
		case pc.Node != op.String():
			return 0, fmt.Errorf("storage: answer %d: piece %d/%d/%d is not placed on %s: %w", i, a.Deal, a.Segment, a.Index, op, codes.ErrUnauthorized)
		case pc.Status == storagepb.PieceStatus_PIECE_STATUS_LOST || pc.DueEpoch != e.Number:
			return 0, fmt.Errorf("storage: answer %d: piece %d/%d/%d is not challenged in epoch %d: %w", i, a.Deal, a.Segment, a.Index, e.Number, codes.ErrInvalidRequest)
		case pc.ProvedEpoch >= e.Number:
			return 0, fmt.Errorf("storage: answer %d: piece %d/%d/%d already answered epoch %d: %w", i, a.Deal, a.Segment, a.Index, e.Number, codes.ErrInvalidRequest)
		}
		leaves := pc.Size / uint64(d.LeafSize)
		leaf := storagepb.Challenge(e.Seed, a.Deal, a.Segment, a.Index, leaves)
		ctx.ConsumeGas(gas.Sha256Block*uint64(len(a.Leaf)/64+2+len(a.Path)), "storage proof")
		if len(a.Leaf) != int(d.LeafSize) || !storagepb.VerifyLeaf(pc.Root, a.Leaf, int(leaf), int(leaves), a.Path) {
			return 0, fmt.Errorf("storage: answer %d: not leaf %d of piece %d/%d/%d with its path to the piece's root: %w", i, leaf, a.Deal, a.Segment, a.Index, codes.ErrInvalidRequest)
		}
		pay, _ := storagepb.Per(pc.Size, d.PricePerGibEpoch) // bounded when the deal was made
		fee := pc.RepairFee
		if err := held.Pay(ctx, d.Id, op, pay+fee); err != nil {
			return 0, err
		}
		d.PaidProofs += pay
		d.PaidRepairs += fee
		if fee > 0 {
			d.Repairs++
		}
		pc.RepairFee = 0
		paid += pay + fee
		pc.Status = storagepb.PieceStatus_PIECE_STATUS_LIVE
		pc.ProvedEpoch = e.Number
		if e.Number < d.LastEpoch {
			// The next answer is due next epoch; the last stays where it
			// is, and EndBlock retires the piece there.
			pc.DueEpoch = e.Number + 1
			due.Move(ctx.KV, dueHeight(p, e.Number), dueHeight(p, pc.DueEpoch), storagepb.PieceID(pc.Deal, pc.Segment, pc.Index))
		}
		putPiece(ctx.KV, pc)
	}
	for _, id := range order {
		putDeal(ctx.KV, deals[id])
	}
	n.Proofs += uint64(len(m.Answers))
	n.Earned += paid
	putNode(ctx.KV, op, n)
	ctx.Emit("storage_proof", module.Key("node", op.String()), module.Val("epoch", module.U64(uint64(e.Number))), module.Val("answers", module.U64(uint64(len(m.Answers)))), module.Val("paid", module.U64(paid)))
	return paid, nil
}

// BeginBlock opens an epoch at every multiple of epoch_blocks: the block's
// hash, which no one knew before the block, is its seed.
func (Module) BeginBlock(ctx *module.Context) error {
	p := GetParams(ctx.KV)
	if ctx.Height%p.EpochBlocks != 0 || len(ctx.Seed) == 0 {
		return nil
	}
	e := &storagepb.Epoch{Number: ctx.Height / p.EpochBlocks, Start: ctx.Height, WindowEnd: ctx.Height + p.WindowBlocks, Seed: append([]byte(nil), ctx.Seed...)}
	ctx.KV.Set(epochKey, module.MustMarshal(e))
	drawProbes(ctx, p, e)
	return nil
}

// EndBlock settles the pieces whose answers were due: a piece that did
// not answer is lost and repaired; a piece past its deal's last epoch is
// retired, and a deal whose pieces are all retired ends.
func (Module) EndBlock(ctx *module.Context) error {
	p := GetParams(ctx.KV)
	perBlock := agenda.PerBlock(auth.GetParams(ctx.KV).BlockGasLimit) / 4
	if err := settleProbes(ctx, p, perBlock); err != nil {
		return err
	}
	ids := due.Due(ctx.KV, ctx.Height, perBlock)
	for _, id := range ids {
		dealID, seg, idx := storagepb.SplitPieceID(id)
		pc := GetPiece(ctx.KV, dealID, seg, idx)
		d := GetDeal(ctx.KV, dealID)
		if pc == nil || d == nil {
			continue
		}
		if pc.Status != storagepb.PieceStatus_PIECE_STATUS_LOST && pc.ProvedEpoch < pc.DueEpoch {
			if err := miss(ctx, p, d, pc); err != nil {
				return err
			}
			if pc.Status != storagepb.PieceStatus_PIECE_STATUS_LOST {
				continue // given another epoch to arrive
			}
		}
		if ctx.Height >= dueHeight(p, d.LastEpoch) {
			if err := retire(ctx, d, pc); err != nil {
				return err
			}
		}
	}
	for _, id := range repairs.Due(ctx.KV, ctx.Height, maxRepairs) {
		dealID, seg, _ := storagepb.SplitPieceID(id)
		if d := GetDeal(ctx.KV, dealID); d != nil {
			if err := repair(ctx, p, d, seg); err != nil {
				return err
			}
		}
	}
	return nil
}

// miss handles pc's missed answer. A pending or repairing piece has
// until its accept_by epoch; after that it is lost, which costs its node
// nothing but the piece, since the owner or the sources may be at fault.
// A live piece is lost at once, and its node slashed and suspended. Then
// the segment is repaired if it needs it.
func miss(ctx *module.Context, p *storagepb.Params, d *storagepb.Deal, pc *storagepb.Piece) error {
	op := addr.MustParse(pc.Node)
	epoch := pc.DueEpoch
	if pc.Status != storagepb.PieceStatus_PIECE_STATUS_LIVE && epoch < pc.AcceptBy && epoch < d.LastEpoch {
		// An upload or a rebuild takes time: the piece's first proof may
		// come in any epoch up to accept_by, unpaid until it does.
		pc.DueEpoch++
		putPiece(ctx.KV, pc)
		due.Add(ctx.KV, dueHeight(p, pc.DueEpoch), storagepb.PieceID(pc.Deal, pc.Segment, pc.Index))
		return nil
	}
	if pc.Status == storagepb.PieceStatus_PIECE_STATUS_LIVE {
		if err := penalize(ctx, p, op, epoch, "missed a storage proof", func(n *storagepb.StorageNode) { n.Misses++ }); err != nil {
			return err
		}
	}
	return lose(ctx, p, d, pc)
}

// penalize suspends an active node and slashes it; a node suspended
// exclude_after times is excluded. A suspended node is not slashed again
// until it comes back: it has one failure to answer for, however many
// pieces it held. count records the failure on the node's record.
func penalize(ctx *module.Context, p *storagepb.Params, op addr.Address, epoch int64, reason string, count func(*storagepb.StorageNode)) error {
	n := GetNode(ctx.KV, op)
	if n == nil {
		return nil
	}
	count(n)
	if n.Status == storagepb.NodeStatus_NODE_STATUS_ACTIVE {
		n.Suspensions++
		n.SuspendedEpoch = epoch
		n.Status = storagepb.NodeStatus_NODE_STATUS_SUSPENDED
		if n.Suspensions >= p.ExcludeAfter {
			n.Status = storagepb.NodeStatus_NODE_STATUS_EXCLUDED
		}
		taken, err := staking.Slash(ctx, op, p.MissSlashBps, 0, reason)
		if err != nil {
			return err
		}
		n.Slashed += taken
		ctx.Emit("storage_slash", module.Key("operator", op.String()), module.Val("amount", module.U64(taken)), module.Val("status", n.Status.String()), module.Val("reason", reason))
	}
	putNode(ctx.KV, op, n)
	return nil
}

// lose marks pc lost, its one agenda entry taken already: it waits at
// its deal's last height to be retired, and its segment is queued for
// repair.
func lose(ctx *module.Context, p *storagepb.Params, d *storagepb.Deal, pc *storagepb.Piece) error {
	op := pc.Node
	d.RepairReserve += pc.RepairFee
	pc.RepairFee = 0
	unassign(ctx, pc)
	pc.LostFrom = op
	pc.Status = storagepb.PieceStatus_PIECE_STATUS_LOST
	pc.DueEpoch = d.LastEpoch
	putPiece(ctx.KV, pc)
	ctx.Emit("storage_piece_lost", module.Key("deal", module.U64(d.Id)), module.Val("segment", module.U64(uint64(pc.Segment))), module.Val("index", module.U64(uint64(pc.Index))), module.Key("node", op))
	if at := dueHeight(p, d.LastEpoch); at > ctx.Height {
		due.Add(ctx.KV, at, storagepb.PieceID(pc.Deal, pc.Segment, pc.Index))
	}
	putDeal(ctx.KV, d)
	repairs.Add(ctx.KV, ctx.Height, storagepb.PieceID(d.Id, pc.Segment, 0))
	return nil
}

// maxRepairs bounds the segments a block repairs: each scans the nodes.
const maxRepairs = 32

// repair hands the lost pieces of a segment to new nodes once its pieces
// not lost fall below k + margin × (n-k), if k of them are live to
// rebuild from and an epoch of the deal is left to prove the repair in.
func repair(ctx *module.Context, p *storagepb.Params, d *storagepb.Deal, seg uint32) error {
	next := ctx.Height/p.EpochBlocks + 1
	if next > d.LastEpoch {
		return nil
	}
	pieces := Pieces(ctx.KV, d.Id, int64(seg))
	var kept, live uint32
	var taken []addr.Address
	for _, pc := range pieces {
		if pc.Status != storagepb.PieceStatus_PIECE_STATUS_LOST {
			kept++
			taken = append(taken, addr.MustParse(pc.Node))
		}
		if pc.Status == storagepb.PieceStatus_PIECE_STATUS_LIVE {
			live++
		}
	}
	threshold := d.K + uint32((uint64(d.N-d.K)*uint64(p.RepairMarginBps)+9_999)/10_000)
	if kept >= threshold || live < d.K {
		return nil
	}
	pl := newPool(ctx, p)
	pl.fresh()
	for _, a := range taken {
		pl.take(a)
	}
	for _, pc := range pieces {
		if pc.Status == storagepb.PieceStatus_PIECE_STATUS_LOST && pc.LostFrom != "" {
			pl.take(addr.MustParse(pc.LostFrom)) // not back to a node that lost it
		}
	}
	for _, pc := range pieces {
		if pc.Status != storagepb.PieceStatus_PIECE_STATUS_LOST {
			continue
		}
		c := pl.draw(ctx, pc.Size, d.Id, seg, pc.Index, uint32(ctx.Height))
		if c == nil {
			// No node can take it now; nodes come back from suspension
			// and register, so the segment is tried again next epoch.
			ctx.Emit("storage_repair_stalled", module.Key("deal", module.U64(d.Id)), module.Val("segment", module.U64(uint64(seg))))
			repairs.Add(ctx.KV, next*p.EpochBlocks, storagepb.PieceID(d.Id, seg, 0))
			break
		}
		due.Remove(ctx.KV, dueHeight(p, d.LastEpoch), storagepb.PieceID(pc.Deal, pc.Segment, pc.Index))
		assign(ctx, pc, c)
		fee, _ := storagepb.Per(pc.Size, p.RepairPricePerGib)
		fee = min(fee, d.RepairReserve)
		d.RepairReserve -= fee
		pc.RepairFee = fee
		pc.Status = storagepb.PieceStatus_PIECE_STATUS_REPAIRING
		pc.LostFrom = ""
		pc.DueEpoch = next
		pc.AcceptBy = next + p.AcceptEpochs - 1
		putPiece(ctx.KV, pc)
		due.Add(ctx.KV, dueHeight(p, next), storagepb.PieceID(pc.Deal, pc.Segment, pc.Index))
		ctx.Emit("storage_repair", module.Key("deal", module.U64(d.Id)), module.Val("segment", module.U64(uint64(seg))), module.Val("index", module.U64(uint64(pc.Index))), module.Key("node", c.op.String()))
	}
	pl.save(ctx)
	putDeal(ctx.KV, d)
	return nil
}

// retire removes a piece whose deal's last epoch is over; the last one
// ends the deal and refunds what is left of the escrow.
func retire(ctx *module.Context, d *storagepb.Deal, pc *storagepb.Piece) error {
	unassign(ctx, pc)
	ctx.KV.Delete(pieceKey(pc.Deal, pc.Segment, pc.Index))
	d.RepairReserve += pc.RepairFee
	d.OpenPieces--
	if d.OpenPieces > 0 {
		putDeal(ctx.KV, d)
		return nil
	}
	owner := addr.MustParse(d.Owner)
	refund, err := held.Close(ctx, d.Id, owner)
	if err != nil {
		return err
	}
	d.Refunded = refund
	if d.PaidProofs+d.PaidRepairs+d.Refunded != d.Escrow {
		return fmt.Errorf("storage: deal %d paid %d for proofs, %d for repairs and refunded %d of its %d escrow", d.Id, d.PaidProofs, d.PaidRepairs, d.Refunded, d.Escrow)
	}
	ctx.KV.Delete(cat(dealPrefix, be(d.Id)))
	ctx.KV.Delete(cat(manifestPrefix, be(d.Id)))
	ctx.KV.Delete(cat(ownerPrefix, owner[:], be(d.Id)))
	ctx.KV.Delete(cat(cidPrefix, []byte{byte(len(d.Cid))}, d.Cid, be(d.Id)))
	ctx.Emit("storage_deal_ended", module.Key("deal", module.U64(d.Id)), module.Key("owner", d.Owner),
		module.Val("escrow", module.U64(d.Escrow)), module.Val("paid_proofs", module.U64(d.PaidProofs)),
		module.Val("paid_repairs", module.U64(d.PaidRepairs)), module.Val("refunded", module.U64(d.Refunded)), module.Val("repairs", module.U64(uint64(d.Repairs))))
	return nil
}

// DealInfo is a deal with its pieces and where to fetch each.
func DealInfo(kv store.Reader, d *storagepb.Deal) *storagepb.QueryDealResponse {
	d.Manifest = kv.Get(cat(manifestPrefix, be(d.Id)))
	r := &storagepb.QueryDealResponse{Deal: d, Epoch: CurrentEpoch(kv)}
	for _, pc := range Pieces(kv, d.Id, -1) {
		info := &storagepb.PieceInfo{Piece: pc}
		// A suspended node gets no new pieces, but the ones it still
		// proves stay readable: readers check every piece anyway.
		if pc.Node != "" {
			if n := GetNode(kv, addr.MustParse(pc.Node)); n != nil {
				info.Endpoint, info.RetrievalDenom, info.RetrievalPricePerGib = n.Endpoint, n.RetrievalDenom, n.RetrievalPricePerGib
			}
		}
		r.Pieces = append(r.Pieces, info)
	}
	return r
}
