package chain_test

import (
	"bytes"

	"google.golang.org/protobuf/proto"

	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/storage/storagepb"
	"github.com/agoranet/agora/internal/chain/tx"
	"github.com/agoranet/agora/internal/storage/object"
)

// The storage module's generators. Providers and verifiers, staked at
// genesis, register as storage nodes; users store small objects coded
// 1..2-of-2..3; nodes answer the epoch's challenges from the pieces the
// world keeps for them, now and then with a corrupt leaf or for a piece
// that is not theirs.

func init() {
	metaGenerators[tx.TypeURL(&storagepb.MsgRegisterNode{})] = metaGen{2, genRegisterNode}
	metaGenerators[tx.TypeURL(&storagepb.MsgCreateDeal{})] = metaGen{2, genCreateDeal}
	metaGenerators[tx.TypeURL(&storagepb.MsgProve{})] = metaGen{40, genProve}
	metaGenerators[tx.TypeURL(&storagepb.MsgReportProbes{})] = metaGen{20, genReportProbes}
	metaGenerators[tx.TypeURL(&storagepb.MsgRebut{})] = metaGen{40, genRebut}
}

func (w *world) storageNode() string {
	if w.oneIn(10) {
		return w.user()
	}
	if w.oneIn(2) {
		return pick(w, metaProviders)
	}
	return pick(w, metaVerifiers)
}

func genRegisterNode(w *world) (string, module.Msg) {
	who := w.storageNode()
	m := &storagepb.MsgRegisterNode{Operator: addrOf(who), Endpoint: "http://127.0.0.1:9100/" + who, Region: "meta", Capacity: 1<<16 + w.r.Uint64N(1<<24)}
	switch w.r.IntN(12) {
	case 0:
		m.Capacity = 0
	case 1:
		m.Endpoint = "ftp://nowhere"
	case 2:
		m.Capacity = 1 // below what is placed, once something is
	case 3:
		m.RetrievalPricePerGib = 1 + w.r.Uint64N(1<<20)
		m.RetrievalDenom = coin.Stable
	case 4:
		m.RetrievalPricePerGib = 5 // without its denom
	}
	return who, m
}

func genCreateDeal(w *world) (string, module.Msg) {
	owner := w.user()
	k := 1 + w.r.IntN(2)
	n := k + w.r.IntN(2)
	leaf := 64 << w.r.IntN(3)
	data := w.bytes(1 + w.r.IntN(8<<10))
	var pieces []object.Piece
	man, _, err := object.Encode(bytes.NewReader(data), object.Params{K: k, N: n, SegmentSize: 2 << 10, LeafSize: leaf}, func(p object.Piece) error {
		pieces = append(pieces, p)
		return nil
	})
	if err != nil {
		w.t.Fatal(err)
	}
	b, _ := object.Marshal(man)
	m := &storagepb.MsgCreateDeal{Owner: addrOf(owner), Manifest: b, DurationEpochs: 4 + w.r.Int64N(16), Denom: coin.Stable, PricePerGibEpoch: 1 + w.r.Uint64N(1_000_000)}
	switch w.r.IntN(15) {
	case 0:
		m.Manifest = b[:len(b)/2]
	case 1:
		m.DurationEpochs = 0
	case 2:
		m.PricePerGibEpoch = 1 << 62 // more than anyone has, or an overflow
	case 3:
		m.Denom = w.denom()
	case 4:
		m.Manifest = append(append([]byte(nil), b...), 0x08, 0x01) // not canonical
	}
	w.onOK(func(resp proto.Message) {
		id := resp.(*storagepb.MsgCreateDealResponse).DealId
		w.deals = append(w.deals, id)
		for _, p := range pieces {
			w.stored[[3]uint64{id, uint64(p.Segment), uint64(p.Index)}] = p.Data
		}
	})
	return owner, m
}

