package commit

import (
	"encoding/hex"
	"testing"
)

func TestHash(t *testing.T) {
	base := Hash("d", []byte("ab"), []byte("c"))
	tests := []struct {
		name  string
		other []byte
	}{
		{"parts regrouped", Hash("d", []byte("a"), []byte("bc"))},
		{"parts joined", Hash("d", []byte("abc"))},
		{"parts reordered", Hash("d", []byte("c"), []byte("ab"))},
		{"other domain", Hash("e", []byte("ab"), []byte("c"))},
		{"domain shifted into a part", Hash("", []byte("d"), []byte("ab"), []byte("c"))},
		{"empty part added", Hash("d", []byte("ab"), []byte("c"), nil)},
	}
	for _, tt := range tests {
		if hex.EncodeToString(tt.other) == hex.EncodeToString(base) {
			t.Errorf("%s: same commitment", tt.name)
		}
	}
	// Pinned, so a change of encoding (a consensus change) is noticed.
	if got, want := hex.EncodeToString(base), "d8afde031a3ebe5c403e77858554e5acb379f2c694c55a1e0c375eda31426362"; got != want {
		t.Errorf("Hash = %s, want %s", got, want)
	}
}

func TestOpens(t *testing.T) {
	c := Hash("agora/test/v1", []byte("value"), []byte("salt"))
	if !Opens(c, "agora/test/v1", []byte("value"), []byte("salt")) {
		t.Error("the committed value does not open its commitment")
	}
	for name, parts := range map[string][][]byte{
		"other value": {[]byte("valuf"), []byte("salt")},
		"other salt":  {[]byte("value"), []byte("salu")},
		"no salt":     {[]byte("value")},
	} {
		if Opens(c, "agora/test/v1", parts...) {
			t.Errorf("%s opens the commitment", name)
		}
	}
	if Opens(c[:31], "agora/test/v1", []byte("value"), []byte("salt")) || Opens(nil, "agora/test/v1") {
		t.Error("a truncated or empty commitment opens")
	}
}
