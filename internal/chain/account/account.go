// Package account keeps the chain's accounts: each address's sequence and
// the key it signs with. An address is first the hash of a key
// (addr.FromPubKey), but an account may rotate its key and keep its
// address, so "is this key this account's?" is a question for the state,
// answered here for every module that checks a key: the tx signer (auth),
// a bank authorization, a channel's payer key, a disputed receipt.
package account

import (
	"bytes"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/auth/authpb"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/store"
)

var prefix = []byte("auth/a/")

func key(a addr.Address) []byte { return append(append([]byte(nil), prefix...), a[:]...) }

// Get returns a's account, or a fresh one at sequence 0 with no key.
func Get(kv store.Reader, a addr.Address) *authpb.Account {
	acc := &authpb.Account{}
	if v := kv.Get(key(a)); v != nil {
		if err := proto.Unmarshal(v, acc); err != nil {
			panic(store.IOError{Err: fmt.Errorf("account %s corrupt: %w", a, err)})
		}
	}
	acc.Address = a.String()
	return acc
}

// Put stores acc under a.
func Put(kv store.KV, a addr.Address, acc *authpb.Account) {
	kv.Set(key(a), module.MustMarshal(acc))
}

// Holds reports whether pub is the key a signs with now: the account's
// key, or for an account that has none yet, the key a was derived from.
func Holds(kv store.Reader, a addr.Address, pub []byte) bool {
	return held(Get(kv, a), a, pub)
}

func held(acc *authpb.Account, a addr.Address, pub []byte) bool {
	if len(acc.PublicKey) > 0 {
		return bytes.Equal(acc.PublicKey, pub)
	}
	return addr.FromPubKey(pub) == a
}

// Describe says whether pub is a's key now, or when a rotated away from
// it (a retired key never returns: MsgRotateKey refuses it).
func Describe(kv store.Reader, a addr.Address, pub []byte) *authpb.QueryKeyResponse {
	acc := Get(kv, a)
	out := &authpb.QueryKeyResponse{Current: held(acc, a, pub)}
	for _, r := range acc.RetiredKeys {
		if bytes.Equal(r.PublicKey, pub) {
			out.RetiredAt = r.Until
		}
	}
	return out
}
