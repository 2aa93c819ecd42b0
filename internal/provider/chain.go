package provider

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/provider/providerpb"
	"github.com/agoranet/agora/internal/chain/staking/stakingpb"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/keyring"
)

func (s *Server) key() *keyring.Key {
	return &keyring.Key{Name: "provider", Private: s.cfg.Key, Account: s.address}
}

// register bonds stake if asked, then registers the provider and its
// services in one transaction.
func (s *Server) register(ctx context.Context) error {
	c := s.cfg.Chain
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	s.height.Store(st.Height)
	if s.gate != nil {
		s.gate.SetHeight(st.Height)
	}
	from := s.address.String()
	var msgs []module.Msg
	if s.cfg.Bond > 0 {
		stake, err := client.Ask(ctx, c, stakingpb.QueryStake, &stakingpb.QueryStakeRequest{Address: from})
		if err != nil {
			return err
		}
		if stake.Stake.Bonded < s.cfg.Bond {
			msgs = append(msgs, &stakingpb.MsgBond{Staker: from, Amount: coin.New(coin.Native, s.cfg.Bond-stake.Stake.Bonded)})
		}
	}
	reg := &providerpb.MsgRegisterProvider{Operator: from, Endpoint: s.URL(), Region: s.cfg.Region, Hardware: s.cfg.Hardware}
	if strings.HasPrefix(reg.Endpoint, "https://") {
		reg.TlsKeySha256 = s.tlsPin
	}
	msgs = append(msgs, reg)
	for _, m := range s.order {
		svc := &providerpb.MsgRegisterService{Operator: from, ModelId: m.id, ModelName: m.name, MaxConcurrency: uint32(m.MaxConcurrency),
			PricePerRequest: coin.New(m.Denom, m.PricePerRequest), PricePer_1KTokens: coin.New(m.Denom, m.PricePer1KTokens)}
		for _, r := range m.Royalties {
			svc.Royalties = append(svc.Royalties, &providerpb.Royalty{Recipient: r.Recipient.String(), Bps: r.Bps})
		}
		msgs = append(msgs, svc)
	}
	if _, err := c.Submit(ctx, s.key(), "provider start", msgs...); err != nil {
		return fmt.Errorf("provider: register on chain: %w", err)
	}
	s.log.Info("provider registered on chain", "address", from, "endpoint", s.URL())
	return nil
}

// heartbeats keeps the provider online and its view of the height fresh.
func (s *Server) heartbeats(ctx context.Context) {
	c := s.cfg.Chain
	t := time.NewTicker(s.cfg.HeartbeatEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if st, err := c.Status(ctx); err == nil {
			s.height.Store(st.Height)
			if s.gate != nil {
				s.gate.SetHeight(st.Height)
			}
		}
		tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := c.Submit(tctx, s.key(), "", &providerpb.MsgHeartbeat{Operator: s.address.String()})
		cancel()
		if err != nil && ctx.Err() == nil {
			s.log.Warn("provider: heartbeat failed", "err", err)
		}
	}
}
