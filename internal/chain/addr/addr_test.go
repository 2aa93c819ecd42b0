package addr

import (
	"strings"
	"testing"
)

func TestBech32Vectors(t *testing.T) {
	// Valid checksums from BIP-173.
	for _, s := range []string{
		"A12UEL5L",
		"abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
		"split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
	} {
		if _, _, err := decode(s); err != nil {
			t.Errorf("decode(%q): %v", s, err)
		}
	}
	for _, s := range []string{
		"pzry9x0s0muk",  // no separator
		"1pzry9x0s0muk", // empty hrp
		"x1b4n0q5v",     // bad character
		"li1dgmt3",      // too short checksum
		"A1G7SGD8",      // checksum computed with uppercase hrp
		"abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxX", // mixed case
	} {
		if _, _, err := decode(s); err == nil {
			t.Errorf("decode(%q) accepted an invalid string", s)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	a := FromPubKey([]byte("0123456789abcdef0123456789abcdef"))
	s := a.String()
	if !strings.HasPrefix(s, "agora1") {
		t.Fatalf("got %q, want agora1 prefix", s)
	}
	got, err := Parse(s)
	if err != nil || got != a {
		t.Fatalf("Parse(%q) = %v, %v; want %v", s, got, err, a)
	}
	if _, err := Parse(strings.ToUpper(s)); err != nil {
		t.Errorf("upper-case address refused: %v", err)
	}
	bad := s[:len(s)-1] + string(charset[(strings.IndexByte(charset, s[len(s)-1])+1)%32])
	if _, err := Parse(bad); err == nil {
		t.Errorf("Parse accepted a corrupted checksum %q", bad)
	}
	if _, err := Parse(encode("cosmos", a[:])); err == nil {
		t.Error("Parse accepted a foreign prefix")
	}
	if _, err := Parse(encode(Prefix, a[:10])); err == nil {
		t.Error("Parse accepted a short payload")
	}
}

func FuzzParse(f *testing.F) {
	f.Add(Module("bank").String())
	f.Add("agora1")
	f.Fuzz(func(t *testing.T, s string) {
		a, err := Parse(s)
		if err != nil {
			return
		}
		if b, err := Parse(a.String()); err != nil || b != a {
			t.Fatalf("re-parse of %q: %v %v", a, b, err)
		}
	})
}
