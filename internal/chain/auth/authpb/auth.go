package authpb

import (
	"github.com/agoranet/agora/internal/chain/addr"
)

// Name is the module's name and store prefix.
const Name = "auth"

// SimulatePath is the query path that estimates a tx's gas: data is a
// signed tx (its sequence, gas limit and fee minimum are ignored), the
// answer a SimulateResponse.
const SimulatePath = "/app/simulate"

// FeePool is the module account that collects fees.
var FeePool = addr.Module("fee_pool")

// DefaultParams are the params of a new chain: 0.001uagr per gas, so a
// transfer (about 60,000 gas) costs about 60uagr; one tx may use up to
// 100 ms of reference execution and a block 300 ms.
func DefaultParams() *Params {
	return &Params{MaxMsgs: 64, MaxMemoBytes: 256, MinGasPrice: 1_000, MaxTxGas: 100_000_000, BlockGasLimit: 300_000_000}
}

// MinFee is the smallest fee, in uagr, for a gas limit: gas limit × the
// minimum gas price, rounded up. Gas limits are capped by MaxTxGas, so
// the product cannot overflow for any sane price.
func MinFee(p *Params, gasLimit uint64) uint64 {
	return (gasLimit*p.MinGasPrice + 999_999) / 1_000_000
}
