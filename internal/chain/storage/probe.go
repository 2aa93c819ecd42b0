package storage

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/agenda"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/gas"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/storage/storagepb"
	"github.com/agoranet/agora/internal/chain/store"
)

// Retrieval probes. A storage proof shows a node holds a piece; it does
// not show the node serves it. Each epoch the chain draws
// probes_per_epoch live pieces and, for each, three other active nodes
// (stake-weighted) that fetch one leaf of it over the node's public
// endpoint, the way a reader would, and report whether it came back with
// a path to the piece's root. A probe fails only when two of the three
// report a failure; the node then has rebut_blocks to post the leaf and
// its path on chain itself, which clears it and marks the reporters'
// false reports. A failure that stands costs the node what a missed
// proof does: it is slashed and suspended, and the piece is repaired
// elsewhere. So one lying prober cannot hurt an honest node, and two
// lying probers cost it nothing it cannot rebut.

var (
	probePrefix   = []byte("storage/pr/") // id -> Probe
	probeNextKey  = []byte("storage/prnext")
	probeDeadline = agenda.New("storage/prdue/")
)

// probers is how many nodes fetch each probe, and quorum how many of them
// must report a failure for it to count.
const (
	probers = 3
	quorum  = 2
)

func getProbe(kv store.Reader, id uint64) *storagepb.Probe {
	v := kv.Get(cat(probePrefix, be(id)))
	if v == nil {
		return nil
	}
	pr := &storagepb.Probe{}
	module.MustUnmarshal(v, pr)
	return pr
}

func putProbe(kv store.KV, pr *storagepb.Probe) {
	kv.Set(cat(probePrefix, be(pr.Id)), module.MustMarshal(pr))
}

// OpenProbes lists the probes not yet settled, at most limit.
func OpenProbes(kv store.Reader, limit int) []*storagepb.Probe {
	it := kv.Iterator(probePrefix, store.PrefixEnd(probePrefix))
	defer it.Close()
	var out []*storagepb.Probe
	for ; it.Valid() && len(out) < limit; it.Next() {
		pr := &storagepb.Probe{}
		module.MustUnmarshal(it.Value(), pr)
		out = append(out, pr)
	}
	return out
}

// drawProbes draws the epoch's probes from its seed: a deal, a segment, a
// piece and a leaf each, and three probers. A draw that lands on a deal
// that has ended, or a piece that is not live on an active node, is
// skipped, so the number of probes is at most probes_per_epoch.
func drawProbes(ctx *module.Context, p *storagepb.Params, e *storagepb.Epoch) {
	last := getU64(ctx.KV, nextKey)
	if last == 0 || p.ProbesPerEpoch == 0 {
		return
	}
	var pl *pool
	for j := range p.ProbesPerEpoch {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], j)
		h := sha256.Sum256(cat([]byte(storagepb.ProbeDomain), e.Seed, b[:]))
		d := GetDeal(ctx.KV, 1+binary.BigEndian.Uint64(h[:8])%last)
		// A probe's rebuttal must be able to land before the deal's pieces
		// retire, at the last epoch's window end.
		if d == nil || e.Number < d.FirstEpoch || e.WindowEnd+p.RebutBlocks >= dueHeight(p, d.LastEpoch) {
			continue
		}
		seg, idx := binary.BigEndian.Uint32(h[8:12])%d.Segments, binary.BigEndian.Uint32(h[12:16])%d.N
		pc := GetPiece(ctx.KV, d.Id, seg, idx)
		if pc == nil || pc.Status != storagepb.PieceStatus_PIECE_STATUS_LIVE {
			continue
		}
		op := addr.MustParse(pc.Node)
		if n := GetNode(ctx.KV, op); n == nil || n.Status != storagepb.NodeStatus_NODE_STATUS_ACTIVE {
			continue
		}
		if pl == nil {
			pl = newPool(ctx, p)
		}
		pl.fresh()
		pl.take(op)
		taken := []addr.Address{op}
		for r := range uint32(probers) {
			c := pl.draw(ctx, 0, d.Id, seg, idx, 1<<20+j*probers+r)
			if c == nil {
				break
			}
			taken = append(taken, c.op)
		}
		if len(taken) < 1+probers {
			continue // too few other nodes to probe with
		}
		id := getU64(ctx.KV, probeNextKey) + 1
		ctx.KV.Set(probeNextKey, be(id))
		pr := &storagepb.Probe{Id: id, Epoch: e.Number, Deal: d.Id, Segment: seg, Index: idx, Node: pc.Node,
			Leaf: binary.BigEndian.Uint64(h[16:24]) % (pc.Size / uint64(d.LeafSize)), Reports: make([]storagepb.ProbeReport, probers),
			Status: storagepb.ProbeStatus_PROBE_STATUS_OPEN, Due: e.WindowEnd}
		for _, t := range taken[1:] {
			pr.Probers = append(pr.Probers, t.String())
		}
		putProbe(ctx.KV, pr)
		probeDeadline.Add(ctx.KV, pr.Due, id)
		ctx.Emit("storage_probe", module.Key("probe", module.U64(id)), module.Key("node", pc.Node))
	}
}

