package chain_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	abci "github.com/cometbft/cometbft/abci/types"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/agoranet/agora/internal/chain"
	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/agent/agentpb"
	"github.com/agoranet/agora/internal/chain/audit/auditpb"
	"github.com/agoranet/agora/internal/chain/auth/authpb"
	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/channel/channelpb"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/job/jobpb"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/provider/providerpb"
	"github.com/agoranet/agora/internal/chain/staking/stakingpb"
	"github.com/agoranet/agora/internal/chain/tx"
	"github.com/agoranet/agora/internal/node"
)

const testChain = "agora-test-1"

// testGas is the gas limit test txs set unless they say otherwise; its
// minimum fee is 500uagr.
const testGas = 500_000

// signTx signs msgs with the test gas limit and its minimum fee.
func signTx(k ed25519.PrivateKey, seq uint64, msgs ...module.Msg) ([]byte, error) {
	return signTxGas(k, seq, testGas, msgs...)
}

// signTxGas signs msgs with a gas limit and its minimum fee.
func signTxGas(k ed25519.PrivateKey, seq, gasLimit uint64, msgs ...module.Msg) ([]byte, error) {
	return tx.Sign(k, tx.Header{ChainID: testChain, Sequence: seq, GasLimit: gasLimit, Fee: coin.New(coin.Native, authpb.MinFee(authpb.DefaultParams(), gasLimit))}, msgs...)
}

var genesisTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// key returns a deterministic test key for a name.
func key(name string) ed25519.PrivateKey {
	s := sha256.Sum256([]byte("test key " + name))
	return ed25519.NewKeyFromSeed(s[:])
}

func address(name string) addr.Address {
	return addr.FromPubKey(key(name).Public().(ed25519.PublicKey))
}

// harness drives an App the way CometBFT does, without consensus: the
// blocks are whatever the test says.
type harness struct {
	t       testing.TB
	dir     string
	app     *chain.App
	height  int64
	pending [][]byte
	// queued counts txs per signer since the last commit, for automatic
	// sequence numbers.
	queued map[string]uint64
}

// names are the scripts' accounts, which logs show by name.
var names = []string{"alice", "bob", "issuer", "carol", "dave", "erin", "frank", "robot", "v1", "v2", "v3", "v4"}

// newHarness starts an app with alice, bob and issuer funded (1,000,000
// of each denom), dave, erin, frank and v1..v4 with 1,000,000,000uagr each, and issuer
// minting uusdc. dir "" keeps state in memory.
// Options change the genesis (a model key, say).
func newHarness(t testing.TB, dir string, opts ...func(*node.Genesis)) *harness {
	t.Helper()
	h := &harness{t: t, dir: dir, queued: map[string]uint64{}}
	h.open()
	g := node.Genesis{ChainID: testChain, Time: genesisTime, Issuer: address("issuer")}
	for _, n := range []string{"alice", "bob", "issuer"} {
		g.Accounts = append(g.Accounts, node.Account{Address: address(n), Coins: []*coin.Coin{coin.New("uagr", 1_000_000), coin.New("uusdc", 1_000_000)}})
	}
	// dave, erin and frank can afford a provider's stake, v1..v4 a verifier's.
	for _, n := range []string{"dave", "erin", "frank", "v1", "v2", "v3", "v4"} {
		g.Accounts = append(g.Accounts, node.Account{Address: address(n), Coins: []*coin.Coin{coin.New("uagr", 1_000_000_000)}})
	}
	for _, o := range opts {
		o(&g)
	}
	doc, err := g.Doc()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.app.InitChain(context.Background(), &abci.RequestInitChain{ChainId: testChain, Time: genesisTime, InitialHeight: 1, AppStateBytes: doc.AppState}); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) open() {
	app, err := chain.New(chain.Config{Dir: h.dir, KeepVersions: 0, CacheNodes: 1000})
	if err != nil {
		h.t.Fatal(err)
	}
	h.app = app
	info, _ := app.Info(context.Background(), &abci.RequestInfo{})
	h.height = info.LastBlockHeight
}

// restart closes the app and opens it again from disk, as after a crash
// between blocks.
func (h *harness) restart() {
	h.app.Close()
	h.open()
}

func (h *harness) close() { h.app.Close() }

