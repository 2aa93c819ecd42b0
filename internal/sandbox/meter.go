package sandbox

import (
	"errors"
	"fmt"
)

// Metering. wazero has no fuel, and a wall-clock limit is not
// deterministic (a slow machine would stop where a fast one finishes), so
// the sandbox rewrites the module before compiling it: it adds a mutable
// i64 global, the fuel, and charges it at the top of every metered region
// (see meterFunc) with the region's instruction count, plus one for the
// charge itself. When the fuel goes negative the code executes
// `unreachable` (by way of the refill function: see Yielding). Every run of a module on the same input burns the same
// fuel, whatever the machine; fuel is close to the number of WebAssembly
// instructions executed; and a module cannot run for ever: all unbounded
// execution passes through a loop or a call, each of which is charged.
//
// A bulk memory or table instruction (memory.fill, table.copy...) is one
// instruction but does work in proportion to its length, an operand known
// only at run time, so the rewrite charges it again just before it runs,
// by that length (see bulkBytes): one fuel per bytesPerFuel bytes it
// moves, which keeps the fuel per second of these near that of ordinary
// code. Without this, 2,000 fuel of memory.fill ran for 1.45 s.
//
// The rewrite also watches memory.grow: a failed grow sets a second
// global, so a module that dies after running out of memory is reported
// as out of memory rather than as a plain trap.

// Exported names of the globals the rewrite adds.
const (
	fuelExport = "agora_fuel"
	oomExport  = "agora_oom"
)

// ErrInvalid is returned for bytes that are not a WebAssembly module the
// sandbox can run.
var ErrInvalid = errors.New("sandbox: not a valid WebAssembly module")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

type section struct {
	id   byte
	body []byte
}

// reader decodes the binary format's primitives.
type reader struct {
	b   []byte
	pos int
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = invalid(format+" at byte %d", append(args, r.pos)...)
	}
}

func (r *reader) byte() byte {
	if r.err != nil || r.pos >= len(r.b) {
		r.fail("unexpected end")
		return 0
	}
	c := r.b[r.pos]
	r.pos++
	return c
}

// leb skips or reads an unsigned LEB128 of at most maxBits bits.
func (r *reader) u(maxBits int) uint64 {
	var v uint64
	for shift := 0; ; shift += 7 {
		if shift >= maxBits+7 {
			r.fail("LEB128 too long")
			return 0
		}
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= uint64(c&0x7f) << shift
		if c&0x80 == 0 {
			return v
		}
	}
}

func (r *reader) u32() uint32      { return uint32(r.u(32)) }
func (r *reader) skipLEB(bits int) { r.u(bits) }

func (r *reader) bytes(n int) []byte {
	if r.err != nil || n < 0 || r.pos+n > len(r.b) {
		r.fail("unexpected end")
		return nil
	}
	out := r.b[r.pos : r.pos+n]
	r.pos += n
	return out
}

