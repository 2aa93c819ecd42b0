package chain

import (
	"context"
	"fmt"
	"strings"

	abci "github.com/cometbft/cometbft/abci/types"
	cmtcrypto "github.com/cometbft/cometbft/proto/tendermint/crypto"
	"google.golang.org/protobuf/proto"

	"github.com/agoranet/agora/internal/chain/auth/authpb"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/proof"
)

// Query answers "/store" (data: a raw key) and "/<module>/<path>" (data:
// the module's argument, answer: a protobuf message) at req.Height, or at
// the latest commit when it is 0.
func (a *App) Query(_ context.Context, req *abci.RequestQuery) (*abci.ResponseQuery, error) {
	resp, err := a.query(req)
	if err != nil {
		return &abci.ResponseQuery{Code: codes.Of(err), Codespace: codes.Codespace, Log: err.Error(), Height: req.Height}, nil
	}
	return resp, nil
}

func (a *App) query(req *abci.RequestQuery) (*abci.ResponseQuery, error) {
	if req.Path == authpb.SimulatePath {
		out, err := a.simulate(req.Data)
		if err != nil {
			return nil, err
		}
		return &abci.ResponseQuery{Value: module.MustMarshal(out), Height: a.tree.Version()}, nil
	}
	height := req.Height
	latest := a.tree.Version()
	if height == 0 {
		height = latest
	}
	if height <= 0 || height > latest {
		return nil, fmt.Errorf("chain: no committed state at height %d (latest is %d): %w", req.Height, latest, codes.ErrNotFound)
	}
	snap, err := a.tree.GetImmutable(height)
	if err != nil {
		return nil, fmt.Errorf("chain: state at height %d was pruned (the node keeps %d versions): %w", height, a.cfg.KeepVersions, codes.ErrNotFound)
	}
	resp := &abci.ResponseQuery{Height: height, Key: req.Data}
	if req.Path == proof.StorePath {
		v, err := snap.Get(req.Data)
		if err != nil {
			return nil, err
		}
		resp.Value = v
		if req.Prove {
			p, err := snap.GetProof(req.Data)
			if err != nil {
				return nil, fmt.Errorf("chain: prove key: %w", err)
			}
			b, err := p.Marshal()
			if err != nil {
				return nil, err
			}
			resp.ProofOps = &cmtcrypto.ProofOps{Ops: []cmtcrypto.ProofOp{{Type: proof.OpType, Key: req.Data, Data: b}}}
		}
		return resp, nil
	}
	q, ok := a.queries[req.Path]
	if !ok {
		return nil, fmt.Errorf("chain: no query %q (%s, or %s for a raw key): %w", req.Path, a.queryPaths(req.Path), proof.StorePath, codes.ErrInvalidRequest)
	}
	ctx := module.NewContext(snapshotKV{snap}, a.chainID, height, 0)
	out, err := q.Handle(ctx, req.Data)
	if err != nil {
		return nil, err
	}
	resp.Value, err = proto.MarshalOptions{Deterministic: true}.Marshal(out)
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// queryPaths lists the queries of the module a bad path names, or every
// module's, for an error that says what to ask instead.
func (a *App) queryPaths(bad string) string {
	name, _, _ := strings.Cut(strings.TrimPrefix(bad, "/"), "/")
	var paths []string
	for _, m := range a.modules {
		for _, q := range m.Queries() {
			if m.Name() == name || a.byName[name] == nil {
				paths = append(paths, q.Path)
			}
		}
	}
	return "try " + strings.Join(paths, ", ")
}
