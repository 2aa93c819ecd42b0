// Package prover is a storage node's side of the chain's storage module:
// it registers the node, and every epoch it answers the challenges for
// the pieces placed on it, rebuilds the lost pieces the chain hands it
// for repair, fetches the leaves of the retrieval probes it is drawn
// for and rebuts the accusations against it (probe.go), and re-registers
// when a suspension is over. Each answer is
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
	"sync"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/agoranet/agora/internal/chain/storage/storagepb"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/keyring"
	"github.com/agoranet/agora/internal/storage/piecestore"
	"github.com/agoranet/agora/internal/storage/transfer"
)

// maxProofBytes is how many bytes of answers one MsgProve carries.
const maxProofBytes = 40 << 10

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
	// RetrievalDenom and RetrievalPerGiB are the price registered for
	// reads from the node (zero: free).
	RetrievalDenom  string
	RetrievalPerGiB uint64
	// HTTP fetches pieces for repairs: a client whose transport pays
	// other nodes for them (an sdk.Payer); nil is a default client, which
	// only free nodes serve.
	HTTP *http.Client

	proved int64 // the last epoch answered, as far as it could be
	warned int64 // the last epoch whose failures were logged
	// done is the probes reported or rebutted, not to be sent again.
	done map[uint64]bool

	// The repairs in the background: by piece root, a few at once.
	mu        sync.Mutex
	repairing map[string]bool
	slots     chan struct{}
	bg        sync.WaitGroup
}

// Register registers the node, or updates its endpoint and capacity.
func (p *Prover) Register(ctx context.Context) error {
	_, err := p.Chain.Submit(ctx, p.Key, "", &storagepb.MsgRegisterNode{Operator: p.Key.Address().String(), Endpoint: p.Endpoint, Region: p.Region, Capacity: p.Capacity,
		RetrievalDenom: p.RetrievalDenom, RetrievalPricePerGib: p.RetrievalPerGiB})
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
	defer p.bg.Wait() // the repairs end with ctx
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
	if p.done == nil {
		p.done = map[uint64]bool{}
	}
	// Probes after the proofs: a slow probed node must not make this one
	// late with its own answers.
	defer func() {
		if err := p.probes(ctx); err != nil {
			p.Log.Warn("storage probes", "err", err)
		}
	}()
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
	var rebuild []*storagepb.Piece
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
		if !p.holds(pc.Root) {
			if pc.Status == storagepb.PieceStatus_PIECE_STATUS_REPAIRING {
				rebuild = append(rebuild, pc) // after the answers: a repair has epochs, the answers this window
			} else {
				errs = append(errs, fmt.Errorf("piece %d/%d/%d (%x) is not here", pc.Deal, pc.Segment, pc.Index, pc.Root[:6]))
			}
			continue
		}
		a, err := p.answer(d, pc, e)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		answers = append(answers, a)
	}
	if err := p.submit(ctx, e, answers, int(params.MaxAnswers)); err != nil {
		return errors.Join(append(errs, err)...)
	}
	// Repairs run on their own, so that a slow source can never make
	// this loop late with an answer: a rebuilt piece is answered by the
	// first poll that finds it in the store (it has accept_epochs).
	for _, pc := range rebuild {
		p.startRepair(ctx, deals[pc.Deal], pc)
		errs = append(errs, fmt.Errorf("piece %d/%d/%d is being rebuilt", pc.Deal, pc.Segment, pc.Index))
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

// submit sends answers for epoch e in as few proofs as the chain takes:
// at most max answers each, and well inside a tx (64 KiB).
func (p *Prover) submit(ctx context.Context, e *storagepb.Epoch, answers []*storagepb.Answer, max int) error {
	for len(answers) > 0 {
		n, size := 0, 0
		for n < len(answers) && n < max {
			size += len(answers[n].Leaf) + 33*len(answers[n].Path) + 32
			if n > 0 && size > maxProofBytes {
				break
			}
			n++
		}
		res, err := p.Chain.Submit(ctx, p.Key, "", &storagepb.MsgProve{Node: p.Key.Address().String(), Epoch: e.Number, Answers: answers[:n]})
		if err != nil {
			return fmt.Errorf("prover: epoch %d: %w", e.Number, err)
		}
		var out storagepb.MsgProveResponse
		_ = res.Response(0, &out)
		p.Log.Debug("storage proof", "epoch", e.Number, "answers", n, "paid", out.Paid)
		answers = answers[n:]
	}
	return nil
}

// repairs is how many pieces a node rebuilds at once.
const repairs = 4

// startRepair rebuilds pc in the background unless it is being rebuilt.
func (p *Prover) startRepair(ctx context.Context, d *storagepb.QueryDealResponse, pc *storagepb.Piece) {
	key := string(pc.Root)
	p.mu.Lock()
	if p.repairing == nil {
		p.repairing = map[string]bool{}
		p.slots = make(chan struct{}, repairs)
	}
	if p.repairing[key] {
		p.mu.Unlock()
		return
	}
	p.repairing[key] = true
	p.mu.Unlock()
	p.bg.Go(func() {
		defer func() {
			p.mu.Lock()
			delete(p.repairing, key)
			p.mu.Unlock()
		}()
		select {
		case p.slots <- struct{}{}:
			defer func() { <-p.slots }()
		case <-ctx.Done():
			return
		}
		if err := p.repair(ctx, d, pc); err != nil && ctx.Err() == nil {
			p.Log.Warn("storage repair", "deal", pc.Deal, "segment", pc.Segment, "index", pc.Index, "err", err)
		}
	})
}

// holds reports whether the piece with root is in the store.
func (p *Prover) holds(root []byte) bool {
	f, err := p.Store.Open(root)
	if err != nil {
		return false
	}
	f.Close()
	return true
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

// answer proves piece pc, which the store holds, for epoch e.
func (p *Prover) answer(d *storagepb.QueryDealResponse, pc *storagepb.Piece, e *storagepb.Epoch) (*storagepb.Answer, error) {
	leafSize := int(d.Deal.LeafSize)
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
	c := &transfer.Client{HTTP: p.HTTP, Price: Prices(d.Pieces)}
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
