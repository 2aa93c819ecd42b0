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
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/cometbft/cometbft/crypto/merkle"
	"google.golang.org/protobuf/proto"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/sig"
)

// Header is the HTTP header (and trailer) that carries a receipt.
const Header = "Agora-Receipt"

// GatewayHeader carries a gateway's own receipt for an answer it relayed:
// signed by the gateway, for what its client paid it.
const GatewayHeader = "Agora-Gateway-Receipt"

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

// Sign fills in r's provider (the key's own address) and public key from
// key and returns the encoded, signed receipt.
func Sign(key ed25519.PrivateKey, r *Receipt) (string, error) {
	return SignAs(key, addr.FromPubKey(key.Public().(ed25519.PublicKey)), r)
}

// SignAs is Sign for a provider account that signs with key after a key
// rotation, so that key no longer derives the account's address.
func SignAs(key ed25519.PrivateKey, provider addr.Address, r *Receipt) (string, error) {
	r.PublicKey = key.Public().(ed25519.PublicKey)
	r.Provider = provider.String()
	body, err := deterministic.Marshal(r)
	if err != nil {
		return "", fmt.Errorf("receipt: marshal: %w", err)
	}
	b, err := deterministic.Marshal(&Signed{Body: body, Signature: sig.Sign(key, signBytes(body))})
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Decode parses an encoded receipt and checks its signature and that the
// signer is the provider it names: that its key derives the provider's
// address. It does not check the hashes: Check. A provider that rotated
// its key signs with one that does not: DecodeFor.
func Decode(s string) (*Receipt, error) { return DecodeFor(s, nil) }

// DecodeFor is Decode for a provider whose current key, as the chain's
// provider listing gives it, is key: only a receipt signed by key is the
// provider's, even one signed by the key its address derives from, which
// the provider may have rotated away from because it leaked. An empty
// key (an account that has sent no tx) is Decode.
func DecodeFor(s string, key []byte) (*Receipt, error) {
	r, err := DecodeUnbound(s)
	if err != nil {
		return nil, err
	}
	if len(key) == 0 {
		if addr.FromPubKey(r.PublicKey).String() != r.Provider {
			return nil, fmt.Errorf("%w: signed by key %x, which is not provider %s's", ErrSignature, r.PublicKey, r.Provider)
		}
	} else if !bytes.Equal(key, r.PublicKey) {
		return nil, fmt.Errorf("%w: signed by key %x; provider %s signs with %x", ErrSignature, r.PublicKey, r.Provider, key)
	}
	return r, nil
}

// DecodeUnbound checks a receipt's signature by the key it carries but
// not whose key that is: for the chain, which asks its accounts
// (account.Holds).
func DecodeUnbound(s string) (*Receipt, error) {
	r, sg, err := parse(s)
	if err != nil {
		return nil, err
	}
	if !sig.Verify(r.PublicKey, signBytes(sg.Body), sg.Signature) {
		return nil, fmt.Errorf("%w: signature does not match the receipt", ErrSignature)
	}
	return r, nil
}

// ID names a receipt by what its provider signed (the hash of its body),
// however it is encoded: base64 ignores line breaks, and the envelope may
// carry fields nobody signed, so two encodings can hold one receipt.
func ID(s string) ([]byte, error) {
	_, sg, err := parse(s)
	if err != nil {
		return nil, err
	}
	return Hash(sg.Body), nil
}

// Parse is Decode without the signature and key checks (30 µs): for a party that
// only compares what a receipt says with what its signer says elsewhere,
// such as a payer comparing the price with the charge. Whoever keeps a
// receipt as evidence must Decode it.
func Parse(s string) (*Receipt, error) {
	r, _, err := parse(s)
	return r, err
}

func parse(s string) (*Receipt, *Signed, error) {
	if len(s) > MaxEncoded {
		return nil, nil, fmt.Errorf("%w: %d bytes, limit %d", ErrMalformed, len(s), MaxEncoded)
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: not base64url: %v", ErrMalformed, err)
	}
	var sg Signed
	if err := proto.Unmarshal(b, &sg); err != nil {
		return nil, nil, fmt.Errorf("%w: not a receipt", ErrMalformed)
	}
	var r Receipt
	if err := proto.Unmarshal(sg.Body, &r); err != nil {
		return nil, nil, fmt.Errorf("%w: body is not a receipt", ErrMalformed)
	}
	if len(r.PublicKey) != ed25519.PublicKeySize || len(sg.Signature) != ed25519.SignatureSize {
		return nil, nil, fmt.Errorf("%w: bad key or signature length", ErrMalformed)
	}
	if _, err := addr.Parse(r.Provider); err != nil {
		return nil, nil, fmt.Errorf("%w: provider %q is not an address", ErrMalformed, r.Provider)
	}
	return &r, &sg, nil
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

// Root is the Merkle root of receipt hashes, in order, as RFC 6962 defines
// it (sha256, leaves prefixed 0x00, inner nodes 0x01, split at the largest
// power of two below n); CometBFT's crypto/merkle computes it. A payment
// claim anchors the root of the receipts it pays for.
//
// Root of no leaves is nil, not RFC 6962's sha256 of nothing: a claim for
// no receipts carries an empty root (the channel module takes empty or 32
// bytes), and sending 32 bytes instead would change what such claims put
// on chain and so the app hash.
func Root(leaves [][]byte) []byte {
	if len(leaves) == 0 {
		return nil
	}
	return merkle.HashFromByteSlices(leaves)
}

// Path returns the inclusion path of leaves[index] under Root(leaves): the
// sibling hashes from the leaf's up to the root's child (CometBFT's aunts),
// nil for a single leaf or an index out of range. Paths travel on chain in
// challenges, so their layout is part of the wire format.
func Path(leaves [][]byte, index int) [][]byte {
	if index < 0 || index >= len(leaves) {
		return nil
	}
	// ProofsFromByteSlices builds every leaf's proof to return one, the
	// same O(n) hashing as the root; a path is built only when a verifier
	// challenges a receipt, so the spare proofs cost nothing that matters.
	_, proofs := merkle.ProofsFromByteSlices(leaves)
	if aunts := proofs[index].Aunts; len(aunts) > 0 {
		return aunts
	}
	return nil
}

// VerifyPath checks that leaf is at index among count leaves under root.
func VerifyPath(root, leaf []byte, index, count int, path [][]byte) bool {
	if index < 0 || index >= count || count < 1 {
		return false
	}
	p := merkle.Proof{
		Total: int64(count),
		Index: int64(index),
		// The root of a one-leaf tree is that leaf's hash; crypto/merkle
		// does not export its leaf hash otherwise.
		LeafHash: merkle.HashFromByteSlices([][]byte{leaf}),
		Aunts:    path,
	}
	return p.Verify(root, leaf) == nil
}
