// Package coin holds amounts of a denomination and their checked arithmetic.
// Amounts are uint64 in the denom's smallest unit; every sum is checked, so
// an overflow is an error, never a wrap.
package coin

import (
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"

	"github.com/agoranet/agora/internal/chain/codes"
)

// The two denominations every Agora chain has.
const (
	Native = "uagr"  // staking and fees
	Stable = "uusdc" // a stable unit minted by the issuer named in genesis
)

// New returns a Coin.
func New(denom string, amount uint64) *Coin { return &Coin{Denom: denom, Amount: amount} }

// String renders "5000uagr".
func String(c *Coin) string {
	if c == nil {
		return "0"
	}
	return strconv.FormatUint(c.Amount, 10) + c.Denom
}

// ValidDenom reports whether s is a well-formed denom name: 2 to 32 lower
// case letters, digits or '/', starting with a letter.
func ValidDenom(s string) bool {
	if len(s) < 2 || len(s) > 32 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '/') {
			return false
		}
	}
	return true
}

// Parse reads "5000uagr". Zero is allowed here; Validate refuses it where a
// positive amount is needed.
func Parse(s string) (*Coin, error) {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return nil, fmt.Errorf("coin: %q is not an amount like 5000uagr: %w", s, codes.ErrInvalidAmount)
	}
	n, err := strconv.ParseUint(s[:i], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("coin: %q does not fit in 64 bits: %w", s, codes.ErrInvalidAmount)
	}
	denom := s[i:]
	if !ValidDenom(denom) {
		return nil, fmt.Errorf("coin: %q has no valid denom after the number (like uagr): %w", s, codes.ErrInvalidAmount)
	}
	return New(denom, n), nil
}

// ParseList reads "5uagr,3uusdc" into a validated list.
func ParseList(s string) ([]*Coin, error) {
	var out []*Coin
	for _, part := range strings.Split(s, ",") {
		c, err := Parse(part)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, Validate(out)
}

// Validate checks a list of coins as a message carries it: non-empty,
// positive amounts, valid denoms, each denom once.
func Validate(cs []*Coin) error {
	if len(cs) == 0 {
		return fmt.Errorf("coin: no amount given: %w", codes.ErrInvalidAmount)
	}
	seen := make(map[string]bool, len(cs))
	for _, c := range cs {
		if err := ValidatePositive(c); err != nil {
			return err
		}
		if seen[c.Denom] {
			return fmt.Errorf("coin: denom %s given twice: %w", c.Denom, codes.ErrInvalidAmount)
		}
		seen[c.Denom] = true
	}
	return nil
}

// ValidatePositive checks one coin: valid denom, amount above zero.
func ValidatePositive(c *Coin) error {
	if c == nil {
		return fmt.Errorf("coin: missing amount: %w", codes.ErrInvalidAmount)
	}
	if !ValidDenom(c.Denom) {
		return fmt.Errorf("coin: bad denom %q: %w", c.Denom, codes.ErrInvalidAmount)
	}
	if c.Amount == 0 {
		return fmt.Errorf("coin: amount of %s must be positive: %w", c.Denom, codes.ErrInvalidAmount)
	}
	return nil
}

// ErrOverflow is returned when a sum does not fit in 64 bits.
var ErrOverflow = fmt.Errorf("coin: amount overflows 64 bits: %w", codes.ErrInvalidAmount)

// Add returns a+b or ErrOverflow.
func Add(a, b uint64) (uint64, error) {
	s, carry := bits.Add64(a, b, 0)
	if carry != 0 {
		return 0, ErrOverflow
	}
	return s, nil
}

// Mul returns a*b or ErrOverflow.
func Mul(a, b uint64) (uint64, error) {
	hi, lo := bits.Mul64(a, b)
	if hi != 0 {
		return 0, ErrOverflow
	}
	return lo, nil
}

// IsOverflow reports whether err came from Add or Mul.
func IsOverflow(err error) bool { return errors.Is(err, ErrOverflow) }
