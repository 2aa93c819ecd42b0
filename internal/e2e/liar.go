package e2e

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"testing"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/channel/channelpb"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/keyring"
	"github.com/agoranet/agora/internal/receipt"
	"github.com/agoranet/agora/x402"
)

// Liar is a provider that lies about payments: a proxy on loopback in
// front of an honest provider, holding that provider's key, that rewrites
// what the provider says (the price in its 402s, the channel state, the
// charges it reports, its receipts, re-signed) and keeps the best voucher
// it is paid with on each channel, so that a test can claim on chain the
// most the buyer's vouchers allow and check that bound to the unit.
//
// Each lie is a hook; nil tells the truth.
type Liar struct {
	URL string
	Key ed25519.PrivateKey

	// Price rewrites the price a 402 asks.
	Price func(asked uint64) uint64
	// State rewrites the chargedCumulativeAmount a 402 or a settlement
	// reports for a channel.
	State func(charged uint64) uint64
	// Charge rewrites the charge a settlement reports for an answer.
	Charge func(charged uint64) uint64
	// Receipt rewrites a receipt (in a header or trailer) before it is
	// signed again with the provider's key.
	Receipt func(r *receipt.Receipt)
	// Append is sent at the end of every stream, after its final receipt.
	Append string
	// Unsettled drops the PAYMENT-RESPONSE of whole answers: their charge
	// left unknown, to be claimed at the maximum.
	Unsettled bool

	mu       sync.Mutex
	vouchers map[uint64]*channelpb.Voucher
}

// NewLiar starts a Liar in front of the provider at upstream whose key is
// key; it stops with the test.
func NewLiar(t testing.TB, upstream string, key ed25519.PrivateKey) *Liar {
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	l := &Liar{Key: key, vouchers: map[uint64]*channelpb.Voucher{}}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			l.keep(r.In.Header.Get(x402.HeaderSignature))
		},
		ModifyResponse: func(resp *http.Response) error {
			if l.Unsettled {
				resp.Header.Del(x402.HeaderResponse)
			}
			l.rewrite(resp.Header)
			if resp.Trailer != nil {
				resp.Body = &lyingBody{ReadCloser: resp.Body, l: l, resp: resp}
			}
			return nil
		},
		FlushInterval: -1,
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	l.URL = srv.URL
	return l
}

// lyingBody appends to a stream and rewrites its trailers once its body
// is read.
type lyingBody struct {
	io.ReadCloser
	l        *Liar
	resp     *http.Response
	appended bool
}

func (b *lyingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.appended && b.l.Append != "" {
		b.appended = true
		n += copy(p[n:], b.l.Append) // p is the proxy's 32 KiB buffer
		return n, nil
	}
	if err == io.EOF {
		b.l.rewrite(b.resp.Trailer)
	}
	return n, err
}

// keep records the voucher in a PAYMENT-SIGNATURE, if it is the channel's best.
func (l *Liar) keep(h string) {
	var pp x402.PaymentPayload
	if h == "" || x402.Decode(h, &pp) != nil || pp.Accepted.Scheme != x402.SchemeBatch {
		return
	}
	var bp x402.BatchPayload
	if json.Unmarshal(pp.Payload, &bp) != nil {
		return
	}
	id, err1 := strconv.ParseUint(bp.Voucher.ChannelID, 10, 64)
	cum, err2 := strconv.ParseUint(bp.Voucher.MaxClaimableAmount, 10, 64)
	sig, err3 := base64.StdEncoding.DecodeString(bp.Voucher.Signature)
	if err1 != nil || err2 != nil || err3 != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if v := l.vouchers[id]; v == nil || cum > v.Cumulative {
		l.vouchers[id] = &channelpb.Voucher{ChannelId: id, Cumulative: cum, Signature: sig}
	}
}

// Best is the highest voucher the liar holds on each channel.
func (l *Liar) Best() map[uint64]uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[uint64]uint64{}
	for id, v := range l.vouchers {
		out[id] = v.Cumulative
	}
	return out
}

// ClaimAll claims on chain the whole of the best voucher on every channel.
func (l *Liar) ClaimAll(ctx context.Context, c *client.Client) error {
	l.mu.Lock()
	var claims []*channelpb.Claim
	for _, v := range l.vouchers {
		claims = append(claims, &channelpb.Claim{Voucher: v, Amount: v.Cumulative})
	}
	l.mu.Unlock()
	payee := addr.FromPubKey(l.Key.Public().(ed25519.PublicKey)).String()
	for _, cl := range claims {
		k := &keyring.Key{Name: "liar", Private: l.Key}
		if _, err := c.Submit(ctx, k, "", module.Msg(&channelpb.MsgClaim{Payee: payee, Claims: []*channelpb.Claim{cl}})); err != nil {
			return err
		}
	}
	return nil
}

// rewrite applies the lies to the payment and receipt headers in h.
func (l *Liar) rewrite(h http.Header) {
	if v := h.Get(x402.HeaderRequired); v != "" && (l.Price != nil || l.State != nil) {
		var pr x402.PaymentRequired
		if x402.Decode(v, &pr) == nil {
			for i := range pr.Accepts {
				a := &pr.Accepts[i]
				if n, err := x402.Amount(a.Amount); err == nil && l.Price != nil {
					a.Amount = strconv.FormatUint(l.Price(n), 10)
				}
				if st, ok := a.Extra["channelState"].(map[string]any); ok && l.State != nil {
					if n, err := x402.Amount(st["chargedCumulativeAmount"].(string)); err == nil {
						st["chargedCumulativeAmount"] = strconv.FormatUint(l.State(n), 10)
					}
				}
			}
			if enc, err := x402.Encode(pr); err == nil {
				h.Set(x402.HeaderRequired, enc)
			}
		}
	}
	if v := h.Get(x402.HeaderResponse); v != "" && (l.Charge != nil || l.State != nil) {
		var sr map[string]any
		if x402.Decode(v, &sr) == nil {
			if extra, ok := sr["extra"].(map[string]any); ok {
				if s, ok := extra["chargedAmount"].(string); ok && l.Charge != nil {
					if n, err := x402.Amount(s); err == nil {
						extra["chargedAmount"] = strconv.FormatUint(l.Charge(n), 10)
						sr["amount"] = extra["chargedAmount"]
					}
				}
				if st, ok := extra["channelState"].(map[string]any); ok && l.State != nil {
					if n, err := x402.Amount(st["chargedCumulativeAmount"].(string)); err == nil {
						st["chargedCumulativeAmount"] = strconv.FormatUint(l.State(n), 10)
					}
				}
			}
			if enc, err := x402.Encode(sr); err == nil {
				h.Set(x402.HeaderResponse, enc)
			}
		}
	}
	if v := h.Get(receipt.Header); v != "" && l.Receipt != nil {
		if r, err := receipt.Decode(v); err == nil {
			l.Receipt(r)
			if enc, err := receipt.Sign(l.Key, r); err == nil {
				h.Set(receipt.Header, enc)
			}
		}
	}
}
