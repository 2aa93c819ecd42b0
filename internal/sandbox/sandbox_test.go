package sandbox

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"
)

// module assembles a minimal module: one memory of minPages, and _start
// with the given body (locals vector included).
func module(minPages uint32, body []byte) []byte {
	sec := func(id byte, b []byte) []byte { return append(appendU32([]byte{id}, uint32(len(b))), b...) }
	m := []byte("\x00asm\x01\x00\x00\x00")
	m = append(m, sec(1, []byte{1, 0x60, 0, 0})...)
	m = append(m, sec(3, []byte{1, 0})...)
	m = append(m, sec(5, appendU32([]byte{1, 0}, minPages))...)
	exp := appendName([]byte{2}, "_start")
	exp = append(exp, 0, 0)
	exp = appendName(exp, "memory")
	exp = append(exp, 2, 0)
	m = append(m, sec(7, exp)...)
	code := append(appendU32(nil, uint32(len(body)+1)), 0)
	code = append(code, body...)
	return append(m, sec(10, append([]byte{1}, code...))...)
}

var lim = Limits{Fuel: 50_000_000, MemoryMiB: 64, MaxOutput: 1 << 20}

func TestBadModulesEndInDefinedResults(t *testing.T) {
	grow := append([]byte{opI32Const}, appendS64(nil, 100_000)...)
	grow = append(grow, opMemoryGrow, 0, 0x1a, opUnreachable, opEnd)
	tests := []struct {
		name string
		wasm []byte
		want Code
	}{
		{"loops forever", module(1, []byte{opLoop, blockEmpty, 0x0c, 0, opEnd, opEnd}), OutOfFuel},
		{"traps", module(1, []byte{opUnreachable, opEnd}), Trap},
		{"grows past the cap", module(1, grow), OutOfMemory},
		{"declares more memory than the cap", module(2000, []byte{opEnd}), OutOfMemory},
		{"not WebAssembly", []byte("#!/bin/sh\necho hi\n"), Invalid},
		{"truncated", module(1, []byte{opEnd})[:30], Invalid},
		{"exits cleanly", module(1, []byte{opEnd}), OK},
	}
	sb := New()
	defer sb.Close(context.Background())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := sb.Run(context.Background(), tt.wasm, nil, lim)
			if err != nil {
				t.Fatal(err)
			}
			if res.Code != tt.want {
				t.Fatalf("code %v (%s), want %v", res.Code, res.Detail, tt.want)
			}
			if tt.want == OutOfFuel && res.FuelUsed != lim.Fuel {
				t.Errorf("fuel used %d, want all %d", res.FuelUsed, lim.Fuel)
			}
			if tt.want != OK && res.Detail == "" {
				t.Error("no detail for a failed run")
			}
		})
	}
}

func TestInstrumentRejectsGarbage(t *testing.T) {
	for _, b := range [][]byte{nil, []byte("\x00asm"), []byte("\x00asm\x02\x00\x00\x00"), []byte("\x00asm\x01\x00\x00\x00\x0a\xff")} {
		if _, err := instrument(b); err == nil {
			t.Errorf("instrument(%q) succeeded", b)
		}
	}
}

func FuzzInstrument(f *testing.F) {
	f.Add(module(1, []byte{opLoop, blockEmpty, 0x0c, 0, opEnd, opEnd}))
	f.Add(module(1, []byte{opUnreachable, opEnd}))
	f.Fuzz(func(t *testing.T, b []byte) {
		instrument(b) // must not panic
	})
}

var (
	buildOnce sync.Once
	built     map[string][]byte
	buildErr  error
)

