package provider

import (
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/provider/providerpb"
	"github.com/agoranet/agora/internal/chain/store"
)

// Module is the provider registry as a chain module.
type Module struct{}

var (
	_ module.Module     = Module{}
	_ module.EndBlocker = Module{}
)

func (Module) Name() string { return providerpb.Name }

func (Module) Msgs() []module.Msg {
	return []module.Msg{&providerpb.MsgRegisterProvider{}, &providerpb.MsgRegisterService{}, &providerpb.MsgRemoveService{}, &providerpb.MsgHeartbeat{}, &providerpb.MsgDeregister{}}
}

func (Module) Handle(ctx *module.Context, msg module.Msg) (proto.Message, error) {
	switch m := msg.(type) {
	case *providerpb.MsgRegisterProvider:
		return nil, Register(ctx, ctx.Signer, m)
	case *providerpb.MsgRegisterService:
		return nil, RegisterService(ctx, ctx.Signer, m)
	case *providerpb.MsgRemoveService:
		if _, err := mustGet(ctx.KV, ctx.Signer); err != nil {
			return nil, err
		}
		s := GetService(ctx.KV, ctx.Signer, m.ModelId)
		if s == nil {
			return nil, fmt.Errorf("provider: %s offers no model %s: %w", ctx.Signer, m.ModelId, codes.ErrNotFound)
		}
		removeService(ctx, ctx.Signer, s)
		return nil, nil
	case *providerpb.MsgHeartbeat:
		return nil, Heartbeat(ctx, ctx.Signer)
	case *providerpb.MsgDeregister:
		return nil, Deregister(ctx, ctx.Signer)
	}
	return nil, fmt.Errorf("provider: cannot handle %T: %w", msg, codes.ErrUnknownMsg)
}

func (Module) Queries() []module.QueryRoute {
	return []module.QueryRoute{
		module.Serve(providerpb.QueryProviders, func(ctx *module.Context, r *providerpb.QueryProvidersRequest) (*providerpb.QueryProvidersResponse, error) {
			return &providerpb.QueryProvidersResponse{Providers: List(ctx.KV, r.Model, r.OnlineOnly)}, nil
		}),
		module.Serve(providerpb.QueryProvider, func(ctx *module.Context, r *providerpb.QueryProviderRequest) (*providerpb.ProviderInfo, error) {
			a, err := bankpb.ParseAddr("address", r.Address)
			if err != nil {
				return nil, err
			}
			info := Info(ctx.KV, a)
			if info == nil {
				return nil, fmt.Errorf("provider: %s is not registered: %w", a, codes.ErrNotFound)
			}
			return info, nil
		}),
		module.Serve(providerpb.QueryParams, func(ctx *module.Context, _ *providerpb.QueryParamsRequest) (*providerpb.Params, error) {
			return GetParams(ctx.KV), nil
		}),
	}
}

func (Module) DefaultGenesis() json.RawMessage {
	return module.EncodeGenesis(&providerpb.Genesis{Params: providerpb.DefaultParams()})
}

func (m Module) InitGenesis(ctx *module.Context, raw json.RawMessage) error {
	var g providerpb.Genesis
	if err := module.DecodeGenesis(raw, m.DefaultGenesis(), &g); err != nil {
		return fmt.Errorf("provider: %w", err)
	}
	p := g.Params
	if p == nil {
		p = providerpb.DefaultParams()
	}
	if err := m.SetParams(ctx.KV, p); err != nil {
		return fmt.Errorf("provider: genesis params: %w", err)
	}
	return nil
}

// SetParams stores p after checking how its params relate (genesis and
// governance both call it).
func (Module) SetParams(kv store.KV, msg proto.Message) error {
	p := msg.(*providerpb.Params)
	if p.OfflineAfterBlocks < 1 || p.JailAfterBlocks <= p.OfflineAfterBlocks || p.DowntimeSlashBps > 10_000 || p.DowntimeJailBlocks < 0 {
		return fmt.Errorf("want 1 <= offline_after_blocks (%d) < jail_after_blocks (%d), slash <= 10000 bps: %w", p.OfflineAfterBlocks, p.JailAfterBlocks, codes.ErrInvalidRequest)
	}
	kv.Set(paramsKey, module.MustMarshal(p))
	return nil
}

// Params returns the module's params, for the checks of module.Params.
func (Module) Params(kv store.Reader) proto.Message { return GetParams(kv) }

// ParamRanges are the values each param may take, in genesis and in a
// governance proposal.
func (Module) ParamRanges() map[string]module.Range {
	return map[string]module.Range{
		"min_stake":            {Min: 1, Max: 1_000_000_000_000_000},
		"offline_after_blocks": {Min: 1, Max: 1_000_000},
		"jail_after_blocks":    {Min: 2, Max: 10_000_000},
		"downtime_slash_bps":   {Min: 0, Max: 10_000},
		"downtime_jail_blocks": {Min: 0, Max: 10_000_000},
		"allow_plain_http":     {Min: 0, Max: 1},
	}
}
