// Package codes is the one table of on-chain error codes. A code, once
// published, never changes meaning: clients match on it.
package codes

import "errors"

// Codespace names Agora's codes in ABCI responses.
const Codespace = "agora"

// Error is a sentinel with a stable ABCI code. Modules wrap it with context:
// fmt.Errorf("bank: send 5uagr: %w", codes.ErrInsufficientFunds).
type Error struct {
	Code uint32
	Desc string
}

func (e *Error) Error() string { return e.Desc }

// The table. Append only; never renumber.
var (
	ErrInternal          = &Error{1, "internal error"}
	ErrTxDecode          = &Error{2, "malformed transaction"}
	ErrWrongChain        = &Error{3, "wrong chain id"}
	ErrSignature         = &Error{4, "invalid signature"}
	ErrSequence          = &Error{5, "wrong account sequence"}
	ErrInsufficientFee   = &Error{6, "insufficient fee"}
	ErrInsufficientFunds = &Error{7, "insufficient funds"}
	ErrUnknownDenom      = &Error{8, "unknown denom"}
	ErrInvalidAmount     = &Error{9, "invalid amount"}
	ErrUnauthorized      = &Error{10, "unauthorized"}
	ErrInvalidAddress    = &Error{11, "invalid address"}
	ErrUnknownMsg        = &Error{12, "unknown message type"}
	ErrInvalidRequest    = &Error{13, "invalid request"}
	ErrNotFound          = &Error{14, "not found"}
	ErrTxTooLarge        = &Error{15, "transaction too large"}
	ErrInsufficientStake = &Error{16, "insufficient stake"}
	ErrJailed            = &Error{17, "jailed"}
	ErrOutOfGas          = &Error{18, "out of gas"}
	ErrBlockGasFull      = &Error{19, "block gas limit reached"}
	ErrFeeAllowance      = &Error{20, "over the fee allowance"}
	ErrKeyEvidence       = &Error{21, "verifying key without valid setup evidence"}
	ErrAlreadyDisputed   = &Error{22, "receipt already disputed"}
	ErrStakeBacksService = &Error{23, "stake backs a registered service"}
	ErrAgentDisabled     = &Error{24, "agent frozen, revoked or expired"}
	ErrValidatorExists   = &Error{25, "validator or consensus key already exists"}
)

// All lists the table, for docs and for the test that keeps codes unique.
var All = []*Error{
	ErrInternal, ErrTxDecode, ErrWrongChain, ErrSignature, ErrSequence,
	ErrInsufficientFee, ErrInsufficientFunds, ErrUnknownDenom, ErrInvalidAmount,
	ErrUnauthorized, ErrInvalidAddress, ErrUnknownMsg, ErrInvalidRequest,
	ErrNotFound, ErrTxTooLarge, ErrInsufficientStake, ErrJailed,
	ErrOutOfGas, ErrBlockGasFull, ErrFeeAllowance, ErrKeyEvidence,
	ErrAlreadyDisputed, ErrStakeBacksService, ErrAgentDisabled, ErrValidatorExists,
}

// Of returns the code an error carries, ErrInternal's for an error that
// carries none (a bug, not user input), and 0 for nil.
func Of(err error) uint32 {
	if err == nil {
		return 0
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ErrInternal.Code
}
