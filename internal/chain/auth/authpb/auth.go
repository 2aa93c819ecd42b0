package authpb

import (
	"github.com/agoranet/agora/internal/chain/addr"
)

// Name is the module's name and store prefix.
const Name = "auth"

// FeePool is the module account that collects fees.
var FeePool = addr.Module("fee_pool")

// DefaultParams are the params of a new chain.
func DefaultParams() *Params {
	return &Params{MinFeePerMsg: 10, MaxMsgs: 64, MaxMemoBytes: 256}
}

// MinFee is the smallest fee a tx with n messages may pay.
func MinFee(p *Params, n int) uint64 { return p.MinFeePerMsg * uint64(n) }
