// Package sandbox runs batch jobs: WebAssembly modules (WASI preview 1)
// in wazero, configured so that the same module and input give the same
// output bytes on every machine. A job reads its input on stdin and writes
// its result to stdout; it sees no wall clock (the clock is wazero's fake,
// which advances per reading), no host randomness (random_get is a stream
// seeded by the module and input hashes), no environment, no files and no
// network. Fuel, counted per instruction (and per byte for bulk memory and
// table instructions) by a rewrite of the module, stops runaway code at
// the same point on every machine; memory is capped.
package sandbox

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

// Code is how a run ended. The chain's job module keeps the same numbers.
type Code uint32

const (
	// OK: the module exited 0; Output is its result.
	OK Code = 1
	// Exit: the module exited with a code other than 0.
	Exit Code = 2
	// Trap: the module trapped (unreachable, bad memory access, division
	// by zero, stack exhausted...).
	Trap Code = 3
	// OutOfFuel: the module used its fuel up.
	OutOfFuel Code = 4
	// OutOfMemory: the module needed more memory than its cap.
	OutOfMemory Code = 5
	// Invalid: the bytes are not a WebAssembly module this sandbox runs.
	Invalid Code = 6
	// OutputTooLarge: the module wrote more than the output limit.
	OutputTooLarge Code = 7
)

var codeNames = map[Code]string{OK: "ok", Exit: "exit", Trap: "trap", OutOfFuel: "out of fuel", OutOfMemory: "out of memory", Invalid: "invalid module", OutputTooLarge: "output too large"}

func (c Code) String() string {
	if s, ok := codeNames[c]; ok {
		return s
	}
	return fmt.Sprintf("code %d", uint32(c))
}

// Limits bound one run.
type Limits struct {
	// Fuel is roughly the number of instructions the module may execute.
	Fuel uint64
	// MemoryMiB caps the module's linear memory.
	MemoryMiB uint32
	// MaxOutput caps stdout, in bytes.
	MaxOutput int
	// Timeout is a wall-clock guard for the host, not part of the result:
	// a run that hits it returns ErrTimeout and no Result (so a host never
	// reports a result its speed decided). Fuel is what stops runaway code
	// deterministically; 0 means 10 minutes.
	Timeout time.Duration
}

// MaxFuel is the most fuel a run can be given.
const MaxFuel = 1 << 62

// Validate checks the limits.
func (l Limits) Validate() error {
	switch {
	case l.Fuel == 0 || l.Fuel > MaxFuel:
		return fmt.Errorf("sandbox: fuel %d out of range 1..%d", l.Fuel, uint64(MaxFuel))
	case l.MemoryMiB == 0 || l.MemoryMiB > 4096:
		return fmt.Errorf("sandbox: memory cap %d MiB out of range 1..4096", l.MemoryMiB)
	case l.MaxOutput <= 0:
		return errors.New("sandbox: the output limit must be positive")
	}
	return nil
}

// Result is a run's outcome. Code, ExitCode and Output are deterministic;
// Detail is for humans.
type Result struct {
	Code     Code
	ExitCode uint32
	Output   []byte
	FuelUsed uint64
	// Detail says why a run did not end OK (the trap message, the tail of
	// stderr).
	Detail string
}

// ErrTimeout is returned when a run hits the host's wall-clock guard.
var ErrTimeout = errors.New("sandbox: the run hit the host's wall-clock timeout")

// Sandbox compiles and runs modules, caching compiled code by module hash.
// It is safe for concurrent use.
type Sandbox struct {
	cfg  wazero.RuntimeConfig
	runs sync.WaitGroup // runs in flight, some perhaps abandoned

	mu sync.Mutex // guards the fields below
	// runtimes has one runtime per memory cap (wazero sets the cap per
	// runtime), each caching compiled modules; caps are few in practice.
	runtimes map[uint32]*runtime
	invalid  map[[32]byte]string // modules that failed to compile
	closed   bool
}

type runtime struct {
	rt       wazero.Runtime
	mu       sync.Mutex // guards compiled
	compiled map[[32]byte]wazero.CompiledModule
}

// New returns a sandbox that compiles to machine code where wazero can.
func New() *Sandbox { return newSandbox(wazero.NewRuntimeConfig()) }

// NewInterpreter returns a sandbox that interprets: slower, and the second
// engine the determinism tests compare against.
func NewInterpreter() *Sandbox { return newSandbox(wazero.NewRuntimeConfigInterpreter()) }

