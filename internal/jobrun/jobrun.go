// Package jobrun runs a batch job the way every party runs it: the
// lessee that earns its price and the verifier that re-runs a disputed
// job fetch the module and input by content hash, execute them in the
// deterministic sandbox and get the same Result, byte for byte.
package jobrun

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/agoranet/agora/internal/blob"
	"github.com/agoranet/agora/internal/chain/job/jobpb"
	"github.com/agoranet/agora/internal/chain/provider/providerpb"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/sandbox"
	"github.com/agoranet/agora/sdk"
)

// MaxOutput is the most output a job may write.
const MaxOutput = 64 << 20

// MaxFetchPrice is the most a job's module or input may cost to fetch,
// in the fetching payer's denom: a tenant may name any URL, its own
// server's included, and one asking more is not paid (0.1 USDC: a GiB at
// the devnet's storage price, four times the largest blob).
const MaxFetchPrice = 100_000

// Client is the client jobs' data is fetched with: fetch (a payer's, for
// data on storage nodes that charge for reads; each fetch capped at
// MaxFetchPrice) or a plain one, either with a minute's timeout.
func Client(fetch *http.Client) *http.Client {
	if fetch == nil {
		return &http.Client{Timeout: time.Minute}
	}
	c := *fetch
	c.Timeout = time.Minute
	base := c.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	c.Transport = capped{base}
	return &c
}

// capped caps every request's price at MaxFetchPrice.
type capped struct{ base http.RoundTripper }

func (c capped) RoundTrip(r *http.Request) (*http.Response, error) {
	return c.base.RoundTrip(r.WithContext(sdk.WithPriceCap(r.Context(), MaxFetchPrice)))
}

// Execute fetches an order's module and input, checks them against their
// hashes and runs the module. It looks in store first (if not nil), then
// at the order's URLs, then at the same content address on each of
// mirrors (blob store base URLs: content addressing makes any copy as good
// as the original); what it fetches it keeps in store, so it can serve
// later lessees and verifiers. Every outcome of the job is a Result; an
// error means this host could not finish (it timed out or ctx ended) and
// must not report anything.
func Execute(ctx context.Context, sb *sandbox.Sandbox, hc *http.Client, store *blob.Store, mirrors []string, o *jobpb.Order) (*jobpb.Result, []byte, error) {
	fail := func(code jobpb.ResultCode) (*jobpb.Result, []byte, error) {
		h := sha256.Sum256(nil)
		return &jobpb.Result{Code: code, OutputHash: h[:]}, nil, nil
	}
	wasm, err := fetch(ctx, hc, store, mirrors, o.ModuleUrl, o.ModuleHash)
	if err == nil {
		var input []byte
		if input, err = fetch(ctx, hc, store, mirrors, o.InputUrl, o.InputHash); err == nil {
			res, err := sb.Run(ctx, wasm, input, sandbox.Limits{Fuel: o.Fuel, MemoryMiB: o.MemoryMib, MaxOutput: MaxOutput})
			if err != nil {
				return nil, nil, err
			}
			h := sha256.Sum256(res.Output)
			return &jobpb.Result{Code: jobpb.ResultCode(res.Code), ExitCode: res.ExitCode, OutputHash: h[:], OutputSize: uint64(len(res.Output))}, res.Output, nil
		}
	}
	switch {
	case ctx.Err() != nil:
		return nil, nil, ctx.Err()
	case errors.Is(err, blob.ErrMismatch), errors.Is(err, blob.ErrTooLarge):
		return fail(jobpb.ResultCode_RESULT_CODE_BAD_INPUT)
	default:
		return fail(jobpb.ResultCode_RESULT_CODE_UNAVAILABLE)
	}
}

// fetch reads a blob from the local store, its URL or a mirror, retrying
// a few times over a few seconds before calling it unavailable. A blob
// that does not match its hash at the URL is bad input only if no mirror
// has the right bytes either.
func fetch(ctx context.Context, hc *http.Client, store *blob.Store, mirrors []string, url string, hash []byte) ([]byte, error) {
	name := fmt.Sprintf("%x", hash)
	if store != nil && store.Has(name) {
		return store.Get(name)
	}
	urls := []string{url}
	for _, m := range mirrors {
		if u := strings.TrimSuffix(m, "/") + blob.Path + name; u != url {
			urls = append(urls, u)
		}
	}
	var err error
	for attempt := 0; attempt < 4; attempt++ {
		var b []byte
		var errs []error
		for _, u := range urls {
			if b, err = blob.Fetch(ctx, hc, u, hash, blob.DefaultMax); err == nil {
				if store != nil {
					store.Put(b) // a cache: failing to keep it is not fatal
				}
				return b, nil
			}
			errs = append(errs, err)
		}
		if err = errs[0]; !errors.Is(err, blob.ErrUnavailable) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 500 * time.Millisecond):
		}
	}
	return nil, err
}

// Mirrors lists the endpoints of the online providers, whose blob stores
// may hold a job's module and input.
func Mirrors(ctx context.Context, c *client.Client) []string {
	r, err := client.Ask(ctx, c, providerpb.QueryProviders, &providerpb.QueryProvidersRequest{OnlineOnly: true})
	if err != nil {
		return nil
	}
	var out []string
	for _, p := range r.Providers {
		out = append(out, p.Provider.Endpoint)
	}
	return out
}

// Salt is the salt key uses for its commitment on an order of chain
// chainID (see CommitSalt).
func Salt(key ed25519.PrivateKey, chainID string, orderID uint64) []byte {
	return CommitSalt(key, chainID, "agora/job/salt/v2", orderID)
}

// CommitSalt is the salt of key's commitment to a vote or result on item
// id of chain chainID, the kind of item told apart by domain. It is
// secret (it derives from the private key) and the same after a restart,
// so a restarted worker or verifier can still reveal what it committed
// to. The chain id is in it because a key may serve on a second chain or
// a reset testnet, where the same ids come again: there, a salt the first
// chain's reveals made public would let anyone read a commitment to one
// of two plausible values before it is revealed.
func CommitSalt(key ed25519.PrivateKey, chainID, domain string, id uint64) []byte {
	h := sha256.New()
	h.Write([]byte(domain))
	h.Write(key.Seed())
	fmt.Fprintf(h, "%d/%s/%d", len(chainID), chainID, id)
	return h.Sum(nil)
}
