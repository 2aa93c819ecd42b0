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
	metaGenerators[tx.TypeURL(&storagepb.MsgProve{})] = metaGen{12, genProve}
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
	m := &storagepb.MsgCreateDeal{Owner: addrOf(owner), Manifest: b, DurationEpochs: 1 + w.r.Int64N(4), Denom: coin.Stable, PricePerGibEpoch: 1 + w.r.Uint64N(1_000_000)}
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
	who := w.storageNode()
	r, ok := metaAsk(w.app, storagepb.QueryAssigned, &storagepb.QueryAssignedRequest{Node: addrOf(who)})
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
