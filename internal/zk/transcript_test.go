package zk

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"runtime"
	"strings"
	"testing"
)

// smallTranscript is a transcript of domain 2, whose phase 1 is real (two
// signed contributions, cheap at that size) and whose phase 2 has the
// shape of real states but no real points: ParseTranscript checks shapes,
// not points, so it is a seed for FuzzParseTranscript that exercises
// every field in milliseconds.
// testBeacon1 marks where phase 2 starts in smallTranscript's bytes.
const testBeacon1 = "beacon one of the small test transcript"

func smallTranscript(tb testing.TB, sealed bool) []byte {
	tb.Helper()
	tr := &Transcript{ModelID: "test-model", Domain: 2}
	for _, name := range []string{"alice", "bob"} {
		if err := tr.Contribute(testKey(name)); err != nil {
			tb.Fatal(err)
		}
	}
	if sealed {
		state := func(challenge int) []byte {
			b := []byte{0, 0}
			b = append(b, make([]byte, g1Size)...)
			b = binary.BigEndian.AppendUint32(b, 1) // one private wire
			b = append(b, make([]byte, g1Size)...)
			b = binary.BigEndian.AppendUint32(b, 1) // N-1 Z points
			b = append(b, make([]byte, g1Size+g2Size+proofSize)...)
			b = append(b, byte(challenge))
			return append(b, make([]byte, challenge)...)
		}
		tr.Beacon1, tr.Start2, tr.Beacon2 = []byte(testBeacon1), state(0), []byte("b2")
		for _, c := range tr.Phase1 {
			tr.Phase2 = append(tr.Phase2, Contribution{State: state(sha256.Size), Contributor: c.Contributor, Signature: make([]byte, 64)})
		}
	}
	b, err := tr.MarshalBinary()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// TestParseTranscript: truncated bytes, absurd lengths and trailing bytes
// are refused by shape, before any curve arithmetic or large allocation.
func TestParseTranscript(t *testing.T) {
	good := smallTranscript(t, true)
	if _, err := ParseTranscript(good); err != nil {
		t.Fatalf("a well-shaped transcript: %v", err)
	}
	// Offsets in good: magic 8, version 2, model id 1+10, domain 8, count
	// 4, then the first contribution's state length.
	const domainAt, countAt, stateLenAt = 21, 29, 33
	put32 := func(at int, v uint32) []byte {
		b := bytes.Clone(good)
		binary.BigEndian.PutUint32(b[at:], v)
		return b
	}
	put64 := func(at int, v uint64) []byte {
		b := bytes.Clone(good)
		binary.BigEndian.PutUint64(b[at:], v)
		return b
	}
	stateAt := stateLenAt + 4
	n1 := int(binary.BigEndian.Uint32(good[stateLenAt:]))
	tests := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "truncated"},
		{"another format", append([]byte("AGORAWTS"), good[8:]...), "not a transcript"},
		{"truncated by a byte", good[:len(good)-1], "truncated"},
		{"truncated in a state", good[:stateAt+100], "claims"},
		{"a byte after the end", append(bytes.Clone(good), 0), "after the end"},
		{"a domain of 2^40", put64(domainAt, 1<<40), "domain"},
		{"a domain that is not a power of 2", put64(domainAt, 3), "domain"},
		{"2^32-1 contributions", put32(countAt, 1<<32-1), "at most 64"},
		{"a state of 4 GB", put32(stateLenAt, 1<<32-1), "claims"},
		{"a state shorter than its domain's", func() []byte {
			b := bytes.Clone(good[:stateLenAt])
			b = binary.BigEndian.AppendUint32(b, uint32(n1-1))
			b = append(b, good[stateAt:stateAt+n1-1]...)
			return append(b, good[stateAt+n1:]...)
		}(), "want"},
		{"a phase-1 state that claims another domain", put64(stateAt+3*proofSize, 1<<30), "domain"},
		{"a phase-2 state with 2^32-1 private-wire points", func() []byte {
			b := bytes.Clone(good)
			// Start2's private-wire count. The beacon is long enough that
			// the random phase-1 states cannot hold it by chance.
			at := bytes.Index(b, []byte(testBeacon1)) + len(testBeacon1) + 4 + 2 + g1Size
			binary.BigEndian.PutUint32(b[at:], 1<<32-1)
			return b
		}(), "private-wire points"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseTranscript(tt.b)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
	// An open transcript reads as open.
	open, err := ParseTranscript(smallTranscript(t, false))
	if err != nil || open.Phase() != PhaseOne || len(open.Phase1) != 2 {
		t.Fatalf("an open transcript: %v %v", open, err)
	}
	// The signatures chain: a phase-1 state changed breaks its own.
	open.Phase1[1].State[len(open.Phase1[1].State)-1] ^= 1
	if _, err := open.chain(); err == nil || !strings.Contains(err.Error(), "phase 1 contribution 1: the signature") {
		t.Errorf("a changed state kept its signature: %v", err)
	}
}

// FuzzParseTranscript: the transcript decoder refuses or accepts any
// input without panicking or allocating beyond its size, and what it
// accepts encodes back to the same bytes (one transcript, one digest).
// It decodes no curve points: fuzzing never reaches the slow checks.
func FuzzParseTranscript(f *testing.F) {
	f.Add(smallTranscript(f, true))
	f.Add(smallTranscript(f, false))
	f.Add([]byte(transcriptMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := ParseTranscript(b)
		if err != nil {
			return
		}
		if !bytes.Equal(tr.encode(), b) {
			t.Fatal("an accepted transcript encodes to other bytes")
		}
		tr.chain() // must not panic
	})
}

func testKey(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte(name))
	return ed25519.NewKeyFromSeed(seed[:])
}

