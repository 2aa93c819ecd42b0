package chain

import (
	"context"
	"fmt"
	"strings"

	abci "github.com/cometbft/cometbft/abci/types"
	cmtcrypto "github.com/cometbft/cometbft/proto/tendermint/crypto"
	ics23 "github.com/cosmos/ics23/go"
	"google.golang.org/protobuf/proto"

	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/module"
)

// StorePath is the query path for a raw state key; with prove set the
// answer carries an ICS-23 proof against the app hash of its height.
const StorePath = "/store"

// ProofOpType names the proof op Query returns.
const ProofOpType = "ics23:iavl"

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
	if req.Path == StorePath {
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
			resp.ProofOps = &cmtcrypto.ProofOps{Ops: []cmtcrypto.ProofOp{{Type: ProofOpType, Key: req.Data, Data: b}}}
		}
		return resp, nil
	}
	name, path, _ := strings.Cut(strings.TrimPrefix(req.Path, "/"), "/")
	m, ok := a.byName[name]
	if !ok {
		return nil, fmt.Errorf("chain: no query route %q (use /store or /<module>/<query>): %w", req.Path, codes.ErrInvalidRequest)
	}
	ctx := module.NewContext(snapshotKV{snap}, a.chainID, height, 0)
	out, err := m.Query(ctx, path, req.Data)
	if err != nil {
		return nil, err
	}
	resp.Value, err = proto.MarshalOptions{Deterministic: true}.Marshal(out)
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// VerifyProof checks a "/store" answer against the app hash that commits
// to its height (found in the header of the block after it). A nil value
// checks that the key is absent.
func VerifyProof(appHash, key, value []byte, ops *cmtcrypto.ProofOps) error {
	if ops == nil || len(ops.Ops) != 1 || ops.Ops[0].Type != ProofOpType {
		return fmt.Errorf("chain: expected one %s proof op", ProofOpType)
	}
	var p ics23.CommitmentProof
	if err := p.Unmarshal(ops.Ops[0].Data); err != nil {
		return fmt.Errorf("chain: decode proof: %w", err)
	}
	if value == nil {
		if !ics23.VerifyNonMembership(ics23.IavlSpec, appHash, &p, key) {
			return fmt.Errorf("chain: proof of absence does not match the app hash")
		}
		return nil
	}
	if !ics23.VerifyMembership(ics23.IavlSpec, appHash, &p, key, value) {
		return fmt.Errorf("chain: proof does not match the app hash")
	}
	return nil
}
