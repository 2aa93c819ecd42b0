// Package provider is the service registry: who sells which model at what
// price, at which endpoint, and whether they are alive. Providers must have
// stake bonded; a provider that stops sending heartbeats goes offline (not
// routable) and, after a longer silence, is jailed and slashed.
package provider

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/agoranet/agora/internal/chain/account"
	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/bank"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/provider/providerpb"
	"github.com/agoranet/agora/internal/chain/staking"
	"github.com/agoranet/agora/internal/chain/store"
)

var (
	providerPrefix = []byte("provider/p/")  // operator -> Provider
	servicePrefix  = []byte("provider/s/")  // operator | model id -> Service
	modelPrefix    = []byte("provider/m/")  // model id | operator -> nil
	namePrefix     = []byte("provider/n/")  // model name 0x00 operator -> model id
	livenessPrefix = []byte("provider/hb/") // last heartbeat | operator -> nil
	paramsKey      = []byte("provider/params")
)

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func be(n int64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(n))
	return b[:]
}

func providerKey(a addr.Address) []byte           { return cat(providerPrefix, a[:]) }
func serviceKey(a addr.Address, id string) []byte { return cat(servicePrefix, a[:], []byte(id)) }
func modelKey(id string, a addr.Address) []byte   { return cat(modelPrefix, []byte(id), a[:]) }
func nameKey(name string, a addr.Address) []byte {
	return cat(namePrefix, []byte(name), []byte{0}, a[:])
}
func livenessKey(h int64, a addr.Address) []byte { return cat(livenessPrefix, be(h), a[:]) }

// GetParams reads the params.
func GetParams(kv store.Reader) *providerpb.Params {
	v := kv.Get(paramsKey)
	if v == nil {
		return providerpb.DefaultParams()
	}
	p := &providerpb.Params{}
	module.MustUnmarshal(v, p)
	return p
}

// Get returns a provider, or nil if a is not registered.
func Get(kv store.Reader, a addr.Address) *providerpb.Provider {
	v := kv.Get(providerKey(a))
	if v == nil {
		return nil
	}
	p := &providerpb.Provider{}
	module.MustUnmarshal(v, p)
	return p
}

func put(kv store.KV, a addr.Address, p *providerpb.Provider) {
	kv.Set(providerKey(a), module.MustMarshal(p))
}

// Services returns a provider's services, ordered by model id.
func Services(kv store.Reader, a addr.Address) []*providerpb.Service {
	prefix := cat(servicePrefix, a[:])
	it := kv.Iterator(prefix, store.PrefixEnd(prefix))
	defer it.Close()
	var out []*providerpb.Service
	for ; it.Valid(); it.Next() {
		s := &providerpb.Service{}
		module.MustUnmarshal(it.Value(), s)
		out = append(out, s)
	}
	return out
}

// Service returns one offer, or nil.
func GetService(kv store.Reader, a addr.Address, modelID string) *providerpb.Service {
	v := kv.Get(serviceKey(a, modelID))
	if v == nil {
		return nil
	}
	s := &providerpb.Service{}
	module.MustUnmarshal(v, s)
	return s
}

func mustGet(kv store.Reader, a addr.Address) (*providerpb.Provider, error) {
	p := Get(kv, a)
	if p == nil {
		return nil, fmt.Errorf("provider: %s is not registered (send MsgRegisterProvider first): %w", a, codes.ErrNotFound)
	}
	return p, nil
}

func checkJail(ctx *module.Context, a addr.Address) error {
	if until := staking.JailedUntil(ctx.KV, a, ctx.Height); until > 0 {
		return fmt.Errorf("provider: %s is jailed until height %d: %w", a, until, codes.ErrJailed)
	}
	return nil
}

// setAlive records a heartbeat at this height and makes p online.
func setAlive(ctx *module.Context, a addr.Address, p *providerpb.Provider) {
	if p.LastHeartbeat > 0 {
		ctx.KV.Delete(livenessKey(p.LastHeartbeat, a))
	}
	p.LastHeartbeat = ctx.Height
	ctx.KV.Set(livenessKey(ctx.Height, a), []byte{})
	if p.Status != providerpb.Status_STATUS_ONLINE {
		p.Status = providerpb.Status_STATUS_ONLINE
		ctx.Emit("provider_online", module.Key("operator", a.String()))
	}
}

