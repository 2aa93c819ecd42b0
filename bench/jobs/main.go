// Command jobs measures the batch compute market in one run:
//
//  1. the sandbox's overhead: the CPU kernel (examples/jobs/kernel, integer
//     matrix products) natively and as a metered WebAssembly job in wazero,
//     and the ratio, for the Go kernel and for the same kernel in C
//     (examples/jobs/kernel/c, built with clang when it is installed);
//
//  2. a small job on an in-process devnet, from order to paid result, split
//     into auction (order to lease), execution (lease to every lessee
//     committed) and settlement (commit to paid).
//
//     go run ./bench/jobs [-n 256] [-rounds 4]
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/agoranet/agora/examples/jobs/kernel/matmul"
	"github.com/agoranet/agora/internal/blob"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/job/jobpb"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/devnet"
	"github.com/agoranet/agora/internal/sandbox"
)

func main() {
	log.SetFlags(0)
	n := flag.Int("n", 256, "matrix size for the overhead run")
	rounds := flag.Int("rounds", 4, "products per run")
	flag.Parse()
	wasm := build()
	input := []byte(fmt.Sprintf("%d %d", *n, *rounds))
	var want strings.Builder
	for _, sum := range matmul.Run(*n, *rounds) {
		fmt.Fprintln(&want, sum)
	}
	overhead(kernel{name: "Go kernel (GOOS=wasip1)", wasm: wasm, native: func() { matmul.Run(*n, *rounds) },
		note: "Go's own wasm code generation", targets: "for comparison: Go's wasm output is slow in any runtime"}, input, want.String())
	dir, err := os.MkdirTemp("", "bench-jobs-c")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if cw, cnative, err := buildC(dir); err != nil {
		fmt.Printf("C kernel: skipped: %v\n  (Debian: apt-get install clang lld wasi-libc libclang-rt-dev-wasm32)\n\n", err)
	} else {
		overhead(kernel{name: "C kernel (clang -O2 --target=wasm32-wasi)", wasm: cw, native: func() { runNative(cnative, input) },
			note:    "the native run is a process of its own, start-up included",
			targets: "sandbox / native goal <= 2, floor <= 3; metering goal <= 1.2"}, input, want.String())
	}
	onDevnet(wasm)
}

func build() []byte {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	dir, err := os.MkdirTemp("", "bench-jobs")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "kernel.wasm")
	cmd := exec.Command("go", "build", "-o", out, "./examples/jobs/kernel")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if msg, err := cmd.CombinedOutput(); err != nil {
		log.Fatalf("build the kernel: %v\n%s", err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		log.Fatal(err)
	}
	return b
}

// buildC compiles examples/jobs/kernel/c/kernel.c to WASI and natively,
// both with clang -O2, into dir. It fails, and the C rows are skipped,
// where clang or the WASI sysroot is missing.
func buildC(dir string) (wasm []byte, native string, err error) {
	if _, err := exec.LookPath("clang"); err != nil {
		return nil, "", errors.New("no clang on PATH")
	}
	_, file, _, _ := runtime.Caller(0)
	src := filepath.Join(filepath.Dir(file), "..", "..", "examples", "jobs", "kernel", "c", "kernel.c")
	out, native := filepath.Join(dir, "kernel.wasm"), filepath.Join(dir, "kernel")
	for _, args := range [][]string{
		{"--target=wasm32-wasi", "-O2", "-Wl,--strip-all", "-o", out, src},
		{"-O2", "-o", native, src},
	} {
		if msg, err := exec.Command("clang", args...).CombinedOutput(); err != nil {
			return nil, "", fmt.Errorf("clang %s: %v\n%s", strings.Join(args, " "), err, msg)
		}
	}
	wasm, err = os.ReadFile(out)
	return wasm, native, err
}

func runNative(path string, input []byte) {
	cmd := exec.Command(path)
	cmd.Stdin = bytes.NewReader(input)
	if msg, err := cmd.CombinedOutput(); err != nil {
		log.Fatalf("%s: %v\n%s", path, err, msg)
	}
}

// kernel is one build of the workload: its module, its native run, and
// what to print beside its figures.
type kernel struct {
	name, note, targets string
	wasm                []byte
	native              func()
}

