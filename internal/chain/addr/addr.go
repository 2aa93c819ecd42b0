// Package addr defines Agora account addresses: the first 20 bytes of
// sha256(ed25519 public key), written as bech32 with the prefix "agora".
package addr

import (
	"crypto/sha256"
	"errors"
	"fmt"
)

// Prefix is the bech32 human-readable part of every account address.
const Prefix = "agora"

// Len is the length of an address in bytes.
const Len = 20

// ErrInvalid is returned for anything that does not parse as an address.
var ErrInvalid = errors.New("addr: invalid address")

// Address identifies an account.
type Address [Len]byte

// FromPubKey derives the address of an ed25519 public key.
func FromPubKey(pub []byte) Address {
	sum := sha256.Sum256(pub)
	var a Address
	copy(a[:], sum[:Len])
	return a
}

// Module derives the address of a module account, which has no key: nobody
// can sign for it, only the module's code moves its funds.
func Module(name string) Address {
	sum := sha256.Sum256([]byte("agora/module/" + name))
	var a Address
	copy(a[:], sum[:Len])
	return a
}

// String renders the address in bech32.
func (a Address) String() string {
	return encode(Prefix, a[:])
}

// IsZero reports whether a is the all-zero address (never a real account).
func (a Address) IsZero() bool { return a == Address{} }

// Parse decodes a bech32 "agora1…" address.
func Parse(s string) (Address, error) {
	hrp, data, err := decode(s)
	if err != nil {
		return Address{}, fmt.Errorf("%w %q: %v; copy the whole %s1… address again", ErrInvalid, s, err, Prefix)
	}
	if hrp != Prefix {
		return Address{}, fmt.Errorf("%w %q: prefix %q, want %q; this is another chain's address", ErrInvalid, s, hrp, Prefix)
	}
	if len(data) != Len {
		return Address{}, fmt.Errorf("%w %q: %d bytes, want %d", ErrInvalid, s, len(data), Len)
	}
	var a Address
	copy(a[:], data)
	return a, nil
}

// MustParse is Parse for constants in tests and genesis builders.
func MustParse(s string) Address {
	a, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return a
}

// MarshalText makes addresses render as bech32 in JSON.
func (a Address) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText parses bech32 in JSON.
func (a *Address) UnmarshalText(b []byte) error {
	p, err := Parse(string(b))
	if err != nil {
		return err
	}
	*a = p
	return nil
}