// bigTranscript is a sealed transcript of domain 4096 (digits-mlp's) with
// two contributions a phase whose states have the right shapes and zero
// points: about 2.3 MB, made in milliseconds.
func bigTranscript(tb testing.TB) []byte {
	tb.Helper()
	const n, pkk = 4096, 3788
	p1 := make([]byte, phase1Size(n, sha256.Size))
	binary.BigEndian.PutUint64(p1[3*proofSize:], n)
	p1[len(p1)-1-sha256.Size] = sha256.Size
	p2 := func(challenge int) []byte {
		b := []byte{0, 0}
		b = append(b, make([]byte, g1Size)...)
		b = binary.BigEndian.AppendUint32(b, pkk)
		b = append(b, make([]byte, pkk*g1Size)...)
		b = binary.BigEndian.AppendUint32(b, n-1)
		b = append(b, make([]byte, (n-1)*g1Size+g2Size+proofSize)...)
		b = append(b, byte(challenge))
		return append(b, make([]byte, challenge)...)
	}
	tr := &Transcript{ModelID: "test-model", Domain: n, Beacon1: []byte("b1"), Start2: p2(0), Beacon2: []byte("b2")}
	for i := range 2 {
		key := make([]byte, 32)
		key[0] = byte(i)
		tr.Phase1 = append(tr.Phase1, Contribution{State: p1, Contributor: key, Signature: make([]byte, 64)})
		tr.Phase2 = append(tr.Phase2, Contribution{State: p2(sha256.Size), Contributor: key, Signature: make([]byte, 64)})
	}
	return tr.encode()
}

// TestParseTranscriptCopiesNothing: parsing a transcript allocates next to
// nothing beside the bytes it was given: the states are slices of them.
func TestParseTranscriptCopiesNothing(t *testing.T) {
	b := bigTranscript(t)
	if _, err := ParseTranscript(b); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	tr, err := ParseTranscript(b)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 64<<10 {
		t.Errorf("parsing a transcript of %d bytes allocated %d bytes; want under 64 KB", len(b), got)
	}
	if !bytes.Equal(tr.encode(), b) {
		t.Error("the transcript does not encode back to its bytes")
	}
}
