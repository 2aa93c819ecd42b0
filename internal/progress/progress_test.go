package progress

import (
	"bytes"
	"strings"
	"testing"
)

func TestPlainLinesAtEachTenth(t *testing.T) {
	var out bytes.Buffer
	b := New(&out, "put f", 1000, false, nil)
	for done := uint64(0); done <= 1000; done += 7 {
		b.Set(done)
	}
	b.Done()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 11 || lines[0] != "put f: 0 B of 1000 B (0%)" || lines[10] != "put f: 1000 B of 1000 B (100%)" {
		t.Fatalf("%d lines:\n%s", len(lines), out.String())
	}
}

func TestQuietWritesNothing(t *testing.T) {
	var out bytes.Buffer
	b := New(&out, "get", 10, true, nil)
	b.Set(5)
	b.Done()
	if out.Len() != 0 {
		t.Fatalf("wrote %q", out.String())
	}
}

func TestBytes(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 64 << 20: "64.0 MiB", 3 << 40: "3.0 TiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}