func newSandbox(cfg wazero.RuntimeConfig) *Sandbox {
	// No WithCloseOnContextDone: see Run.
	return &Sandbox{cfg: cfg, runtimes: map[uint32]*runtime{}, invalid: map[[32]byte]string{}}
}

// Close waits for runs in flight (even abandoned ones) and frees the
// compiled code.
func (s *Sandbox) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.runs.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, r := range s.runtimes {
		errs = append(errs, r.rt.Close(ctx))
	}
	s.runtimes = nil
	return errors.Join(errs...)
}

// runtime returns the runtime for a memory cap and counts a run in
// flight (under the lock, so Close cannot miss it); the caller must call
// s.runs.Done.
func (s *Sandbox) runtime(ctx context.Context, pages uint32) (*runtime, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("sandbox: closed")
	}
	r := s.runtimes[pages]
	if r == nil {
		rt := wazero.NewRuntimeWithConfig(ctx, s.cfg.WithMemoryLimitPages(pages))
		if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
			rt.Close(ctx)
			return nil, err
		}
		r = &runtime{rt: rt, compiled: map[[32]byte]wazero.CompiledModule{}}
		s.runtimes[pages] = r
	}
	s.runs.Add(1)
	return r, nil
}

// compile returns the metered, compiled module, or the result of a module
// that cannot run: invalid, or declaring more memory than the cap.
func (s *Sandbox) compile(ctx context.Context, r *runtime, wasm []byte, lim Limits) (wazero.CompiledModule, *Result, error) {
	h := sha256.Sum256(wasm)
	s.mu.Lock()
	reason, bad := s.invalid[h]
	s.mu.Unlock()
	if bad {
		return nil, &Result{Code: Invalid, Detail: reason}, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if c := r.compiled[h]; c != nil {
		return c, nil, nil
	}
	metered, err := instrument(wasm)
	if err == nil {
		var c wazero.CompiledModule
		if c, err = r.rt.CompileModule(ctx, metered); err == nil {
			if _, ok := c.ExportedFunctions()["_start"]; !ok {
				c.Close(ctx)
				err = errors.New("the module exports no _start function (build it with GOOS=wasip1 GOARCH=wasm)")
			} else {
				r.compiled[h] = c
				return c, nil, nil
			}
		}
	}
	if ctx.Err() != nil {
		return nil, nil, ctx.Err()
	}
	if strings.Contains(err.Error(), "over limit of") { // wazero: memory min over the cap
		return nil, &Result{Code: OutOfMemory, Detail: fmt.Sprintf("the module declares more memory than the %d MiB cap: %v", lim.MemoryMiB, err)}, nil
	}
	reason = strings.TrimPrefix(err.Error(), "sandbox: ")
	s.mu.Lock()
	s.invalid[h] = reason
	s.mu.Unlock()
	return nil, &Result{Code: Invalid, Detail: reason}, nil
}

// limitedWriter keeps the first max bytes and notes overflow.
type limitedWriter struct {
	buf      bytes.Buffer
	max      int
	overflow bool
}

func (w *limitedWriter) Write(p []byte) (int, error) {
	if w.buf.Len()+len(p) > w.max {
		w.overflow = true
		return 0, errors.New("output limit reached")
	}
	return w.buf.Write(p)
}

// tailWriter keeps the last bytes written, for error messages.
type tailWriter struct{ b []byte }

func (w *tailWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	if len(w.b) > 4096 {
		w.b = w.b[len(w.b)-2048:]
	}
	return len(p), nil
}

// Run executes wasm on input. An error means the host could not complete
// the run (timeout, cancellation); every outcome of the module itself,
// including an invalid module, is a Result.
func (s *Sandbox) Run(ctx context.Context, wasm, input []byte, lim Limits) (*Result, error) {
	if err := lim.Validate(); err != nil {
		return nil, err
	}
	if lim.Timeout == 0 {
		lim.Timeout = 10 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, lim.Timeout)
	defer cancel()
	pages := uint32(min(uint64(lim.MemoryMiB)*16, 65536))
	r, err := s.runtime(ctx, pages)
	if err != nil {
		return nil, err
	}
	handedOff := false // to the goroutine that runs the module
	defer func() {
		if !handedOff {
			s.runs.Done()
		}
	}()
	compiled, failed, err := s.compile(ctx, r, wasm, lim)
	if err != nil {
		return nil, err
	}
	if failed != nil {
		return failed, nil
	}
	mh, ih := sha256.Sum256(wasm), sha256.Sum256(input)
	seed := sha256.Sum256(append(mh[:], ih[:]...))
	stdout := &limitedWriter{max: lim.MaxOutput}
	stderr := &tailWriter{}
	cfg := wazero.NewModuleConfig().
		WithName("").
		WithArgs("job").
		WithStdin(bytes.NewReader(input)).
		WithStdout(stdout).
		WithStderr(stderr).
		WithRandSource(rand.NewChaCha8(seed)).
		WithStartFunctions() // _start is called below, once the fuel is set
	mod, err := r.rt.InstantiateModule(ctx, compiled, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ErrTimeout
		}
		// The memory the module declares is over the cap, or a data
		// segment does not fit: deterministic failures of the module.
		code := Trap
		if strings.Contains(err.Error(), "memory") {
			code = OutOfMemory
		}
		return &Result{Code: code, Detail: err.Error()}, nil
	}
	fuel := meterOf(mod)
	fuel.set(lim.Fuel)
	// The run goes on in its own goroutine, so a host timeout or a
	// cancellation returns at once. wazero cannot interrupt running code
	// cheaply (WithCloseOnContextDone slows Go-built modules sevenfold), so
	// an abandoned run finishes on its own, which its fuel guarantees;
	// Close waits for it.
	done := make(chan *Result, 1)
	handedOff = true
	go func() {
		defer s.runs.Done()
		defer mod.Close(context.Background())
		_, err := mod.ExportedFunction("_start").Call(context.Background())
		done <- classify(mod, fuel, err, stdout, stderr, lim)
	}()
	select {
	case res := <-done:
		// The deadline may have passed unseen: a garbage collection that
		// starts while wasm code runs stops the process, timers included,
		// until that code returns, so a result can come in long after it.
		if err := stopped(ctx); err != nil {
			return nil, err
		}
		return res, nil
	case <-ctx.Done():
		return nil, stopped(ctx)
	}
}

