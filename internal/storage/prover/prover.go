// Package prover is a storage node's side of the chain's storage module:
// it registers the node, and every epoch it answers the challenges for
// the pieces placed on it, rebuilds the lost pieces the chain hands it
// for repair, and re-registers when a suspension is over. Each answer is
// checked here against the root the chain holds before it is sent, so a
// piece that rotted on disk costs a missed proof (and a slash), never a
// refused tx that would take the good answers with it.
package prover

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/agoranet/agora/internal/chain/storage/storagepb"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/keyring"
	"github.com/agoranet/agora/internal/storage/piecestore"
	"github.com/agoranet/agora/internal/storage/transfer"
)

// Prover keeps one storage node's promises to the chain.
type Prover struct {
	Chain    *client.Client
	Key      *keyring.Key
	Store    *piecestore.Store
	Endpoint string // the node's public base URL, as the chain lists it
	Region   string
	Capacity uint64
	Log      *slog.Logger
	// Poll is how often the chain is asked whether an epoch has begun;
	// default 200ms, a devnet block.
	Poll time.Duration
	// HTTP fetches pieces for repairs; nil is a default client.
	HTTP *http.Client

	proved int64 // the last epoch answered, as far as it could be
	warned int64 // the last epoch whose failures were logged
}

// Register registers the node, or updates its endpoint and capacity.
func (p *Prover) Register(ctx context.Context) error {
	_, err := p.Chain.Submit(ctx, p.Key, "", &storagepb.MsgRegisterNode{Operator: p.Key.Address().String(), Endpoint: p.Endpoint, Region: p.Region, Capacity: p.Capacity})
	if err != nil {
		return fmt.Errorf("prover: register %s as a storage node: %w", p.Endpoint, err)
	}
	return nil
}

// Run registers the node and answers every epoch until ctx ends. A failed
// epoch is logged and tried again while its window is open.
func (p *Prover) Run(ctx context.Context) error {
	if err := p.Register(ctx); err != nil {
		return err
	}
	poll := p.Poll
	if poll <= 0 {
		poll = 200 * time.Millisecond
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := p.Step(ctx); err != nil && ctx.Err() == nil {
			p.Log.Warn("storage epoch", "err", err)
		}
	}
}

// Step does what the current epoch asks of the node, once: nothing if it
// has answered it already.
func (p *Prover) Step(ctx context.Context) error {
	me := p.Key.Address().String()
	// The epoch alone first: most polls find it answered already.
	if e, err := client.Ask(ctx, p.Chain, storagepb.QueryEpoch, &storagepb.QueryEpochRequest{}); err != nil || e.Number == 0 || e.Number <= p.proved {
		return err
	}
	r, err := client.Ask(ctx, p.Chain, storagepb.QueryAssigned, &storagepb.QueryAssignedRequest{Node: me})
	if err != nil {
		return err
	}
	e := r.Epoch
	if err := p.comeBack(ctx, e); err != nil {
		return err
	}
	params, err := client.Ask(ctx, p.Chain, storagepb.QueryParams, &storagepb.QueryParamsRequest{})
	if err != nil {
		return err
	}
	deals := map[uint64]*storagepb.QueryDealResponse{}
	var answers []*storagepb.Answer
	var errs []error
	for _, pc := range r.Pieces {
		if pc.DueEpoch != e.Number || pc.ProvedEpoch >= e.Number || pc.Status == storagepb.PieceStatus_PIECE_STATUS_LOST {
			continue
		}
		d := deals[pc.Deal]
		if d == nil {
			if d, err = client.Ask(ctx, p.Chain, storagepb.QueryDeal, &storagepb.QueryDealRequest{Id: pc.Deal}); err != nil {
				errs = append(errs, err)
				continue
			}
			deals[pc.Deal] = d
		}
		a, err := p.answer(ctx, d, pc, e)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		answers = append(answers, a)
	}
	for len(answers) > 0 {
		n := min(len(answers), int(params.MaxAnswers))
		res, err := p.Chain.Submit(ctx, p.Key, "", &storagepb.MsgProve{Node: me, Epoch: e.Number, Answers: answers[:n]})
		if err != nil {
			return errors.Join(append(errs, fmt.Errorf("prover: epoch %d: %w", e.Number, err))...)
		}
		var out storagepb.MsgProveResponse
		_ = res.Response(0, &out)
		p.Log.Debug("storage proof", "epoch", e.Number, "answers", n, "paid", out.Paid)
		answers = answers[n:]
	}
	if len(errs) > 0 {
		if p.warned != e.Number {
			p.warned = e.Number
			p.Log.Warn("storage epoch: pieces not answered yet", "epoch", e.Number, "err", errors.Join(errs...))
		}
		// A repair's sources may answer on the next poll; the pieces
		// answered are not asked for again, the chain having them.
		if st, err := p.Chain.Status(ctx); err == nil && st.Height < e.WindowEnd {
			return nil
		}
	}
	p.proved = e.Number
	return nil
}

