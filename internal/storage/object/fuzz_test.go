package object

import (
	"bytes"
	"testing"
)

// FuzzParse: no manifest bytes make Parse panic, and what it accepts is
// canonical and consistent.
func FuzzParse(f *testing.F) {
	for _, size := range []int{0, 1, 5000} {
		m, _, err := Encode(bytes.NewReader(make([]byte, size)), small, func(Piece) error { return nil })
		if err != nil {
			f.Fatal(err)
		}
		b, _ := Marshal(m)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b, cidOf(b))
		if err != nil {
			return
		}
		if again, _ := Marshal(m); !bytes.Equal(again, b) {
			t.Fatalf("accepted a non-canonical encoding")
		}
		if err := Check(m); err != nil {
			t.Fatalf("accepted an inconsistent manifest: %v", err)
		}
	})
}

// FuzzVerifyLeaf: no proof makes VerifyLeaf panic, and only the leaf's own
// path verifies it.
func FuzzVerifyLeaf(f *testing.F) {
	f.Add(make([]byte, 64*5), 2, []byte{}, uint8(0))
	f.Add(make([]byte, 64*8), 7, []byte{1}, uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, index int, junk []byte, cut uint8) {
		if len(data) == 0 || len(data) > 64*200 {
			return
		}
		root := Root(data, 64)
		count := (len(data) + 63) / 64
		leaf, path := Prove(data, 64, index)
		if leaf == nil {
			if VerifyLeaf(root, junk, index, count, nil) && count > 1 {
				t.Fatalf("index %d of %d verified with no path", index, count)
			}
			return
		}
		if !VerifyLeaf(root, leaf, index, count, path) {
			t.Fatalf("leaf %d of %d does not verify", index, count)
		}
		// A path cut or padded with junk, or a different leaf, does not.
		if len(path) > 0 {
			p := append([][]byte{}, path...)
			p[int(cut)%len(p)] = junk
			if !bytes.Equal(junk, path[int(cut)%len(p)]) && VerifyLeaf(root, leaf, index, count, p) {
				t.Fatalf("a path with junk verified")
			}
		}
		if !bytes.Equal(junk, leaf) && VerifyLeaf(root, junk, index, count, path) {
			t.Fatalf("another leaf verified")
		}
	})
}
