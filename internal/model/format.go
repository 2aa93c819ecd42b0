package model

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// The weights file format, version 1. All integers are little endian.
//
//	offset  size  field
//	0       8     magic "AGORAWTS"
//	8       2     format version (1)
//	10      2     flags (0)
//	12      4     payload length n
//	16      n     payload
//	16+n    4     CRC-32C (Castagnoli) of bytes [0, 16+n)
//
// The payload is a sequence of fields; a string is a uint8 length and that
// many printable ASCII bytes:
//
//	string  architecture tag ("mlp-int8" or "gru-int16")
//	string  model name ("agora/digits-mlp")
//	string  license (an SPDX identifier)
//	uint8   tensor count
//	tensor  ...
//
// and each tensor is
//
//	string  name ("fc1.w")
//	uint8   element type: 1 uint8, 2 int8, 3 int16, 4 int32
//	int8    shift: the real value of element q is q * 2^-shift
//	uint8   rank r (1 to 4)
//	uint32  r dimensions, outermost first, each at least 1
//	...     the elements, row-major
//
// The CRC catches damage; identity is the SHA-256 of the whole file (ID).
// Nothing may follow the last tensor. Each architecture fixes which tensors
// it needs, their types, shapes and shifts (see mlp.go and lm.go); a file is
// accepted only if it is exactly that.

// MaxFileSize is the largest weights file a node reads.
const MaxFileSize = 64 << 20

const (
	magic         = "AGORAWTS"
	formatVersion = 1
	headerSize    = 16
	trailerSize   = 4

	maxFileSize   = MaxFileSize
	maxTensors    = 32
	maxRank       = 4
	maxElements   = 1 << 24
	maxStringSize = 128
)

var (
	// ErrFormat is wrapped by every error that rejects a weights file for its
	// structure or contents.
	ErrFormat = errors.New("model: malformed weights file")
	// ErrChecksum means the file is damaged: its content does not match its
	// CRC-32C.
	ErrChecksum = errors.New("model: weights file checksum mismatch")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func formatError(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrFormat}, args...)...)
}

type dtype uint8

const (
	dtUint8 dtype = 1
	dtInt8  dtype = 2
	dtInt16 dtype = 3
	dtInt32 dtype = 4
)

func (d dtype) size() int {
	switch d {
	case dtUint8, dtInt8:
		return 1
	case dtInt16:
		return 2
	case dtInt32:
		return 4
	}
	return 0
}

func (d dtype) String() string {
	switch d {
	case dtUint8:
		return "uint8"
	case dtInt8:
		return "int8"
	case dtInt16:
		return "int16"
	case dtInt32:
		return "int32"
	}
	return fmt.Sprintf("dtype(%d)", uint8(d))
}

// tensor is one array of a weights file. data holds the raw little-endian
// elements.
type tensor struct {
	name  string
	dtype dtype
	shift int8
	dims  []int
	data  []byte
}

func (t *tensor) len() int {
	n := 1
	for _, d := range t.dims {
		n *= d
	}
	return n
}

func (t *tensor) uint8s() []uint8 { return append([]uint8(nil), t.data...) }

func (t *tensor) int8s() []int8 {
	out := make([]int8, len(t.data))
	for i, b := range t.data {
		out[i] = int8(b)
	}
	return out
}

func (t *tensor) int16s() []int16 {
	out := make([]int16, len(t.data)/2)
	for i := range out {
		out[i] = int16(binary.LittleEndian.Uint16(t.data[2*i:]))
	}
	return out
}

func (t *tensor) int32s() []int32 {
	out := make([]int32, len(t.data)/4)
	for i := range out {
		out[i] = int32(binary.LittleEndian.Uint32(t.data[4*i:]))
	}
	return out
}

// weightsFile is a decoded weights file before its architecture interprets
// it.
type weightsFile struct {
	arch, name, license string
	tensors             []*tensor
}