// comeBack re-registers a suspended node once its suspension is over.
func (p *Prover) comeBack(ctx context.Context, e *storagepb.Epoch) error {
	r, err := client.Ask(ctx, p.Chain, storagepb.QueryNode, &storagepb.QueryNodeRequest{Operator: p.Key.Address().String()})
	if err != nil {
		return err
	}
	if r.Node.Status != storagepb.NodeStatus_NODE_STATUS_SUSPENDED {
		return nil
	}
	params, err := client.Ask(ctx, p.Chain, storagepb.QueryParams, &storagepb.QueryParamsRequest{})
	if err != nil {
		return err
	}
	if e.Number < r.Node.SuspendedEpoch+params.SuspendEpochs {
		return nil
	}
	p.Log.Info("storage node suspension over: registering again", "suspended_epoch", r.Node.SuspendedEpoch)
	return p.Register(ctx)
}

// answer proves piece pc for epoch e, first rebuilding it if the chain
// gave it to this node for repair and it is not here yet.
func (p *Prover) answer(ctx context.Context, d *storagepb.QueryDealResponse, pc *storagepb.Piece, e *storagepb.Epoch) (*storagepb.Answer, error) {
	leafSize := int(d.Deal.LeafSize)
	f, err := p.Store.Open(pc.Root)
	if err == nil {
		f.Close()
	}
	if errors.Is(err, piecestore.ErrNotFound) {
		if pc.Status != storagepb.PieceStatus_PIECE_STATUS_REPAIRING {
			return nil, fmt.Errorf("piece %d/%d/%d (%x) is not here: %w", pc.Deal, pc.Segment, pc.Index, pc.Root[:6], err)
		}
		if err := p.repair(ctx, d, pc); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	leaf := int(storagepb.Challenge(e.Seed, pc.Deal, pc.Segment, pc.Index, pc.Size/uint64(leafSize)))
	data, path, err := p.Store.Prove(pc.Root, leafSize, leaf)
	if err != nil {
		return nil, fmt.Errorf("piece %d/%d/%d: %w", pc.Deal, pc.Segment, pc.Index, err)
	}
	if !storagepb.VerifyLeaf(pc.Root, data, leaf, int(pc.Size/uint64(leafSize)), path) {
		return nil, fmt.Errorf("piece %d/%d/%d (%x) no longer matches its root: it is damaged on disk, and this epoch's proof of it is lost", pc.Deal, pc.Segment, pc.Index, pc.Root[:6])
	}
	return &storagepb.Answer{Deal: pc.Deal, Segment: pc.Segment, Index: pc.Index, Leaf: data, Path: path}, nil
}

// repair rebuilds pc from k pieces on the other nodes of its segment and
// stores it, with the object's manifest.
func (p *Prover) repair(ctx context.Context, d *storagepb.QueryDealResponse, pc *storagepb.Piece) error {
	m, err := storagepb.ParseManifest(d.Deal.Manifest)
	if err != nil {
		return fmt.Errorf("deal %d: %w", d.Deal.Id, err)
	}
	where := map[[2]uint32]string{}
	for _, info := range d.Pieces {
		if info.Endpoint != "" && info.Piece.Status == storagepb.PieceStatus_PIECE_STATUS_LIVE {
			where[[2]uint32{info.Piece.Segment, info.Piece.Index}] = info.Endpoint
		}
	}
	locate := func(s, i int) []string {
		if u := where[[2]uint32{uint32(s), uint32(i)}]; u != "" {
			return []string{u}
		}
		return nil
	}
	c := &transfer.Client{HTTP: p.HTTP}
	start := time.Now()
	data, err := c.Repair(ctx, m, int(pc.Segment), int(pc.Index), locate)
	if err != nil {
		return err
	}
	if err := p.Store.PutPiece(pc.Root, int(m.LeafSize), data); err != nil {
		return fmt.Errorf("repair: store piece %x: %w", pc.Root[:6], err)
	}
	id, err := cid.Cast(d.Deal.Cid)
	if err == nil {
		err = p.Store.PutManifest(id, d.Deal.Manifest)
	}
	if err != nil {
		p.Log.Warn("repair: the manifest was not stored", "deal", d.Deal.Id, "err", err)
	}
	p.Log.Info("storage repair", "deal", d.Deal.Id, "segment", pc.Segment, "index", pc.Index, "root", hex.EncodeToString(pc.Root[:6]), "bytes", len(data), "took", time.Since(start).Round(time.Millisecond))
	return nil
}
