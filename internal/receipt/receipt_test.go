package receipt

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
)

func TestSignDecodeCheck(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	req, resp := []byte(`{"model":"m"}`), []byte(`{"choices":[]}`)
	enc, err := Sign(key, &Receipt{ChainId: "c", ModelId: "ab", RequestHash: Hash(req), ResponseHash: Hash(resp), Height: 7, Seq: 3})
	if err != nil {
		t.Fatal(err)
	}
	r, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	if r.Seq != 3 || r.Height != 7 || !strings.HasPrefix(r.Provider, "agora1") {
		t.Errorf("decoded %+v", r)
	}
	if err := Check(r, req, resp); err != nil {
		t.Errorf("Check on the right bytes: %v", err)
	}
	bad := append([]byte(nil), resp...)
	bad[3] ^= 1
	if err := Check(r, req, bad); !errors.Is(err, ErrMismatch) {
		t.Errorf("Check on a changed response: %v, want ErrMismatch", err)
	}
	// Flip one character of the encoding: either it no longer decodes or
	// the signature fails.
	for i := 0; i < len(enc); i += 7 {
		c := []byte(enc)
		c[i] = "AB"[(c[i]+1)%2]
		if c[i] == enc[i] {
			continue
		}
		if r2, err := Decode(string(c)); err == nil && Check(r2, req, resp) == nil && r2.Seq == r.Seq && r2.Height == r.Height && string(r2.ModelId) == string(r.ModelId) {
			t.Fatalf("a corrupted receipt (byte %d) still verifies", i)
		}
	}
}

func FuzzDecode(f *testing.F) {
	_, key, _ := ed25519.GenerateKey(nil)
	enc, _ := Sign(key, &Receipt{ChainId: "c"})
	f.Add(enc)
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Decode(s)
		if err == nil && len(r.PublicKey) != ed25519.PublicKeySize {
			t.Fatal("accepted a receipt without a proper key")
		}
	})
}

func TestMerklePaths(t *testing.T) {
	for n := 1; n <= 17; n++ {
		var leaves [][]byte
		for i := 0; i < n; i++ {
			leaves = append(leaves, []byte{byte(i), byte(n)})
		}
		root := Root(leaves)
		for i := range leaves {
			p := Path(leaves, i)
			if !VerifyPath(root, leaves[i], i, n, p) {
				t.Fatalf("n=%d i=%d: a true path does not verify", n, i)
			}
			if VerifyPath(root, []byte("other"), i, n, p) {
				t.Fatalf("n=%d i=%d: another leaf verifies", n, i)
			}
			if n > 1 && VerifyPath(root, leaves[i], (i+1)%n, n, p) {
				t.Fatalf("n=%d i=%d: the path verifies at another index", n, i)
			}
		}
	}
}
