package prover

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/ipfs/go-cid"

	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/storage/storagepb"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/storage/node"
	"github.com/agoranet/agora/internal/storage/object"
	"github.com/agoranet/agora/internal/storage/transfer"
)

// Stored is an object as its deal on chain has it: its manifest, where
// each piece is kept, and what the nodes that keep them charge.
type Stored struct {
	Manifest *storagepb.Manifest
	Locate   transfer.Locate
	// Price is the most a node (its base URL) may charge for n bytes, at
	// the retrieval price it registered; nodes the deal does not name
	// are not capped.
	Price func(node string, n uint64) (uint64, bool)
}

// Get writes the object to w with t, each read capped at its node's
// price (t's HTTP pays: an sdk.Payer as transport).
func (o *Stored) Get(ctx context.Context, t *transfer.Client, w io.Writer) error {
	t.Price = o.Price
	return t.Get(ctx, o.Manifest, w, o.Locate)
}

// Find reads object id's manifest from its deal on chain (checked
// against id), where each of its pieces is kept, and at what price.
func Find(ctx context.Context, c *client.Client, id cid.Cid) (*Stored, error) {
	info, err := client.Ask(ctx, c, storagepb.QueryDeal, &storagepb.QueryDealRequest{Cid: id.Bytes()})
	if err != nil {
		if errors.Is(err, codes.ErrNotFound) {
			return nil, fmt.Errorf("%w: %s: %v", node.ErrNoObject, id, err)
		}
		return nil, fmt.Errorf("%s: %w", id, err)
	}
	m, err := object.Parse(info.Deal.Manifest, id)
	if err != nil {
		return nil, err
	}
	return &Stored{Manifest: m, Locate: Locate(info.Pieces), Price: Prices(info.Pieces)}, nil
}

// Locate finds each piece on the node the chain lists it on, unless the
// chain knows it lost it.
func Locate(pieces []*storagepb.PieceInfo) transfer.Locate {
	where := map[[2]uint32]string{}
	for _, pi := range pieces {
		if pi.Endpoint != "" && pi.Piece.Status != storagepb.PieceStatus_PIECE_STATUS_LOST {
			where[[2]uint32{pi.Piece.Segment, pi.Piece.Index}] = pi.Endpoint
		}
	}
	return func(s, i int) []string {
		if u := where[[2]uint32{uint32(s), uint32(i)}]; u != "" {
			return []string{u}
		}
		return nil
	}
}

// Prices caps each read at the retrieval price its node registered, as
// the deal's pieces list it: a free node is capped at 0.
func Prices(pieces []*storagepb.PieceInfo) func(node string, n uint64) (uint64, bool) {
	perGiB := map[string]uint64{}
	for _, pi := range pieces {
		if pi.Endpoint != "" {
			perGiB[pi.Endpoint] = pi.RetrievalPricePerGib
		}
	}
	return func(node string, n uint64) (uint64, bool) {
		p, ok := perGiB[node]
		if !ok {
			return 0, false
		}
		c, ok := storagepb.Per(n, p)
		return c, ok
	}
}

// Objects serves whole objects (GET /storage/{cid} on a node) from the
// nodes their deals placed them on, as agora storage get fetches them;
// hc (a payer's, nil: unpaid reads) pays those nodes.
func Objects(c *client.Client, hc *http.Client) node.Objects {
	return func(ctx context.Context, id cid.Cid) (uint64, func(io.Writer) error, error) {
		o, err := Find(ctx, c, id)
		if err != nil {
			return 0, nil, err
		}
		return o.Manifest.Size, func(w io.Writer) error { return o.Get(ctx, &transfer.Client{HTTP: hc}, w) }, nil
	}
}