// examples builds the example jobs for wasip1 once per test binary.
func examples(t testing.TB) map[string][]byte {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "agora-jobs")
		if err != nil {
			buildErr = err
			return
		}
		defer os.RemoveAll(dir)
		built = map[string][]byte{}
		for _, name := range []string{"digits", "kernel"} {
			out := filepath.Join(dir, name+".wasm")
			cmd := exec.Command("go", "build", "-o", out, "../../examples/jobs/"+name)
			cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
			if msg, err := cmd.CombinedOutput(); err != nil {
				buildErr = err
				t.Logf("%s", msg)
				return
			}
			if built[name], buildErr = os.ReadFile(out); buildErr != nil {
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return built
}

func digitsInput(t *testing.T, n int) []byte {
	cmd := exec.Command("go", "run", "../../examples/jobs/digits", "-gen", "40")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSameBytesOnBothEngines runs the example jobs in the compiler and the
// interpreter: the output bytes and the fuel burned must be equal, which
// is what lets any provider's result be compared with any other's.
func TestSameBytesOnBothEngines(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the example jobs; skipped with -short")
	}
	ex := examples(t)
	inputs := map[string][]byte{"digits": digitsInput(t, 40), "kernel": []byte("24 2")}
	lim := Limits{Fuel: 20_000_000_000, MemoryMiB: 256, MaxOutput: 1 << 20}
	comp, interp := New(), NewInterpreter()
	defer comp.Close(context.Background())
	defer interp.Close(context.Background())
	for name, wasm := range ex {
		t.Run(name, func(t *testing.T) {
			a, err := comp.Run(context.Background(), wasm, inputs[name], lim)
			if err != nil {
				t.Fatal(err)
			}
			if a.Code != OK {
				t.Fatalf("compiler: %v: %s", a.Code, a.Detail)
			}
			b, err := interp.Run(context.Background(), wasm, inputs[name], lim)
			if err != nil {
				t.Fatal(err)
			}
			if b.Code != OK || !bytes.Equal(a.Output, b.Output) || a.FuelUsed != b.FuelUsed {
				t.Fatalf("engines disagree: compiler %v %d bytes fuel %d; interpreter %v %d bytes fuel %d", a.Code, len(a.Output), a.FuelUsed, b.Code, len(b.Output), b.FuelUsed)
			}
			again, _ := comp.Run(context.Background(), wasm, inputs[name], lim)
			if !bytes.Equal(again.Output, a.Output) {
				t.Fatal("a second run gave other bytes")
			}
			if name == "digits" {
				if lines := strings.Count(string(a.Output), "\n"); lines != 40 {
					t.Fatalf("digits classified %d images, want 40", lines)
				}
			}
			// Too little fuel stops the same job deterministically.
			short := lim
			short.Fuel = a.FuelUsed / 2
			c, err := comp.Run(context.Background(), wasm, inputs[name], short)
			if err != nil || c.Code != OutOfFuel {
				t.Fatalf("with half the fuel: %v, %v", c, err)
			}
		})
	}
}

// TestHostTimeoutStopsARun: the wall-clock guard returns from a run that
// takes longer, and reports no result (the run itself ends with its fuel).
//
// A garbage collection that starts while wasm code runs stops the whole
// process until that code returns (the Go runtime cannot preempt it), and
// timers with it; the result then arrives with the deadline long past, and
// it must not be reported. The test forces that case, and keeps the
// collector off elsewhere, where a stall would delay the cancellation
// past the run's end and make the test flaky.
func TestHostTimeoutStopsARun(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	sb := New()
	defer sb.Close(context.Background())
	spin := module(1, []byte{opLoop, blockEmpty, 0x0c, 0, opEnd, opEnd})
	l := Limits{Fuel: 5_000_000_000, MemoryMiB: 16, MaxOutput: 1024, Timeout: 100 * time.Millisecond}
	start := time.Now()
	res, err := sb.Run(context.Background(), spin, nil, l)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("got %v, %v; want ErrTimeout", res, err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("the timeout took %v to stop the run", took)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	if _, err := sb.Run(ctx, spin, nil, Limits{Fuel: 5_000_000_000, MemoryMiB: 16, MaxOutput: 1024}); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled run: %v, want context.Canceled", err)
	}
	gc := make(chan struct{})
	time.AfterFunc(20*time.Millisecond, func() { goruntime.GC(); close(gc) })
	defer func() { <-gc }()
	if res, err := sb.Run(context.Background(), spin, nil, l); !errors.Is(err, ErrTimeout) {
		t.Fatalf("a run held up by a collection: %v, %v; want ErrTimeout", res, err)
	}
}

// TestMeteringKeepsCallsAndLocalsRight: a recursive function with a
// parameter, a local, an early return and a branch out of the function
// computes the same under metering (the fuel local comes after the
// function's own locals; fuel is stored across calls and returns), burns
// the same fuel on both engines, and stops when the fuel runs out.
func TestMeteringKeepsCallsAndLocalsRight(t *testing.T) {
	sec := func(id byte, b []byte) []byte { return append(appendU32([]byte{id}, uint32(len(b))), b...) }
	body := func(b ...byte) []byte { return append(appendU32(nil, uint32(len(b))), b...) }
	m := []byte("\x00asm\x01\x00\x00\x00")
	m = append(m, sec(1, []byte{2, 0x60, 0, 0, 0x60, 1, typeI32, 1, typeI32})...) // () -> (); (i32) -> i32
	m = append(m, sec(3, []byte{2, 0, 1})...)
	m = append(m, sec(5, []byte{1, 0, 1})...)
	exp := appendName([]byte{1}, "_start")
	m = append(m, sec(7, append(exp, 0, 0))...)
	// f(n) = n == 0 ? 7 : f(n-1) + 1, with a scratch local and the
	// result leaving through a br to the function's label.
	f := body(1, 1, typeI32, // one i32 local
		0x20, 0, 0x45, opIf, blockEmpty, opI32Const, 7, 0x0f, opEnd, // if n == 0 { return 7 }
		0x20, 0, opI32Const, 1, 0x6b, 0x21, 1, // local1 = n - 1
		0x20, 1, 0x10, 1, opI32Const, 1, 0x6a, // f(local1) + 1
		0x0c, 0, // br 0: out of the function
		opEnd)
	start := body(0,
		opI32Const, 50, 0x10, 1, opI32Const, 57, 0x47, opIf, blockEmpty, opUnreachable, opEnd, // trap unless f(50) == 57
		opEnd)
	m = append(m, sec(10, append(append([]byte{2}, start...), f...))...)

	lim := Limits{Fuel: 1_000_000, MemoryMiB: 1, MaxOutput: 16}
	comp, interp := New(), NewInterpreter()
	defer comp.Close(context.Background())
	defer interp.Close(context.Background())
	a, err := comp.Run(context.Background(), m, nil, lim)
	if err != nil || a.Code != OK {
		t.Fatalf("compiler: %+v, %v", a, err)
	}
	b, err := interp.Run(context.Background(), m, nil, lim)
	if err != nil || b.Code != OK || b.FuelUsed != a.FuelUsed {
		t.Fatalf("interpreter: %+v, %v; compiler used %d fuel", b, err, a.FuelUsed)
	}
	if a.FuelUsed < 51*10 {
		t.Fatalf("51 calls of ten-odd instructions used only %d fuel", a.FuelUsed)
	}
	lim.Fuel = a.FuelUsed - 1
	if c, err := comp.Run(context.Background(), m, nil, lim); err != nil || c.Code != OutOfFuel {
		t.Fatalf("one fuel short: %+v, %v", c, err)
	}
}

// bulkJob is what the bulk-operation tests need beyond module's memory:
// a funcref table, a passive data segment and a passive element segment
// (of function 0, _start).
type bulkJob struct {
	memPages uint32
	tableLen uint32 // no table if 0
	data     []byte // no data segment if nil
	elems    uint32 // no element segment if 0
	locals   []byte // _start's local declarations, count included
	code     []byte // _start's instructions, end included
}

func (j bulkJob) wasm() []byte {
	sec := func(id byte, b []byte) []byte { return append(appendU32([]byte{id}, uint32(len(b))), b...) }
	m := []byte("\x00asm\x01\x00\x00\x00")
	m = append(m, sec(1, []byte{1, 0x60, 0, 0})...)
	m = append(m, sec(3, []byte{1, 0})...)
	if j.tableLen > 0 {
		m = append(m, sec(4, appendU32([]byte{1, 0x70, 0}, j.tableLen))...)
	}
	m = append(m, sec(5, appendU32([]byte{1, 0}, j.memPages))...)
	exp := appendName([]byte{1}, "_start")
	m = append(m, sec(7, append(exp, 0, 0))...)
	if j.elems > 0 {
		el := appendU32([]byte{1, 1, 0}, j.elems) // passive, funcref by index
		m = append(m, sec(9, append(el, make([]byte, j.elems)...))...)
	}
	if j.data != nil {
		m = append(m, sec(12, []byte{1})...)
	}
	body := append(append([]byte(nil), j.locals...), j.code...)
	m = append(m, sec(10, append(appendU32([]byte{1}, uint32(len(body))), body...))...)
	if j.data != nil {
		d := appendU32([]byte{1, 1}, uint32(len(j.data))) // passive
		m = append(m, sec(11, append(d, j.data...))...)
	}
	return m
}

// i32 is i32.const v.
func i32(v int64) []byte { return appendS64([]byte{opI32Const}, int64(int32(v))) }

// repeat is a loop that runs code n times, counting in local 0.
func repeat(n int64, code []byte) []byte {
	return cat([]byte{opLoop, blockEmpty}, code,
		[]byte{opLocalGet, 0}, i32(1), []byte{0x6a, opLocalTee, 0}, i32(n), []byte{0x49, 0x0d, 0, opEnd}) // i32.add, i32.lt_u, br_if
}

// cat joins code fragments.
func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// TestBulkOperationsPayByLength: each bulk memory and table operation
// costs fuel by its length, so a cheap job cannot make one instruction do
// seconds of work. With a small length the operation does its job and
// costs what its length says on both engines; a job of 2,000 fuel that
// repeats it at a huge length runs out of fuel at the first one.
func TestBulkOperationsPayByLength(t *testing.T) {
	const tableLen = 1 << 20
	data := make([]byte, 1<<20)
	data[4095] = 0xab
	refFunc, refNull := []byte{0xd2, 0}, []byte{0xd0, 0x70}
	load8 := func(addr int64) []byte { return cat(i32(addr), []byte{0x2d, 0, 0}) }
	isNull := func(i int64) []byte { return cat(i32(i), []byte{0x25, 0, 0xd1}) }
	trapIf := func(cond ...[]byte) []byte { return cat(cat(cond...), []byte{opIf, blockEmpty, opUnreachable, opEnd}) }
	const eqz, ne = 0x45, 0x47
	tests := []struct {
		name        string
		job         bulkJob
		op          func(n int64) []byte // leaves nothing on the stack
		before      []byte               // code that prepares for op(small)
		check       []byte               // code that traps unless op(small) did its job
		small, huge int64
		fuel        int64 // what op(small) costs more than op(0)
		repeat      int64 // times the huge job does op(huge)
	}{
		{
			name:  "memory.fill",
			job:   bulkJob{memPages: 256},
			op:    func(n int64) []byte { return cat(i32(0), i32(0xab), i32(n), []byte{0xfc, 11, 0}) },
			check: cat(trapIf(load8(4095), i32(0xab), []byte{ne}), trapIf(load8(4096))),
			small: 4096, huge: 256 << 16, fuel: 2048, repeat: 100,
		},
		{
			name:   "memory.copy",
			job:    bulkJob{memPages: 256},
			op:     func(n int64) []byte { return cat(i32(128<<16), i32(0), i32(n), []byte{0xfc, 10, 0, 0}) },
			before: cat(i32(4095), i32(0xab), []byte{0x3a, 0, 0}),
			check:  trapIf(load8(128<<16+4095), i32(0xab), []byte{ne}),
			small:  4096, huge: 128 << 16, fuel: 2048, repeat: 100,
		},
		{
			name:  "memory.init",
			job:   bulkJob{memPages: 256, data: data},
			op:    func(n int64) []byte { return cat(i32(0), i32(0), i32(n), []byte{0xfc, 8, 0, 0}) },
			check: trapIf(load8(4095), i32(0xab), []byte{ne}),
			small: 4096, huge: 1 << 20, fuel: 2048, repeat: 100,
		},
		{
			name:  "table.fill",
			job:   bulkJob{memPages: 1, tableLen: tableLen},
			op:    func(n int64) []byte { return cat(i32(0), refFunc, i32(n), []byte{0xfc, 17, 0}) },
			check: cat(trapIf(isNull(511)), trapIf(isNull(512), []byte{eqz})),
			small: 512, huge: tableLen, fuel: 2048, repeat: 100,
		},
		{
			name:   "table.copy",
			job:    bulkJob{memPages: 1, tableLen: tableLen},
			op:     func(n int64) []byte { return cat(i32(tableLen/2), i32(0), i32(n), []byte{0xfc, 14, 0, 0}) },
			before: cat(i32(511), refFunc, []byte{0x26, 0}),
			check:  cat(trapIf(isNull(tableLen/2+511)), trapIf(isNull(tableLen/2+512), []byte{eqz})),
			small:  512, huge: tableLen / 2, fuel: 2048, repeat: 100,
		},
		{
			name:  "table.init",
			job:   bulkJob{memPages: 1, tableLen: 1 << 16, elems: 1 << 16},
			op:    func(n int64) []byte { return cat(i32(0), i32(0), i32(n), []byte{0xfc, 12, 0, 0}) },
			check: cat(trapIf(isNull(511)), trapIf(isNull(512), []byte{eqz})),
			small: 512, huge: 1 << 16, fuel: 2048, repeat: 100,
		},
		{
			name:  "table.grow",
			job:   bulkJob{memPages: 1, tableLen: 1},
			op:    func(n int64) []byte { return cat(refNull, i32(n), []byte{0xfc, 15, 0, opLocalSet, 1}) },
			check: cat(trapIf([]byte{opLocalGet, 1}, i32(1), []byte{ne}), trapIf([]byte{0xfc, 16, 0}, i32(513), []byte{ne})),
			small: 512, huge: 1 << 18, fuel: 512 * 64, repeat: 16,
		},
		{
			name:  "memory.grow",
			job:   bulkJob{memPages: 1},
			op:    func(n int64) []byte { return cat(i32(n), []byte{opMemoryGrow, 0, opLocalSet, 1}) },
			check: cat(trapIf([]byte{opLocalGet, 1}, i32(1), []byte{ne}), trapIf([]byte{0x3f, 0}, i32(3), []byte{ne})),
			small: 2, huge: 1000, fuel: 2 << 15, repeat: 1,
		},
	}
	comp, interp := New(), NewInterpreter()
	defer comp.Close(context.Background())
	defer interp.Close(context.Background())
	run := func(t *testing.T, sb *Sandbox, j bulkJob, fuel uint64, code ...[]byte) *Result {
		t.Helper()
		j.locals = []byte{1, 2, typeI32} // a loop counter and a result
		j.code = cat(cat(code...), []byte{opEnd})
		res, err := sb.Run(context.Background(), j.wasm(), nil, Limits{Fuel: fuel, MemoryMiB: 64, MaxOutput: 16})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, sb := range []*Sandbox{comp, interp} {
				if res := run(t, sb, tt.job, 1_000_000, tt.before, tt.op(tt.small), tt.check); res.Code != OK {
					t.Fatalf("%s of %d: %v (%s), want ok", tt.name, tt.small, res.Code, res.Detail)
				}
				none, some := run(t, sb, tt.job, 1_000_000, tt.op(0)), run(t, sb, tt.job, 1_000_000, tt.op(tt.small))
				if got := int64(some.FuelUsed) - int64(none.FuelUsed); got != tt.fuel {
					t.Errorf("%s of %d cost %d fuel more than of 0, want %d", tt.name, tt.small, got, tt.fuel)
				}
				start := time.Now()
				res := run(t, sb, tt.job, 2000, repeat(tt.repeat, tt.op(tt.huge)))
				if res.Code != OutOfFuel || res.FuelUsed != 2000 {
					t.Fatalf("%d × %s of %d on 2,000 fuel: %v (%s) after %v, fuel used %d; want out of fuel", tt.repeat, tt.name, tt.huge, res.Code, res.Detail, time.Since(start), res.FuelUsed)
				}
			}
		})
	}
}