// block finalizes and commits the pending txs.
func (h *harness) block() (*abci.ResponseFinalizeBlock, []byte) { return h.blockWith(nil) }

// blockWith is block with a request that set changes (the last commit's
// votes, evidence, the proposer).
func (h *harness) blockWith(set func(*abci.RequestFinalizeBlock)) (*abci.ResponseFinalizeBlock, []byte) {
	h.height++
	// A block's hash is the seed modules draw from (storage challenges).
	hash := sha256.Sum256(fmt.Appendf(nil, "block %d", h.height))
	req := &abci.RequestFinalizeBlock{Height: h.height, Time: genesisTime.Add(time.Duration(h.height) * time.Second), Txs: h.pending, Hash: hash[:]}
	if set != nil {
		set(req)
	}
	resp, err := h.app.FinalizeBlock(context.Background(), req)
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.app.Commit(context.Background(), &abci.RequestCommit{}); err != nil {
		h.t.Fatal(err)
	}
	h.pending = nil
	clear(h.queued)
	return resp, resp.AppHash
}

// ask runs one of a module's typed queries against the app, as a client
// would over the RPC.
func ask[Req, Resp proto.Message](h *harness, q module.Query[Req, Resp], req Req) (Resp, error) {
	var zero Resp
	data, err := proto.Marshal(req)
	if err != nil {
		return zero, err
	}
	r, err := h.app.Query(context.Background(), &abci.RequestQuery{Path: q.Path, Data: data})
	if err != nil {
		return zero, err
	}
	if r.Code != 0 {
		return zero, fmt.Errorf("code %d: %s", r.Code, r.Log)
	}
	out := zero.ProtoReflect().Type().New().Interface().(Resp)
	return out, proto.Unmarshal(r.Value, out)
}

func (h *harness) sequence(name string) uint64 {
	var seq uint64
	if h.height > 0 {
		acc, err := ask(h, authpb.QueryAccount, &authpb.QueryAccountRequest{Address: address(name).String()})
		if err != nil {
			h.t.Fatal(err)
		}
		seq = acc.Sequence
	}
	return seq + h.queued[name]
}