func appendU32(b []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func appendS64(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// Opcodes the rewrite emits or looks for.
const (
	opUnreachable = 0x00
	opLoop        = 0x03
	opIf          = 0x04
	opElse        = 0x05
	opEnd         = 0x0b
	opCall        = 0x10
	opDrop        = 0x1a
	opSelect      = 0x1b
	opLocalGet    = 0x20
	opLocalSet    = 0x21
	opLocalTee    = 0x22
	opGlobalGet   = 0x23
	opGlobalSet   = 0x24
	opMemoryGrow  = 0x40
	opI32Const    = 0x41
	opI64Const    = 0x42
	opRefFunc     = 0xd2
	opI32Eq       = 0x46
	opI64LtS      = 0x53
	opI64Add      = 0x7c
	opI64Sub      = 0x7d
	opI64Mul      = 0x7e
	opI64DivU     = 0x80
	opI64ExtendU  = 0xad // i64.extend_i32_u
	opMisc        = 0xfc // prefix of the bulk memory and table instructions
	blockEmpty    = 0x40
	typeI32       = 0x7f
	typeI64       = 0x7e
)

// Tables. A table entry costs the host 8 bytes outside the job's memory
// cap, and wazero lets a table grow to 2^32 entries: 32 GiB for 2^32*64
// fuel, which max_fuel affords. The rewrite caps every table at
// MaxTableEntries entries: one declared larger, or without a maximum (Go,
// for one, declares none), gets the cap as its maximum, so table.grow
// past it returns -1 as WebAssembly specifies; a table that starts larger
// makes the module invalid, and so does an imported table that could be
// larger (the sandbox provides none anyway) or more than MaxTables
// tables. The host memory tables can take is then at most
// MaxTables*MaxTableEntries*8 bytes, 32 MiB.
const (
	// MaxTableEntries is the most entries a table may have. Go's table
	// holds every function of the program plus some 4,000 (6,172 for
	// examples/jobs/digits), so a cap of 65,536 would refuse the largest
	// Go programs; 2^20 costs the host 8 MiB a table.
	MaxTableEntries = 1 << 20
	// MaxTables is the most tables a module may have, imported or not
	// (Go, Rust and C use one).
	MaxTables = 4
)

// Yielding. Go stops the world to collect garbage, and cannot stop a
// goroutine that runs wasm code compiled by wazero: without help, a
// collection that starts while a job runs stops every goroutine of the
// process until the job returns to Go, minutes maybe. So the fuel comes in
// slices of yieldFuel: the fuel global (and the local that caches it)
// holds what is left of the current slice, and a second global, the bank,
// holds the rest. When a charge takes the slice below zero, the code calls
// the refill function the rewrite adds, which traps if the bank cannot
// cover the debt (the job is out of fuel: exactly where it would be out of
// fuel without slices) and otherwise takes a new slice from the bank and
// steps out to Go with memory.grow 0: wazero runs memory.grow in Go, where
// the scheduler can stop the goroutine. Where the code yields depends on
// the fuel alone, and yielding changes neither results nor fuel; the
// charges on the hot path are what they were. (A host function would do
// as well, but importing one renumbers every function.)
//
// yieldFuel is about 1 ms of ordinary code (0.1–0.15 ns a fuel compiled),
// so a collection waits about that long; a single bulk instruction, which
// wazero runs without stepping out, is the exception: a memory.fill of the
// whole 4 GiB a job may have runs about 0.3 s.
const yieldFuel = 1 << 23

// Exported name of the global that holds the fuel beyond the current
// slice.
const bankExport = "agora_fuel_bank"

// instrument returns the metered module. Fuel starts at 0; the runner sets
// it through the exported globals before calling _start (see setFuel).
func instrument(wasm []byte) ([]byte, error) {
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
		return nil, invalid("no \\0asm magic")
	}
	if string(wasm[4:8]) != "\x01\x00\x00\x00" {
		return nil, invalid("binary version %x, want 1", wasm[4:8])
	}
	r := &reader{b: wasm, pos: 8}
	var secs []section
	for r.pos < len(r.b) && r.err == nil {
		id := r.byte()
		n := r.u32()
		body := r.bytes(int(n))
		secs = append(secs, section{id, body})
	}
	if r.err != nil {
		return nil, r.err
	}
	var imp imports
	var definedGlobals, definedTables, definedMemories, dataSegments uint32
	var typeParams []uint32 // by type index
	var funcTypes []uint32  // type index of each defined function
	hasCode := false
	for _, s := range secs {
		switch s.id {
		case 1:
			p, err := paramCounts(s.body)
			if err != nil {
				return nil, err
			}
			typeParams = p
		case 3:
			rr := &reader{b: s.body}
			n := rr.u32()
			for i := uint32(0); i < n && rr.err == nil; i++ {
				funcTypes = append(funcTypes, rr.u32())
			}
			if rr.err != nil {
				return nil, rr.err
			}
		case 2:
			var err error
			if imp, err = readImports(s.body); err != nil {
				return nil, err
			}
		case 4:
			rr := &reader{b: s.body}
			definedTables = rr.u32()
			if rr.err != nil {
				return nil, rr.err
			}
		case 5:
			n, err := checkMemories(s.body)
			if err != nil {
				return nil, err
			}
			definedMemories = n
		case 6:
			rr := &reader{b: s.body}
			definedGlobals = rr.u32()
			if rr.err != nil {
				return nil, rr.err
			}
		case 10:
			hasCode = true
		case 11:
			rr := &reader{b: s.body}
			dataSegments = rr.u32()
			if rr.err != nil {
				return nil, rr.err
			}
		}
	}
	if !hasCode {
		return nil, invalid("no code section")
	}
	if n := uint64(imp.tables) + uint64(definedTables); n > MaxTables {
		return nil, invalid("the module has %d tables, more than the %d a job may have; use fewer", n, MaxTables)
	}
	params := make([]uint32, len(funcTypes))
	for i, t := range funcTypes {
		if int(t) >= len(typeParams) {
			return nil, invalid("function %d has type %d of %d", i, t, len(typeParams))
		}
		params[i] = typeParams[t]
	}
	fuel := imp.globals + definedGlobals
	funcs := uint64(imp.funcs) + uint64(len(funcTypes))
	if fuel > 1<<31 || funcs > 1<<31 {
		return nil, invalid("too many globals or functions")
	}
	g := globals{fuel: fuel, oom: fuel + 1, tmp: fuel + 2, count: fuel + 3, bank: fuel + 4, refill: uint32(funcs)}
	if g.noMemory = imp.memories+definedMemories == 0; g.noMemory && dataSegments > 0 {
		return nil, invalid("data segments in a module without memory")
	}

	newGlobals := []byte{typeI64, 1, opI64Const, 0, opEnd}
	for range 3 {
		newGlobals = append(newGlobals, typeI32, 1, opI32Const, 0, opEnd)
	}
	newGlobals = append(newGlobals, typeI64, 1, opI64Const, 0, opEnd)
	newExports := appendName(nil, fuelExport)
	newExports = append(newExports, 0x03)
	newExports = appendU32(newExports, g.fuel)
	newExports = appendName(newExports, oomExport)
	newExports = append(newExports, 0x03)
	newExports = appendU32(newExports, g.oom)
	newExports = appendName(newExports, bankExport)
	newExports = append(newExports, 0x03)
	newExports = appendU32(newExports, g.bank)
	// The refill function's type, () -> (), goes after the module's.
	refillType := appendU32(nil, uint32(len(typeParams)))

	// Sections the rewrite adds to go where the order of sections puts
	// them, empty if the module has none.
	for _, id := range []byte{1, 3, 5, 6, 7} {
		secs = ensure(secs, id)
	}
	var out []section
	for _, s := range secs {
		body, err := s.body, error(nil)
		switch s.id {
		case 1:
			body, err = extendVec(s.body, 1, []byte{0x60, 0, 0})
		case 2:
			body, err = capImportedTables(s.body)
		case 3:
			body, err = extendVec(s.body, 1, refillType)
		case 4:
			body, err = capTables(s.body)
		case 5:
			// refill's memory.grow needs a memory: a module without
			// one gets one of no pages.
			if g.noMemory {
				body, err = extendVec(s.body, 1, []byte{0x01, 0, 0})
			}
		case 6:
			body, err = extendVec(s.body, 5, newGlobals)
		case 7:
			body, err = extendVec(s.body, 3, newExports)
		case 10:
			if body, err = meterCode(s.body, g, params); err == nil {
				body, err = extendVec(body, 1, g.refillBody())
			}
		}
		if err != nil {
			return nil, err
		}
		out = append(out, section{s.id, body})
	}
	res := append([]byte(nil), wasm[:8]...)
	for _, s := range out {
		res = append(res, s.id)
		res = appendU32(res, uint32(len(s.body)))
		res = append(res, s.body...)
	}
	return res, nil
}

// ensure adds an empty section id (a vector of nothing) where the order
// of sections puts it, if secs has none.
func ensure(secs []section, id byte) []section {
	for _, s := range secs {
		if s.id == id {
			return secs
		}
	}
	i := 0
	for i < len(secs) && !after(secs[i].id, id) {
		i++
	}
	return append(secs[:i:i], append([]section{{id, []byte{0}}}, secs[i:]...)...)
}

// after reports whether a section with id comes after the section want in
// a module's order (custom sections, id 0, come anywhere).
func after(id, want byte) bool {
	order := func(id byte) int {
		switch id {
		case 12: // data count sits between element and code
			return 95
		case 13: // tags sit between memory and global
			return 55
		}
		return int(id) * 10
	}
	return id != 0 && order(id) > order(want)
}

func appendName(b []byte, s string) []byte { return append(appendU32(b, uint32(len(s))), s...) }

// extendVec adds n encoded entries to a section that is one vector.
func extendVec(body []byte, n uint32, entries []byte) ([]byte, error) {
	r := &reader{b: body}
	count := r.u32()
	if r.err != nil {
		return nil, r.err
	}
	out := appendU32(nil, count+n)
	out = append(out, body[r.pos:]...)
	return append(out, entries...), nil
}

func (r *reader) limits() (memory64 bool) {
	flags := r.byte()
	if flags&^0x07 != 0 {
		r.fail("limits flags %#x", flags)
	}
	r.skipLEB(64)
	if flags&1 != 0 {
		r.skipLEB(64)
	}
	return flags&0x04 != 0
}

// imports counts a module's imports by kind.
type imports struct{ funcs, tables, memories, globals uint32 }

func readImports(body []byte) (imports, error) {
	r := &reader{b: body}
	n := r.u32()
	var imp imports
	for i := uint32(0); i < n && r.err == nil; i++ {
		r.bytes(int(r.u32())) // module
		r.bytes(int(r.u32())) // name
		switch kind := r.byte(); kind {
		case 0x00:
			r.u32()
			imp.funcs++
		case 0x01:
			r.byte()
			r.limits()
			imp.tables++
		case 0x02:
			if r.limits() {
				r.fail("64-bit memories are not supported")
			}
			imp.memories++
		case 0x03:
			r.byte()
			r.byte()
			imp.globals++
		default:
			r.fail("import kind %#x", kind)
		}
	}
	return imp, r.err
}

// tableLimits reads a table's limits: its minimum, and its maximum if
// it has one (else max is -1).
func (r *reader) tableLimits() (min, max int64) {
	switch flags := r.byte(); flags {
	case 0x00:
		return int64(r.u32()), -1
	case 0x01:
		return int64(r.u32()), int64(r.u32())
	case 0x04, 0x05:
		r.fail("64-bit tables are not supported")
	default:
		r.fail("table limits flags %#x", flags)
	}
	return 0, 0
}

// capTables rewrites the table section so that no table can hold more
// than MaxTableEntries entries.
func capTables(body []byte) ([]byte, error) {
	r := &reader{b: body}
	n := r.u32()
	out := appendU32(nil, n)
	for i := uint32(0); i < n && r.err == nil; i++ {
		ref := r.byte()
		if ref != 0x70 && ref != 0x6f {
			r.fail("table %d of element type %#x", i, ref)
			break
		}
		min, max := r.tableLimits()
		if r.err != nil {
			break
		}
		if min > MaxTableEntries {
			return nil, invalid("table %d starts with %d entries, more than the %d a job may have; make it smaller (for C or Rust, fewer functions taken by address)", i, min, MaxTableEntries)
		}
		if max < 0 || max > MaxTableEntries {
			max = MaxTableEntries
		}
		out = append(out, ref, 0x01)
		out = appendU32(out, uint32(min))
		out = appendU32(out, uint32(max))
	}
	if r.err == nil && r.pos != len(body) {
		r.fail("trailing bytes in the table section")
	}
	return out, r.err
}

// capImportedTables refuses imported tables that could be larger than
// MaxTableEntries: the sandbox cannot cap a table it does not make.
func capImportedTables(body []byte) ([]byte, error) {
	r := &reader{b: body}
	n := r.u32()
	for i := uint32(0); i < n && r.err == nil; i++ {
		module := string(r.bytes(int(r.u32())))
		name := string(r.bytes(int(r.u32())))
		switch kind := r.byte(); kind {
		case 0x00:
			r.u32()
		case 0x01:
			r.byte()
			min, max := r.tableLimits()
			if r.err == nil && (min > MaxTableEntries || max < 0 || max > MaxTableEntries) {
				return nil, invalid("the imported table %s.%s may hold more than the %d entries a job may have (it must declare a maximum of at most that); define the table in the module instead (jobs may import only WASI functions)", module, name, MaxTableEntries)
			}
		case 0x02:
			r.limits()
		case 0x03:
			r.byte()
			r.byte()
		default:
			r.fail("import kind %#x", kind)
		}
	}
	return body, r.err
}

// paramCounts reads the type section: each function type's parameter count.
func paramCounts(body []byte) ([]uint32, error) {
	r := &reader{b: body}
	n := r.u32()
	var out []uint32
	for i := uint32(0); i < n && r.err == nil; i++ {
		if form := r.byte(); form != 0x60 {
			r.fail("type form %#x", form)
			break
		}
		np := r.u32()
		r.bytes(int(np))
		r.bytes(int(r.u32()))
		out = append(out, np)
	}
	return out, r.err
}

// checkMemories reads the memory section: how many memories it defines.
func checkMemories(body []byte) (uint32, error) {
	r := &reader{b: body}
	n := r.u32()
	for i := uint32(0); i < n && r.err == nil; i++ {
		if r.limits() {
			r.fail("64-bit memories are not supported")
		}
	}
	return n, r.err
}

// globals are the indices of the globals the rewrite adds: the fuel (of
// the current slice), the out-of-memory flag, two i32 scratch globals (tmp
// for memory.grow's result, count for a bulk instruction's length) and the
// bank (the fuel beyond the slice); and the index of the refill function
// it adds, which is also the number of the module's own functions, as the
// fuel global is the number of its globals.
// noMemory is set when the module has no memory of its own (the rewrite
// adds one for refill), and so may not use one.
type globals struct {
	fuel, oom, tmp, count, bank, refill uint32
	noMemory                            bool
}

// charge is the code that takes cost from the function's fuel local and,
// below zero, stores it and calls refill, which traps if the job is out
// of fuel and otherwise sets the fuel global to a new slice.
func (g globals) charge(b []byte, local uint32, cost int64) []byte {
	return g.chargeBy(b, local, appendS64([]byte{opI64Const}, cost))
}

// chargeBy is charge with a cost that code computes: cost pushes an i64.
func (g globals) chargeBy(b []byte, local uint32, cost []byte) []byte {
	b = append(b, opLocalGet)
	b = appendU32(b, local)
	b = append(b, cost...)
	b = append(b, opI64Sub, opLocalTee)
	b = appendU32(b, local)
	b = append(b, opI64Const, 0, opI64LtS, opIf, blockEmpty)
	b = g.store(b, local)
	b = append(b, opCall)
	b = appendU32(b, g.refill)
	b = g.load(b, local)
	return append(b, opEnd)
}

// refillBody is the refill function's body (see Yielding): with total =
// fuel + bank, below zero it sets the fuel to total and traps; otherwise
// fuel = min(total, yieldFuel), bank = total - fuel, and memory.grow 0
// steps out to Go.
func (g globals) refillBody() []byte {
	const total = 0 // its one local
	b := []byte{1, 1, typeI64, opGlobalGet}
	b = appendU32(b, g.fuel)
	b = append(b, opGlobalGet)
	b = appendU32(b, g.bank)
	b = append(b, opI64Add, opLocalTee, total, opI64Const, 0, opI64LtS, opIf, blockEmpty, opLocalGet, total, opGlobalSet)
	b = appendU32(b, g.fuel)
	b = append(b, opI64Const, 0, opGlobalSet)
	b = appendU32(b, g.bank)
	b = append(b, opUnreachable, opEnd)
	slice := appendS64([]byte{opI64Const}, yieldFuel)
	b = append(b, opLocalGet, total)
	b = append(b, slice...)
	b = append(b, opLocalGet, total)
	b = append(b, slice...)
	b = append(b, opI64LtS, opSelect, opGlobalSet)
	b = appendU32(b, g.fuel)
	b = append(b, opLocalGet, total, opGlobalGet)
	b = appendU32(b, g.fuel)
	b = append(b, opI64Sub, opGlobalSet)
	b = appendU32(b, g.bank)
	b = append(b, opI32Const, 0, opMemoryGrow, 0, opDrop, opEnd)
	return append(appendU32(nil, uint32(len(b))), b...)
}

// store writes the fuel local back to the global.
func (g globals) store(b []byte, local uint32) []byte {
	b = append(b, opLocalGet)
	b = appendU32(b, local)
	b = append(b, opGlobalSet)
	return appendU32(b, g.fuel)
}

// load reads the global into the fuel local.
func (g globals) load(b []byte, local uint32) []byte {
	b = append(b, opGlobalGet)
	b = appendU32(b, g.fuel)
	b = append(b, opLocalSet)
	return appendU32(b, local)
}

// bytesPerFuel is how many bytes a bulk instruction moves for one fuel.
// Out of cache, wazero's compiler moves about 15 bytes a ns (an 8-byte
// table element in 0.36–0.56 ns), ten times that in cache, and ordinary
// code runs at 0.1–0.15 ns a fuel: at two bytes a fuel, BenchmarkBulkFuel
// finds the bulk instructions at 0.45–1.35 times the ns per fuel of a loop
// that stores 8 bytes at a time (which pays 1.5 fuel a byte).
const bytesPerFuel = 2

// bulkBytes is how many bytes a bulk instruction moves per unit of its
// length, the i32 on top of the stack when it runs, or 0 if code (one
// instruction) is not one. A table element is 8 bytes in wazero.
func bulkBytes(code []byte) int64 {
	if code[0] != opMisc {
		return 0
	}
	switch (&reader{b: code[1:]}).u32() {
	case 8, 10, 11: // memory.init, memory.copy, memory.fill: bytes
		return 1
	case 12, 14, 17: // table.init, table.copy, table.fill: elements
		return 8
	case 15: // table.grow: its allocation and copying made it 16 times slower
		return 8 * 16
	}
	return 0
}

// saveCount copies the i32 on top of the stack to the count global.
func (g globals) saveCount(b []byte) []byte {
	b = append(b, opGlobalSet)
	b = appendU32(b, g.count)
	b = append(b, opGlobalGet)
	return appendU32(b, g.count)
}

// countCost pushes what count units of the given bytes cost, as an i64:
// 1 + count*bytes/bytesPerFuel.
func (g globals) countCost(bytes int64) []byte {
	b := append([]byte{opGlobalGet}, appendU32(nil, g.count)...)
	b = append(b, opI64ExtendU, opI64Const)
	b = appendS64(b, bytes)
	b = append(b, opI64Mul, opI64Const)
	b = appendS64(b, bytesPerFuel)
	return append(b, opI64DivU, opI64Const, 1, opI64Add)
}

// watchGrow follows memory.grow, whose page count is in the count global:
// the result stays on the stack; a -1 sets the oom global, and a success
// is charged for the pages added. The charge comes after the grow so that
// a job asking for more than its cap is reported out of memory, not out
// of fuel; the work it lets through is bounded, as memory never shrinks.
func (g globals) watchGrow(b []byte, local uint32) []byte {
	b = append(b, opGlobalSet)
	b = appendU32(b, g.tmp)
	b = append(b, opGlobalGet)
	b = appendU32(b, g.tmp)
	b = append(b, opGlobalGet)
	b = appendU32(b, g.tmp)
	b = append(b, opI32Const, 0x7f, opI32Eq, opIf, blockEmpty, opI32Const, 1, opGlobalSet)
	b = appendU32(b, g.oom)
	b = append(b, opElse)
	b = g.chargeBy(b, local, g.countCost(65536))
	return append(b, opEnd)
}

func meterCode(body []byte, g globals, params []uint32) ([]byte, error) {
	r := &reader{b: body}
	n := r.u32()
	if int(n) != len(params) {
		return nil, invalid("%d function bodies for %d functions", n, len(params))
	}
	out := appendU32(nil, n)
	for i := uint32(0); i < n && r.err == nil; i++ {
		size := r.u32()
		fn := r.bytes(int(size))
		if r.err != nil {
			break
		}
		m, err := meterFunc(fn, g, params[i])
		if err != nil {
			return nil, fmt.Errorf("function %d: %w", i, err)
		}
		out = appendU32(out, uint32(len(m)))
		out = append(out, m...)
	}
	if r.err == nil && r.pos != len(body) {
		r.fail("trailing bytes in the code section")
	}
	return out, r.err
}

// instr is one decoded instruction: its bytes are body[start:end]; opens,
// if not 0, is the metered region that starts right after it; leaves is
// set when it may leave the function (return, or a branch to the
// function's own label), so the fuel must be stored first.
type instr struct {
	op         byte
	start, end int
	opens      int
	leaves     bool
}

// meterFunc charges fuel per metered region. Regions start where a
// branch can land: the function's entry, the top of each loop, and after
// each block's or if's end. A region's charge is its instruction count, so
// fuel follows the instructions executed, whatever shape the compiler gave
// the code (Go, for one, compiles a function into one big loop around a
// br_table). Inside a region, code a br_if, an if's other arm or a return
// skips is charged anyway: fuel may overcount, never undercount. (Also
// splitting at if, else and br_if would count exactly, but made Go-built
// modules about 40% slower again in bench/jobs.)
//
// The fuel lives in a local of each function, loaded from the global at
// entry and after each call, and stored back before each call, before the
// function can return, and before a trap for want of fuel: locals stay in
// registers where a global costs a load and a store per charge.
func meterFunc(fn []byte, g globals, params uint32) ([]byte, error) {
	r := &reader{b: fn}
	nlocals := r.u32()
	declStart := r.pos // the local declarations, after their count
	locals := uint64(params)
	for i := uint32(0); i < nlocals && r.err == nil; i++ {
		locals += uint64(r.u32())
		r.byte()
	}
	if r.err != nil {
		return nil, r.err
	}
	if locals >= 1<<31 {
		return nil, invalid("too many locals")
	}
	local := uint32(locals) // the fuel's
	codeStart := r.pos
	cost := []int64{0}
	cur, depth := 0, 1
	var ins []instr
	for depth > 0 {
		if r.pos >= len(fn) {
			return nil, invalid("function ends inside a block")
		}
		start := r.pos
		op := r.byte()
		it := instr{op: op, start: start}
		switch op { // branches: does one target the function's label?
		case 0x0c, 0x0d:
			it.leaves = r.u32() == uint32(depth-1)
		case 0x0e:
			n := r.u32()
			for i := uint32(0); i <= n && r.err == nil; i++ {
				it.leaves = r.u32() == uint32(depth-1) || it.leaves
			}
		case 0x0f:
			it.leaves = true
		default:
			// The module's code must not reach what the rewrite adds:
			// indices past its own locals, globals and functions were
			// invalid before the rewrite and would name the meter's.
			switch {
			case op >= opLocalGet && op <= opLocalTee:
				if i := r.u32(); i >= local && r.err == nil {
					return nil, invalid("local %d of %d", i, local)
				}
			case op == opGlobalGet || op == opGlobalSet:
				if i := r.u32(); i >= g.fuel && r.err == nil {
					return nil, invalid("global %d of %d", i, g.fuel)
				}
			case op == opCall || op == opRefFunc:
				if i := r.u32(); i >= g.refill && r.err == nil {
					return nil, invalid("function %d of %d", i, g.refill)
				}
			case g.noMemory && usesMemory(fn[start:]):
				return nil, invalid("a memory instruction in a module without memory")
			default:
				if err := skipImmediates(r, op); err != nil {
					return nil, err
				}
			}
		}
		if r.err != nil {
			return nil, r.err
		}
		it.end = r.pos
		cost[cur]++
		opens := false
		switch op {
		case 0x02, opIf:
			depth++
		case opLoop:
			depth++
			opens = true
		case opEnd:
			depth--
			opens = depth > 0
			it.leaves = depth == 0
		}
		if opens {
			cost = append(cost, 0)
			cur = len(cost) - 1
			it.opens = cur
		}
		ins = append(ins, it)
	}
	if r.pos != len(fn) {
		return nil, invalid("bytes after a function's end")
	}
	// The locals, plus one i64 for the fuel.
	out := appendU32(nil, nlocals+1)
	out = append(out, fn[declStart:codeStart]...)
	out = append(out, 1, typeI64)
	out = g.load(out, local)
	out = g.charge(out, local, cost[0]+1)
	for _, it := range ins {
		if it.leaves || it.op == 0x10 || it.op == 0x11 {
			out = g.store(out, local)
		}
		code := fn[it.start:it.end]
		if bytes := bulkBytes(code); bytes != 0 {
			out = g.saveCount(out)
			out = g.chargeBy(out, local, g.countCost(bytes))
		} else if it.op == opMemoryGrow {
			out = g.saveCount(out)
		}
		out = append(out, code...)
		switch {
		case it.op == 0x10 || it.op == 0x11:
			out = g.load(out, local)
		case it.op == opMemoryGrow:
			out = g.watchGrow(out, local)
		}
		if it.opens != 0 && (cost[it.opens] > 0 || it.op == opLoop) {
			out = g.charge(out, local, cost[it.opens]+1)
		}
	}
	return out, nil
}

// usesMemory reports whether the instruction at the start of code
// accesses memory 0.
func usesMemory(code []byte) bool {
	switch op := code[0]; {
	case op >= 0x28 && op <= opMemoryGrow:
		return true
	case op == opMisc:
		sub := (&reader{b: code[1:]}).u32()
		return sub >= 8 && sub <= 11
	}
	return false
}

// skipImmediates moves r past the immediates of op.
func skipImmediates(r *reader, op byte) error {
	switch {
	case op == 0x02 || op == opLoop || op == opIf:
		switch c := r.byte(); {
		case c == blockEmpty || c >= 0x6f && c <= 0x7f:
		default:
			r.pos--
			r.skipLEB(33)
		}
	case op == 0x0c || op == 0x0d || op == 0x10 || op >= 0x20 && op <= 0x26 || op == 0xd2:
		r.u32()
	case op == 0x0e:
		n := r.u32()
		for i := uint32(0); i <= n && r.err == nil; i++ {
			r.u32()
		}
	case op == 0x11:
		r.u32()
		r.u32()
	case op == 0x1c:
		r.bytes(int(r.u32()))
	case op >= 0x28 && op <= 0x3e:
		r.u32()
		r.skipLEB(64)
	case op == 0x3f || op == opMemoryGrow:
		if r.u32() != 0 {
			r.fail("memory index other than 0")
		}
	case op == opI32Const:
		r.skipLEB(32)
	case op == opI64Const:
		r.skipLEB(64)
	case op == 0x43:
		r.bytes(4)
	case op == 0x44:
		r.bytes(8)
	case op == 0xd0:
		r.byte()
	case op == 0x00 || op == 0x01 || op == 0x05 || op == opEnd || op == 0x0f || op == 0x1a || op == 0x1b || op >= 0x45 && op <= 0xc4 || op == 0xd1:
	case op == 0xfc:
		switch sub := r.u32(); {
		case sub <= 7:
		case sub == 8:
			r.u32()
			r.byte()
		case sub == 9 || sub == 11 || sub == 13 || sub >= 15 && sub <= 17:
			r.u32()
		case sub == 10 || sub == 12 || sub == 14:
			r.u32()
			r.u32()
		default:
			return invalid("unsupported instruction 0xfc %d", sub)
		}
	case op == 0xfd:
		return invalid("SIMD instructions are not supported")
	case op == 0xfe:
		return invalid("thread instructions are not supported")
	default:
		return invalid("unsupported opcode %#x", op)
	}
	return r.err
}
