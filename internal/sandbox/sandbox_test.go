package sandbox

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
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
func TestHostTimeoutStopsARun(t *testing.T) {
	sb := New()
	defer sb.Close(context.Background())
	l := Limits{Fuel: 5_000_000_000, MemoryMiB: 16, MaxOutput: 1024, Timeout: 100 * time.Millisecond}
	start := time.Now()
	res, err := sb.Run(context.Background(), module(1, []byte{opLoop, blockEmpty, 0x0c, 0, opEnd, opEnd}), nil, l)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("got %v, %v; want ErrTimeout", res, err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("the timeout took %v to stop the run", took)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	if _, err := sb.Run(ctx, module(1, []byte{opLoop, blockEmpty, 0x0c, 0, opEnd, opEnd}), nil, Limits{Fuel: 5_000_000_000, MemoryMiB: 16, MaxOutput: 1024}); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled run: %v, want context.Canceled", err)
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
