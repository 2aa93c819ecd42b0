package model

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// frame wraps payload in a header and a valid checksum, to test the
// payload parser past the checksum.
func frame(payload []byte) []byte {
	out := []byte(magic)
	out = binary.LittleEndian.AppendUint16(out, formatVersion)
	out = binary.LittleEndian.AppendUint16(out, 0)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(payload)))
	out = append(out, payload...)
	return binary.LittleEndian.AppendUint32(out, crc32.Checksum(out, castagnoli))
}

func payloadOf(file []byte) []byte {
	return append([]byte(nil), file[headerSize:len(file)-trailerSize]...)
}

func builtinFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := BuiltinWeights(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRoundTrip checks that the encoders are canonical: parsing a file and
// encoding the model gives the same bytes, so the id is stable.
func TestRoundTrip(t *testing.T) {
	for _, name := range []string{DigitsName, TinyLMName} {
		b := builtinFile(t, name)
		m, err := Parse(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var again []byte
		if m.MLP != nil {
			again = m.MLP.Encode()
		} else {
			again = m.LM.Encode()
		}
		if !bytes.Equal(again, b) {
			t.Errorf("%s: re-encoding changed the file", name)
		}
	}
}

// TestFlipEveryByte flips each byte of a weights file in turn: every
// damaged file must be refused, and damage to the payload or checksum must
// be reported as a checksum error.
func TestFlipEveryByte(t *testing.T) {
	b := builtinFile(t, DigitsName)
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x5a
		_, err := Parse(c)
		switch {
		case err == nil:
			t.Fatalf("byte %d flipped: parsed without error", i)
		case i >= headerSize && !errors.Is(err, ErrChecksum):
			t.Fatalf("byte %d flipped: got %v, want ErrChecksum", i, err)
		case i < headerSize && !errors.Is(err, ErrFormat) && !errors.Is(err, ErrChecksum):
			t.Fatalf("byte %d flipped: got %v, want ErrFormat or ErrChecksum", i, err)
		}
	}
}

func TestParseRejects(t *testing.T) {
	digits := builtinFile(t, DigitsName)
	lm := builtinFile(t, TinyLMName)
	withHeader := func(off int, v uint16) []byte {
		c := bytes.Clone(digits)
		binary.LittleEndian.PutUint16(c[off:], v)
		return c
	}
	mlp := func(edit func(m *MLP)) []byte {
		m, err := Parse(digits)
		if err != nil {
			t.Fatal(err)
		}
		edit(m.MLP) // a fresh parse shares nothing
		return m.MLP.Encode()
	}
	gru := func(edit func(m *LM)) []byte {
		m, err := Parse(lm)
		if err != nil {
			t.Fatal(err)
		}
		edit(m.LM)
		return m.LM.Encode()
	}
	// payload builds a file from raw payload pieces.
	payload := func(parts ...[]byte) []byte { return frame(bytes.Join(parts, nil)) }
	str := func(s string) []byte { return append([]byte{byte(len(s))}, s...) }
	head := bytes.Join([][]byte{str(ArchMLP), str("x/y"), str("MIT")}, nil)

	tests := []struct {
		name string
		file []byte
		want error
	}{
		{"empty", nil, ErrFormat},
		{"short", []byte("AGORAWTS"), ErrFormat},
		{"bad magic", append([]byte("AGORAWTX"), digits[8:]...), ErrFormat},
		{"future version", withHeader(8, 2), ErrFormat},
		{"flags", withHeader(10, 1), ErrFormat},
		{"truncated", digits[:len(digits)-1], ErrFormat},
		{"appended", append(bytes.Clone(digits), 0), ErrFormat},
		{"checksum", append(bytes.Clone(digits[:len(digits)-4]), 0, 0, 0, 0), ErrChecksum},
		{"trailing payload", frame(append(payloadOf(digits), 0)), ErrFormat},
		{"unknown arch", frame(append(str("transformer"), payloadOf(digits)[1+len(ArchMLP):]...)), ErrFormat},
		{"no tensors", payload(head, []byte{0}), ErrFormat},
		{"unknown dtype", payload(head, []byte{1}, str("fc1.w"), []byte{9, 0, 1, 1, 0, 0, 0, 0}), ErrFormat},
		{"rank 0", payload(head, []byte{1}, str("fc1.w"), []byte{2, 0, 0}), ErrFormat},
		{"rank 5", payload(head, []byte{1}, str("fc1.w"), []byte{2, 0, 5}), ErrFormat},
		{"zero dim", payload(head, []byte{1}, str("fc1.w"), []byte{2, 0, 1, 0, 0, 0, 0}), ErrFormat},
		{"huge dim", payload(head, []byte{1}, str("fc1.w"), []byte{2, 0, 2, 0, 0, 0, 1, 0, 0, 0, 1}), ErrFormat},
		{"short data", payload(head, []byte{1}, str("fc1.w"), []byte{2, 0, 1, 4, 0, 0, 0, 1, 2}), ErrFormat},
		{"bad name", payload(str(ArchMLP), str("x\x00"), str("MIT"), []byte{0}), ErrFormat},
		{"empty license", payload(str(ArchMLP), str("x"), str(""), []byte{0}), ErrFormat},
		{"mlp missing tensors", payload(head, []byte{1}, str("fc1.w"), []byte{2, 0, 1, 1, 0, 0, 0, 7}), ErrFormat},
		{"mlp shifts", mlp(func(m *MLP) { m.s1 = 20 }), ErrFormat},
		{"mlp activation", mlp(func(m *MLP) { m.act = 9 + m.s1 }), ErrFormat},
		{"mlp overflow", mlp(func(m *MLP) { m.b1[0] = math.MaxInt32 - 100 }), ErrFormat},
		{"lm vocab order", gru(func(m *LM) { m.vocab[0], m.vocab[1] = m.vocab[1], m.vocab[0] }), ErrFormat},
		{"lm special", gru(func(m *LM) { m.unk = m.v }), ErrFormat},
		{"lm bias", gru(func(m *LM) { m.bo[0] = maxBias + 1 }), ErrFormat},
		{"lm overflow", gru(func(m *LM) {
			for j := range m.h {
				m.wh[j] = 32767
			}
			m.whShift = 14
		}), ErrFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse(tt.file)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, %v; want error %v", m, err, tt.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "digits.agw")
	b := builtinFile(t, DigitsName)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.Manifest.ID, ID(b); got != want {
		t.Errorf("id %s, want %s", got, want)
	}
	if _, err := Load(filepath.Join(dir, "missing.agw")); err == nil {
		t.Error("loading a missing file: got no error")
	}
	b[len(b)/2] ^= 1
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); !errors.Is(err, ErrChecksum) {
		t.Errorf("loading a damaged file: got %v, want ErrChecksum", err)
	}
}

// FuzzParse feeds arbitrary files to the parser: it must not panic, and
// what it accepts must re-encode to the same bytes.
func FuzzParse(f *testing.F) {
	digits := builtinFile(f, DigitsName)
	f.Add(digits)
	f.Add(digits[:100])
	f.Add([]byte(magic))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkParse(t, b)
	})
}