// BenchmarkBulkFuel measures the time per fuel of the bulk instructions,
// mostly at 16 MiB or a million table elements, against a loop that stores
// 16 MiB 8 bytes at a time: the ns/fuel figures should be of a size.
func BenchmarkBulkFuel(b *testing.B) {
	const size, elems = 16 << 20, 1 << 20
	store := cat(i32(0), []byte{opLocalSet, 1, opLoop, blockEmpty, opLocalGet, 1, opI64Const, 0, 0x37, 3, 0, opLocalGet, 1}, // i64.store
		i32(8), []byte{0x6a, opLocalTee, 1}, i32(size), []byte{0x49, 0x0d, 0, opEnd})
	mem, table := bulkJob{memPages: size >> 16}, bulkJob{memPages: 1, tableLen: elems}
	benchmarks := []struct {
		name string
		job  bulkJob
		code []byte
	}{
		{"store loop", mem, repeat(4, store)},
		{"memory.fill", mem, repeat(64, cat(i32(0), i32(7), i32(size), []byte{0xfc, 11, 0}))},
		{"memory.copy", mem, repeat(128, cat(i32(0), i32(size/2), i32(size/2), []byte{0xfc, 10, 0, 0}))},
		{"memory.init", bulkJob{memPages: size >> 16, data: make([]byte, 1<<20)}, repeat(1024, cat(i32(0), i32(0), i32(1<<20), []byte{0xfc, 8, 0, 0}))},
		{"table.fill", table, repeat(64, cat(i32(0), []byte{0xd2, 0}, i32(elems), []byte{0xfc, 17, 0}))},
		{"table.copy", table, repeat(128, cat(i32(0), i32(elems/2), i32(elems/2), []byte{0xfc, 14, 0, 0}))},
		{"table.init", bulkJob{memPages: 1, tableLen: 1 << 16, elems: 1 << 16}, repeat(1024, cat(i32(0), i32(0), i32(1<<16), []byte{0xfc, 12, 0, 0}))},
		{"table.grow", bulkJob{memPages: 1, tableLen: 1}, repeat(16, cat([]byte{0xd0, 0x70}, i32(elems), []byte{0xfc, 15, 0, 0x1a}))},
		{"memory.grow by 1", bulkJob{memPages: 1}, repeat(1023, cat(i32(1), []byte{opMemoryGrow, 0, 0x1a}))},
		{"memory.grow by 1023", bulkJob{memPages: 1}, cat(i32(1023), []byte{opMemoryGrow, 0, 0x1a})},
	}
	sb := New()
	defer sb.Close(context.Background())
	lim := Limits{Fuel: MaxFuel, MemoryMiB: 64, MaxOutput: 16}
	for _, bb := range benchmarks {
		b.Run(bb.name, func(b *testing.B) {
			j := bb.job
			j.locals, j.code = []byte{1, 2, typeI32}, cat(bb.code, []byte{opEnd})
			wasm := j.wasm()
			var fuel uint64
			for b.Loop() {
				res, err := sb.Run(context.Background(), wasm, nil, lim)
				if err != nil || res.Code != OK {
					b.Fatalf("%+v, %v", res, err)
				}
				fuel += res.FuelUsed
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(fuel), "ns/fuel")
		})
	}
}

