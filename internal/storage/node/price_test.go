package node

import "testing"

func TestByteRange(t *testing.T) {
	for _, c := range []struct {
		h       string
		off, n  uint64
		refused bool
	}{
		{"", 0, 1000, false},
		{"bytes=0-99", 0, 100, false},
		{"bytes=900-", 900, 100, false},
		{"bytes=900-5000", 900, 100, false}, // clipped to the piece
		{"bytes=-10", 990, 10, false},
		{"bytes=-5000", 0, 1000, false},
		{"bytes=1000-", 0, 0, true}, // past the end
		{"bytes=5-4", 0, 0, true},
		{"bytes=0-1,5-6", 0, 0, true}, // one range: what is paid for is what comes
		{"bytes=-0", 0, 0, true},
		{"items=0-1", 0, 0, true},
		{"bytes=x-1", 0, 0, true},
	} {
		off, n, err := byteRange(c.h, 1000)
		if (err != nil) != c.refused || off != c.off || n != c.n {
			t.Errorf("Range %q: %d+%d, %v; want %d+%d, refused %v", c.h, off, n, err, c.off, c.n, c.refused)
		}
	}
}