// Register adds a provider or updates its details.
func Register(ctx *module.Context, a addr.Address, m *providerpb.MsgRegisterProvider) error {
	params := GetParams(ctx.KV)
	if have := staking.Bonded(ctx.KV, a); have < params.MinStake {
		return fmt.Errorf("provider: %s has %duagr bonded, a provider needs %d (agora tx bond): %w", a, have, params.MinStake, codes.ErrInsufficientStake)
	}
	if err := checkJail(ctx, a); err != nil {
		return err
	}
	if strings.HasPrefix(m.Endpoint, "http://") && !providerpb.Loopback(m.Endpoint) && params.AllowPlainHttp == 0 {
		return fmt.Errorf("provider: %s is plain http on a network address, which this chain refuses (param allow_plain_http is 0): prompts and answers would cross the network in clear, and clients could not tell they reached you; serve https (agora provider start --tls-cert/--tls-key) and register that: %w", m.Endpoint, codes.ErrInvalidRequest)
	}
	p := Get(ctx.KV, a)
	if p == nil {
		p = &providerpb.Provider{Operator: a.String(), RegisteredAt: ctx.Height}
	}
	p.Endpoint, p.Region, p.Hardware, p.TlsKeySha256 = m.Endpoint, m.Region, m.Hardware, m.TlsKeySha256
	setAlive(ctx, a, p)
	put(ctx.KV, a, p)
	// The stake backs the service: it may not be unbonded from under it.
	staking.SetRequired(ctx, a, providerpb.Name, params.MinStake)
	ctx.Emit("register_provider", module.Key("operator", a.String()), module.Val("endpoint", m.Endpoint))
	return nil
}

// RegisterService adds or updates an offer of a provider.
func RegisterService(ctx *module.Context, a addr.Address, m *providerpb.MsgRegisterService) error {
	if _, err := mustGet(ctx.KV, a); err != nil {
		return err
	}
	if err := checkPrices(ctx.KV, m); err != nil {
		return err
	}
	for _, r := range m.Royalties {
		if err := bank.CheckRecipient(addr.MustParse(r.Recipient)); err != nil {
			return fmt.Errorf("provider: royalty recipient: %w", err)
		}
	}
	if old := GetService(ctx.KV, a, m.ModelId); old != nil && old.ModelName != m.ModelName {
		ctx.KV.Delete(nameKey(old.ModelName, a))
	}
	s := &providerpb.Service{Operator: a.String(), ModelId: m.ModelId, ModelName: m.ModelName, PricePerRequest: m.PricePerRequest,
		PricePer_1KTokens: m.PricePer_1KTokens, MaxConcurrency: m.MaxConcurrency, Royalties: m.Royalties}
	ctx.KV.Set(serviceKey(a, m.ModelId), module.MustMarshal(s))
	ctx.KV.Set(modelKey(m.ModelId, a), []byte{})
	ctx.KV.Set(nameKey(m.ModelName, a), []byte(m.ModelId))
	ctx.Emit("register_service", module.Key("operator", a.String()), module.Key("model_id", m.ModelId), module.Key("model_name", m.ModelName))
	return nil
}

func removeService(ctx *module.Context, a addr.Address, s *providerpb.Service) {
	ctx.KV.Delete(serviceKey(a, s.ModelId))
	ctx.KV.Delete(modelKey(s.ModelId, a))
	ctx.KV.Delete(nameKey(s.ModelName, a))
	ctx.Emit("remove_service", module.Key("operator", a.String()), module.Key("model_id", s.ModelId))
}

// Heartbeat marks a provider alive.
func Heartbeat(ctx *module.Context, a addr.Address) error {
	p, err := mustGet(ctx.KV, a)
	if err != nil {
		return err
	}
	if err := checkJail(ctx, a); err != nil {
		return err
	}
	if err := checkStake(ctx.KV, a); err != nil {
		return err
	}
	setAlive(ctx, a, p)
	put(ctx.KV, a, p)
	return nil
}

// checkStake refuses a provider whose bonded stake is below the minimum:
// with nothing to slash, it must not serve.
func checkStake(kv store.Reader, a addr.Address) error {
	if have, need := staking.Bonded(kv, a), GetParams(kv).MinStake; have < need {
		return fmt.Errorf("provider: %s has %duagr bonded, a provider needs %d; bond more (agora tx bond) to come back online: %w", a, have, need, codes.ErrInsufficientStake)
	}
	return nil
}

// AfterSlash is staking's slash hook: a provider whose stake a slash took
// below the minimum goes offline in the same block, so no router sends it
// another request.
func AfterSlash(ctx *module.Context, a addr.Address) {
	p := Get(ctx.KV, a)
	if p == nil || p.Status != providerpb.Status_STATUS_ONLINE || checkStake(ctx.KV, a) == nil {
		return
	}
	p.Status = providerpb.Status_STATUS_OFFLINE
	put(ctx.KV, a, p)
	ctx.Emit("provider_offline", module.Key("operator", a.String()), module.Val("reason", "stake below the minimum"))
}

// Deregister removes a provider and its offers.
func Deregister(ctx *module.Context, a addr.Address) error {
	p, err := mustGet(ctx.KV, a)
	if err != nil {
		return err
	}
	for _, s := range Services(ctx.KV, a) {
		removeService(ctx, a, s)
	}
	if p.Status != providerpb.Status_STATUS_JAILED {
		ctx.KV.Delete(livenessKey(p.LastHeartbeat, a))
	}
	ctx.KV.Delete(providerKey(a))
	staking.SetRequired(ctx, a, providerpb.Name, 0)
	if afterDeregister != nil {
		afterDeregister(ctx, a)
	}
	ctx.Emit("deregister_provider", module.Key("operator", a.String()))
	return nil
}

var afterDeregister func(ctx *module.Context, operator addr.Address)