// lookup returns the tensor called name after checking its type, shape and,
// when shift is not anyShift, its shift. A dims entry of 0 matches any size.
func (f *weightsFile) lookup(name string, dt dtype, shift int, dims ...int) (*tensor, error) {
	for _, t := range f.tensors {
		if t.name != name {
			continue
		}
		if t.dtype != dt {
			return nil, formatError("tensor %q: type %v, want %v", name, t.dtype, dt)
		}
		if len(t.dims) != len(dims) {
			return nil, formatError("tensor %q: rank %d, want %d", name, len(t.dims), len(dims))
		}
		for i, d := range dims {
			if d != 0 && t.dims[i] != d {
				return nil, formatError("tensor %q: shape %v, want %v", name, t.dims, dims)
			}
		}
		if shift != anyShift && int(t.shift) != shift {
			return nil, formatError("tensor %q: shift %d, want %d", name, t.shift, shift)
		}
		return t, nil
	}
	return nil, formatError("architecture %s needs tensor %q", f.arch, name)
}

const anyShift = -1 << 10

// checkNames rejects tensors that the architecture does not use, so that two
// files that load to the same model also have the same bytes and id.
func (f *weightsFile) checkNames(names ...string) error {
	if len(f.tensors) != len(names) {
		return formatError("architecture %s has %d tensors, file has %d", f.arch, len(names), len(f.tensors))
	}
	for i, t := range f.tensors {
		if t.name != names[i] {
			return formatError("tensor %d is %q, want %q", i, t.name, names[i])
		}
	}
	return nil
}

