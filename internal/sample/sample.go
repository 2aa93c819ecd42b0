// Package sample is an answer shown to a verifier after the fact by the
// buyer who paid for it: the request, the response and the provider's
// receipt, signed by the buyer. Verifiers take samples only from the payer
// of the receipt's payment, so the audit intake cannot be flooded by
// strangers, and a provider cannot tell an audited answer from any other:
// every buyer samples some of what it buys.
package sample

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/sig"
)

// Path is where a verifier takes samples.
const Path = "/v1/audit"

// Sample is one answer and who paid for it.
type Sample struct {
	Endpoint string `json:"endpoint"` // chat.completions, completions or infer
	Request  string `json:"request"`  // the request body as sent
	Response string `json:"response"` // the response body as received (a stream's events included)
	Receipt  string `json:"receipt"`  // the provider's receipt, encoded

	Payer     string `json:"payer"` // bech32 address of the buyer
	PublicKey []byte `json:"publicKey"`
	Signature []byte `json:"signature"` // by the buyer, over Digest
}

const domain = "agora/audit-sample/v1\x00"

// Digest is what the buyer signs.
func (s *Sample) Digest() []byte {
	h := sha256.New()
	h.Write([]byte(domain))
	for _, f := range []string{s.Endpoint, s.Request, s.Response, s.Receipt, s.Payer} {
		fmt.Fprintf(h, "%d:", len(f))
		h.Write([]byte(f))
	}
	return h.Sum(nil)
}

// Sign signs the sample as the buyer key, for the key's own address.
func (s *Sample) Sign(key ed25519.PrivateKey) {
	s.SignAs(key, addr.FromPubKey(key.Public().(ed25519.PublicKey)).String())
}

// SignAs signs the sample as payer, an account that rotated its key to key.
func (s *Sample) SignAs(key ed25519.PrivateKey, payer string) {
	s.Payer, s.PublicKey = payer, key.Public().(ed25519.PublicKey)
	s.Signature = sig.Sign(key, s.Digest())
}

// Verify checks that the sample is signed by the buyer it names, by the
// key its address derives from.
func (s *Sample) Verify() error {
	if err := s.VerifyUnbound(); err != nil {
		return err
	}
	if !s.KeyDerives() {
		return errors.New("sample: the public key is not the payer's")
	}
	return nil
}

// VerifyUnbound checks the signature by the key the sample carries, not
// whose key that is: a payer that rotated its key signs with one its
// address does not derive from, which only the chain can vouch for.
func (s *Sample) VerifyUnbound() error {
	if len(s.PublicKey) != ed25519.PublicKeySize || !sig.Verify(s.PublicKey, s.Digest(), s.Signature) {
		return errors.New("sample: the signature does not match")
	}
	return nil
}

// KeyDerives reports whether the sample's key is the one its payer's
// address derives from.
func (s *Sample) KeyDerives() bool { return addr.FromPubKey(s.PublicKey).String() == s.Payer }

// Endpoint names the inference endpoint of a request path, or "".
func Endpoint(path string) string {
	switch {
	case strings.HasSuffix(path, "/v1/chat/completions"):
		return "chat.completions"
	case strings.HasSuffix(path, "/v1/completions"):
		return "completions"
	case strings.HasSuffix(path, "/v1/responses"):
		return "responses"
	case strings.HasSuffix(path, "/v1/infer"):
		return "infer"
	}
	return ""
}
