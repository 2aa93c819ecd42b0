package addr

import (
	"errors"
	"fmt"
	"strings"

	"github.com/btcsuite/btcd/btcutil/bech32"
)

// Bech32 (BIP-173) comes from btcutil, which CometBFT already brings into
// the build. This file adapts it to fixed-size payloads and turns its
// errors into reasons a person can act on: its checksum error spells out
// the correct checksum, which would let a mistyped address be "fixed" into
// someone else's.

const charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"

// charValue maps a lower-case bech32 character to its 5-bit value; -1 for
// any other byte.
var charValue = func() (v [256]int8) {
	for i := range v {
		v[i] = -1
	}
	for i, c := range charset {
		v[c] = int8(i)
	}
	return v
}()

// polymod advances BIP-173's checksum by one 5-bit value (branch-free:
// each generator is XORed in under a mask made from one bit of the top).
func polymod(chk uint32, v byte) uint32 {
	b := chk >> 25
	chk = (chk&0x1ffffff)<<5 ^ uint32(v)
	chk ^= -(b & 1) & 0x3b6a57b2
	chk ^= -(b >> 1 & 1) & 0x26508e6d
	chk ^= -(b >> 2 & 1) & 0x1ea119fa
	chk ^= -(b >> 3 & 1) & 0x3d4233dd
	chk ^= -(b >> 4 & 1) & 0x2a1462b3
	return chk
}

// prefixChecksum is hrpChecksum(Prefix), which every address starts from.
var prefixChecksum = hrpChecksumOf(Prefix)

func hrpChecksum(hrp string) uint32 {
	if hrp == Prefix {
		return prefixChecksum
	}
	return hrpChecksumOf(hrp)
}

func hrpChecksumOf(hrp string) uint32 {
	chk := uint32(1)
	for i := range len(hrp) {
		chk = polymod(chk, hrp[i]>>5)
	}
	chk = polymod(chk, 0)
	for i := range len(hrp) {
		chk = polymod(chk, hrp[i]&31)
	}
	return chk
}

// encode is bech32 of payload under a lower-case hrp. It is written out
// rather than taken from btcutil, which costs about 2 µs an address with
// its allocations: a transfer's execution renders addresses a dozen times.
func encode(hrp string, payload []byte) string {
	n := (len(payload)*8 + 4) / 5
	out := make([]byte, 0, len(hrp)+1+n+6)
	out = append(out, hrp...)
	out = append(out, '1')
	chk := hrpChecksum(hrp)
	var acc uint32
	bits := 0
	emit := func(v byte) {
		chk = polymod(chk, v)
		out = append(out, charset[v])
	}
	for _, b := range payload {
		acc = acc<<8 | uint32(b)
		bits += 8
		for bits >= 5 {
			bits -= 5
			emit(byte(acc >> bits & 31))
		}
	}
	if bits > 0 {
		emit(byte(acc << (5 - bits) & 31))
	}
	for range 6 {
		chk = polymod(chk, 0)
	}
	chk ^= 1
	for i := range 6 {
		out = append(out, charset[chk>>(5*(5-i))&31])
	}
	return string(out)
}

// decode parses a bech32 string into its hrp and payload. Valid input is
// parsed here without allocating more than the payload; anything else goes
// to btcutil, for the reason it is not valid.
func decode(s string) (string, []byte, error) {
	if hrp, payload, ok := decodeFast(s); ok {
		return hrp, payload, nil
	}
	hrp, data, version, err := bech32.DecodeGeneric(s)
	if err != nil {
		return "", nil, reason(err)
	}
	// DecodeGeneric also accepts bech32m (BIP-350) checksums; addresses have
	// only ever been bech32, so one string must not have two checksums.
	if version != bech32.Version0 {
		return "", nil, errors.New("bech32m checksum, addresses use bech32")
	}
	payload, err := bech32.ConvertBits(data, 5, 8, false)
	if err != nil {
		return "", nil, errors.New("invalid padding")
	}
	return hrp, payload, nil
}

// decodeFast accepts only valid lower-case bech32 (upper case and every
// error take the slow path).
func decodeFast(s string) (string, []byte, bool) {
	sep := strings.LastIndexByte(s, '1')
	if len(s) < 8 || len(s) > 90 || sep < 1 || sep+7 > len(s) {
		return "", nil, false
	}
	hrp := s[:sep]
	for i := range len(hrp) {
		if c := hrp[i]; c < 33 || c > 126 || c >= 'A' && c <= 'Z' {
			return "", nil, false
		}
	}
	chk := hrpChecksum(hrp)
	data := s[sep+1:]
	payload := make([]byte, 0, (len(data)-6)*5/8)
	var acc uint32
	bits := 0
	for i := range len(data) {
		v := charValue[data[i]]
		if v < 0 {
			return "", nil, false
		}
		chk = polymod(chk, byte(v))
		if i >= len(data)-6 {
			continue // the checksum
		}
		acc = acc<<5 | uint32(v)
		bits += 5
		if bits >= 8 {
			bits -= 8
			payload = append(payload, byte(acc>>bits))
		}
	}
	// Padding: fewer than 5 bits left over, all zero.
	if chk != 1 || bits >= 5 || acc&(1<<bits-1) != 0 {
		return "", nil, false
	}
	return hrp, payload, true
}

func reason(err error) error {
	var (
		length    bech32.ErrInvalidLength
		char      bech32.ErrInvalidCharacter
		separator bech32.ErrInvalidSeparatorIndex
		nonset    bech32.ErrNonCharsetChar
		checksum  bech32.ErrInvalidChecksum
		mixed     bech32.ErrMixedCase
	)
	switch {
	case errors.As(err, &length):
		return fmt.Errorf("bad length %d, bech32 is 8 to 90 characters", int(length))
	case errors.As(err, &char):
		return fmt.Errorf("bad character %q", rune(char))
	case errors.As(err, &separator):
		return errors.New("missing separator \"1\" before the 6-character checksum")
	case errors.As(err, &nonset):
		return fmt.Errorf("bad character %q, bech32 has no b, i, o or 1 after the separator", rune(nonset))
	case errors.As(err, &checksum):
		return errors.New("bad checksum, a character is wrong, missing or swapped")
	case errors.As(err, &mixed):
		return errors.New("mixed case")
	}
	return err
}
