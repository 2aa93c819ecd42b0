package jobrun

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/agoranet/agora/internal/blob"
	"github.com/agoranet/agora/internal/chain/job/jobpb"
	"github.com/agoranet/agora/internal/client"
)

// What a tenant does: upload a job's module and input, and fetch the
// agreed output (agora job submit, and agora mcp's job tools).

// Stores picks where a tenant uploads: up to three online providers, so
// the job's data outlives any one of them.
func Stores(ctx context.Context, c *client.Client) ([]string, error) {
	stores := Mirrors(ctx, c)
	if len(stores) == 0 {
		return nil, errors.New("no online provider to upload the module and input to")
	}
	return stores[:min(3, len(stores))], nil
}

// Upload puts the module and its input on every blob store and returns
// the first store's URLs: the order names the first copy, and lessees find
// the others by the same content address.
func Upload(ctx context.Context, bases []string, wasm, in []byte) (moduleURL, inputURL string, err error) {
	hc := &http.Client{Timeout: time.Minute}
	for i := len(bases) - 1; i >= 0; i-- {
		if moduleURL, err = blob.Upload(ctx, hc, bases[i], wasm); err != nil {
			return "", "", err
		}
		if inputURL, err = blob.Upload(ctx, hc, bases[i], in); err != nil {
			return "", "", err
		}
	}
	return moduleURL, inputURL, nil
}

// Output downloads a completed order's agreed output from a lessee whose
// result is the agreed one, checking its hash.
func Output(ctx context.Context, o *jobpb.Order) ([]byte, error) {
	if o.Result == nil {
		return nil, fmt.Errorf("order %d has no result (%s)", o.Id, o.Status)
	}
	hc := &http.Client{Timeout: time.Minute}
	var errs []error
	for _, l := range o.Leases {
		if l.OutputUrl == "" || l.Result == nil || !jobpb.Same(l.Result, o.Result) {
			continue
		}
		data, err := blob.Fetch(ctx, hc, l.OutputUrl, o.Result.OutputHash, int64(o.Result.OutputSize))
		if err == nil {
			return data, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("order %d: no lessee serves the result", o.Id)
	}
	return nil, fmt.Errorf("order %d: no lessee served the result: %w", o.Id, errors.Join(errs...))
}