// buildTx makes a signed tx from datadriven arguments:
//
//	from=alice msg=send to=bob amount=5uagr [seq=N] [fee=10uagr] [chain=ID] [signer=NAME] [badsig]
func (h *harness) buildTx(d *datadriven.TestData) ([]byte, string) {
	arg := func(k, def string) string {
		for _, a := range d.CmdArgs {
			if a.Key == k {
				if len(a.Vals) == 0 {
					return "true"
				}
				return a.Vals[0]
			}
		}
		return def
	}
	from := arg("from", "alice")
	signer := arg("signer", from)
	var msg module.Msg
	fromAddr := address(from).String()
	target := func(n string) string {
		if strings.HasPrefix(n, "agora") {
			return n
		}
		return address(n).String()
	}
	coins := func(s string) []*coin.Coin {
		var out []*coin.Coin
		for _, p := range strings.Split(s, ",") {
			c, err := coin.Parse(p)
			if err != nil {
				h.t.Fatalf("%s: %v", d.Pos, err)
			}
			out = append(out, c)
		}
		return out
	}
	switch arg("msg", "send") {
	case "send":
		msg = &bankpb.MsgSend{From: fromAddr, To: target(arg("to", "bob")), Amount: coins(arg("amount", "1uagr"))}
	case "multisend":
		m := &bankpb.MsgMultiSend{From: fromAddr}
		for _, o := range strings.Split(arg("outputs", "bob:1uagr"), ";") {
			to, amt, _ := strings.Cut(o, ":")
			m.Outputs = append(m.Outputs, &bankpb.Output{To: target(to), Amount: coins(amt)})
		}
		msg = m
	case "mint":
		msg = &bankpb.MsgMint{Issuer: fromAddr, To: target(arg("to", from)), Amount: coins(arg("amount", "1uusdc"))[0]}
	case "burn":
		msg = &bankpb.MsgBurn{From: fromAddr, Amount: coins(arg("amount", "1uagr"))[0]}
	case "bond":
		msg = &stakingpb.MsgBond{Staker: fromAddr, Amount: coins(arg("amount", "100000000uagr"))[0]}
	case "unbond":
		msg = &stakingpb.MsgUnbond{Staker: fromAddr, Amount: coins(arg("amount", "100000000uagr"))[0]}
	case "register":
		msg = &providerpb.MsgRegisterProvider{Operator: fromAddr, Endpoint: arg("endpoint", "http://127.0.0.1:8080"), Region: arg("region", "eu"), Hardware: arg("hardware", "cpu")}
	case "service":
		m := &providerpb.MsgRegisterService{Operator: fromAddr, ModelId: arg("model", strings.Repeat("ab", 32)), ModelName: arg("name", "agora/tiny-lm"),
			PricePerRequest: coins(arg("price", "0uusdc"))[0], MaxConcurrency: 4}
		if r := arg("royalty", ""); r != "" {
			to, bps, _ := strings.Cut(r, ":")
			var n uint32
			fmt.Sscan(bps, &n)
			m.Royalties = []*providerpb.Royalty{{Recipient: target(to), Bps: n}}
		}
		msg = m
	case "heartbeat":
		msg = &providerpb.MsgHeartbeat{Operator: fromAddr}
	case "open":
		var exp int64
		fmt.Sscan(arg("expires", "1000"), &exp)
		m := &channelpb.MsgOpenChannel{Payer: fromAddr, Payee: target(arg("to", "dave")), ModelId: arg("model", ""), Deposit: coins(arg("deposit", "1000uusdc"))[0],
			ExpiresAt: exp, PayerKey: key(from).Public().(ed25519.PublicKey)}
		if sk := arg("session", ""); sk != "" {
			m.SessionKey = key(sk).Public().(ed25519.PublicKey)
		}
		msg = m
	case "fund":
		var id uint64
		fmt.Sscan(arg("channel", "1"), &id)
		msg = &channelpb.MsgFundChannel{Payer: fromAddr, ChannelId: id, Amount: coins(arg("amount", "100uusdc"))[0]}
	case "extend":
		var id uint64
		var exp int64
		fmt.Sscan(arg("channel", "1"), &id)
		fmt.Sscan(arg("expires", "2000"), &exp)
		msg = &channelpb.MsgExtendChannel{Payer: fromAddr, ChannelId: id, ExpiresAt: exp}
	case "claim", "close":
		// channel=ID cumulative=N amount=N voucher=SIGNER [chain=ID]
		var id, cum, amt uint64
		fmt.Sscan(arg("channel", "1"), &id)
		fmt.Sscan(arg("cumulative", "0"), &cum)
		fmt.Sscan(arg("amount", arg("cumulative", "0")), &amt)
		var cl *channelpb.Claim
		if cum > 0 {
			v := channelpb.SignVoucher(key(arg("voucher", "alice")), arg("voucher_chain", testChain), id, cum)
			var n uint64
			fmt.Sscan(arg("receipts", "1"), &n)
			cl = &channelpb.Claim{Voucher: v, Amount: amt, ReceiptsRoot: make([]byte, 32), ReceiptsCount: n}
		}
		if arg("msg", "") == "close" {
			msg = &channelpb.MsgCloseChannel{Payee: fromAddr, ChannelId: id, Final: cl}
		} else {
			msg = &channelpb.MsgClaim{Payee: fromAddr, Claims: []*channelpb.Claim{cl}}
		}
	case "settle":
		var id uint64
		fmt.Sscan(arg("channel", "1"), &id)
		msg = &channelpb.MsgSettleExpired{Payer: fromAddr, ChannelId: id}
	case "authz":
		// payer=NAME to=NAME amount=C [nonce=N] [before=UNIX]: from submits
		payer := arg("payer", "alice")
		var nonce, before int64
		fmt.Sscan(arg("nonce", "1"), &nonce)
		fmt.Sscan(arg("before", "1900000000"), &before)
		n := make([]byte, 32)
		n[31] = byte(nonce)
		a := &bankpb.Authorization{From: address(payer).String(), To: target(arg("to", "bob")), Amount: coins(arg("amount", "5uusdc"))[0],
			ValidAfter: 0, ValidBefore: before, Nonce: n}
		bankpb.SignAuthorization(key(payer), testChain, a)
		msg = &bankpb.MsgTransferWithAuthorization{Submitter: fromAddr, Authorization: a}
	case "agent":
		// owner is from; agent=NAME; policy: denom per_tx per_period period lifetime recipients msgs expires
		msg = &agentpb.MsgCreateAgent{Owner: fromAddr, AgentKey: key(arg("agent", "robot")).Public().(ed25519.PublicKey),
			Consent: ed25519.Sign(key(arg("agent", "robot")), agentpb.ConsentBytes(testChain, fromAddr)), Policy: h.policy(arg)}
	case "policy":
		msg = &agentpb.MsgSetPolicy{Owner: fromAddr, Agent: address(arg("agent", "robot")).String(), Policy: h.policy(arg)}
	case "freeze":
		msg = &agentpb.MsgFreezeAgent{Owner: fromAddr, Agent: address(arg("agent", "robot")).String()}
	case "unfreeze":
		msg = &agentpb.MsgUnfreezeAgent{Owner: fromAddr, Agent: address(arg("agent", "robot")).String()}
	case "revoke":
		msg = &agentpb.MsgRevokeAgent{Owner: fromAddr, Agent: address(arg("agent", "robot")).String()}
	case "deregister":
		msg = &providerpb.MsgDeregister{Operator: fromAddr}
	case "verifier":
		msg = &auditpb.MsgRegisterVerifier{Verifier: fromAddr}
	case "order":
		// module=NAME input=NAME price=C r=N window=N deadline=N fuel=N mem=N
		var r uint32
		var window, deadline int64
		var fuel uint64
		var mem uint32
		fmt.Sscan(arg("r", "0"), &r)
		fmt.Sscan(arg("window", "0"), &window)
		fmt.Sscan(arg("deadline", "0"), &deadline)
		fmt.Sscan(arg("fuel", "1000000"), &fuel)
		fmt.Sscan(arg("mem", "64"), &mem)
		mh, ih := sha256.Sum256([]byte(arg("module", "kernel"))), sha256.Sum256([]byte(arg("input", "in")))
		msg = &jobpb.MsgCreateOrder{Tenant: fromAddr, ModuleHash: mh[:], ModuleUrl: arg("module_url", "http://127.0.0.1:9001/v1/blobs/m"), InputHash: ih[:],
			InputUrl: "http://127.0.0.1:9001/v1/blobs/i", Fuel: fuel, MemoryMib: mem, MaxPrice: coins(arg("price", "1000uusdc"))[0], Redundancy: r, BidWindow: window, DeadlineBlocks: deadline}
	case "cancel":
		msg = &jobpb.MsgCancelOrder{Tenant: fromAddr, OrderId: h.u64(arg("order", "1"))}
	case "bid":
		msg = &jobpb.MsgBid{Provider: fromAddr, OrderId: h.u64(arg("order", "1")), Price: coins(arg("price", "500uusdc"))[0]}
	case "commit", "reveal", "vcommit", "vreveal":
		// order=N result=NAME code=ok salt=NAME [committed=NAME: what the commitment was to]
		id := h.u64(arg("order", "1"))
		res := jobResult(arg("result", "out"), arg("code", "ok"))
		salt := sha256.Sum256([]byte(arg("salt", "salt")))
		commitment := jobpb.ResultCommitment(id, fromAddr, jobResult(arg("committed", arg("result", "out")), arg("code", "ok")), salt[:])
		switch arg("msg", "") {
		case "commit":
			msg = &jobpb.MsgCommitResult{Provider: fromAddr, OrderId: id, Commitment: commitment}
		case "reveal":
			msg = &jobpb.MsgRevealResult{Provider: fromAddr, OrderId: id, Result: res, Salt: salt[:], OutputUrl: "http://127.0.0.1:9001/v1/blobs/o"}
		case "vcommit":
			msg = &jobpb.MsgCommitVote{Verifier: fromAddr, OrderId: id, Commitment: commitment}
		case "vreveal":
			msg = &jobpb.MsgRevealVote{Verifier: fromAddr, OrderId: id, Result: res, Salt: salt[:]}
		}
	default:
		h.t.Fatalf("%s: unknown msg", d.Pos)
	}
	seq := h.sequence(signer)
	if s := arg("seq", ""); s != "" {
		fmt.Sscan(s, &seq)
	}
	var gasLimit uint64
	fmt.Sscan(arg("gas", fmt.Sprint(testGas)), &gasLimit)
	fee := coin.New(coin.Native, authpb.MinFee(authpb.DefaultParams(), gasLimit))
	if f := arg("fee", ""); f != "" {
		fee = coins(f)[0]
	}
	raw, err := tx.Sign(key(signer), tx.Header{ChainID: arg("chain", testChain), Sequence: seq, GasLimit: gasLimit, Fee: fee}, msg)
	if err != nil {
		h.t.Fatal(err)
	}
	if arg("badsig", "") != "" {
		raw[len(raw)-1] ^= 1
	}
	return raw, signer
}

