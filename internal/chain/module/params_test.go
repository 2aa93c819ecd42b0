package module_test

import (
	"strings"
	"testing"

	"github.com/agoranet/agora/internal/chain/audit/auditpb"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/staking"
	"github.com/agoranet/agora/internal/chain/staking/stakingpb"
)

func TestCheckParams(t *testing.T) {
	p := stakingpb.DefaultParams()
	// The staking module's own ranges, with unbonding_blocks' replaced.
	with := func(r *module.Range) map[string]module.Range {
		m := staking.Module{}.ParamRanges()
		delete(m, "unbonding_blocks")
		if r != nil {
			m["unbonding_blocks"] = *r
		}
		return m
	}
	for _, tc := range []struct {
		ranges map[string]module.Range
		want   string // "" for no error
	}{
		{with(&module.Range{Min: 1, Max: 100}), ""},
		{with(&module.Range{Min: 101, Max: 200}), "unbonding_blocks = 100 is outside its valid range 101 to 200"},
		{with(&module.Range{Min: 1, Max: 99}), "outside its valid range 1 to 99"},
		{with(nil), "has no declared valid range"},
	} {
		err := module.CheckParams("staking", p, tc.ranges)
		if err != nil && tc.want == "" {
			t.Errorf("ranges %v: %v", tc.ranges, err)
		}
		if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("ranges %v: err %v, want %q", tc.ranges, err, tc.want)
		}
	}
	// A uint64 over 2^63 is out of range and named as it is (the check
	// stops at the first bad field, so the others need no ranges here).
	err := module.CheckParams("audit", &auditpb.Params{ChallengeBond: 1 << 63}, map[string]module.Range{"challenge_bond": {Min: 1, Max: 10}}) // its first field
	if err == nil || !strings.Contains(err.Error(), "challenge_bond = 9223372036854775808 is outside") {
		t.Errorf("a uint64 of 2^63: %v", err)
	}
}
