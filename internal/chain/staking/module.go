package staking

import (
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/bank"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/module"
)

func (m *MsgBond) Signer() string { return m.Staker }

func (m *MsgBond) ValidateBasic() error { return validate(m.Staker, m.Amount) }

func (m *MsgUnbond) Signer() string { return m.Staker }

func (m *MsgUnbond) ValidateBasic() error { return validate(m.Staker, m.Amount) }

func validate(staker string, amount *coin.Coin) error {
	if _, err := bank.ParseAddr("staker", staker); err != nil {
		return err
	}
	if err := coin.ValidatePositive(amount); err != nil {
		return err
	}
	if amount.Denom != coin.Native {
		return fmt.Errorf("staking: stake is in %s, not %s: %w", coin.Native, amount.Denom, codes.ErrInvalidAmount)
	}
	return nil
}

// Module is staking as a chain module.
type Module struct{}

var (
	_ module.Module     = Module{}
	_ module.EndBlocker = Module{}
)

func (Module) Name() string { return Name }

func (Module) Msgs() []module.Msg { return []module.Msg{&MsgBond{}, &MsgUnbond{}} }

func (Module) Handle(ctx *module.Context, msg module.Msg) error {
	switch m := msg.(type) {
	case *MsgBond:
		return Bond(ctx, ctx.Signer, m.Amount.Amount)
	case *MsgUnbond:
		return Unbond(ctx, ctx.Signer, m.Amount.Amount)
	}
	return fmt.Errorf("staking: cannot handle %T: %w", msg, codes.ErrUnknownMsg)
}

// Query paths: "stake" (data: address), "params".
func (Module) Query(ctx *module.Context, path string, data []byte) (proto.Message, error) {
	switch path {
	case "stake":
		a, err := bank.ParseAddr("address", string(data))
		if err != nil {
			return nil, err
		}
		return &QueryStakeResponse{Stake: Get(ctx.KV, a), Unbondings: Unbondings(ctx.KV, a)}, nil
	case "params":
		return GetParams(ctx.KV), nil
	}
	return nil, fmt.Errorf("staking: no query %q (try stake, params): %w", path, codes.ErrInvalidRequest)
}

func (Module) DefaultGenesis() json.RawMessage {
	return module.EncodeGenesis(&Genesis{Params: DefaultParams()})
}

// InitGenesis sets params and bonds genesis stake out of genesis balances.
func (m Module) InitGenesis(ctx *module.Context, raw json.RawMessage) error {
	var g Genesis
	if err := module.DecodeGenesis(raw, m.DefaultGenesis(), &g); err != nil {
		return fmt.Errorf("staking: %w", err)
	}
	if g.Params == nil {
		g.Params = DefaultParams()
	}
	if g.Params.UnbondingBlocks < 1 {
		return fmt.Errorf("staking: genesis: unbonding_blocks must be at least 1")
	}
	ctx.KV.Set(paramsKey, module.MustMarshal(g.Params))
	for _, b := range g.Bonds {
		a, err := bank.ParseAddr("bond staker", b.Staker)
		if err != nil {
			return fmt.Errorf("staking: genesis: %w", err)
		}
		if err := Bond(ctx, a, b.Amount); err != nil {
			return fmt.Errorf("staking: genesis bond of %s: %w", a, err)
		}
	}
	return nil
}

// Spends: bonding moves the staker's uagr into the bonded pool.
func (m *MsgBond) Spends() []module.Spend {
	return []module.Spend{{From: addr.MustParse(m.Staker), To: BondedPool, Denom: m.Amount.Denom, Amount: m.Amount.Amount}}
}