// tableModule is a module with the given tables (each a limits encoding:
// flags, min, max) after any table imports, and _start with code (its
// locals are a loop counter and a result, both i32).
func tableModule(imports [][]byte, tables [][]byte, code []byte) []byte {
	sec := func(id byte, b []byte) []byte { return append(appendU32([]byte{id}, uint32(len(b))), b...) }
	m := []byte("\x00asm\x01\x00\x00\x00")
	m = append(m, sec(1, []byte{1, 0x60, 0, 0})...)
	if len(imports) > 0 {
		imp := appendU32(nil, uint32(len(imports)))
		for _, lim := range imports {
			imp = appendName(appendName(imp, "env"), "table")
			imp = append(append(imp, 0x01, 0x70), lim...)
		}
		m = append(m, sec(2, imp)...)
	}
	m = append(m, sec(3, []byte{1, 0})...)
	if len(tables) > 0 {
		tab := appendU32(nil, uint32(len(tables)))
		for _, lim := range tables {
			tab = append(append(tab, 0x70), lim...)
		}
		m = append(m, sec(4, tab)...)
	}
	m = append(m, sec(5, []byte{1, 0, 1})...)
	exp := appendName([]byte{1}, "_start")
	m = append(m, sec(7, append(exp, 0, 0))...)
	body := cat([]byte{1, 2, typeI32}, code, []byte{opEnd})
	return append(m, sec(10, append(appendU32([]byte{1}, uint32(len(body))), body...))...)
}

