// Command chain measures committed transactions per second through a
// node's public RPC, for CometBFT's kvstore example app and for Agora's
// signed uagr transfers, under the same node configuration and the same
// load generator, and prints both and the ratio.
//
//	go run ./bench/chain                  # one validator
//	go run ./bench/chain -validators 4    # four validators on loopback
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cometbft/cometbft/abci/example/kvstore"
	abci "github.com/cometbft/cometbft/abci/types"
	cmtcfg "github.com/cometbft/cometbft/config"
	rpchttp "github.com/cometbft/cometbft/rpc/client/http"
	ctypes "github.com/cometbft/cometbft/rpc/core/types"
	rpctypes "github.com/cometbft/cometbft/rpc/jsonrpc/types"
	cmttypes "github.com/cometbft/cometbft/types"

	"github.com/agoranet/agora/internal/chain"
	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/auth/authpb"
	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/tx"
	"github.com/agoranet/agora/internal/devnet"
	"github.com/agoranet/agora/internal/node"
)

type options struct {
	txs, accounts, workers, validators int
	blockTime                          time.Duration
	basePort, batch, rate              int
	processes                          bool // each node a process of its own
}

var cpuprofile string

func main() {
	var o options
	flag.IntVar(&o.txs, "txs", 30000, "transactions per run")
	flag.IntVar(&o.accounts, "accounts", 3000, "sending accounts (Agora)")
	flag.IntVar(&o.workers, "workers", 48, "concurrent broadcasters")
	flag.IntVar(&o.validators, "validators", 1, "validators on loopback")
	flag.DurationVar(&o.blockTime, "block-time", 200*time.Millisecond, "timeout_commit")
	flag.IntVar(&o.basePort, "base-port", 15656, "first port (below the ephemeral range, 32768-60999)")
	flag.IntVar(&o.batch, "batch", 50, "txs per JSON-RPC batch request")
	flag.IntVar(&o.rate, "rate", 5000, "tx/s offered in the latency run")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the Agora run here (not with -processes)")
	flag.BoolVar(&o.processes, "processes", false, "run each node as a process of its own (this binary again, with -serve)")
	serve := flag.String("serve", "", "internal: run the node in this home until stdin closes")
	serveApp := flag.String("serve-app", "agora", "internal: the app -serve runs (agora or kvstore)")
	flag.Parse()
	log.SetFlags(0)
	if *serve != "" {
		serveNode(*serve, *serveApp)
		return
	}
	cpuprofile = *profile

	kvApp := func(int) abci.Application { return kvstore.NewInMemoryApplication() }
	// The latency run offers o.rate for five seconds: each sender sends a
	// batch of pacedBatch txs per tick (one tx per call would measure the
	// RPC server's calls per second: kvstore sustained 3,300/s that way),
	// and a sender behind its schedule sends at once.
	paced := o
	paced.txs = o.rate * 5
	pace := time.Duration(float64(time.Second) * float64(o.workers*pacedBatch) / float64(o.rate))
	var rows [2][2]result
	for i, sys := range []string{"kvstore", "agora"} {
		for j, opt := range []options{o, paced} {
			var r result
			var err error
			p := time.Duration(0)
			if j == 1 {
				p = pace
			}
			if sys == "kvstore" {
				r, err = measure(opt, sys, kvLanes(opt), p, kvApp)
			} else {
				lanes, accounts := agoraLanes(opt)
				r, err = measure(opt, sys, lanes, p, nil, accounts...)
			}
			if err != nil {
				log.Fatal(err)
			}
			rows[i][j] = r
		}
	}
	kv, ag := rows[0][0], rows[1][0]
	mode := "in one process"
	if o.processes {
		mode = "each a process of its own"
	}
	fmt.Printf("\nvalidators=%d (%s) block-time=%s; throughput: %d txs sent as fast as the node takes them | latency: broadcast to commit, %d tx/s offered\n",
		o.validators, mode, o.blockTime, o.txs, o.rate)
	fmt.Printf("%-10s %12s %8s | %10s %10s %10s %8s\n", "", "committed/s", "failed", "sustained/s", "p50 ms", "p99 ms", "failed")
	for i, name := range []string{"kvstore", "agora"} {
		t, l := rows[i][0], rows[i][1]
		fmt.Printf("%-10s %12.0f %8d | %10.0f %10.1f %10.1f %8d\n", name, t.tps, t.failed, l.tps, ms(l.p50), ms(l.p99), l.failed)
	}
	fmt.Printf("ratio agora/kvstore: %.2f (goal >= 0.80)\n", ag.tps/kv.tps)
	fmt.Printf("agora transfers/s: %.0f (goal >= 10000, floor >= 8000 on one validator)\n", ag.tps)
	fmt.Printf("agora at %d tx/s offered: %.0f/s sustained, p50 %.1f ms (goal <= 250 ms at 5000 tx/s), p99 %.1f ms\n",
		o.rate, rows[1][1].tps, ms(rows[1][1].p50), ms(rows[1][1].p99))
}