func (h *harness) u64(s string) uint64 {
	var n uint64
	fmt.Sscan(s, &n)
	return n
}

// jobResult is a job result whose output is the bytes of name.
func jobResult(name, code string) *jobpb.Result {
	c := jobpb.ResultCode(jobpb.ResultCode_value["RESULT_CODE_"+strings.ToUpper(code)])
	h := sha256.Sum256([]byte(name))
	return &jobpb.Result{Code: c, OutputHash: h[:], OutputSize: uint64(len(name))}
}

// policy reads an agent policy from datadriven arguments.
func (h *harness) policy(arg func(k, def string) string) *agentpb.Policy {
	p := &agentpb.Policy{Denom: arg("denom", "uusdc")}
	fmt.Sscan(arg("per_tx", "0"), &p.MaxPerTx)
	fmt.Sscan(arg("per_period", "0"), &p.MaxPerPeriod)
	fmt.Sscan(arg("period", "0"), &p.PeriodBlocks)
	fmt.Sscan(arg("lifetime", "0"), &p.MaxLifetime)
	fmt.Sscan(arg("expires_at", "0"), &p.ExpiresAt)
	fmt.Sscan(arg("fees", "100000"), &p.FeeAllowance)
	fmt.Sscan(arg("period_fees", "0"), &p.FeeAllowancePerPeriod)
	if r := arg("recipients", ""); r != "" {
		for _, n := range strings.Split(r, ",") {
			p.AllowedRecipients = append(p.AllowedRecipients, address(n).String())
		}
	}
	if m := arg("msgs", ""); m != "" {
		p.AllowedMsgs = strings.Split(m, ",")
	}
	return p
}