// limits encodes table limits: min, and max unless it is negative.
func limits(min, max int64) []byte {
	if max < 0 {
		return appendU32([]byte{0}, uint32(min))
	}
	return appendU32(appendU32([]byte{1}, uint32(min)), uint32(max))
}

// TestTablesAreCapped: a table holds at most MaxTableEntries entries,
// however it is declared. One with a larger or no maximum gets the cap as
// its maximum, so table.grow past it fails with -1 as WebAssembly says,
// on both engines, and growing up to it works; one that starts larger,
// an imported one that could be larger, or more than MaxTables tables,
// make the module invalid, with a reason that says what to do.
func TestTablesAreCapped(t *testing.T) {
	const ne = 0x47
	trapIf := func(cond ...[]byte) []byte { return cat(cat(cond...), []byte{opIf, blockEmpty, opUnreachable, opEnd}) }
	grow := func(n int64) []byte { return cat([]byte{0xd0, 0x70}, i32(n), []byte{0xfc, 15, 0}) }
	// Growing by the cap must fail (the table has one entry already);
	// growing to the cap must succeed, and the size be the cap.
	growCode := cat(
		trapIf(grow(MaxTableEntries), i32(-1), []byte{ne}),
		trapIf(grow(1<<32-1), i32(-1), []byte{ne}),
		trapIf(grow(MaxTableEntries-1), i32(1), []byte{ne}),
		trapIf([]byte{0xfc, 16, 0}, i32(MaxTableEntries), []byte{ne}),
		trapIf(grow(1), i32(-1), []byte{ne}),
	)
	l := Limits{Fuel: 1 << 40, MemoryMiB: 1, MaxOutput: 16} // a grow pays by its length, failed or not
	comp, interp := New(), NewInterpreter()
	defer comp.Close(context.Background())
	defer interp.Close(context.Background())
	for _, tt := range []struct {
		name string
		wasm []byte
	}{
		{"no maximum", tableModule(nil, [][]byte{limits(1, -1)}, growCode)},
		{"a maximum over the cap", tableModule(nil, [][]byte{limits(1, 1<<32-1)}, growCode)},
		{"a maximum at the cap", tableModule(nil, [][]byte{limits(1, MaxTableEntries)}, growCode)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, sb := range []*Sandbox{comp, interp} {
				res, err := sb.Run(context.Background(), tt.wasm, nil, l)
				if err != nil {
					t.Fatal(err)
				}
				if res.Code != OK {
					t.Fatalf("got %v (%s), want ok: table.grow past the cap must return -1", res.Code, res.Detail)
				}
			}
		})
	}
	for _, tt := range []struct {
		name string
		wasm []byte
	}{
		{"starts over the cap", tableModule(nil, [][]byte{limits(MaxTableEntries+1, -1)}, nil)},
		{"starts over the cap with a maximum", tableModule(nil, [][]byte{limits(1<<27, 1<<27)}, nil)},
		{"imports one that starts over the cap", tableModule([][]byte{limits(1<<27, -1)}, nil, nil)},
		{"imports one with no maximum", tableModule([][]byte{limits(1, -1)}, nil, nil)},
		{"imports one with a maximum over the cap", tableModule([][]byte{limits(1, MaxTableEntries+1)}, nil, nil)},
		{"has too many tables", tableModule(nil, [][]byte{limits(1, -1), limits(1, -1), limits(1, -1), limits(1, -1), limits(1, -1)}, nil)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, err := comp.Run(context.Background(), tt.wasm, nil, l)
			if err != nil {
				t.Fatal(err)
			}
			if res.Code != Invalid || !strings.Contains(res.Detail, "table") {
				t.Fatalf("got %v (%s), want invalid, for a table", res.Code, res.Detail)
			}
		})
	}
}

