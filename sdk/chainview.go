package sdk

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/agoranet/agora/internal/chain/provider/providerpb"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/openai"
	"github.com/agoranet/agora/internal/sample"
)

// chainView is what the payer reads from the chain to check what payees
// tell it: the price each provider registered, and the height (for channel
// expiry). Both are cached, so that the hot path asks the chain at most
// every few seconds.
type chainView struct {
	c *client.Client

	mu       sync.Mutex
	height   int64
	heightAt time.Time
	services map[string]servicesAt // by provider address
	reading  map[string]bool       // providers whose prices are being reread
}

type servicesAt struct {
	at       time.Time
	services []*providerpb.Service // nil: not a registered provider
}

const (
	heightTTL  = 2 * time.Second
	serviceTTL = 30 * time.Second
)

// Height is the chain's height, at most heightTTL old.
func (v *chainView) Height(ctx context.Context) (int64, error) {
	v.mu.Lock()
	h, fresh := v.height, time.Since(v.heightAt) < heightTTL
	v.mu.Unlock()
	if fresh {
		return h, nil
	}
	return v.Latest(ctx)
}

// Latest asks the chain for its height now.
func (v *chainView) Latest(ctx context.Context) (int64, error) {
	st, err := v.c.Status(ctx)
	if err != nil {
		return 0, err
	}
	v.mu.Lock()
	v.height, v.heightAt = max(v.height, st.Height), time.Now()
	h := v.height
	v.mu.Unlock()
	return h, nil
}

// Service is what payee registered for model, or nil when payee is not a
// registered provider (a gateway, say). A registered provider that does
// not offer model is an error: it asks to be paid for a service it never
// put a price on.
func (v *chainView) Service(ctx context.Context, payee, model string) (*providerpb.Service, error) {
	v.mu.Lock()
	e, ok := v.services[payee]
	stale := ok && time.Since(e.at) > serviceTTL && !v.reading[payee]
	if stale {
		v.reading[payee] = true
	}
	v.mu.Unlock()
	switch {
	case !ok:
		var err error
		if e, err = v.readServices(ctx, payee); err != nil {
			return nil, err
		}
	case stale:
		// The prices read before stand (they change rarely) while they
		// are read again, off the request's path.
		go func() {
			rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			v.readServices(rctx, payee)
			v.mu.Lock()
			delete(v.reading, payee)
			v.mu.Unlock()
		}()
	}
	if e.services == nil {
		return nil, nil
	}
	for _, s := range e.services {
		if s.ModelId == model {
			return s, nil
		}
	}
	return nil, fmt.Errorf("sdk: provider %s asks to be paid for model %q, which it has not registered on chain", payee, model)
}

// readServices reads what payee registered and caches it.
func (v *chainView) readServices(ctx context.Context, payee string) (servicesAt, error) {
	info, err := client.Ask(ctx, v.c, providerpb.QueryProvider, &providerpb.QueryProviderRequest{Address: payee})
	var ce *client.ChainError
	var e servicesAt
	switch {
	case errors.As(err, &ce) && ce.Code == 14: // not found: not a provider
		e = servicesAt{at: time.Now()}
	case err != nil:
		return e, fmt.Errorf("sdk: read %s's registered prices: %w", payee, err)
	default:
		e = servicesAt{at: time.Now(), services: info.Services}
		if e.services == nil {
			e.services = []*providerpb.Service{}
		}
	}
	v.mu.Lock()
	v.services[payee] = e
	v.mu.Unlock()
	return e, nil
}

// priceOf is what a registered service charges for an answer of
// completion tokens: the per-request price plus the per-1000-token price,
// rounded up, as providers compute it.
func priceOf(s *providerpb.Service, completion uint64) uint64 {
	return s.GetPricePerRequest().GetAmount() + (s.GetPricePer_1KTokens().GetAmount()*completion+999)/1000
}

// maxTokensOf is the most tokens a request to path can be answered with,
// as a provider reads it (openai.DefaultMaxTokens when the request sets
// none); ok is false when path is not an inference endpoint.
func maxTokensOf(path string, body []byte) (n uint64, ok bool, err error) {
	endpoint := sample.Endpoint(path)
	switch endpoint {
	case "":
		return 0, false, nil
	case "infer":
		return 0, true, nil
	}
	sum, err := openai.Summarize(endpoint, body, openai.Limits{MaxTokens: 1 << 30, MaxPromptBytes: openai.MaxBodyBytes})
	if err != nil {
		return 0, true, err
	}
	return uint64(sum.MaxTokens), true, nil
}
