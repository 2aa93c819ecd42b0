package receipt

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/agoranet/agora/internal/chain/addr"
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

// rfc6962Leaves are the leaves of the reference tree in Certificate
// Transparency's and Trillian's tests, so the roots and paths below are
// RFC 6962's published values, not ones our code produced.
var rfc6962Leaves = []string{"", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"}

func rfc6962(t *testing.T, n int) [][]byte {
	t.Helper()
	var leaves [][]byte
	for _, s := range rfc6962Leaves[:n] {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		leaves = append(leaves, b)
	}
	return leaves
}

// TestMerkleKnownRoots pins the hashing. Roots are anchored on chain in
// claims and paths travel in challenges, so a change of hashing (prefixes,
// split point, hash function, empty tree) would fork the chain and make
// old receipts unprovable; this test is what catches it.
func TestMerkleKnownRoots(t *testing.T) {
	roots := []string{
		1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
		2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
		3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
		4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
		5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
		6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
		7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
		8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
	}
	// An empty claim anchors no root: nil, not sha256 of nothing.
	if got := Root(nil); got != nil {
		t.Errorf("Root(nil) = %x, want nil", got)
	}
	for n := 1; n < len(roots); n++ {
		if got, want := hex.EncodeToString(Root(rfc6962(t, n))), roots[n]; got != want {
			t.Errorf("Root of %d leaves = %s, want %s", n, got, want)
		}
	}
}

func TestMerkleKnownPaths(t *testing.T) {
	for _, tc := range []struct {
		n, index int
		want     []string
	}{
		{1, 0, nil},
		{3, 2, []string{"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"}},
		{5, 4, []string{"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
		{7, 3, []string{
			"0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
			"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
			"837dbb152e9b079010717e84e865da4ebc0fa198a806d59d31bf15accef22d0e",
		}},
		{8, 0, []string{
			"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
			"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
			"6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
		}},
		{8, 5, []string{
			"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
			"ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
			"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
		}},
	} {
		t.Run(fmt.Sprintf("%d/%d", tc.index, tc.n), func(t *testing.T) {
			leaves := rfc6962(t, tc.n)
			p := Path(leaves, tc.index)
			var got []string
			for _, h := range p {
				got = append(got, hex.EncodeToString(h))
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Path (-want +got):\n%s", diff)
			}
			if !VerifyPath(Root(leaves), leaves[tc.index], tc.index, tc.n, p) {
				t.Errorf("the pinned path does not verify")
			}
		})
	}
}

// TestDecodeForARotatedProvider: with the provider's current key from the
// chain's listing, only that key's receipts are the provider's, not even
// those of the key its address derives from (which it may have retired
// because it leaked); without one, only the derived key's.
func TestDecodeForARotatedProvider(t *testing.T) {
	_, first, _ := ed25519.GenerateKey(nil)
	_, next, _ := ed25519.GenerateKey(nil)
	provider := addr.FromPubKey(first.Public().(ed25519.PublicKey))
	old, err := Sign(first, &Receipt{ChainId: "c", Seq: 1})
	if err != nil {
		t.Fatal(err)
	}
	cur, err := SignAs(next, provider, &Receipt{ChainId: "c", Seq: 2})
	if err != nil {
		t.Fatal(err)
	}
	listed := next.Public().(ed25519.PublicKey)
	if r, err := DecodeFor(cur, listed); err != nil || r.Provider != provider.String() {
		t.Errorf("the current key's receipt: %v, %v", r, err)
	}
	if _, err := DecodeFor(old, listed); !errors.Is(err, ErrSignature) {
		t.Errorf("the retired (derived) key's receipt, against the listed key: %v", err)
	}
	if _, err := Decode(cur); !errors.Is(err, ErrSignature) {
		t.Errorf("the rotated key's receipt with no listing: %v", err)
	}
	if _, err := Decode(old); err != nil {
		t.Errorf("the derived key's receipt with no listing: %v", err)
	}
	if _, err := DecodeUnbound(cur); err != nil {
		t.Errorf("DecodeUnbound checks only the signature: %v", err)
	}
}
