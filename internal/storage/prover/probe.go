package prover

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/agoranet/agora/internal/chain/storage/storagepb"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/storage/node"
)

// probeTimeout is how long a prober waits for a probed leaf: a reader
// would not wait longer for so little.
const probeTimeout = 5 * time.Second

// probes does this node's part in the open retrieval probes: it fetches
// the leaf of every probe it was drawn for from the probed node, as a
// reader would, and reports whether it came back with a path to the
// piece's root; and it rebuts every accusation against itself by posting
// the leaf on chain.
func (p *Prover) probes(ctx context.Context) error {
	me := p.Key.Address().String()
	r, err := client.Ask(ctx, p.Chain, storagepb.QueryProbes, &storagepb.QueryProbesRequest{})
	if err != nil {
		return err
	}
	// Forget the probes the chain has settled.
	open := map[uint64]bool{}
	for _, pr := range r.Probes {
		if p.done[pr.Id] {
			open[pr.Id] = true
		}
	}
	p.done = open
	report := &storagepb.MsgReportProbes{Prober: me}
	for _, pr := range r.Probes {
		if p.done[pr.Id] {
			continue
		}
		switch {
		case pr.Status == storagepb.ProbeStatus_PROBE_STATUS_ACCUSED && pr.Node == me:
			if err := p.rebut(ctx, pr); err != nil {
				p.Log.Warn("storage probe: rebuttal", "probe", pr.Id, "err", err)
				continue
			}
			p.done[pr.Id] = true
		case pr.Status == storagepb.ProbeStatus_PROBE_STATUS_OPEN:
			for j, who := range pr.Probers {
				if who == me && pr.Reports[j] == storagepb.ProbeReport_PROBE_REPORT_NONE {
					served, why := p.fetchProbe(ctx, pr)
					if !served {
						p.Log.Info("storage probe failed", "probe", pr.Id, "node", pr.Node, "why", why)
					}
					report.Results = append(report.Results, &storagepb.ProbeResult{Probe: pr.Id, Served: served})
				}
			}
		}
	}
	if len(report.Results) == 0 {
		return nil
	}
	if _, err := p.Chain.Submit(ctx, p.Key, "", report); err != nil {
		return fmt.Errorf("prover: probe report: %w", err)
	}
	for _, res := range report.Results {
		p.done[res.Probe] = true
	}
	return nil
}

// fetchProbe fetches a probe's leaf from its node and checks it.
func (p *Prover) fetchProbe(ctx context.Context, pr *storagepb.Probe) (bool, string) {
	d, err := client.Ask(ctx, p.Chain, storagepb.QueryDeal, &storagepb.QueryDealRequest{Id: pr.Deal})
	if err != nil {
		return false, err.Error()
	}
	var root []byte
	var size uint64
	for _, pi := range d.Pieces {
		if pi.Piece.Segment == pr.Segment && pi.Piece.Index == pr.Index {
			root, size = pi.Piece.Root, pi.Piece.Size
		}
	}
	n, err := client.Ask(ctx, p.Chain, storagepb.QueryNode, &storagepb.QueryNodeRequest{Operator: pr.Node})
	if err != nil || root == nil {
		return false, fmt.Sprintf("no such piece or node (%v)", err)
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	url := fmt.Sprintf("%s/storage/v1/proofs/%s?leaf_size=%d&leaf=%d", n.Node.Endpoint, hex.EncodeToString(root), d.Deal.LeafSize, pr.Leaf)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err.Error()
	}
	hc := p.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, resp.Status
	}
	var proof node.Proof
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&proof); err != nil {
		return false, err.Error()
	}
	if !storagepb.VerifyLeaf(root, proof.Leaf, int(pr.Leaf), int(size/uint64(d.Deal.LeafSize)), proof.Path) || len(proof.Leaf) != int(d.Deal.LeafSize) {
		return false, "the leaf does not match the piece's root"
	}
	return true, ""
}

// rebut posts the accused leaf from this node's own store.
func (p *Prover) rebut(ctx context.Context, pr *storagepb.Probe) error {
	d, err := client.Ask(ctx, p.Chain, storagepb.QueryDeal, &storagepb.QueryDealRequest{Id: pr.Deal})
	if err != nil {
		return err
	}
	for _, pi := range d.Pieces {
		if pi.Piece.Segment != pr.Segment || pi.Piece.Index != pr.Index {
			continue
		}
		leaf, path, err := p.Store.Prove(pi.Piece.Root, int(d.Deal.LeafSize), int(pr.Leaf))
		if err != nil {
			return err
		}
		if !storagepb.VerifyLeaf(pi.Piece.Root, leaf, int(pr.Leaf), int(pi.Piece.Size/uint64(d.Deal.LeafSize)), path) {
			return fmt.Errorf("the piece no longer matches its root: nothing to rebut with")
		}
		_, err = p.Chain.Submit(ctx, p.Key, "", &storagepb.MsgRebut{Node: pr.Node, Probe: pr.Id, Leaf: leaf, Path: path})
		if err == nil {
			p.Log.Info("storage probe rebutted", "probe", pr.Id)
		}
		return err
	}
	return fmt.Errorf("probe %d: deal %d has no such piece", pr.Id, pr.Deal)
}