// OnDeregister installs what runs after a provider deregisters: the audit
// module holds its stake for as long as its receipts can be challenged
// (provider cannot import audit, which imports it). The app installs it at
// start-up.
func OnDeregister(f func(ctx *module.Context, operator addr.Address)) { afterDeregister = f }

// EndBlock enforces liveness. The liveness index is ordered by last
// heartbeat, so it reads only the providers that are late.
func (Module) EndBlock(ctx *module.Context) error {
	params := GetParams(ctx.KV)
	cutoff := ctx.Height - params.OfflineAfterBlocks
	if cutoff < 0 {
		return nil
	}
	// Late: a last heartbeat at or before the cutoff.
	it := ctx.KV.Iterator(livenessPrefix, livenessKey(cutoff+1, addr.Address{}))
	var late []addr.Address
	for ; it.Valid(); it.Next() {
		var a addr.Address
		copy(a[:], it.Key()[len(livenessPrefix)+8:])
		late = append(late, a)
	}
	it.Close()
	for _, a := range late {
		p := Get(ctx.KV, a)
		silent := ctx.Height - p.LastHeartbeat
		if silent >= params.JailAfterBlocks {
			ctx.KV.Delete(livenessKey(p.LastHeartbeat, a)) // punished once per silence
			p.Status = providerpb.Status_STATUS_JAILED
			p.TimesJailed++
			put(ctx.KV, a, p)
			if _, err := staking.Slash(ctx, a, params.DowntimeSlashBps, params.DowntimeJailBlocks, "downtime"); err != nil {
				return err
			}
			ctx.Emit("provider_jailed", module.Key("operator", a.String()), module.Val("silent_blocks", module.U64(uint64(silent))))
			continue
		}
		if p.Status == providerpb.Status_STATUS_ONLINE {
			p.Status = providerpb.Status_STATUS_OFFLINE
			put(ctx.KV, a, p)
			ctx.Emit("provider_offline", module.Key("operator", a.String()), module.Val("silent_blocks", module.U64(uint64(silent))))
		}
	}
	return nil
}

// Info returns a provider with its services and stake.
func Info(kv store.Reader, a addr.Address) *providerpb.ProviderInfo {
	p := Get(kv, a)
	if p == nil {
		return nil
	}
	return &providerpb.ProviderInfo{Provider: p, Services: Services(kv, a), Stake: staking.Bonded(kv, a), PublicKey: account.Get(kv, a).PublicKey}
}

// List returns the providers that offer model (an id or a name; empty for
// all), ordered by operator address.
func List(kv store.Reader, model string, onlineOnly bool) []*providerpb.ProviderInfo {
	var ops []addr.Address
	collect := func(prefix []byte, skip int) {
		it := kv.Iterator(prefix, store.PrefixEnd(prefix))
		defer it.Close()
		for ; it.Valid(); it.Next() {
			var a addr.Address
			copy(a[:], it.Key()[skip:])
			ops = append(ops, a)
		}
	}
	switch {
	case model == "":
		collect(providerPrefix, len(providerPrefix))
	case providerpb.IsModelID(model):
		collect(cat(modelPrefix, []byte(model)), len(modelPrefix)+len(model))
	default:
		collect(cat(namePrefix, []byte(model), []byte{0}), len(namePrefix)+len(model)+1)
	}
	var out []*providerpb.ProviderInfo
	for _, a := range ops {
		info := Info(kv, a)
		if info == nil || onlineOnly && !routable(kv, info) {
			continue
		}
		out = append(out, info)
	}
	return out
}

// routable is whether a provider may be sent requests: online, and with
// the minimum stake behind it (a slash can take it below at any time).
func routable(kv store.Reader, info *providerpb.ProviderInfo) bool {
	return info.Provider.Status == providerpb.Status_STATUS_ONLINE && info.Stake >= GetParams(kv).MinStake
}

// AddAnchored counts receipts that a payment claim anchored for a
// provider (a no-op for an address that is not a provider).
func AddAnchored(ctx *module.Context, a addr.Address, n uint64) {
	p := Get(ctx.KV, a)
	if p == nil || n == 0 {
		return
	}
	p.AnswersAnchored += n
	put(ctx.KV, a, p)
}

// AddAuditPassed counts an audit a provider passed.
func AddAuditPassed(ctx *module.Context, a addr.Address) {
	if p := Get(ctx.KV, a); p != nil {
		p.AuditsPassed++
		put(ctx.KV, a, p)
	}
}

// AddDisputeLost counts a dispute a provider lost.
func AddDisputeLost(ctx *module.Context, a addr.Address) {
	if p := Get(ctx.KV, a); p != nil {
		p.DisputesLost++
		put(ctx.KV, a, p)
	}
}

// AddJobOutcome counts a batch job a provider completed or faulted on.
func AddJobOutcome(ctx *module.Context, a addr.Address, completed bool) {
	if p := Get(ctx.KV, a); p != nil {
		if completed {
			p.JobsCompleted++
		} else {
			p.JobsFaulted++
		}
		put(ctx.KV, a, p)
	}
}
