package provider

import (
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/provider/providerpb"
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

func (Module) Handle(ctx *module.Context, msg module.Msg) error {
	switch m := msg.(type) {
	case *providerpb.MsgRegisterProvider:
		return Register(ctx, ctx.Signer, m)
	case *providerpb.MsgRegisterService:
		return RegisterService(ctx, ctx.Signer, m)
	case *providerpb.MsgRemoveService:
		if _, err := mustGet(ctx.KV, ctx.Signer); err != nil {
			return err
		}
		s := GetService(ctx.KV, ctx.Signer, m.ModelId)
		if s == nil {
			return fmt.Errorf("provider: %s offers no model %s: %w", ctx.Signer, m.ModelId, codes.ErrNotFound)
		}
		removeService(ctx, ctx.Signer, s)
		return nil
	case *providerpb.MsgHeartbeat:
		return Heartbeat(ctx, ctx.Signer)
	case *providerpb.MsgDeregister:
		return Deregister(ctx, ctx.Signer)
	}
	return fmt.Errorf("provider: cannot handle %T: %w", msg, codes.ErrUnknownMsg)
}

// Query paths: "providers" (data: a QueryProvidersRequest), "provider"
// (data: operator address), "params".
func (Module) Query(ctx *module.Context, path string, data []byte) (proto.Message, error) {
	switch path {
	case "providers":
		var req providerpb.QueryProvidersRequest
		if err := proto.Unmarshal(data, &req); err != nil {
			return nil, fmt.Errorf("provider: bad providers query: %w", codes.ErrInvalidRequest)
		}
		return &providerpb.QueryProvidersResponse{Providers: List(ctx.KV, req.Model, req.OnlineOnly)}, nil
	case "provider":
		a, err := bankpb.ParseAddr("address", string(data))
		if err != nil {
			return nil, err
		}
		info := Info(ctx.KV, a)
		if info == nil {
			return nil, fmt.Errorf("provider: %s is not registered: %w", a, codes.ErrNotFound)
		}
		return info, nil
	case "params":
		return GetParams(ctx.KV), nil
	}
	return nil, fmt.Errorf("provider: no query %q (try providers, provider, params): %w", path, codes.ErrInvalidRequest)
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
	if p.OfflineAfterBlocks < 1 || p.JailAfterBlocks <= p.OfflineAfterBlocks || p.DowntimeSlashBps > 10_000 || p.DowntimeJailBlocks < 0 {
		return fmt.Errorf("provider: genesis params: want 1 <= offline_after < jail_after, slash <= 10000 bps")
	}
	ctx.KV.Set(paramsKey, module.MustMarshal(p))
	return nil
}