func (h *harness) name(a string) string {
	for _, n := range names {
		if address(n).String() == a {
			return n
		}
	}
	return a
}

// run is the datadriven command interpreter.
func (h *harness) run(t *testing.T, d *datadriven.TestData) string {
	switch d.Cmd {
	case "check", "deliver":
		raw, signer := h.buildTx(d)
		if d.Cmd == "deliver" {
			h.pending = append(h.pending, raw)
			h.queued[signer]++
			return "queued"
		}
		r, _ := h.app.CheckTx(context.Background(), &abci.RequestCheckTx{Tx: raw, Type: abci.CheckTxType_New})
		if r.Code != 0 {
			return fmt.Sprintf("code %d: %s", r.Code, h.shorten(r.Log))
		}
		h.queued[signer]++
		return "ok"
	case "replay":
		// Queue the last queued tx's exact bytes again.
		h.pending = append(h.pending, h.pending[len(h.pending)-1])
		return "queued"
	case "check-raw":
		raw, err := hex.DecodeString(strings.TrimSpace(d.Input))
		if err != nil {
			t.Fatal(err)
		}
		r, _ := h.app.CheckTx(context.Background(), &abci.RequestCheckTx{Tx: raw})
		return fmt.Sprintf("code %d: %s", r.Code, r.Log)
	case "block":
		resp, hash := h.block()
		var b strings.Builder
		for i, r := range resp.TxResults {
			if r.Code == 0 {
				fmt.Fprintf(&b, "tx %d: ok%s\n", i, h.responses(r.Data))
			} else {
				fmt.Fprintf(&b, "tx %d: code %d: %s\n", i, r.Code, h.shorten(r.Log))
			}
		}
		fmt.Fprintf(&b, "height %d app hash %X", h.height, hash[:6])
		return b.String()
	case "balance":
		r, err := ask(h, bankpb.QueryBalance, &bankpb.QueryBalanceRequest{Address: address(d.CmdArgs[0].Key).String()})
		if err != nil {
			return err.Error()
		}
		var parts []string
		for _, c := range r.Balances {
			parts = append(parts, coin.String(c))
		}
		if len(parts) == 0 {
			return "(none)"
		}
		return strings.Join(parts, " ")
	case "supply":
		r, err := ask(h, bankpb.QuerySupply, &bankpb.QuerySupplyRequest{})
		if err != nil {
			return err.Error()
		}
		var parts []string
		for _, c := range r.Supply {
			parts = append(parts, coin.String(c))
		}
		return strings.Join(parts, " ")
	case "account":
		acc, err := ask(h, authpb.QueryAccount, &authpb.QueryAccountRequest{Address: address(d.CmdArgs[0].Key).String()})
		if err != nil {
			return err.Error()
		}
		return fmt.Sprintf("sequence %d", acc.Sequence)
	case "blocks":
		// Advance n empty blocks and print the events the chain emitted.
		var n int
		fmt.Sscan(d.CmdArgs[0].Key, &n)
		var b strings.Builder
		for i := 0; i < n; i++ {
			resp, _ := h.block()
			for _, ev := range resp.Events {
				fmt.Fprintf(&b, "height %d: %s", h.height, ev.Type)
				for _, a := range ev.Attributes {
					fmt.Fprintf(&b, " %s=%s", a.Key, h.shorten(a.Value))
				}
				b.WriteString("\n")
			}
		}
		fmt.Fprintf(&b, "at height %d", h.height)
		return b.String()
	case "stake":
		r, err := ask(h, stakingpb.QueryStake, &stakingpb.QueryStakeRequest{Address: address(d.CmdArgs[0].Key).String()})
		if err != nil {
			return err.Error()
		}
		out := fmt.Sprintf("bonded %d unbonding %d slashed %d jailed_until %d", r.Stake.Bonded, r.Stake.Unbonding, r.Stake.Slashed, r.Stake.JailedUntil)
		for _, u := range r.Unbondings {
			out += fmt.Sprintf("\nunbonding %d at %d", u.Amount, u.CompletesAt)
		}
		return out
	case "provider":
		r, err := ask(h, providerpb.QueryProvider, &providerpb.QueryProviderRequest{Address: address(d.CmdArgs[0].Key).String()})
		if err != nil {
			return h.shorten(err.Error())
		}
		p := r.Provider
		out := fmt.Sprintf("%s %s last_heartbeat %d jailed %d times, stake %d", p.Status, p.Endpoint, p.LastHeartbeat, p.TimesJailed, r.Stake)
		for _, sv := range r.Services {
			out += fmt.Sprintf("\nservice %s %s…", sv.ModelName, sv.ModelId[:8])
		}
		return out
	case "providers":
		req := &providerpb.QueryProvidersRequest{}
		if len(d.CmdArgs) > 0 {
			req.Model = d.CmdArgs[0].Key
		}
		r, err := ask(h, providerpb.QueryProviders, req)
		if err != nil {
			return err.Error()
		}
		var names []string
		for _, p := range r.Providers {
			names = append(names, h.name(p.Provider.Operator)+":"+p.Provider.Status.String())
		}
		return "[" + strings.Join(names, " ") + "]"
	case "channel":
		var id uint64
		fmt.Sscan(d.CmdArgs[0].Key, &id)
		c, err := ask(h, channelpb.QueryChannel, &channelpb.QueryChannelRequest{Id: id})
		if err != nil {
			return h.shorten(err.Error())
		}
		return h.shorten(fmt.Sprintf("channel %d %s->%s deposit %d%s claimed %d expires %d receipts %d closed %v", c.Id, c.Payer, c.Payee, c.Deposit, c.Denom, c.Claimed, c.ExpiresAt, c.Receipts, c.Closed))
	case "agent":
		r, err := ask(h, agentpb.QueryAgent, &agentpb.QueryAgentRequest{Address: address(d.CmdArgs[0].Key).String()})
		if err != nil {
			return h.shorten(err.Error())
		}
		a := r.Agent
		rem := func(n uint64) string {
			if n == ^uint64(0) {
				return "unlimited"
			}
			return fmt.Sprint(n)
		}
		return h.shorten(fmt.Sprintf("agent of %s frozen %v revoked %v spent %d (period %d) remaining period %s lifetime %s", a.Owner, a.Frozen, a.Revoked, a.SpentTotal, a.SpentInPeriod, rem(r.RemainingInPeriod), rem(r.RemainingLifetime)))
	case "order":
		r, err := ask(h, jobpb.QueryOrder, &jobpb.QueryOrderRequest{Id: h.u64(d.CmdArgs[0].Key)})
		if err != nil {
			return h.shorten(err.Error())
		}
		o := r.Order
		var b strings.Builder
		fmt.Fprintf(&b, "order %d %s escrow %d paid %d refunded %d releases %d", o.Id, strings.TrimPrefix(o.Status.String(), "ORDER_STATUS_"), o.Escrow, o.Paid, o.Refunded, o.Releases)
		if o.Reason != "" {
			fmt.Fprintf(&b, " reason %q", o.Reason)
		}
		for _, l := range o.Leases {
			fmt.Fprintf(&b, "\nlease %s %d %s deadline %d", h.name(l.Provider), l.Price, strings.TrimPrefix(l.Status.String(), "LEASE_STATUS_"), l.Deadline)
			if l.Reason != "" {
				fmt.Fprintf(&b, " (%s)", l.Reason)
			}
		}
		for _, v := range o.Votes {
			fmt.Fprintf(&b, "\nvote %s", h.name(v.Verifier))
			if v.Result != nil {
				fmt.Fprintf(&b, " %s", strings.TrimPrefix(v.Result.Code.String(), "RESULT_CODE_"))
			}
		}
		return h.shorten(b.String())
	case "restart":
		h.restart()
		info, _ := h.app.Info(context.Background(), &abci.RequestInfo{})
		return fmt.Sprintf("height %d app hash %X", info.LastBlockHeight, info.LastBlockAppHash[:6])
	}
	t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
	return ""
}

