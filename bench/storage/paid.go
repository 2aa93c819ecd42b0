package main

import (
	"bytes"
	"context"
	"flag"
	"log"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/storage/storagepb"
	"github.com/agoranet/agora/internal/devnet"
	"github.com/agoranet/agora/internal/storage/object"
	"github.com/agoranet/agora/internal/storage/transfer"
	"github.com/agoranet/agora/sdk"
)

// paidBasePort is the devnet's: its storage nodes listen at +70…+77,
// outside the kernel's ephemeral range.
const paidBasePort = 24100

var paidProfile = flag.String("paid-cpuprofile", "", "write a CPU profile of the paid gets (the devnet's nodes included: they run in this process) to this file")

// devnetGets gets data from a devnet's eight storage nodes, which charge
// price per GiB for reads (0: free), paying every piece over x402
// channels (a voucher signed and checked, recorded on the node's disk
// before the piece goes out), and returns MB/s of the object's bytes,
// best of rounds, and what was paid.
func devnetGets(data []byte, rounds int, price uint64) (float64, uint64) {
	home, err := os.MkdirTemp("", "agora-bench-paid")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(home)
	cfg := devnet.DefaultConfig(home)
	cfg.BasePort, cfg.Providers, cfg.BlockTime, cfg.RetrievalPrice = paidBasePort, 0, 100*time.Millisecond, price
	d, err := devnet.Start(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer d.Stop()
	var urls []string
	for _, s := range d.Storage {
		urls = append(urls, s.URL())
	}
	place, locate := transfer.Spread(urls)
	ctx := context.Background()
	m, _, err := (&transfer.Client{}).Put(ctx, bytes.NewReader(data), object.DefaultParams(), place) // puts are free
	if err != nil {
		log.Fatal(err)
	}
	k, err := d.Keyring.Get("bob")
	if err != nil {
		log.Fatal(err)
	}
	payer, err := transfer.OpenPayer(k, d.Node.RPC(), filepath.Join(home, "bob.journal"), sdk.Budget{Denom: coin.Stable, Max: 100_000_000, Deposit: 10_000_000})
	if err != nil {
		log.Fatal(err)
	}
	defer payer.Close()
	// Capped at the nodes' price, as a reader that read it from the chain.
	most := func(_ string, n uint64) (uint64, bool) { return storagepb.Per(n, price) }
	c := &transfer.Client{HTTP: transfer.Paying(payer), Price: most}
	var top float64
	if *paidProfile != "" && price > 0 {
		f, err := os.Create(*paidProfile)
		if err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	for r := range rounds + 1 { // the first opens the channels (a block each)
		got := rate(len(data), func() {
			var n countWriter
			if err := c.Get(ctx, m, &n, locate); err != nil || int(n) != len(data) {
				log.Fatalf("paid get: %v, %d bytes", err, n)
			}
		})
		if r > 0 {
			top = max(top, got)
		}
	}
	return top, payer.Spent()
}
