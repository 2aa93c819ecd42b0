// Package transfer moves objects to and from storage nodes: Put codes a
// stream and sends each segment's pieces to their nodes in parallel,
// then the manifest; Get fetches a segment's data pieces in parallel,
// asks for parity pieces in place of any that fail, are corrupt or lag
// behind the others, uses the first k and cancels the rest, checks the
// segment they make against its hash, and writes the object out in
// order while the next segments arrive.
// Where pieces go is the caller's (the chain's placement, once the
// storage module assigns it).
package transfer

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/agoranet/agora/internal/chain/storage/storagepb"
	"github.com/agoranet/agora/internal/keyring"
	"github.com/agoranet/agora/internal/storage/object"
	"github.com/agoranet/agora/sdk"
	"github.com/agoranet/agora/x402"
)

// Client talks to storage nodes over HTTP.
type Client struct {
	HTTP *http.Client // nil: http.DefaultClient
	// Progress, if set, is told the bytes of the object done so far.
	Progress func(done uint64)
	// Price, if set, says the most a node (its base URL) may charge to
	// serve n bytes, from the price it registered: a read it asks more
	// for is refused by the payer (HTTP's transport, an sdk.Payer) and
	// fetched elsewhere. ok false leaves the read uncapped.
	Price func(node string, n uint64) (most uint64, ok bool)
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return defaultHTTP
}

// defaultHTTP gives up on a node that does not answer: one that accepts a
// connection and says nothing would otherwise hold a put or get forever.
var defaultHTTP = &http.Client{Transport: &http.Transport{
	DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	ResponseHeaderTimeout: 30 * time.Second,
	MaxIdleConnsPerHost:   64,
	IdleConnTimeout:       50 * time.Second,
	DisableCompression:    true, // pieces are incompressible, and a payer sends no Accept-Encoding
}}

// OpenPayer opens a payer for reads from storage nodes, paying from key
// (an account it was rotated to included) over channels on the chain at
// nodeURL that journal keeps, within b (batch-settlement channels: a
// read is too small for a transfer of its own).
func OpenPayer(key *keyring.Key, nodeURL, journal string, b sdk.Budget) (*sdk.Payer, error) {
	w, err := sdk.NewWallet(key.Private, nodeURL)
	if err == nil && key.Rotated() {
		err = w.ForAccount(key.Address().String())
	}
	if err != nil {
		return nil, err
	}
	if len(b.Schemes) == 0 {
		b.Schemes = []string{x402.SchemeBatch}
	}
	return sdk.OpenPayer(w, b, journal)
}

// Paying is a client that pays storage nodes for reads with p, over a
// transport like the default client's.
func Paying(p *sdk.Payer) *http.Client {
	p.SetTransport(defaultHTTP.Transport.(*http.Transport).Clone())
	return &http.Client{Transport: p, CheckRedirect: sdk.NoRedirects}
}

// deadline is how long moving n bytes to or from one node may take: 30
// s, and a second a MiB.
func deadline(n uint64) time.Duration { return 30*time.Second + time.Duration(n>>20)*time.Second }

// Place says which node (its base URL) keeps piece index of a segment.
type Place func(segment, index int) string

// Put codes r with p and sends piece i of every segment to place's node;
// each segment's n pieces go in parallel while the next segment is coded.
// Once every piece has landed, the manifest goes to every node that holds
// one. A piece a node refuses fails the put.
func (c *Client) Put(ctx context.Context, r io.Reader, p object.Params, place Place) (*storagepb.Manifest, cid.Cid, error) {
	if err := p.Validate(); err != nil {
		return nil, cid.Undef, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	var mu sync.Mutex
	nodes := map[string]bool{}
	sent := uint64(0)
	inFlight := make(chan struct{}, 2*p.N) // two segments' pieces at once
	m, id, err := object.Encode(r, p, func(pc object.Piece) error {
		if err := context.Cause(ctx); err != nil {
			return err
		}
		node := place(pc.Segment, pc.Index)
		mu.Lock()
		nodes[node] = true
		mu.Unlock()
		select {
		case inFlight <- struct{}{}:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		wg.Go(func() {
			defer func() { <-inFlight }()
			url := fmt.Sprintf("%s/storage/v1/pieces/%x?leaf_size=%d", node, pc.Root, p.LeafSize)
			if err := c.send(ctx, url, pc.Data); err != nil {
				cancel(fmt.Errorf("piece %d of segment %d to %s: %w", pc.Index, pc.Segment, node, err))
				return
			}
			if c.Progress != nil { // the object's share of the bytes sent
				mu.Lock()
				sent += uint64(len(pc.Data))
				c.Progress(sent * uint64(p.K) / uint64(p.N))
				mu.Unlock()
			}
		})
		return nil
	})
	if err != nil { // the stream failed: the pieces in flight are for nothing
		cancel(err)
	}
	wg.Wait()
	if cerr := context.Cause(ctx); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil {
		return nil, cid.Undef, fmt.Errorf("transfer: put: %w", err)
	}
	raw, err := object.Marshal(m)
	if err != nil {
		return nil, cid.Undef, err
	}
	if len(nodes) == 0 { // an empty object has no pieces: its manifest goes where piece i of a segment would
		for i := range p.N {
			nodes[place(0, i)] = true
		}
	}
	var errs []error
	var ewg sync.WaitGroup
	for node := range nodes {
		ewg.Go(func() {
			if err := c.send(ctx, node+"/storage/v1/manifests/"+id.String(), raw); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("manifest to %s: %w", node, err))
				mu.Unlock()
			}
		})
	}
	ewg.Wait()
	if len(errs) > 0 {
		return nil, cid.Undef, fmt.Errorf("transfer: put: %w", errors.Join(errs...))
	}
	return m, id, nil
}