// ReportProbes records a prober's results.
func ReportProbes(ctx *module.Context, prober addr.Address, m *storagepb.MsgReportProbes) error {
	for i, r := range m.Results {
		pr := getProbe(ctx.KV, r.Probe)
		if pr == nil {
			return fmt.Errorf("storage: result %d: no open probe %d: %w", i, r.Probe, codes.ErrNotFound)
		}
		if pr.Status != storagepb.ProbeStatus_PROBE_STATUS_OPEN || ctx.Height > pr.Due {
			return fmt.Errorf("storage: result %d: probe %d took reports until height %d: %w", i, r.Probe, pr.Due, codes.ErrInvalidRequest)
		}
		slot := -1
		for j, p := range pr.Probers {
			if p == prober.String() {
				slot = j
			}
		}
		switch {
		case slot < 0:
			return fmt.Errorf("storage: result %d: %s is not a prober of probe %d: %w", i, prober, r.Probe, codes.ErrUnauthorized)
		case pr.Reports[slot] != storagepb.ProbeReport_PROBE_REPORT_NONE:
			return fmt.Errorf("storage: result %d: %s reported probe %d already: %w", i, prober, r.Probe, codes.ErrInvalidRequest)
		}
		pr.Reports[slot] = storagepb.ProbeReport_PROBE_REPORT_FAILED
		if r.Served {
			pr.Reports[slot] = storagepb.ProbeReport_PROBE_REPORT_SERVED
		}
		putProbe(ctx.KV, pr)
	}
	return nil
}

// Rebut clears an accusation with the probed leaf and its path.
func Rebut(ctx *module.Context, node addr.Address, m *storagepb.MsgRebut) error {
	pr := getProbe(ctx.KV, m.Probe)
	switch {
	case pr == nil || pr.Status != storagepb.ProbeStatus_PROBE_STATUS_ACCUSED:
		return fmt.Errorf("storage: probe %d accuses no one: %w", m.Probe, codes.ErrNotFound)
	case pr.Node != node.String():
		return fmt.Errorf("storage: probe %d is of %s, not %s: %w", m.Probe, pr.Node, node, codes.ErrUnauthorized)
	case ctx.Height > pr.RebutBy:
		return fmt.Errorf("storage: probe %d took a rebuttal until height %d: %w", m.Probe, pr.RebutBy, codes.ErrInvalidRequest)
	}
	d := GetDeal(ctx.KV, pr.Deal)
	pc := GetPiece(ctx.KV, pr.Deal, pr.Segment, pr.Index)
	if d == nil || pc == nil {
		return fmt.Errorf("storage: probe %d's deal has ended: %w", m.Probe, codes.ErrNotFound)
	}
	ctx.ConsumeGas(gas.Sha256Block*uint64(len(m.Leaf)/64+2+len(m.Path)), "storage rebuttal")
	if len(m.Leaf) != int(d.LeafSize) || !storagepb.VerifyLeaf(pc.Root, m.Leaf, int(pr.Leaf), int(pc.Size/uint64(d.LeafSize)), m.Path) {
		return fmt.Errorf("storage: not leaf %d of piece %d/%d/%d with its path to the piece's root: %w", pr.Leaf, pr.Deal, pr.Segment, pr.Index, codes.ErrInvalidRequest)
	}
	for j, p := range pr.Probers {
		if pr.Reports[j] == storagepb.ProbeReport_PROBE_REPORT_FAILED {
			if n := GetNode(ctx.KV, addr.MustParse(p)); n != nil {
				n.FalseReports++
				putNode(ctx.KV, addr.MustParse(p), n)
			}
		}
	}
	if n := GetNode(ctx.KV, node); n != nil {
		n.ProbesServed++
		putNode(ctx.KV, node, n)
	}
	probeDeadline.Remove(ctx.KV, pr.RebutBy, pr.Id)
	ctx.KV.Delete(cat(probePrefix, be(pr.Id)))
	ctx.Emit("storage_probe_rebutted", module.Key("probe", module.U64(pr.Id)), module.Key("node", pr.Node))
	return nil
}