func genProve(w *world) (string, module.Msg) {
	// A node with answers due, if there is one.
	var who string
	var r *storagepb.QueryAssignedResponse
	ok := false
	nodes := append(append([]string(nil), metaProviders...), metaVerifiers...)
	w.r.Shuffle(len(nodes), func(i, j int) { nodes[i], nodes[j] = nodes[j], nodes[i] })
	for _, name := range nodes {
		if r, ok = metaAsk(w.app, storagepb.QueryAssigned, &storagepb.QueryAssignedRequest{Node: addrOf(name)}); ok {
			who = name
			if dueNow(r) {
				break
			}
		}
	}
	if who == "" || w.oneIn(10) {
		who = w.storageNode()
		r, ok = metaAsk(w.app, storagepb.QueryAssigned, &storagepb.QueryAssignedRequest{Node: addrOf(who)})
	}
	m := &storagepb.MsgProve{Node: addrOf(who)}
	if ok {
		m.Epoch = r.Epoch.Number
		for _, p := range r.Pieces {
			if p.DueEpoch != r.Epoch.Number || p.ProvedEpoch >= p.DueEpoch || p.Status == storagepb.PieceStatus_PIECE_STATUS_LOST || len(m.Answers) == 8 {
				continue
			}
			data := w.stored[[3]uint64{p.Deal, uint64(p.Segment), uint64(p.Index)}]
			d, found := metaAsk(w.app, storagepb.QueryDeal, &storagepb.QueryDealRequest{Id: p.Deal})
			if data == nil || !found {
				continue
			}
			ls := int(d.Deal.LeafSize)
			leaf, path := object.Prove(data, ls, int(storagepb.Challenge(r.Epoch.Seed, p.Deal, p.Segment, p.Index, p.Size/uint64(ls))))
			m.Answers = append(m.Answers, &storagepb.Answer{Deal: p.Deal, Segment: p.Segment, Index: p.Index, Leaf: leaf, Path: path})
		}
	}
	if len(m.Answers) == 0 {
		w.idle = true
		m.Answers = []*storagepb.Answer{{Deal: 1 + w.r.Uint64N(20), Leaf: w.bytes(64)}}
		return who, m
	}
	switch w.r.IntN(12) {
	case 0:
		a := m.Answers[w.r.IntN(len(m.Answers))]
		a.Leaf = append([]byte(nil), a.Leaf...)
		a.Leaf[0] ^= 1
	case 1:
		m.Epoch--
	case 2:
		m.Answers = append(m.Answers, m.Answers[0]) // the same piece twice
	case 3:
		who = pick(w, metaVerifiers) // someone else's pieces
		m.Node = addrOf(who)
	}
	return who, m
}

// dueNow reports whether a node has a piece to answer for this epoch.
func dueNow(r *storagepb.QueryAssignedResponse) bool {
	for _, p := range r.Pieces {
		if p.DueEpoch == r.Epoch.Number && p.ProvedEpoch < p.DueEpoch && p.Status != storagepb.PieceStatus_PIECE_STATUS_LOST {
			return true
		}
	}
	return false
}

func genReportProbes(w *world) (string, module.Msg) {
	r, _ := metaAsk(w.app, storagepb.QueryProbes, &storagepb.QueryProbesRequest{})
	var probes []*storagepb.Probe
	if r != nil {
		for _, pr := range r.Probes {
			if pr.Status == storagepb.ProbeStatus_PROBE_STATUS_OPEN && w.height <= pr.Due {
				probes = append(probes, pr)
			}
		}
	}
	if len(probes) == 0 {
		w.idle = true
		who := w.storageNode()
		return who, &storagepb.MsgReportProbes{Prober: addrOf(who), Results: []*storagepb.ProbeResult{{Probe: 1 + w.r.Uint64N(50), Served: true}}}
	}
	// Mostly a probe that has reports already, so that some reach a
	// quorum (and accusations happen for rebuttals to answer).
	pr := pick(w, probes)
	if !w.oneIn(3) {
		most := -1
		for _, q := range probes {
			n := 0
			for _, rep := range q.Reports {
				if rep != storagepb.ProbeReport_PROBE_REPORT_NONE {
					n++
				}
			}
			if n < len(q.Reports) && n > most {
				pr, most = q, n
			}
		}
	}
	slot := w.r.IntN(len(pr.Probers))
	for j, rep := range pr.Reports {
		if rep == storagepb.ProbeReport_PROBE_REPORT_NONE && !w.oneIn(10) {
			slot = j
		}
	}
	who := w.name(pr.Probers[slot])
	if w.oneIn(10) {
		who = w.storageNode() // most likely not one of its probers
	}
	// Mostly failures, true or not: accusations must happen for rebuttals
	// to be tried.
	return who, &storagepb.MsgReportProbes{Prober: addrOf(who), Results: []*storagepb.ProbeResult{{Probe: pr.Id, Served: w.oneIn(3)}}}
}

func genRebut(w *world) (string, module.Msg) {
	r, _ := metaAsk(w.app, storagepb.QueryProbes, &storagepb.QueryProbesRequest{})
	var accused *storagepb.Probe
	if r != nil {
		for _, pr := range r.Probes {
			if pr.Status == storagepb.ProbeStatus_PROBE_STATUS_ACCUSED && w.height <= pr.RebutBy {
				accused = pr
			}
		}
	}
	if accused == nil {
		w.idle = true
		who := w.storageNode()
		return who, &storagepb.MsgRebut{Node: addrOf(who), Probe: 1 + w.r.Uint64N(50), Leaf: w.bytes(64)}
	}
	who := w.name(accused.Node)
	d, _ := metaAsk(w.app, storagepb.QueryDeal, &storagepb.QueryDealRequest{Id: accused.Deal})
	data := w.stored[[3]uint64{accused.Deal, uint64(accused.Segment), uint64(accused.Index)}]
	if d == nil || data == nil {
		w.idle = true
		return who, &storagepb.MsgRebut{Node: addrOf(who), Probe: accused.Id, Leaf: w.bytes(64)}
	}
	leaf, path := object.Prove(data, int(d.Deal.LeafSize), int(accused.Leaf))
	if w.oneIn(6) {
		leaf = append([]byte(nil), leaf...)
		leaf[0] ^= 1
	}
	return who, &storagepb.MsgRebut{Node: addrOf(who), Probe: accused.Id, Leaf: leaf, Path: path}
}