// FuzzParsePayload is FuzzParse past the checksum: the fuzzer supplies the
// payload and the test frames it with a valid header and CRC.
func FuzzParsePayload(f *testing.F) {
	f.Add(payloadOf(builtinFile(f, DigitsName)))
	f.Add([]byte{8, 'm', 'l', 'p', '-', 'i', 'n', 't', '8', 1, 'x', 1, 'y', 1, 1, 'a', 2, 0, 1, 1, 0, 0, 0, 7})
	f.Fuzz(func(t *testing.T, p []byte) {
		checkParse(t, frame(p))
	})
}

func checkParse(t *testing.T, b []byte) {
	m, err := Parse(b)
	if err != nil {
		if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrChecksum) {
			t.Fatalf("error %v wraps neither ErrFormat nor ErrChecksum", err)
		}
		return
	}
	var again []byte
	switch {
	case m.MLP != nil:
		again = m.MLP.Encode()
		if _, _, err := m.MLP.Infer(make([]byte, m.MLP.Inputs())); err != nil {
			t.Fatal(err)
		}
	case m.LM != nil:
		again = m.LM.Encode()
		if _, err := m.LM.Generate([]byte("a\xff"), 2, 1000, 1); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatal("parsed model has neither MLP nor LM")
	}
	if !bytes.Equal(again, b) {
		t.Fatal("accepted file does not re-encode to the same bytes")
	}
}
