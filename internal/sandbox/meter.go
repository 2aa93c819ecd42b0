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
// `unreachable`. Every run of a module on the same input burns the same
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
	opLocalGet    = 0x20
	opLocalSet    = 0x21
	opLocalTee    = 0x22
	opGlobalGet   = 0x23
	opGlobalSet   = 0x24
	opMemoryGrow  = 0x40
	opI32Const    = 0x41
	opI64Const    = 0x42
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

// instrument returns the metered module. Fuel starts at 0; the runner sets
// it through the exported global before calling _start.
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
	var importedGlobals, definedGlobals uint32
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
			g, err := countImportedGlobals(s.body)
			if err != nil {
				return nil, err
			}
			importedGlobals = g
		case 5:
			if err := checkMemories(s.body); err != nil {
				return nil, err
			}
		case 6:
			rr := &reader{b: s.body}
			definedGlobals = rr.u32()
			if rr.err != nil {
				return nil, rr.err
			}
		case 10:
			hasCode = true
		}
	}
	if !hasCode {
		return nil, invalid("no code section")
	}
	params := make([]uint32, len(funcTypes))
	for i, t := range funcTypes {
		if int(t) >= len(typeParams) {
			return nil, invalid("function %d has type %d of %d", i, t, len(typeParams))
		}
		params[i] = typeParams[t]
	}
	fuel := importedGlobals + definedGlobals
	g := globals{fuel: fuel, oom: fuel + 1, tmp: fuel + 2, count: fuel + 3}

	newGlobals := []byte{typeI64, 1, opI64Const, 0, opEnd}
	for range 3 {
		newGlobals = append(newGlobals, typeI32, 1, opI32Const, 0, opEnd)
	}
	newExports := appendName(nil, fuelExport)
	newExports = append(newExports, 0x03)
	newExports = appendU32(newExports, g.fuel)
	newExports = appendName(newExports, oomExport)
	newExports = append(newExports, 0x03)
	newExports = appendU32(newExports, g.oom)

	var out []section
	sawGlobal, sawExport := false, false
	for _, s := range secs {
		// A missing global or export section goes where the order of
		// sections puts it.
		if !sawGlobal && after(s.id, 6) {
			out = append(out, section{6, append(appendU32(nil, 4), newGlobals...)})
			sawGlobal = true
		}
		if !sawExport && after(s.id, 7) {
			out = append(out, section{7, append(appendU32(nil, 2), newExports...)})
			sawExport = true
		}
		switch s.id {
		case 6:
			body, err := extendVec(s.body, 4, newGlobals)
			if err != nil {
				return nil, err
			}
			out = append(out, section{6, body})
			sawGlobal = true
		case 7:
			body, err := extendVec(s.body, 2, newExports)
			if err != nil {
				return nil, err
			}
			out = append(out, section{7, body})
			sawExport = true
		case 10:
			body, err := meterCode(s.body, g, params)
			if err != nil {
				return nil, err
			}
			out = append(out, section{10, body})
		default:
			out = append(out, s)
		}
	}
	res := append([]byte(nil), wasm[:8]...)
	for _, s := range out {
		res = append(res, s.id)
		res = appendU32(res, uint32(len(s.body)))
		res = append(res, s.body...)
	}
	return res, nil
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

func countImportedGlobals(body []byte) (uint32, error) {
	r := &reader{b: body}
	n := r.u32()
	var globals uint32
	for i := uint32(0); i < n && r.err == nil; i++ {
		r.bytes(int(r.u32())) // module
		r.bytes(int(r.u32())) // name
		switch kind := r.byte(); kind {
		case 0x00:
			r.u32()
		case 0x01:
			r.byte()
			r.limits()
		case 0x02:
			if r.limits() {
				r.fail("64-bit memories are not supported")
			}
		case 0x03:
			r.byte()
			r.byte()
			globals++
		default:
			r.fail("import kind %#x", kind)
		}
	}
	return globals, r.err
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

func checkMemories(body []byte) error {
	r := &reader{b: body}
	n := r.u32()
	for i := uint32(0); i < n && r.err == nil; i++ {
		if r.limits() {
			r.fail("64-bit memories are not supported")
		}
	}
	return r.err
}

// globals are the indices of the globals the rewrite adds: the fuel, the
// out-of-memory flag, and two i32 scratch globals: tmp for memory.grow's
// result, count for a bulk instruction's length.
type globals struct{ fuel, oom, tmp, count uint32 }

// charge is the code that takes cost from the function's fuel local and,
// below zero, stores it and traps.
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
	return append(b, opUnreachable, opEnd)
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
	local := params
	for i := uint32(0); i < nlocals && r.err == nil; i++ {
		local += r.u32()
		r.byte()
	}
	if r.err != nil {
		return nil, r.err
	}
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
			if err := skipImmediates(r, op); err != nil {
				return nil, err
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
	if local == ^uint32(0) {
		return nil, invalid("too many locals")
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
