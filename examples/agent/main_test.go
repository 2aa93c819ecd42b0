package main

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/e2e"
)

// TestExampleAgent runs the example agent on a paid devnet: 100 paid
// requests across the providers, every receipt checked; then with a small
// budget it stops at the budget.
func TestExampleAgent(t *testing.T) {
	d := e2e.Devnet(t, nil)
	run1 := config{node: d.Node.RPC(), home: filepath.Dir(d.Keyring.Dir()), key: "agent", model: "agora/tiny-lm", budget: coin.New(coin.Stable, 100_000), requests: 100}
	st, err := run(context.Background(), run1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.answers != 100 || st.receiptsChecked != 100 || len(st.providers) != 3 {
		t.Errorf("answers %d, receipts %d, providers %d; want 100, 100, 3", st.answers, st.receiptsChecked, len(st.providers))
	}
	// 100 + 40 tokens at 1000 per 1k = 140 per answer.
	if st.spent != 100*140 {
		t.Errorf("spent %d, want %d", st.spent, 100*140)
	}
	small := run1
	small.budget = coin.New(coin.Stable, 1000)
	st, err = run(context.Background(), small, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !st.stoppedByBudget || st.spent > 1000 {
		t.Errorf("with a budget of 1000: spent %d, stopped by budget %v", st.spent, st.stoppedByBudget)
	}
}
