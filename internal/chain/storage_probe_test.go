package chain_test

import (
	"testing"

	"github.com/agoranet/agora/internal/chain/module"

	"github.com/agoranet/agora/internal/chain/storage/storagepb"
	"github.com/agoranet/agora/internal/storage/object"
)

// Lying probers accuse honest nodes in their deal's last epochs, and the
// nodes rebut: none is slashed (found by review: the pieces were retired
// before a rebuttal could land, and the node was slashed for it). The
func TestStorageProbeInTheLastEpoch(t *testing.T) {
	names := []string{"dave", "erin", "frank", "gina", "v1", "v2", "v3", "v4"}
	n := newStorageNet(t, names...)
	d, _ := n.put(64<<10, 4, 6, 3)
	for e := 0; e < 5; e++ {
		n.toEpoch()
		cur := currentEpoch(n.h)
		probes := n.probes()
		for _, name := range names {
			var msgs []module.Msg
			m, _ := n.answers(name)
			if len(m.Answers) > 0 {
				msgs = append(msgs, m)
			}
			rep := &storagepb.MsgReportProbes{Prober: address(name).String()}
			for _, pr := range probes {
				for _, p := range pr.Probers {
					if p == rep.Prober {
						rep.Results = append(rep.Results, &storagepb.ProbeResult{Probe: pr.Id, Served: false})
					}
				}
			}
			if len(rep.Results) > 0 {
				msgs = append(msgs, rep)
			}
			if len(msgs) > 0 {
				if r := n.h.send(name, msgs...); r.Code != 0 {
					t.Logf("%s: %s", name, r.Log)
				}
			}
		}
		for n.h.height <= cur.WindowEnd {
			n.h.block()
		}
		for _, pr := range n.probes() {
			if pr.Status != storagepb.ProbeStatus_PROBE_STATUS_ACCUSED {
				continue
			}
			node := n.name(pr.Node)
			data := n.all[[3]uint64{pr.Deal, uint64(pr.Segment), uint64(pr.Index)}]
			leaf, path := object.Prove(data, 1<<10, int(pr.Leaf))
			r := n.h.send(node, &storagepb.MsgRebut{Node: pr.Node, Probe: pr.Id, Leaf: leaf, Path: path})
			t.Logf("epoch %d (deal last %d): h=%d probe %d of %s accused, rebut by %d: code %d %s", cur.Number, d.LastEpoch, n.h.height, pr.Id, node, pr.RebutBy, r.Code, r.Log)
		}
	}
	for i := 0; i < 30; i++ {
		n.h.block()
	}
	for _, name := range names {
		nd := n.node(name)
		if nd.Slashed != 0 {
			t.Errorf("honest %s slashed %d, probes failed %d, status %s", name, nd.Slashed, nd.ProbesFailed, nd.Status)
		}
	}
}
