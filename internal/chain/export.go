package chain

import (
	"encoding/json"
	"fmt"

	"github.com/agoranet/agora/internal/chain/staking"
)

// A chain's state can be exported and a new chain started from it: the
// new chain's genesis carries every key and value of the old state at its
// last height, and starts at the next height, so every height recorded
// in state (an unbonding's end, a proposal's vote, a channel's expiry)
// keeps its meaning. Nothing is re-encoded per module, so nothing can be
// lost in translation; a state migration, if one is needed, is the new
// binary's upgrade (internal/chain/upgrades), not the export's.

// exportKey is the app_state key of an exported state; a genesis with it
// has nothing else.
const exportKey = "exported"

// Exported is a chain's state at a height, as a genesis carries it.
type Exported struct {
	// Height is the last height the state includes; the new chain
	// starts at Height+1.
	Height  int64  `json:"height,string"`
	ChainID string `json:"chain_id"`
	// AppHash is the old chain's app hash at Height, for the record (the
	// new chain's tree hashes each key's version too, so its hashes
	// differ though its state is the same).
	AppHash []byte  `json:"app_hash"`
	State   []KVRow `json:"state"`
	// Validators is the consensus set at Height (empty on a chain of
	// fixed validators, whose set is in its genesis.json).
	Validators []staking.SetMember `json:"-"`
}

// KVRow is one key and value of exported state.
type KVRow struct {
	Key   []byte `json:"k"`
	Value []byte `json:"v"`
}

// Export reads the app's state at its last committed height. The node
// must be stopped: the state database has one user at a time.
func (a *App) Export() (*Exported, error) {
	h := a.tree.Version()
	if h == 0 {
		return nil, fmt.Errorf("chain: nothing to export: the chain has committed no block")
	}
	e := &Exported{Height: h, ChainID: a.chainID, AppHash: a.tree.Hash()}
	_, err := a.tree.Iterate(func(k, v []byte) bool {
		e.State = append(e.State, KVRow{Key: append([]byte(nil), k...), Value: append([]byte(nil), v...)})
		return false
	})
	if err != nil {
		return nil, fmt.Errorf("chain: export: read state: %w", err)
	}
	e.Validators = staking.ConsensusSet(treeKV{a.tree})
	return e, nil
}

// AppState is e as a genesis app_state.
func (e *Exported) AppState() (json.RawMessage, error) {
	return json.Marshal(map[string]*Exported{exportKey: e})
}

// importState loads an exported state into the empty tree, for InitChain.
func (a *App) importState(raw json.RawMessage, initialHeight int64) error {
	var e Exported
	if err := json.Unmarshal(raw, &e); err != nil {
		return fmt.Errorf("chain: genesis %q state does not decode: %w", exportKey, err)
	}
	if initialHeight != e.Height+1 {
		return fmt.Errorf("chain: the genesis state was exported at height %d, so the chain must start at %d (genesis initial_height), not %d",
			e.Height, e.Height+1, initialHeight)
	}
	if a.tree.Size() > 0 {
		return fmt.Errorf("chain: cannot import a state into a non-empty one")
	}
	if len(e.State) == 0 {
		return fmt.Errorf("chain: genesis %q holds no state; export it again from a node that has run (agora export)", exportKey)
	}
	kv := treeKV{a.tree}
	for _, r := range e.State {
		if len(r.Key) == 0 {
			return fmt.Errorf("chain: genesis %q state has an empty key", exportKey)
		}
		if r.Value == nil {
			r.Value = []byte{} // a marker key; JSON does not tell "" from none
		}
		kv.Set(r.Key, r.Value)
	}
	return nil
}
