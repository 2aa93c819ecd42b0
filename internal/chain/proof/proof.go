// Package proof checks the Merkle proofs that come with raw state queries,
// so a client can verify an answer against a block's app hash without
// linking the state machine or its store.
package proof

import (
	"fmt"

	cmtcrypto "github.com/cometbft/cometbft/proto/tendermint/crypto"
	ics23 "github.com/cosmos/ics23/go"
)

// StorePath is the query path for a raw state key; with prove set the
// answer carries an ICS-23 proof against the app hash of its height.
const StorePath = "/store"

// OpType names the proof op a "/store" query returns.
const OpType = "ics23:iavl"

// Verify checks a "/store" answer against the app hash that commits to its
// height (found in the header of the block after it). A nil value checks
// that the key is absent.
func Verify(appHash, key, value []byte, ops *cmtcrypto.ProofOps) error {
	if ops == nil || len(ops.Ops) != 1 || ops.Ops[0].Type != OpType {
		return fmt.Errorf("proof: expected one %s proof op", OpType)
	}
	var p ics23.CommitmentProof
	if err := p.Unmarshal(ops.Ops[0].Data); err != nil {
		return fmt.Errorf("proof: decode: %w", err)
	}
	if value == nil {
		if !ics23.VerifyNonMembership(ics23.IavlSpec, appHash, &p, key) {
			return fmt.Errorf("proof: proof of absence does not match the app hash")
		}
		return nil
	}
	if !ics23.VerifyMembership(ics23.IavlSpec, appHash, &p, key, value) {
		return fmt.Errorf("proof: proof does not match the app hash")
	}
	return nil
}
