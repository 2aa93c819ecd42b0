package sdk

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/agoranet/agora/internal/chain/channel/channelpb"
	"github.com/agoranet/agora/internal/client"
)

// Reclaim takes back the rest of every channel of the payer's that has
// expired (MsgSettleExpired) and returns how much came back. A channel
// that is full or that a payee refused is retired at once but keeps its
// deposit until it expires, when the payee can no longer claim; Reclaim
// is what returns it, so no deposit is forgotten. Channels that have not
// expired are left alone. Call it now and then (the gateway and Agent do,
// every minute; `agora pay` on every run).
func (p *Payer) Reclaim(ctx context.Context) (uint64, error) {
	h, err := p.chain.Height(ctx)
	if err != nil {
		return 0, err
	}
	p.mu.Lock()
	chans := append([]*chanInfo(nil), p.channels...)
	p.mu.Unlock()
	var due []*chanInfo
	for _, c := range chans { // c.mu is taken before p.mu, never after
		c.mu.Lock()
		if !c.reclaimed && c.expiresAt < h {
			due = append(due, c)
		}
		c.mu.Unlock()
	}
	var back uint64
	var errs []error
	k := p.w.signer()
	for _, c := range due {
		ch, err := client.Ask(ctx, p.w.chain, channelpb.QueryChannel, &channelpb.QueryChannelRequest{Id: c.id})
		if err != nil {
			errs = append(errs, fmt.Errorf("channel %d: %w", c.id, err))
			continue
		}
		if !ch.Closed {
			if ch.ExpiresAt >= h { // extended meanwhile
				continue
			}
			if _, err := p.w.chain.Submit(ctx, k, "", &channelpb.MsgSettleExpired{Payer: p.w.Address(), ChannelId: c.id}); err != nil {
				errs = append(errs, fmt.Errorf("settle expired channel %d: %w", c.id, err))
				continue
			}
			back += ch.Deposit - ch.Claimed
		}
		p.retire(c, "expired")
		c.mu.Lock()
		c.reclaimed = true
		c.mu.Unlock()
		if p.journal != nil {
			p.journal.write(jrecord{Channel: c.id, Reclaimed: true}, false)
		}
	}
	return back, errors.Join(errs...)
}

// reclaimEvery runs Reclaim every interval until ctx ends.
func (p *Payer) reclaimEvery(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.Reclaim(ctx)
		}
	}
}
