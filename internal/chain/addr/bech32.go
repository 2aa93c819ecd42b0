package addr

import (
	"errors"
	"fmt"

	"github.com/btcsuite/btcd/btcutil/bech32"
)

// Bech32 (BIP-173) comes from btcutil, which CometBFT already brings into
// the build. This file adapts it to fixed-size payloads and turns its
// errors into reasons a person can act on: its checksum error spells out
// the correct checksum, which would let a mistyped address be "fixed" into
// someone else's.

func encode(hrp string, payload []byte) string {
	s, err := bech32.EncodeFromBase256(hrp, payload)
	if err != nil {
		// Regrouping bytes into 5-bit groups always yields valid symbols.
		panic("addr: bech32 encode: " + err.Error())
	}
	return s
}

func decode(s string) (string, []byte, error) {
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