// startProcesses runs each node of configs as this binary with -serve, in
// its own process, and returns what stops them all. A node process ends
// when its stdin closes, and with the parent (Pdeathsig), so none outlives
// the benchmark.
func startProcesses(configs []*cmtcfg.Config, kvstoreApp bool) (stop func(), err error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	app := "agora"
	if kvstoreApp {
		app = "kvstore"
	}
	type proc struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
	}
	var procs []proc
	stop = func() {
		for _, p := range procs {
			p.stdin.Close()
		}
		for _, p := range procs {
			done := make(chan struct{})
			go func() { p.cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				p.cmd.Process.Kill()
				<-done
			}
		}
	}
	for _, c := range configs {
		cmd := exec.Command(self, "-serve", c.RootDir, "-serve-app", app)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		in, err := cmd.StdinPipe()
		if err == nil {
			err = cmd.Start()
		}
		if err != nil {
			stop()
			return nil, fmt.Errorf("start a node process: %w", err)
		}
		procs = append(procs, proc{cmd, in})
	}
	return stop, nil
}

// serveNode is a node process of -processes: it runs the node in home
// (app "agora" or "kvstore") until stdin closes.
func serveNode(home, app string) {
	c, err := node.LoadCometConfig(home)
	if err != nil {
		log.Fatal(err)
	}
	cfg := node.Config{Comet: c, App: chain.DefaultConfig()}
	if app == "kvstore" {
		cfg.Application = kvstore.NewInMemoryApplication()
	}
	n, err := node.Start(cfg)
	if err != nil {
		log.Fatal(err)
	}
	io.Copy(io.Discard, os.Stdin)
	n.Stop()
}

// pacedBatch is the txs a sender sends per tick in the latency run.
const pacedBatch = 10

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

type result struct {
	name     string
	tps      float64
	p50, p99 time.Duration
	failed   int
}

// kvLanes: unique key=value txs of about the size of an Agora transfer.
func kvLanes(o options) [][][]byte {
	lanes := make([][][]byte, o.workers)
	for i := 0; i < o.txs; i++ {
		lanes[i%o.workers] = append(lanes[i%o.workers], []byte(fmt.Sprintf("bench%08d=%0200d", i, i)))
	}
	return lanes
}

func benchKey(i int) ed25519.PrivateKey {
	s := sha256.Sum256([]byte(fmt.Sprintf("bench account %d", i)))
	return ed25519.NewKeyFromSeed(s[:])
}

// agoraLanes pre-signs transfers among many accounts. Each account belongs
// to one lane, so its sequence numbers arrive in order.
const benchGas = 100_000

func agoraLanes(o options) ([][][]byte, []node.Account) {
	keys := make([]ed25519.PrivateKey, o.accounts)
	var accounts []node.Account
	for i := range keys {
		keys[i] = benchKey(i)
		accounts = append(accounts, node.Account{Address: addr.FromPubKey(keys[i].Public().(ed25519.PublicKey)), Coins: []*coin.Coin{coin.New(coin.Native, 1_000_000_000)}})
	}
	lanes := make([][][]byte, o.workers)
	seq := make([]uint64, o.accounts)
	for i := 0; i < o.txs; i++ {
		from := i % o.accounts
		to := (from*7 + 13) % o.accounts
		// A transfer uses about 60,000 gas (docs/chain.md); the limit leaves
		// room, and the fee is the minimum for it.
		raw, err := tx.Sign(keys[from], tx.Header{ChainID: "agora-bench", Sequence: seq[from], GasLimit: benchGas, Fee: coin.New(coin.Native, authpb.MinFee(authpb.DefaultParams(), benchGas))},
			&bankpb.MsgSend{From: accounts[from].Address.String(), To: accounts[to].Address.String(), Amount: []*coin.Coin{coin.New(coin.Native, 1)}})
		if err != nil {
			log.Fatal(err)
		}
		seq[from]++
		lane := from % o.workers
		lanes[lane] = append(lanes[lane], raw)
	}
	return lanes, accounts
}