// stopped says why ctx ended, if it has or its deadline has passed: a
// deadline is ErrTimeout, however late its timer.
func stopped(ctx context.Context) error {
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return ErrTimeout
	}
	return ctx.Err()
}

// meter is a module's fuel: the current slice and the bank (see
// Yielding in meter.go).
type meter struct{ slice, bank api.MutableGlobal }

func meterOf(mod api.Module) meter {
	return meter{mod.ExportedGlobal(fuelExport).(api.MutableGlobal), mod.ExportedGlobal(bankExport).(api.MutableGlobal)}
}

// set gives the module n fuel: a first slice, and the rest in the bank.
func (m meter) set(n uint64) {
	slice := min(n, yieldFuel)
	m.slice.Set(slice)
	m.bank.Set(n - slice)
}

// left is the fuel left, below zero if the module ran out.
func (m meter) left() int64 { return int64(m.slice.Get()) + int64(m.bank.Get()) }

// classify turns how _start returned into a Result.
func classify(mod api.Module, fuel meter, err error, stdout *limitedWriter, stderr *tailWriter, lim Limits) *Result {
	left := fuel.left()
	res := &Result{Output: stdout.buf.Bytes()}
	if left >= 0 {
		res.FuelUsed = lim.Fuel - uint64(left)
	} else {
		res.FuelUsed = lim.Fuel
	}
	var exit *sys.ExitError
	switch {
	case stdout.overflow:
		res.Code, res.Detail = OutputTooLarge, fmt.Sprintf("the module wrote more than %d bytes", lim.MaxOutput)
	case err == nil:
		res.Code = OK
	case left < 0:
		res.Code, res.Detail = OutOfFuel, fmt.Sprintf("the module used all %d fuel", lim.Fuel)
	case mod.ExportedGlobal(oomExport).Get() != 0:
		res.Code, res.Detail = OutOfMemory, fmt.Sprintf("the module needed more than %d MiB", lim.MemoryMiB)
	case errors.As(err, &exit) && exit.ExitCode() == 0:
		res.Code = OK
	case errors.As(err, &exit):
		res.Code, res.ExitCode = Exit, exit.ExitCode()
		res.Detail = fmt.Sprintf("exit code %d", exit.ExitCode())
	default:
		res.Code, res.Detail = Trap, err.Error()
	}
	if res.Code != OK {
		if tail := strings.TrimSpace(string(stderr.b)); tail != "" {
			res.Detail += ": " + lastLines(tail, 3)
		}
	}
	if res.Code == OutputTooLarge {
		res.Output = nil
	}
	return res
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
