package staking

import (
	"encoding/json"
	"testing"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/bank"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/staking/stakingpb"
	"github.com/agoranet/agora/internal/chain/store/storetest"
)

// TestSlashReachesUnbondingStake: stake on its way out is slashed too, so
// unbonding right before a penalty does not escape it.
func TestSlashReachesUnbondingStake(t *testing.T) {
	kv := storetest.NewMem()
	ctx := module.NewContext(kv, "t", 1, 0)
	who := addr.FromPubKey([]byte("staker"))
	g, _ := json.Marshal(map[string]any{
		"params":   map[string]any{"denoms": []any{map[string]any{"name": "uagr"}}},
		"balances": []any{map[string]any{"address": who.String(), "coins": []any{map[string]any{"denom": "uagr", "amount": "10000"}}}},
	})
	if err := (bank.Module{}).InitGenesis(ctx, g); err != nil {
		t.Fatal(err)
	}
	if err := (Module{}).InitGenesis(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := Bond(ctx, who, 10000); err != nil {
		t.Fatal(err)
	}
	if err := Unbond(ctx, who, 4000); err != nil {
		t.Fatal(err)
	}
	burned, err := Slash(ctx, who, 1000, 50, "test")
	if err != nil {
		t.Fatal(err)
	}
	if burned != 1000 {
		t.Errorf("burned %d, want 1000 (10%% of 6000 bonded + 4000 unbonding)", burned)
	}
	s := Get(kv, who)
	if s.Bonded != 5400 || s.Unbonding != 3600 || s.JailedUntil != 51 || s.Slashed != 1000 {
		t.Errorf("stake after slash = %+v; want bonded 5400, unbonding 3600, jailed until 51, slashed 1000", s)
	}
	if u := Unbondings(kv, who); len(u) != 1 || u[0].Amount != 3600 {
		t.Errorf("unbondings = %v, want one of 3600", u)
	}
	if err := bank.CheckInvariant(kv); err != nil {
		t.Error(err)
	}
	// Paid out at the end of the period: 3600, not the 4000 unbonded.
	ctx.Height = 1 + stakingpb.DefaultParams().UnbondingBlocks
	if err := (Module{}).EndBlock(ctx); err != nil {
		t.Fatal(err)
	}
	if got := bank.Balance(kv, who, "uagr"); got != 3600 {
		t.Errorf("balance after unbonding = %d, want 3600", got)
	}
	if _, err := Slash(ctx, who, 10001, 0, "x"); err == nil {
		t.Error("a slash over 100% was accepted")
	}
}