// send PUTs body to url, trying twice more on a failure that is not the
// body's fault (a 4xx is final).
func (c *Client) send(ctx context.Context, url string, body []byte) error {
	var last error
	for try := range 3 {
		if try > 0 {
			select {
			case <-time.After(time.Duration(try) * 100 * time.Millisecond):
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		}
		rctx, cancel := context.WithTimeout(ctx, deadline(uint64(len(body))))
		req, err := http.NewRequestWithContext(rctx, http.MethodPut, url, bytes.NewReader(body))
		if err != nil {
			cancel()
			return err
		}
		resp, err := c.http().Do(req)
		cancel()
		if err != nil {
			last = err
			continue
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		switch {
		case resp.StatusCode < 300:
			return nil
		case resp.StatusCode < 500 && resp.StatusCode != http.StatusConflict:
			return fmt.Errorf("%d: %s", resp.StatusCode, bytes.TrimSpace(msg))
		}
		last = fmt.Errorf("%d: %s", resp.StatusCode, bytes.TrimSpace(msg))
	}
	return last
}

// Locate lists the nodes (base URLs) that may keep a piece, best first.
type Locate func(segment, index int) []string

// Get writes object m to w. It fetches up to three segments at a time and
// writes them in order.
func (c *Client) Get(ctx context.Context, m *storagepb.Manifest, w io.Writer, locate Locate) error {
	if err := object.Check(m); err != nil {
		return fmt.Errorf("transfer: get: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		data []byte
		err  error
	}
	const ahead = 3
	slots := make([]chan result, len(m.Segments))
	for i := range slots {
		slots[i] = make(chan result, 1)
	}
	sem := make(chan struct{}, ahead)
	go func() {
		for s := range m.Segments {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			go func() {
				data, err := c.segment(ctx, m, s, locate)
				slots[s] <- result{data, err}
			}()
		}
	}()
	var done uint64
	for s := range m.Segments {
		var r result
		select {
		case r = <-slots[s]:
		case <-ctx.Done():
			return ctx.Err()
		}
		<-sem
		if r.err != nil {
			return fmt.Errorf("transfer: get: %w", r.err)
		}
		if _, err := w.Write(r.data); err != nil {
			return fmt.Errorf("transfer: get: write: %w", err)
		}
		done += uint64(len(r.data))
		if c.Progress != nil {
			c.Progress(done)
		}
	}
	return nil
}

// lagFactor: a piece still missing this many times later than the
// slowest one already in is fetched from a parity piece as well; with
// none in yet, after firstLag. At most k+spare fetches run at once.
const (
	lagFactor = 2
	minLag    = 20 * time.Millisecond
	firstLag  = 2 * time.Second
	spare     = 2
)

// segment fetches k pieces of segment s: the data pieces first, a
// parity piece in place of each that fails, and one more whenever the
// last pieces lag; the rest are cancelled once k are in. The segment they
// make is checked against its hash, which is all a reader needs: only
// when it fails are the pieces checked against their roots, the bad ones
// dropped and others fetched in their place.
func (c *Client) segment(ctx context.Context, m *storagepb.Manifest, s int, locate Locate) ([]byte, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	k, n := int(m.K), int(m.N)
	type got struct {
		i    int
		data []byte
		err  error
	}
	results := make(chan got, n)
	next, running := 0, 0
	start := func() bool {
		if next >= n || running >= k+spare {
			return false
		}
		i := next
		next++
		running++
		go func() {
			d, err := c.piece(ctx, m, s, i, locate(s, i))
			results <- got{i, d, err}
		}()
		return true
	}
	for range k {
		start()
	}
	pieces := make([][]byte, n)
	good := 0
	var errs []error
	t0 := time.Now()
	var slowest time.Duration
	lag := time.NewTimer(firstLag)
	defer lag.Stop()
	for {
		for good < k {
			if running == 0 && !start() {
				return nil, fmt.Errorf("%w: segment %d: %d of the %d needed: %w", object.ErrTooFew, s, good, k, errors.Join(errs...))
			}
			select {
			case r := <-results:
				running--
				if r.err != nil {
					errs = append(errs, r.err)
					start()
					continue
				}
				pieces[r.i] = r.data
				good++
				slowest = time.Since(t0)
				lag.Reset(max(minLag, lagFactor*slowest))
			case <-lag.C:
				start() // the others lag: one more, from a parity piece
				lag.Reset(max(minLag, lagFactor*slowest))
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		data, err := object.Assemble(m, s, slices.Clone(pieces))
		if !errors.Is(err, object.ErrCorrupted) {
			return data, err
		}
		// A piece is bad: find which, and fetch others in their place.
		dropped := 0
		for i, d := range pieces {
			if d != nil {
				if cerr := object.CheckPiece(m, s, i, d); cerr != nil {
					pieces[i] = nil
					good--
					dropped++
					errs = append(errs, cerr)
				}
			}
		}
		if dropped == 0 { // every piece matches its root: the manifest's writer coded them wrong
			return nil, err
		}
	}
}

// piece fetches piece i of segment s from the first of nodes that has it
// whole (of the piece's size; whether it is good is found out later).
func (c *Client) piece(ctx context.Context, m *storagepb.Manifest, s, i int, nodes []string) ([]byte, error) {
	root := m.Segments[s].PieceRoots[i]
	if len(nodes) == 0 {
		return nil, fmt.Errorf("piece %d of segment %d: no node keeps it", i, s)
	}
	var errs []error
	for _, node := range nodes {
		d, err := c.fetch(ctx, node, "/storage/v1/pieces/"+hex.EncodeToString(root), m.Segments[s].PieceSize)
		if err == nil {
			return d, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		errs = append(errs, fmt.Errorf("%s: %w", node, err))
	}
	return nil, fmt.Errorf("piece %d of segment %d: %w", i, s, errors.Join(errs...))
}

func (c *Client) fetch(ctx context.Context, node, path string, size uint64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, deadline(size))
	defer cancel()
	if c.Price != nil {
		if most, ok := c.Price(node, size); ok {
			ctx = sdk.WithPriceCap(ctx, most)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, node+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if why := sdk.Refused(resp, nil); why != nil { // the payer would not pay what the node asked
		return nil, fmt.Errorf("not paid: %w", why)
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("%d: %s", resp.StatusCode, bytes.TrimSpace(msg))
	}
	// No more than the piece's size is read, whatever a node sends, and
	// memory grows only as bytes arrive.
	b, err := io.ReadAll(io.LimitReader(resp.Body, int64(size)+1))
	if err != nil {
		return nil, err
	}
	if uint64(len(b)) != size {
		return nil, fmt.Errorf("a %d-byte piece, not %d", len(b), size)
	}
	return b, nil
}

// Spread is a placement over nodes for tests and a devnet without the
// storage module: piece i of segment s on nodes[(s+i) mod len], so a
// segment's pieces are on distinct nodes when there are at least n.
func Spread(nodes []string) (Place, Locate) {
	place := func(s, i int) string { return nodes[(s+i)%len(nodes)] }
	return place, func(s, i int) []string { return []string{place(s, i)} }
}

// Repair rebuilds piece index of segment s of m from any k others, as a
// node the chain assigned a lost piece to does: it fetches the segment as
// a reader would (the fastest k pieces, checked against the segment's
// hash), codes it again and returns the piece, checked against its root.
func (c *Client) Repair(ctx context.Context, m *storagepb.Manifest, s, index int, locate Locate) ([]byte, error) {
	data, err := c.segment(ctx, m, s, locate)
	if err != nil {
		return nil, fmt.Errorf("transfer: repair piece %d of segment %d: %w", index, s, err)
	}
	return object.Recode(m, s, index, data)
}
