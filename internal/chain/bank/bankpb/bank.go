package bankpb

import (
	"github.com/agoranet/agora/internal/chain/addr"
)

// Name is the module's name and store prefix.
const Name = "bank"

var BalancePrefix = []byte("bank/b/")

// BalanceKey is the store key of addr's balance in denom: a query with a
// Merkle proof for this key proves a balance against the app hash. The
// value is the amount as 8 big-endian bytes.
func BalanceKey(a addr.Address, denom string) []byte {
	k := make([]byte, 0, len(BalancePrefix)+addr.Len+len(denom))
	k = append(k, BalancePrefix...)
	k = append(k, a[:]...)
	return append(k, denom...)
}
