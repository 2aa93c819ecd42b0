// Package sig verifies ed25519 signatures: with curve25519-voi, about 1.6
// times faster than crypto/ed25519, and configured to accept exactly what
// crypto/ed25519 accepts, so that a signature made by any standard signer
// verifies the same in the chain, in a provider and in a gateway.
package sig

import (
	"crypto/ed25519"

	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

var stdlib = &voi.Options{Verify: voi.VerifyOptionsStdLib}

// Verify reports whether signature is pub's signature of msg; a key or
// signature of the wrong length is false.
func Verify(pub, msg, signature []byte) bool {
	return len(pub) == ed25519.PublicKeySize && len(signature) == ed25519.SignatureSize &&
		voi.VerifyWithOptions(pub, msg, signature, stdlib)
}