// TestMeterIsOutOfReach: code that names the globals or the local the
// rewrite adds (indices past its own) is invalid, not a way to refill its
// fuel.
func TestMeterIsOutOfReach(t *testing.T) {
	spin := []byte{opLoop, blockEmpty, 0x0c, 0, opEnd}
	// Enough to show, not so much that a run before the fix went on for
	// ever (Close waits for it).
	refuel := append([]byte{opI64Const}, appendS64(nil, 1<<30)...)
	l := Limits{Fuel: 1_000_000, MemoryMiB: 1, MaxOutput: 16}
	sb := New()
	defer sb.Close(context.Background())
	for _, tt := range []struct {
		name string
		code []byte
	}{
		{"global.set of the fuel", cat(refuel, []byte{opGlobalSet, 0}, spin, []byte{opEnd})},
		{"global.get of the fuel", cat([]byte{opGlobalGet, 0, 0x1a}, []byte{opEnd})},
		{"local.set of the fuel", cat(refuel, []byte{opLocalSet, 0}, spin, []byte{opEnd})},
		{"local.tee of the fuel", cat(refuel, []byte{opLocalTee, 0, 0x1a}, spin, []byte{opEnd})},
		{"call of a function it does not have", cat([]byte{0x10, 1}, []byte{opEnd})},
		{"ref.func of a function it does not have", cat([]byte{0xd2, 1, 0x1a}, []byte{opEnd})},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, err := sb.Run(context.Background(), module(1, tt.code), nil, l)
			if err != nil {
				t.Fatal(err)
			}
			if res.Code != Invalid {
				t.Fatalf("got %v (%s) after %d fuel, want invalid", res.Code, res.Detail, res.FuelUsed)
			}
		})
	}
}

