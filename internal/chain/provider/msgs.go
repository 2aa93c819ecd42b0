package provider

import (
	"fmt"

	"github.com/agoranet/agora/internal/chain/bank"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/provider/providerpb"
	"github.com/agoranet/agora/internal/chain/store"
)

// checkPrices checks that prices are in denoms the bank knows.
func checkPrices(kv store.Reader, m *providerpb.MsgRegisterService) error {
	for _, p := range []*coin.Coin{m.PricePerRequest, m.PricePer_1KTokens} {
		if p == nil {
			continue
		}
		known := false
		for _, d := range bank.GetParams(kv).Denoms {
			known = known || d.Name == p.Denom
		}
		if !known {
			return fmt.Errorf("provider: price in unknown denom %q: %w", p.Denom, codes.ErrUnknownDenom)
		}
	}
	return nil
}
