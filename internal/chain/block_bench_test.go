package chain_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"

	"github.com/agoranet/agora/internal/chain"
	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/node"
)

// BenchmarkBlockOfTransfers measures what a block of transfers costs the
// app, as bench/chain sends them: checked first (CheckTx, which verifies
// signatures), then finalized and committed. It reports the time per tx
// of each phase.
func BenchmarkBlockOfTransfers(b *testing.B) {
	const accounts, perBlock = 3000, 1500
	keys := make([]ed25519.PrivateKey, accounts)
	g := node.Genesis{ChainID: testChain, Time: genesisTime, Issuer: address("issuer")}
	for i := range keys {
		s := sha256.Sum256(fmt.Appendf(nil, "bench %d", i))
		keys[i] = ed25519.NewKeyFromSeed(s[:])
		g.Accounts = append(g.Accounts, node.Account{Address: addr.FromPubKey(keys[i].Public().(ed25519.PublicKey)), Coins: []*coin.Coin{coin.New(coin.Native, 1_000_000_000)}})
	}
	doc, err := g.Doc()
	if err != nil {
		b.Fatal(err)
	}
	cfg := chain.DefaultConfig()
	cfg.Dir = b.TempDir()
	app, err := chain.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer app.Close()
	ctx := context.Background()
	if _, err := app.InitChain(ctx, &abci.RequestInitChain{ChainId: testChain, Time: genesisTime, InitialHeight: 1, AppStateBytes: doc.AppState}); err != nil {
		b.Fatal(err)
	}
	seq := make([]uint64, accounts)
	var check, finalize, commit time.Duration
	n := 0
	for h := int64(1); b.Loop(); h++ {
		b.StopTimer()
		txs := make([][]byte, perBlock)
		for i := range txs {
			from := (n + i) % accounts
			to := (from*7 + 13) % accounts
			raw, err := signTxGas(keys[from], seq[from], 100_000, &bankpb.MsgSend{From: g.Accounts[from].Address.String(), To: g.Accounts[to].Address.String(), Amount: []*coin.Coin{coin.New(coin.Native, 1)}})
			if err != nil {
				b.Fatal(err)
			}
			seq[from]++
			txs[i] = raw
		}
		n += perBlock
		b.StartTimer()
		t0 := time.Now()
		for _, raw := range txs {
			r, _ := app.CheckTx(ctx, &abci.RequestCheckTx{Tx: raw})
			if r.Code != 0 {
				b.Fatalf("check: %s", r.Log)
			}
		}
		t1 := time.Now()
		res, err := app.FinalizeBlock(ctx, &abci.RequestFinalizeBlock{Height: h, Time: genesisTime.Add(time.Duration(h) * time.Second), Txs: txs})
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range res.TxResults {
			if r.Code != 0 {
				b.Fatalf("deliver: %s", r.Log)
			}
		}
		t2 := time.Now()
		if _, err := app.Commit(ctx, &abci.RequestCommit{}); err != nil {
			b.Fatal(err)
		}
		check, finalize, commit = check+t1.Sub(t0), finalize+t2.Sub(t1), commit+time.Since(t2)
	}
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(n) }
	b.ReportMetric(per(check), "check-µs/tx")
	b.ReportMetric(per(finalize), "finalize-µs/tx")
	b.ReportMetric(per(commit), "commit-µs/tx")
}