// overhead times a kernel natively, in plain wazero and in the sandbox,
// interleaved round by round so that a noisy neighbour slows all three
// alike, and keeps each one's best round. The sandbox's output must be
// want: the C and Go kernels compute the same checksums.
func overhead(kn kernel, input []byte, want string) {
	sb := sandbox.New()
	defer sb.Close(context.Background())
	lim := sandbox.Limits{Fuel: sandbox.MaxFuel, MemoryMiB: 256, MaxOutput: 1 << 20}
	var fuel uint64
	sandboxed := func() time.Duration {
		t := time.Now()
		res, err := sb.Run(context.Background(), kn.wasm, input, lim)
		if err != nil || res.Code != sandbox.OK {
			log.Fatalf("%s in the sandbox: %v %v", kn.name, res, err)
		}
		if string(res.Output) != want {
			log.Fatalf("%s in the sandbox printed %q, want %q", kn.name, res.Output, want)
		}
		fuel = res.FuelUsed
		return time.Since(t)
	}
	native := func() time.Duration {
		t := time.Now()
		kn.native()
		return time.Since(t)
	}
	plain, closePlain := plainWazero(kn.wasm, input)
	defer closePlain()
	first := sandboxed() // includes compiling the module
	const k = 7
	var best [3]time.Duration
	for i := 0; i < k; i++ {
		for j, f := range []func() time.Duration{native, plain, sandboxed} {
			if d := f(); best[j] == 0 || d < best[j] {
				best[j] = d
			}
		}
	}
	fmt.Printf("%s: %s (%d KiB module), best of %d interleaved rounds\n", kn.name, input, len(kn.wasm)/1024, k)
	fmt.Printf("  native               %8.1f ms   (%s)\n", ms(best[0]), kn.note)
	fmt.Printf("  wazero, unmetered    %8.1f ms\n", ms(best[1]))
	fmt.Printf("  sandbox              %8.1f ms   (metered; first run with compilation %.1f ms; %d fuel)\n", ms(best[2]), ms(first), fuel)
	fmt.Printf("  overhead ratio       %8.2f   (sandbox / native)\n", float64(best[2])/float64(best[0]))
	fmt.Printf("  of which metering    %8.2f   (sandbox / unmetered wazero)\n", float64(best[2])/float64(best[1]))
	fmt.Printf("  targets: %s\n\n", kn.targets)
}

// plainWazero returns a run of the module in wazero as it is, without the
// sandbox's fuel metering: the baseline that separates metering from wasm
// itself.
func plainWazero(wasm, input []byte) (run func() time.Duration, close func()) {
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	cm, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		log.Fatal(err)
	}
	return func() time.Duration {
		t := time.Now()
		cfg := wazero.NewModuleConfig().WithStdin(bytes.NewReader(input)).WithStdout(io.Discard).WithName("")
		if _, err := rt.InstantiateModule(ctx, cm, cfg); err != nil && !strings.Contains(err.Error(), "exit_code(0)") {
			log.Fatal(err)
		}
		return time.Since(t)
	}, func() { rt.Close(ctx) }
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func onDevnet(wasm []byte) {
	home, err := os.MkdirTemp("", "bench-jobs-devnet")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(home)
	cfg := devnet.DefaultConfig(home)
	cfg.BasePort = 19100 // below the ephemeral range (32768-60999) and the tests' (20000-32699)
	d, err := devnet.Start(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer d.Stop()
	c, err := client.New(d.Node.RPC())
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	hc := &http.Client{Timeout: time.Minute}
	input := []byte("32 1")
	mu, err := blob.Upload(ctx, hc, d.Providers[0].URL(), wasm)
	if err != nil {
		log.Fatal(err)
	}
	iu, err := blob.Upload(ctx, hc, d.Providers[0].URL(), input)
	if err != nil {
		log.Fatal(err)
	}
	alice, _ := d.Keyring.Get("alice")
	p := jobpb.DefaultParams()
	fmt.Printf("devnet job (kernel 32x32, redundancy 2, %v blocks, bid window %d blocks)\n", cfg.BlockTime, p.DefaultBidWindow)
	for i := 0; i < 3; i++ {
		mh, ih := sha256.Sum256(wasm), sha256.Sum256(input)
		start := time.Now()
		res, err := c.Submit(ctx, alice, "", &jobpb.MsgCreateOrder{Tenant: alice.Address().String(), ModuleHash: mh[:], ModuleUrl: mu, InputHash: ih[:], InputUrl: iu,
			Fuel: 1 << 34, MemoryMib: 128, MaxPrice: coin.New(coin.Stable, 2000), Redundancy: 2})
		if err != nil {
			log.Fatal(err)
		}
		ordered := time.Since(start)
		var created jobpb.MsgCreateOrderResponse
		if err := res.Response(0, &created); err != nil {
			log.Fatal(err)
		}
		id := created.OrderId
		seen := map[jobpb.OrderStatus]time.Duration{}
		var o *jobpb.Order
		for o == nil || o.FinishedAt == 0 {
			r, err := client.Ask(ctx, c, jobpb.QueryOrder, &jobpb.QueryOrderRequest{Id: id})
			if err != nil {
				log.Fatal(err)
			}
			o = r.Order
			if _, ok := seen[o.Status]; !ok {
				seen[o.Status] = time.Since(start)
			}
			time.Sleep(10 * time.Millisecond)
			if time.Since(start) > 2*time.Minute {
				log.Fatalf("order %d stuck in %s", id, o.Status)
			}
		}
		if o.Status != jobpb.OrderStatus_ORDER_STATUS_COMPLETED {
			log.Fatalf("order %d: %s: %s", id, o.Status, o.Reason)
		}
		leased, committed, done := seen[jobpb.OrderStatus_ORDER_STATUS_RUNNING], seen[jobpb.OrderStatus_ORDER_STATUS_REVEALING], seen[jobpb.OrderStatus_ORDER_STATUS_COMPLETED]
		fmt.Printf("  order %d: total %6.0f ms = order tx %4.0f + auction %5.0f + execution %5.0f + settlement %5.0f   (%d blocks; paid %d, refunded %d)\n",
			id, ms(done), ms(ordered), ms(leased-ordered), ms(committed-leased), ms(done-committed), o.FinishedAt-o.CreatedAt, o.Paid, o.Refunded)
	}
	fmt.Println("  (auction is the bidding window by design; execution includes fetching, running and the commit tx;")
	fmt.Println("   the first order also compiles the module on the providers)")
}
