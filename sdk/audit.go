package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/agoranet/agora/internal/openai"
	"github.com/agoranet/agora/internal/receipt"
	"github.com/agoranet/agora/internal/sample"
)

// SetAuditFeed makes the payer show a verifier at url a sample of the
// answers it pays for (rate, from 0 to 1), whole answers and streams,
// paid over a channel or exact: the request, the response and the
// provider's receipt, signed by the payer. A verifier re-executes what it
// takes and challenges a lie on chain. Because buyers sample what they
// bought after the fact, a provider cannot answer honestly only when it
// is audited. "" stops it. Posting is best effort: a full queue drops
// samples, it never slows an answer.
func (p *Payer) SetAuditFeed(url string, rate float64) {
	p.feed.mu.Lock()
	defer p.feed.mu.Unlock()
	p.feed.url, p.feed.rate = url, rate
	if url != "" && p.feed.queue == nil {
		p.feed.queue = make(chan sample.Sample, 256)
		p.feed.done = make(chan struct{})
		go p.postSamples(p.feed.queue)
	}
}

// feed is the payer's audit feed.
type feed struct {
	mu    sync.Mutex
	url   string
	rate  float64
	queue chan sample.Sample
	done  chan struct{} // closed when postSamples has returned
}

// flush waits (up to 5 s) for the samples queued before Close to be posted.
func (f *feed) flush() {
	f.mu.Lock()
	done := f.done
	f.mu.Unlock()
	if done == nil {
		return
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}

// maxSampled is the largest response a sample carries.
const maxSampled = 4 << 20

// sampled tees a paid answer's body, if it is picked for a sample, and
// queues the sample when the body has been read to its end.
func (t *ticket) sampled(resp *http.Response) {
	p := t.p
	p.feed.mu.Lock()
	on := p.feed.url != "" && t.endpoint != "" && rand.Float64() < p.feed.rate
	p.feed.mu.Unlock()
	if !on {
		return
	}
	resp.Body = &teeBody{ReadCloser: resp.Body, done: func(body []byte) {
		enc := resp.Header.Get(receipt.Header)
		if enc == "" && resp.Trailer != nil {
			enc = resp.Trailer.Get(receipt.Header)
		}
		if enc == "" {
			_, enc = openai.SplitStream(body)
		}
		if r, err := receipt.Parse(enc); err != nil || r.Provider != t.payee {
			return // not the payee's receipt (a gateway relays its provider's): not ours to show
		}
		smp := sample.Sample{Endpoint: t.endpoint, Request: string(t.request), Response: string(body), Receipt: enc}
		smp.SignAs(p.w.key, p.w.Address())
		select {
		case p.feed.queue <- smp:
		default:
		}
	}}
}

// teeBody keeps a copy of what is read and hands it over at the end.
type teeBody struct {
	io.ReadCloser
	buf  bytes.Buffer
	done func([]byte)
	over bool
}

func (b *teeBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if !b.over {
		if b.buf.Len()+n > maxSampled {
			b.over, b.buf = true, bytes.Buffer{}
		} else {
			b.buf.Write(p[:n])
		}
	}
	if err == io.EOF && !b.over && b.done != nil {
		b.done(b.buf.Bytes())
		b.done = nil
	}
	return n, err
}

// postSamples posts queued samples until Close, then what is still queued.
func (p *Payer) postSamples(queue chan sample.Sample) {
	defer close(p.feed.done)
	hc := &http.Client{Timeout: 5 * time.Second} // a slow verifier costs samples, not goroutines
	post := func(smp sample.Sample) {
		p.feed.mu.Lock()
		url := p.feed.url
		p.feed.mu.Unlock()
		if url == "" {
			return
		}
		b, _ := json.Marshal(smp)
		req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url+sample.Path, bytes.NewReader(b))
		if err != nil {
			return
		}
		req.Header.Set("Content-Type", "application/json")
		if resp, err := hc.Do(req); err == nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
			resp.Body.Close()
		}
	}
	for {
		select {
		case <-p.stop:
			for {
				select {
				case smp := <-queue:
					post(smp)
				default:
					return
				}
			}
		case smp := <-queue:
			post(smp)
		}
	}
}
