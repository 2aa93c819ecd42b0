package verifier

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/auth/authpb"
	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/channel/channelpb"
	"github.com/agoranet/agora/internal/chain/provider/providerpb"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/receipt"
)

// intake decides which samples the verifier takes: signed by the buyer
// that paid for the receipt's answer (so nobody floods the queue with
// others' receipts or made-up ones), each receipt once, and at most
// intakeRate a second from any one buyer.
type intake struct {
	chain *client.Client

	mu        sync.Mutex
	channels  map[uint64]*channelpb.Channel // by id; nil: no such channel
	providers map[string]listed             // registered or not, as last read
	keys      map[string]time.Time          // account/key pairs the chain said are current, and when
	seen      map[string]bool               // receipt ids taken
	buckets   map[string]*bucket
	all       bucket // every buyer's together
	height    int64
	heightAt  time.Time
}

const (
	intakeRate  = 200  // samples a second, per buyer (a gateway buys many)
	intakeBurst = 2000 // and at once
	totalRate   = 2000 // samples a second from everyone
	intakeSeen  = 1 << 17
	intakeCache = 1 << 16
)

type bucket struct {
	tokens float64
	at     time.Time
}

func newIntake(c *client.Client) *intake {
	return &intake{chain: c, channels: map[uint64]*channelpb.Channel{}, providers: map[string]listed{}, keys: map[string]time.Time{}, seen: map[string]bool{},
		buckets: map[string]*bucket{}, all: bucket{tokens: totalRate, at: time.Now()}}
}

// admit returns nil for a sample to audit, or the HTTP status and reason
// it is refused.
func (in *intake) admit(ctx context.Context, smp *Sample) (int, error) {
	if err := smp.VerifyUnbound(); err != nil {
		return http.StatusUnauthorized, err
	}
	// Whose key signed it is the chain's to say: a payer may have rotated
	// away from the key its address derives from.
	if _, err := addr.Parse(smp.Payer); err != nil {
		return http.StatusUnauthorized, fmt.Errorf("sample: payer %q is not an address", smp.Payer)
	}
	if ok, err := in.keyIs(ctx, smp.Payer, smp.PublicKey); err != nil {
		return http.StatusServiceUnavailable, err
	} else if !ok {
		return http.StatusUnauthorized, errors.New("sample: the public key is not the one the payer signs with")
	}
	r, err := receipt.DecodeUnbound(smp.Receipt)
	if err != nil {
		return http.StatusBadRequest, err
	}
	h, err := in.chainHeight(ctx)
	if err != nil {
		return http.StatusServiceUnavailable, err
	}
	chainID, err := in.chain.ChainID(ctx)
	if err != nil {
		return http.StatusServiceUnavailable, err
	}
	if err := receipt.Fresh(r, chainID, h); err != nil {
		return http.StatusBadRequest, err
	}
	if l, err := in.registered(ctx, r.Provider); err != nil {
		return http.StatusServiceUnavailable, err
	} else if !l.ok {
		return http.StatusForbidden, fmt.Errorf("%s is not a registered provider", r.Provider)
	} else if _, err := receipt.DecodeFor(smp.Receipt, l.key); err != nil {
		return http.StatusBadRequest, err
	}
	payer, err := in.payerOf(ctx, r)
	if err != nil {
		return http.StatusServiceUnavailable, err
	}
	if payer != smp.Payer {
		return http.StatusForbidden, fmt.Errorf("the receipt's payment %q was not made by %s to its provider; a buyer samples only the answers it paid for", r.PaymentRef, smp.Payer)
	}
	// Only a proven buyer spends the rate: strangers cannot use it up.
	if !in.take(smp.Payer) {
		return http.StatusTooManyRequests, fmt.Errorf("more than %d samples a second from %s, or %d from everyone", intakeRate, smp.Payer, totalRate)
	}
	id, _ := receipt.ID(smp.Receipt)
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.seen[string(id)] {
		return http.StatusConflict, errors.New("this receipt has been sampled already")
	}
	if len(in.seen) >= intakeSeen {
		clear(in.seen)
	}
	in.seen[string(id)] = true
	return 0, nil
}

// forget un-takes a sample that was admitted but could not be queued, so
// that its buyer may send it again.
func (in *intake) forget(smp *Sample) {
	if id, err := receipt.ID(smp.Receipt); err == nil {
		in.mu.Lock()
		delete(in.seen, string(id))
		in.mu.Unlock()
	}
}

// chainHeight is the chain's height, read at most every 2 s.
func (in *intake) chainHeight(ctx context.Context) (int64, error) {
	in.mu.Lock()
	h, fresh := in.height, time.Since(in.heightAt) < 2*time.Second
	in.mu.Unlock()
	if fresh {
		return h, nil
	}
	st, err := in.chain.Status(ctx)
	if err != nil {
		return 0, fmt.Errorf("verifier: the chain: %w", err)
	}
	in.mu.Lock()
	in.height, in.heightAt = st.Height, time.Now()
	in.mu.Unlock()
	return st.Height, nil
}

