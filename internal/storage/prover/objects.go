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

// Find reads object id's manifest from its deal on chain (checked
// against id) and where each of its pieces is kept.
func Find(ctx context.Context, c *client.Client, id cid.Cid) (*storagepb.Manifest, transfer.Locate, error) {
	info, err := client.Ask(ctx, c, storagepb.QueryDeal, &storagepb.QueryDealRequest{Cid: id.Bytes()})
	if err != nil {
		if errors.Is(err, codes.ErrNotFound) {
			return nil, nil, fmt.Errorf("%w: %s: %v", node.ErrNoObject, id, err)
		}
		return nil, nil, fmt.Errorf("%s: %w", id, err)
	}
	m, err := object.Parse(info.Deal.Manifest, id)
	if err != nil {
		return nil, nil, err
	}
	return m, Locate(info.Pieces), nil
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

// Objects serves whole objects (GET /storage/{cid} on a node) from the
// nodes their deals placed them on, as agora storage get fetches them.
func Objects(c *client.Client, hc *http.Client) node.Objects {
	return func(ctx context.Context, id cid.Cid) (uint64, func(io.Writer) error, error) {
		m, locate, err := Find(ctx, c, id)
		if err != nil {
			return 0, nil, err
		}
		t := &transfer.Client{HTTP: hc}
		return m.Size, func(w io.Writer) error { return t.Get(ctx, m, w, locate) }, nil
	}
}