// settleProbes tallies the probes whose reports are due and punishes the
// accusations no rebuttal answered.
func settleProbes(ctx *module.Context, p *storagepb.Params, max int) error {
	for _, id := range probeDeadline.Due(ctx.KV, ctx.Height, max) {
		pr := getProbe(ctx.KV, id)
		if pr == nil {
			continue
		}
		if pr.Status == storagepb.ProbeStatus_PROBE_STATUS_OPEN {
			failed := 0
			for _, r := range pr.Reports {
				if r == storagepb.ProbeReport_PROBE_REPORT_FAILED {
					failed++
				}
			}
			if failed >= quorum {
				pr.Status = storagepb.ProbeStatus_PROBE_STATUS_ACCUSED
				pr.RebutBy = ctx.Height + p.RebutBlocks
				putProbe(ctx.KV, pr)
				probeDeadline.Add(ctx.KV, pr.RebutBy, id)
				ctx.Emit("storage_probe_accused", module.Key("probe", module.U64(id)), module.Key("node", pr.Node))
				continue
			}
			if n := GetNode(ctx.KV, addr.MustParse(pr.Node)); n != nil {
				n.ProbesServed++
				putNode(ctx.KV, addr.MustParse(pr.Node), n)
			}
			ctx.KV.Delete(cat(probePrefix, be(id)))
			continue
		}
		// Accused, and no rebuttal came. If the deal has ended meanwhile
		// the node could not have rebutted, so the probe is dismissed.
		ctx.KV.Delete(cat(probePrefix, be(id)))
		d := GetDeal(ctx.KV, pr.Deal)
		pc := GetPiece(ctx.KV, pr.Deal, pr.Segment, pr.Index)
		if d == nil || pc == nil {
			ctx.Emit("storage_probe_dismissed", module.Key("probe", module.U64(id)), module.Key("node", pr.Node))
			continue
		}
		op := addr.MustParse(pr.Node)
		if err := penalize(ctx, p, op, ctx.Height/p.EpochBlocks, "failed a retrieval probe", func(n *storagepb.StorageNode) { n.ProbesFailed++ }); err != nil {
			return err
		}
		ctx.Emit("storage_probe_failed", module.Key("probe", module.U64(id)), module.Key("node", pr.Node))
		if pc.Node != pr.Node || pc.Status == storagepb.PieceStatus_PIECE_STATUS_LOST || ctx.Height >= dueHeight(p, d.LastEpoch) {
			continue // the piece has moved on, or the deal is ending
		}
		// The piece is lost as if it had missed a proof: its one agenda
		// entry, at its next due height, goes first.
		due.Remove(ctx.KV, dueHeight(p, pc.DueEpoch), storagepb.PieceID(pc.Deal, pc.Segment, pc.Index))
		if err := lose(ctx, p, d, pc); err != nil {
			return err
		}
	}
	return nil
}