// TestGCDuringALongJob: a garbage collection started while a job runs
// completes in a few ms, not when the job ends. The Go runtime cannot
// stop wasm code, so the metered code steps out to Go every yieldFuel
// fuel, where it can; without that, every goroutine of the node (HTTP,
// the chain client) waited for the job.
func TestGCDuringALongJob(t *testing.T) {
	const bound = 200 * time.Millisecond
	sb := New()
	defer sb.Close(context.Background())
	spin := module(1, []byte{opLoop, blockEmpty, 0x0c, 0, opEnd, opEnd})
	l := Limits{Fuel: 1 << 20, MemoryMiB: 1, MaxOutput: 16}
	// Find fuel for a run of about 1.5 s.
	for {
		start := time.Now()
		if _, err := sb.Run(context.Background(), spin, nil, l); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > 100*time.Millisecond {
			l.Fuel = uint64(float64(l.Fuel) * 1.5 / took.Seconds())
			break
		}
		l.Fuel *= 4
	}
	type gcTime struct{ took, after time.Duration }
	gcs := make(chan gcTime, 1)
	start := time.Now()
	go func() {
		time.Sleep(200 * time.Millisecond)
		t0 := time.Now()
		goruntime.GC()
		gcs <- gcTime{time.Since(t0), time.Since(start)}
	}()
	res, err := sb.Run(context.Background(), spin, nil, l)
	ran := time.Since(start)
	if err != nil || res.Code != OutOfFuel || res.FuelUsed != l.Fuel {
		t.Fatalf("%+v, %v; want out of all %d fuel", res, err, l.Fuel)
	}
	gc := <-gcs
	t.Logf("job of %d fuel ran %v; GC took %v, ended at %v", l.Fuel, ran, gc.took, gc.after)
	if gc.took > bound {
		t.Fatalf("runtime.GC took %v during a job of %v, want under %v", gc.took, ran, bound)
	}
}