// shorten replaces addresses in logs with names, so scripts stay readable.
// responses renders a tx's typed message responses (ExecTxResult.Data)
// as " name=value ..." for the scripts; messages without one print nothing.
func (h *harness) responses(data []byte) string {
	var rs tx.Responses
	if err := proto.Unmarshal(data, &rs); err != nil {
		h.t.Fatalf("tx result data is not a tx.Responses: %v", err)
	}
	var b strings.Builder
	for _, a := range rs.Responses {
		if a.GetTypeUrl() == "" {
			continue
		}
		m, err := a.UnmarshalNew()
		if err != nil {
			h.t.Fatalf("response %s: %v", a.TypeUrl, err)
		}
		m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			fmt.Fprintf(&b, " %s=%v", fd.Name(), h.shorten(fmt.Sprint(v.Interface())))
			return true
		})
	}
	return b.String()
}

func (h *harness) shorten(s string) string {
	for _, n := range names {
		s = strings.ReplaceAll(s, address(n).String(), n)
	}
	s = strings.ReplaceAll(s, authpb.FeePool.String(), "fee_pool")
	s = strings.ReplaceAll(s, stakingpb.BondedPool.String(), "bonded_pool")
	s = strings.ReplaceAll(s, jobpb.Escrow.String(), "job_escrow")
	s = strings.ReplaceAll(s, stakingpb.UnbondingPool.String(), "unbonding_pool")
	s = strings.ReplaceAll(s, channelpb.Escrow.String(), "escrow")
	return s
}

// TestScripts replays each testdata script on two fresh nodes, one in
// memory and one on disk, so every printed app hash is checked twice.
func TestScripts(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		for _, dir := range []string{"", t.TempDir()} {
			h := newHarness(t, dir)
			datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
				if d.Cmd == "restart" && dir == "" {
					// An in-memory node has nothing to restart from; print
					// what the disk node will, from the live state.
					info, _ := h.app.Info(context.Background(), &abci.RequestInfo{})
					return fmt.Sprintf("height %d app hash %X", info.LastBlockHeight, info.LastBlockAppHash[:6])
				}
				return h.run(t, d)
			})
			if err := checkInvariant(h); err != nil {
				t.Error(err)
			}
			h.close()
		}
	})
}

// checkInvariant verifies supply == sum of balances through the app's own
// state, at the latest commit.
func checkInvariant(h *harness) error {
	return chain.CheckInvariants(h.app)
}