func validString(s string) bool {
	if len(s) == 0 || len(s) > maxStringSize {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// decodeFile checks the framing and checksum of a weights file and splits
// its payload into tensors. The tensors' data alias b.
func decodeFile(b []byte) (*weightsFile, error) {
	if len(b) < headerSize+trailerSize {
		return nil, formatError("%d bytes is too short for a weights file", len(b))
	}
	if len(b) > maxFileSize {
		return nil, formatError("%d bytes is more than the limit of %d", len(b), maxFileSize)
	}
	if string(b[:8]) != magic {
		return nil, formatError("bad magic %q, want %q", b[:8], magic)
	}
	if v := binary.LittleEndian.Uint16(b[8:]); v != formatVersion {
		return nil, formatError("format version %d, this build reads version %d", v, formatVersion)
	}
	if fl := binary.LittleEndian.Uint16(b[10:]); fl != 0 {
		return nil, formatError("unknown flags %#04x", fl)
	}
	n := binary.LittleEndian.Uint32(b[12:])
	if uint64(n) != uint64(len(b)-headerSize-trailerSize) {
		return nil, formatError("payload length %d does not match file size %d (truncated?)", n, len(b))
	}
	end := headerSize + int(n)
	if got, want := crc32.Checksum(b[:end], castagnoli), binary.LittleEndian.Uint32(b[end:]); got != want {
		return nil, fmt.Errorf("%w: content has crc32c %08x, file says %08x", ErrChecksum, got, want)
	}
	r := reader{b: b[headerSize:end]}
	f := &weightsFile{}
	f.arch = r.string("architecture")
	f.name = r.string("name")
	f.license = r.string("license")
	count := int(r.uint8("tensor count"))
	if r.err == nil && (count == 0 || count > maxTensors) {
		return nil, formatError("%d tensors, want 1 to %d", count, maxTensors)
	}
	for i := 0; i < count && r.err == nil; i++ {
		t := &tensor{name: r.string("tensor name")}
		t.dtype = dtype(r.uint8("tensor type"))
		t.shift = int8(r.uint8("tensor shift"))
		rank := int(r.uint8("tensor rank"))
		if r.err != nil {
			break
		}
		if t.dtype.size() == 0 {
			return nil, formatError("tensor %q: unknown element type %d", t.name, t.dtype)
		}
		if rank < 1 || rank > maxRank {
			return nil, formatError("tensor %q: rank %d, want 1 to %d", t.name, rank, maxRank)
		}
		elems := 1
		for range rank {
			d := r.uint32("tensor dimension")
			if r.err != nil {
				break
			}
			if d == 0 || uint64(d)*uint64(elems) > maxElements {
				return nil, formatError("tensor %q: dimension %d is zero or makes it larger than %d elements", t.name, d, maxElements)
			}
			t.dims = append(t.dims, int(d))
			elems *= int(d)
		}
		t.data = r.bytes(elems*t.dtype.size(), "tensor data")
		for _, u := range f.tensors {
			if u.name == t.name {
				return nil, formatError("tensor %q appears twice", t.name)
			}
		}
		f.tensors = append(f.tensors, t)
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, formatError("%d bytes after the last tensor", len(r.b))
	}
	return f, nil
}

// reader consumes the payload; after the first error every read returns
// zero values and err keeps that error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) bytes(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.b) {
		r.err = formatError("payload ends inside %s (%d bytes needed, %d left)", what, n, len(r.b))
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) uint8(what string) uint8 {
	b := r.bytes(1, what)
	if b == nil {
		return 0
	}
	return b[0]
}

func (r *reader) uint32(what string) uint32 {
	b := r.bytes(4, what)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint32(b)
}

func (r *reader) string(what string) string {
	n := int(r.uint8(what + " length"))
	s := string(r.bytes(n, what))
	if r.err == nil && !validString(s) {
		r.err = formatError("%s %q is empty, longer than %d bytes or not printable ASCII", what, s, maxStringSize)
	}
	return s
}

// encoder builds a weights file; it is used by training, so it panics on
// values that the format cannot hold.
type encoder struct {
	payload []byte
	count   int
}

func newEncoder(arch, name, license string) *encoder {
	e := &encoder{}
	e.string(arch)
	e.string(name)
	e.string(license)
	e.payload = append(e.payload, 0) // tensor count, set by bytes
	return e
}

func (e *encoder) string(s string) {
	if !validString(s) {
		panic(fmt.Sprintf("model: cannot encode string %q", s))
	}
	e.payload = append(e.payload, byte(len(s)))
	e.payload = append(e.payload, s...)
}

func (e *encoder) header(name string, dt dtype, shift int, dims []int) {
	if shift < -128 || shift > 127 {
		panic(fmt.Sprintf("model: shift %d of %q out of range", shift, name))
	}
	e.count++
	e.string(name)
	e.payload = append(e.payload, byte(dt), byte(int8(shift)), byte(len(dims)))
	for _, d := range dims {
		e.payload = binary.LittleEndian.AppendUint32(e.payload, uint32(d))
	}
}

func (e *encoder) uint8s(name string, shift int, dims []int, v []uint8) {
	e.header(name, dtUint8, shift, dims)
	e.payload = append(e.payload, v...)
}

func (e *encoder) int8s(name string, shift int, dims []int, v []int8) {
	e.header(name, dtInt8, shift, dims)
	for _, x := range v {
		e.payload = append(e.payload, byte(x))
	}
}

func (e *encoder) int16s(name string, shift int, dims []int, v []int16) {
	e.header(name, dtInt16, shift, dims)
	for _, x := range v {
		e.payload = binary.LittleEndian.AppendUint16(e.payload, uint16(x))
	}
}

func (e *encoder) int32s(name string, shift int, dims []int, v []int32) {
	e.header(name, dtInt32, shift, dims)
	for _, x := range v {
		e.payload = binary.LittleEndian.AppendUint32(e.payload, uint32(x))
	}
}

func (e *encoder) bytes() []byte {
	// The count byte follows the three strings.
	off := 0
	for range 3 {
		off += 1 + int(e.payload[off])
	}
	e.payload[off] = byte(e.count)
	out := make([]byte, 0, headerSize+len(e.payload)+trailerSize)
	out = append(out, magic...)
	out = binary.LittleEndian.AppendUint16(out, formatVersion)
	out = binary.LittleEndian.AppendUint16(out, 0)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(e.payload)))
	out = append(out, e.payload...)
	return binary.LittleEndian.AppendUint32(out, crc32.Checksum(out, castagnoli))
}
