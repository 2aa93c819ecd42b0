// Package receipt signs and verifies the receipts that bind each answer a
// provider gives to the provider, the model, the request and the response.
//
// A receipt travels in the Agora-Receipt HTTP header (and, for streams, in
// a trailer and a final event) as base64url of a Signed message. Anyone
// holding the request and the response can check it offline: the hashes
// must match and the signature must be the provider's. Receipts are later
// anchored on chain in payment claims, which makes a lie provable.
package receipt

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/agoranet/agora/internal/chain/addr"
)

// Header is the HTTP header (and trailer) that carries a receipt.
const Header = "Agora-Receipt"

// Domain separates receipt signatures from transactions and vouchers.
const Domain = "agora/receipt/v1\x00"

// MaxEncoded bounds an encoded receipt, so a decoder never reads much.
const MaxEncoded = 4096

// Sentinel errors for errors.Is.
var (
	ErrMalformed = errors.New("receipt: malformed")
	ErrSignature = errors.New("receipt: bad signature")
	ErrMismatch  = errors.New("receipt: does not match")
)

var deterministic = proto.MarshalOptions{Deterministic: true}

func signBytes(body []byte) []byte { return append([]byte(Domain), body...) }

// Sign fills in r's provider and public key from key and returns the
// encoded, signed receipt.
func Sign(key ed25519.PrivateKey, r *Receipt) (string, error) {
	pub := key.Public().(ed25519.PublicKey)
	r.PublicKey = pub
	r.Provider = addr.FromPubKey(pub).String()
	body, err := deterministic.Marshal(r)
	if err != nil {
		return "", fmt.Errorf("receipt: marshal: %w", err)
	}
	b, err := deterministic.Marshal(&Signed{Body: body, Signature: ed25519.Sign(key, signBytes(body))})
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Decode parses an encoded receipt and checks its signature and that the
// signer is the provider it names. It does not check the hashes: Check.
func Decode(s string) (*Receipt, error) {
	if len(s) > MaxEncoded {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrMalformed, len(s), MaxEncoded)
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: not base64url: %v", ErrMalformed, err)
	}
	var sg Signed
	if err := proto.Unmarshal(b, &sg); err != nil {
		return nil, fmt.Errorf("%w: not a receipt", ErrMalformed)
	}
	var r Receipt
	if err := proto.Unmarshal(sg.Body, &r); err != nil {
		return nil, fmt.Errorf("%w: body is not a receipt", ErrMalformed)
	}
	if len(r.PublicKey) != ed25519.PublicKeySize || len(sg.Signature) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: bad key or signature length", ErrMalformed)
	}
	if got := addr.FromPubKey(r.PublicKey).String(); got != r.Provider {
		return nil, fmt.Errorf("%w: signed by %s, names provider %s", ErrSignature, got, r.Provider)
	}
	if !ed25519.Verify(r.PublicKey, signBytes(sg.Body), sg.Signature) {
		return nil, fmt.Errorf("%w: signature does not match the receipt", ErrSignature)
	}
	return &r, nil
}

// Hash is the hash receipts use for requests and responses.
func Hash(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// Check verifies that r covers this canonical request and response body.
func Check(r *Receipt, canonicalRequest, response []byte) error {
	if string(r.RequestHash) != string(Hash(canonicalRequest)) {
		return fmt.Errorf("%w: request hash %x, the request hashes to %x", ErrMismatch, r.RequestHash, Hash(canonicalRequest))
	}
	if string(r.ResponseHash) != string(Hash(response)) {
		return fmt.Errorf("%w: response hash %x, the response hashes to %x", ErrMismatch, r.ResponseHash, Hash(response))
	}
	return nil
}

// Root is the Merkle root of receipt hashes, in order: sha256 over pairs,
// an odd last node carried up as is, leaves and inner nodes separated by
// a prefix byte. A payment claim anchors the root of the receipts it pays
// for; nil for none.
func Root(leaves [][]byte) []byte {
	if len(leaves) == 0 {
		return nil
	}
	level := make([][]byte, len(leaves))
	for i, l := range leaves {
		level[i] = leafHash(l)
	}
	for len(level) > 1 {
		next := level[:0:0]
		for i := 0; i < len(level); i += 2 {
			if i+1 == len(level) {
				next = append(next, level[i])
				continue
			}
			next = append(next, nodeHash(level[i], level[i+1]))
		}
		level = next
	}
	return level[0]
}

func leafHash(l []byte) []byte {
	h := sha256.Sum256(append([]byte{0}, l...))
	return h[:]
}

func nodeHash(a, b []byte) []byte {
	h := sha256.Sum256(append(append([]byte{1}, a...), b...))
	return h[:]
}

// Path returns the inclusion path of leaves[index] under Root(leaves): the
// sibling at each level, bottom up (none where the node is carried up).
func Path(leaves [][]byte, index int) [][]byte {
	if index < 0 || index >= len(leaves) {
		return nil
	}
	level := make([][]byte, len(leaves))
	for i, l := range leaves {
		level[i] = leafHash(l)
	}
	var path [][]byte
	for len(level) > 1 {
		if sib := index ^ 1; sib < len(level) {
			path = append(path, level[sib])
		}
		next := level[:0:0]
		for i := 0; i < len(level); i += 2 {
			if i+1 == len(level) {
				next = append(next, level[i])
			} else {
				next = append(next, nodeHash(level[i], level[i+1]))
			}
		}
		level, index = next, index/2
	}
	return path
}

// VerifyPath checks that leaf is at index among count leaves under root.
func VerifyPath(root, leaf []byte, index, count int, path [][]byte) bool {
	if index < 0 || index >= count || count < 1 {
		return false
	}
	h := leafHash(leaf)
	for size := count; size > 1; size = (size + 1) / 2 {
		if index^1 < size { // has a sibling at this level
			if len(path) == 0 {
				return false
			}
			if index%2 == 0 {
				h = nodeHash(h, path[0])
			} else {
				h = nodeHash(path[0], h)
			}
			path = path[1:]
		}
		index /= 2
	}
	return len(path) == 0 && string(h) == string(root)
}