// registered tells whether addr is a registered provider (cached).
func (in *intake) registered(ctx context.Context, addr string) (listed, error) {
	in.mu.Lock()
	l, known := in.providers[addr]
	in.mu.Unlock()
	if known && time.Since(l.at) < listingTTL {
		return l, nil
	}
	info, err := client.Ask(ctx, in.chain, providerpb.QueryProvider, &providerpb.QueryProviderRequest{Address: addr})
	if err != nil && !notFound(err) {
		return listed{}, fmt.Errorf("verifier: read provider %s: %w", addr, err)
	}
	l = listed{ok: err == nil, key: info.GetPublicKey(), at: time.Now()}
	in.mu.Lock()
	if len(in.providers) > intakeCache {
		clear(in.providers)
	}
	in.providers[addr] = l
	in.mu.Unlock()
	return l, nil
}

// keyIs reports whether account signs with pub now, as the chain said
// within listingTTL.
func (in *intake) keyIs(ctx context.Context, account string, pub []byte) (bool, error) {
	k := account + "/" + string(pub)
	in.mu.Lock()
	at, known := in.keys[k]
	in.mu.Unlock()
	if known && time.Since(at) < listingTTL {
		return true, nil
	}
	r, err := client.Ask(ctx, in.chain, authpb.QueryKey, &authpb.QueryKeyRequest{Account: account, PublicKey: pub})
	if err != nil {
		return false, fmt.Errorf("verifier: read %s's key: %w", account, err)
	}
	if r.Current {
		in.mu.Lock()
		if len(in.keys) > intakeCache {
			clear(in.keys)
		}
		in.keys[k] = time.Now()
		in.mu.Unlock()
	}
	return r.Current, nil
}

// listed is what the chain said of a provider: whether it is registered,
// and the key it signs receipts with.
type listed struct {
	ok  bool
	key []byte
	at  time.Time
}

// listingTTL is how long a provider's listing is trusted: a provider that
// rotates its key is sampled again within this.
const listingTTL = time.Minute

// take spends one of payer's tokens and one of everyone's.
func (in *intake) take(payer string) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	now := time.Now()
	b := in.buckets[payer]
	if b == nil {
		if len(in.buckets) > intakeCache {
			clear(in.buckets)
		}
		b = &bucket{tokens: intakeBurst, at: now}
		in.buckets[payer] = b
	}
	b.refill(now, intakeRate, intakeBurst)
	in.all.refill(now, totalRate, totalRate)
	if b.tokens < 1 || in.all.tokens < 1 {
		return false
	}
	b.tokens--
	in.all.tokens--
	return true
}

func (b *bucket) refill(now time.Time, rate, burst float64) {
	b.tokens = min(burst, b.tokens+now.Sub(b.at).Seconds()*rate)
	b.at = now
}

// payerOf is who made the payment a receipt names: the payer of a channel
// that pays the receipt's provider, or an exact transfer's sender.
func (in *intake) payerOf(ctx context.Context, r *receipt.Receipt) (string, error) {
	kind, rest, _ := strings.Cut(r.PaymentRef, ":")
	switch kind {
	case "exact":
		// The transfer must be on chain: its nonce used by its sender.
		from, nonceHex, _ := strings.Cut(rest, ":")
		nonce, err := hex.DecodeString(nonceHex)
		if err != nil {
			return "", nil
		}
		used, err := client.Ask(ctx, in.chain, bankpb.QueryNonce, &bankpb.QueryNonceRequest{Address: from, Nonce: nonce})
		if err != nil {
			if notFound(err) {
				return "", nil
			}
			return "", fmt.Errorf("verifier: read %s's nonce: %w", from, err)
		}
		if !used.Used {
			return "", nil
		}
		return from, nil
	case "channel":
		idText, _, _ := strings.Cut(rest, ":")
		id, err := strconv.ParseUint(idText, 10, 64)
		if err != nil {
			return "", nil
		}
		in.mu.Lock()
		ch, known := in.channels[id]
		in.mu.Unlock()
		if !known {
			got, err := client.Ask(ctx, in.chain, channelpb.QueryChannel, &channelpb.QueryChannelRequest{Id: id})
			if err != nil && !notFound(err) {
				return "", fmt.Errorf("verifier: read channel %d: %w", id, err)
			}
			if err == nil {
				ch = got
			}
			in.mu.Lock()
			if len(in.channels) > intakeCache {
				clear(in.channels)
			}
			in.channels[id] = ch // nil: no such channel, remembered too
			in.mu.Unlock()
		}
		if ch == nil || ch.Payee != r.Provider {
			return "", nil
		}
		return ch.Payer, nil
	}
	return "", nil
}

// notFound tells whether err is the chain saying "no such thing" (rather
// than failing to answer, which is not remembered).
func notFound(err error) bool {
	var ce *client.ChainError
	return errors.As(err, &ce) && ce.Code == 14
}