// measure starts a fresh network running app (nil: Agora), sends all lanes
// through node 0's RPC, and waits until every tx is in a block.
func measure(o options, name string, lanes [][][]byte, pace time.Duration, app func(int) abci.Application, accounts ...node.Account) (result, error) {
	dir, err := os.MkdirTemp("", "agora-bench-"+name)
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	configs, err := devnet.InitTestnet(devnet.TestnetConfig{Validators: o.validators, Out: dir, ChainID: "agora-bench", BasePort: o.basePort, BlockTime: o.blockTime, Accounts: accounts})
	if err != nil {
		return result{}, err
	}
	// height is node 0's latest height: read in memory in-process, over
	// RPC when the nodes are processes.
	var height func() int64
	var rpcURL string
	if o.processes {
		stop, err := startProcesses(configs, app != nil)
		if err != nil {
			return result{}, err
		}
		defer stop()
		rpcURL = strings.Replace(configs[0].RPC.ListenAddress, "tcp://", "http://", 1)
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			resp, err := http.Get(rpcURL + "/status")
			if err == nil {
				resp.Body.Close()
				break
			}
			if time.Now().After(deadline) {
				return result{}, fmt.Errorf("%s: node 0's RPC did not answer in 60 s: %v", name, err)
			}
		}
	} else {
		var nodes []*node.Node
		defer func() {
			for _, n := range nodes {
				n.Stop()
			}
		}()
		for i, c := range configs {
			cfg := node.Config{Comet: c, App: chain.DefaultConfig()}
			if app != nil {
				cfg.Application = app(i)
			}
			n, err := node.Start(cfg)
			if err != nil {
				return result{}, err
			}
			nodes = append(nodes, n)
		}
		height, rpcURL = nodes[0].Height, nodes[0].RPC()
	}
	rpc, err := rpchttp.New(rpcURL, "/websocket")
	if err != nil {
		return result{}, err
	}
	if err := rpc.Start(); err != nil {
		return result{}, err
	}
	defer rpc.Stop()
	if height == nil {
		height = func() int64 {
			st, err := rpc.Status(context.Background())
			if err != nil {
				return 0
			}
			return st.SyncInfo.LatestBlockHeight
		}
	}
	for deadline := time.Now().Add(60 * time.Second); height() < 2; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			return result{}, fmt.Errorf("%s: node 0 made no blocks in 60 s", name)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	total := 0
	for _, l := range lanes {
		total += len(l)
	}
	if cpuprofile != "" && app == nil {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return result{}, err
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	var sent sync.Map // tx hash -> send time
	var failed atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for _, lane := range lanes {
		wg.Add(1)
		go func(lane [][]byte) {
			defer wg.Done()
			// Each lane sends batches of broadcast_tx_sync calls in one
			// JSON-RPC request; a batch keeps the lane's order.
			for k := 0; len(lane) > 0; k++ {
				n := min(o.batch, len(lane))
				if pace > 0 { // open loop: a batch per tick, whatever the node does
					n = min(pacedBatch, len(lane))
					time.Sleep(time.Until(start.Add(time.Duration(k) * pace)))
				}
				batch := rpc.NewBatch()
				for _, raw := range lane[:n] {
					sent.Store(cmttypes.Tx(raw).Key(), time.Now())
					if _, err := batch.BroadcastTxSync(ctx, raw); err != nil {
						log.Fatal(err)
					}
				}
				results, err := batch.Send(ctx)
				if err != nil {
					if strings.Contains(err.Error(), "full") {
						time.Sleep(20 * time.Millisecond)
						continue
					}
					log.Fatalf("%s: broadcast: %v", name, err)
				}
				// On a full mempool, resend from the first tx it refused; a
				// resent tx that did get in is reported as already known.
				next := n
				for i, r := range results {
					msg := ""
					switch res := r.(type) {
					case *ctypes.ResultBroadcastTx:
						if res.Code != 0 {
							msg = fmt.Sprintf("code %d: %s", res.Code, res.Log)
						}
					case *rpctypes.RPCError:
						msg = res.Error()
					}
					if msg == "" || strings.Contains(msg, "already exists") {
						continue
					}
					if strings.Contains(msg, "full") {
						next = min(next, i)
						continue
					}
					if i < next {
						failed.Add(1)
						if failed.Load() < 5 {
							log.Printf("%s: broadcast refused: %s", name, msg)
						}
					}
				}
				if next < n {
					time.Sleep(20 * time.Millisecond)
				}
				lane = lane[next:]
			}
		}(lane)
	}

	// Watch blocks by polling: a NewBlock subscription would make the node
	// JSON-encode every tx result and event, which costs more than the
	// work being measured. Results are checked after the clock stops.
	var lat []time.Duration
	committed, lastCommit, next := 0, time.Now(), height()+1
	var heights []int64
	for committed < total-int(failed.Load()) {
		if ctx.Err() != nil {
			return result{}, fmt.Errorf("%s: %d of %d committed before timeout", name, committed, total)
		}
		if height() < next {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		now := time.Now()
		blk, err := rpc.Block(ctx, &next)
		if err != nil {
			return result{}, err
		}
		for _, t := range blk.Block.Txs {
			if v, ok := sent.Load(t.Key()); ok {
				committed++
				lat = append(lat, now.Sub(v.(time.Time)))
			}
		}
		if len(blk.Block.Txs) > 0 {
			lastCommit = now
			heights = append(heights, next)
		}
		next++
	}
	elapsed := lastCommit.Sub(start)
	if cpuprofile != "" && app == nil {
		pprof.StopCPUProfile()
	}
	for _, h := range heights {
		res, err := rpc.BlockResults(ctx, &h)
		if err != nil {
			return result{}, err
		}
		for _, r := range res.TxsResults {
			if r.Code != 0 {
				failed.Add(1)
				committed--
			}
		}
	}
	wg.Wait()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	r := result{name: name, tps: float64(committed) / elapsed.Seconds(), failed: int(failed.Load())}
	if len(lat) > 0 {
		r.p50, r.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
	}
	log.Printf("%s: %d committed in %.2fs, in %d blocks (%d txs a block)", name, committed, elapsed.Seconds(), len(heights), committed/max(1, len(heights)))
	return r, nil
}
