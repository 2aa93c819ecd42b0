package verifier

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agoranet/agora/internal/chain/channel/channelpb"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/receipt"
)

// intake decides which samples the verifier takes: signed by the buyer
// that paid for the receipt's answer (so nobody floods the queue with
// others' receipts or made-up ones), each receipt once, and at most
// intakeRate a second from any one buyer.
type intake struct {
	chain *client.Client

	mu      sync.Mutex
	payers  map[uint64]string // channel id -> its payer (never changes)
	seen    map[string]bool   // receipt hashes taken
	buckets map[string]*bucket
}

const (
	intakeRate  = 200  // samples a second, per buyer (a gateway buys many)
	intakeBurst = 2000 // and at once
	intakeSeen  = 1 << 17
)

type bucket struct {
	tokens float64
	at     time.Time
}

func newIntake(c *client.Client) *intake {
	return &intake{chain: c, payers: map[uint64]string{}, seen: map[string]bool{}, buckets: map[string]*bucket{}}
}

// admit returns nil for a sample to audit, or the HTTP status and reason
// it is refused.
func (in *intake) admit(ctx context.Context, smp *Sample) (int, error) {
	if err := smp.Verify(); err != nil {
		return http.StatusUnauthorized, err
	}
	r, err := receipt.Decode(smp.Receipt)
	if err != nil {
		return http.StatusBadRequest, err
	}
	if !in.take(smp.Payer) {
		return http.StatusTooManyRequests, fmt.Errorf("more than %d samples a second from %s", intakeRate, smp.Payer)
	}
	payer, err := in.payerOf(ctx, r.PaymentRef)
	if err != nil {
		return http.StatusServiceUnavailable, err
	}
	if payer != smp.Payer {
		return http.StatusForbidden, fmt.Errorf("the receipt's payment %q was not made by %s; a buyer samples only the answers it paid for", r.PaymentRef, smp.Payer)
	}
	h := string(receipt.Hash([]byte(smp.Receipt)))
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.seen[h] {
		return http.StatusConflict, errors.New("this receipt has been sampled already")
	}
	if len(in.seen) >= intakeSeen {
		clear(in.seen)
	}
	in.seen[h] = true
	return 0, nil
}

// take spends one of payer's tokens.
func (in *intake) take(payer string) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	now := time.Now()
	b := in.buckets[payer]
	if b == nil {
		if len(in.buckets) > 1<<16 {
			clear(in.buckets)
		}
		b = &bucket{tokens: intakeBurst, at: now}
		in.buckets[payer] = b
	}
	b.tokens = min(intakeBurst, b.tokens+now.Sub(b.at).Seconds()*intakeRate)
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// payerOf is who made the payment a receipt names: a channel's payer, or
// an exact transfer's sender.
func (in *intake) payerOf(ctx context.Context, ref string) (string, error) {
	kind, rest, _ := strings.Cut(ref, ":")
	switch kind {
	case "exact":
		from, _, _ := strings.Cut(rest, ":")
		return from, nil
	case "channel":
		idText, _, _ := strings.Cut(rest, ":")
		id, err := strconv.ParseUint(idText, 10, 64)
		if err != nil {
			return "", nil
		}
		in.mu.Lock()
		p, ok := in.payers[id]
		in.mu.Unlock()
		if ok {
			return p, nil
		}
		ch, err := client.Ask(ctx, in.chain, channelpb.QueryChannel, &channelpb.QueryChannelRequest{Id: id})
		if err != nil {
			var ce *client.ChainError
			if errors.As(err, &ce) {
				return "", nil // no such channel: nobody's payment
			}
			return "", fmt.Errorf("verifier: read channel %d: %w", id, err)
		}
		in.mu.Lock()
		if len(in.payers) > 1<<16 {
			clear(in.payers)
		}
		in.payers[id] = ch.Payer
		in.mu.Unlock()
		return ch.Payer, nil
	}
	return "", nil
}
