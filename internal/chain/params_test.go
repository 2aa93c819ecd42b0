package chain_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"

	"github.com/agoranet/agora/internal/chain"
	"github.com/agoranet/agora/internal/chain/job/jobpb"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/staking/stakingpb"
	"github.com/agoranet/agora/internal/chain/store/storetest"
	"github.com/agoranet/agora/internal/node"
)

// TestEveryModuleDeclaresItsParamRanges: governance can change only what a
// module bounds, so every module with numeric params declares their
// ranges, and the defaults lie inside them.
func TestEveryModuleDeclaresItsParamRanges(t *testing.T) {
	noNumericParams := map[string]bool{"bank": true, "agent": true}
	for _, m := range chain.Modules() {
		p, ok := m.(module.Params)
		if !ok {
			if !noNumericParams[m.Name()] {
				t.Errorf("module %s does not declare its param ranges (module.Params)", m.Name())
			}
			continue
		}
		ctx := module.NewContext(storetest.NewMem(), testChain, 1, 0)
		if err := m.InitGenesis(ctx, nil); err != nil {
			t.Fatalf("%s default genesis: %v", m.Name(), err)
		}
		if err := module.CheckParams(m.Name(), p.Params(ctx.KV), p.ParamRanges()); err != nil {
			t.Errorf("default params: %v", err)
		}
	}
}

// TestGenesisRefusesAParamOutsideItsRange: a genesis whose param lies
// outside the module's declared range does not start a chain. Before the
// ranges, both of these started one.
func TestGenesisRefusesAParamOutsideItsRange(t *testing.T) {
	for _, tc := range []struct {
		name, module, want string
		edit               func(map[string]json.RawMessage)
	}{
		{"unbonding", stakingpb.Name, "unbonding_blocks = 20000000 is outside its valid range 1 to 10000000", func(s map[string]json.RawMessage) {
			tweak(t, s, stakingpb.Name, &stakingpb.Genesis{}, func(g *stakingpb.Genesis) { g.Params.UnbondingBlocks = 20_000_000 })
		}},
		{"redundancy", jobpb.Name, "max_redundancy = 1000 is outside its valid range 1 to 32", func(s map[string]json.RawMessage) {
			tweak(t, s, jobpb.Name, &jobpb.Genesis{}, func(g *jobpb.Genesis) { g.Params.MaxRedundancy = 1000 })
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc, err := node.Genesis{ChainID: testChain, Time: genesisTime, Issuer: address("issuer")}.Doc()
			if err != nil {
				t.Fatal(err)
			}
			var state map[string]json.RawMessage
			if err := json.Unmarshal(doc.AppState, &state); err != nil {
				t.Fatal(err)
			}
			tc.edit(state)
			raw, _ := json.Marshal(state)
			app, err := chain.New(chain.Config{})
			if err != nil {
				t.Fatal(err)
			}
			defer app.Close()
			_, err = app.InitChain(context.Background(), &abci.RequestInitChain{ChainId: testChain, Time: genesisTime, InitialHeight: 1, AppStateBytes: raw})
			if err == nil || !strings.Contains(err.Error(), tc.module+": param "+tc.want) {
				t.Fatalf("InitChain = %v, want a refusal naming %q", err, tc.want)
			}
		})
	}
}
