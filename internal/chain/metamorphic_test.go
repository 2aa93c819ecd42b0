package chain_test

// TestMetamorphic is a metamorphic test in the style of pebble's: random
// sequences of valid and invalid txs, from many accounts and agents, over
// every module's messages, go as identical blocks to two apps, one in
// memory and one on disk (with other pruning and cache settings, its
// signature cache warmed by CheckTx now and then, and restarted from disk
// every few blocks). After each block both must agree on every tx's
// result and on the app hash, and both must hold every invariant.
//
// The generators are in metagen_test.go. A run is a function of its seed:
//
//	go test -run TestMetamorphic ./internal/chain -meta.seed=N -meta.txs=N -v

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	cmted25519 "github.com/cometbft/cometbft/crypto/ed25519"
	cmttypes "github.com/cometbft/cometbft/types"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/agoranet/agora/internal/chain"
	"github.com/agoranet/agora/internal/chain/agent/agentpb"
	"github.com/agoranet/agora/internal/chain/audit/auditpb"
	"github.com/agoranet/agora/internal/chain/auth/authpb"
	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/beacon/beaconpb"
	"github.com/agoranet/agora/internal/chain/channel/channelpb"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/gov/govpb"
	"github.com/agoranet/agora/internal/chain/job/jobpb"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/provider/providerpb"
	"github.com/agoranet/agora/internal/chain/staking/stakingpb"
	"github.com/agoranet/agora/internal/chain/storage/storagepb"
	"github.com/agoranet/agora/internal/chain/tx"
	"github.com/agoranet/agora/internal/node"
)

var (
	metaTxs  = flag.Int("meta.txs", metaDefaultTxs, "how many random txs TestMetamorphic sends")
	metaSeed = flag.Uint64("meta.seed", 0, "TestMetamorphic's seed; 0 takes one from the clock")
)

// metaDefaultTxs is the tx count in CI: about 5 s, and 25 s under the
// race detector (the digits proof made once is 1.5 s and 5 s of it).
const metaDefaultTxs = 2000

// metaExempt names the message types allowed never to succeed in a run,
// with the reason. Empty: every generator must produce a message that
// succeeds at least once at the default count.
var metaExempt = map[string]string{}

// metaProposer is a proposer the staking module does not know.
var metaProposer = bytes.Repeat([]byte{0xa5}, 20)

// TestEveryMessageHasAGenerator fails for any message type a module
// handles that TestMetamorphic cannot send: a later module registers its
// messages' generators in metaGenerators.
func TestEveryMessageHasAGenerator(t *testing.T) {
	handled := map[string]bool{}
	for _, m := range chain.Modules() {
		for _, msg := range m.Msgs() {
			url := tx.TypeURL(msg)
			handled[url] = true
			g, ok := metaGenerators[url]
			if !ok {
				t.Errorf("%s (module %s) has no generator: add one to metaGenerators in metagen_test.go, so that TestMetamorphic sends it", url, m.Name())
				continue
			}
			if g.weight <= 0 {
				t.Errorf("%s has generator weight %d, so it is never picked", url, g.weight)
			}
		}
	}
	for _, url := range metaTypes() {
		if !handled[url] {
			t.Errorf("metaGenerators has a generator for %s, which no module handles", url)
		}
	}
}

// metaTypes lists the generators' types in a fixed order.
func metaTypes() []string {
	var out []string
	for url := range metaGenerators {
		out = append(out, url)
	}
	sort.Strings(out)
	return out
}

// metaTx is a tx of a block, with what the report and the tally need.
type metaTx struct {
	raw   []byte
	desc  string
	types []string     // its messages' type URLs
	hooks [][]metaHook // per message, run if it succeeds
	setup bool         // builds the world; not tallied
}

// metaRun drives the two apps.
type metaRun struct {
	t         *testing.T
	seed      uint64
	dir       string
	mem, disk *chain.App
	w         *world
	types     []string
	weights   int
	height    int64
	lastHash  []byte
	ok, bad   map[string]int
	codes     map[string]map[uint32]int
	history   []string // the last blocks, for a failure's report
	restarts  int
	checked   int // txs run through CheckTx on the disk app
}

func TestMetamorphic(t *testing.T) {
	seed := *metaSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	start := time.Now()
	t.Logf("seed %d, %d txs (go test -run TestMetamorphic ./internal/chain -meta.seed=%d -meta.txs=%d)", seed, *metaTxs, seed, *metaTxs)
	fx := digitsFixture(t)
	t.Logf("digits-mlp proof made in %v", time.Since(start).Round(time.Millisecond))
	m := &metaRun{t: t, seed: seed, dir: t.TempDir(), types: metaTypes(), ok: map[string]int{}, bad: map[string]int{}, codes: map[string]map[uint32]int{}}
	for _, url := range m.types {
		m.weights += metaGenerators[url].weight
	}
	m.mem = m.open("")
	m.disk = m.open(m.dir)
	defer func() { m.mem.Close(); m.disk.Close() }()
	m.w = newWorld(t, seed, m.mem, fx)
	m.initChain(fx)
	m.setup()

	// The run sends the txs asked for; if some message type has not
	// succeeded by then, up to twice as many again (a flow such as a job
	// dispute's votes or a proposal's needs its steps in order, and a
	// seed can be unlucky), and then fails for any that still has not.
	sent, grace := 0, 0
	more := func() bool {
		return sent < *metaTxs || grace < 2**metaTxs && *metaTxs >= metaDefaultTxs && len(m.neverOK()) > 0
	}
	for more() {
		var txs []*metaTx
		for n := m.w.r.IntN(14); n > 0 && more(); n-- {
			txs = append(txs, m.genTx())
			if sent++; sent > *metaTxs {
				grace++
			}
		}
		if len(txs) > 0 && m.w.oneIn(30) {
			// A proposer includes a tx twice: the second is a replay.
			dup := *pick(m.w, txs)
			dup.desc, dup.hooks = "replay of "+dup.desc, make([][]metaHook, len(dup.types))
			txs = append(txs, &dup)
		}
		m.block(txs)
		if m.w.oneIn(50) {
			// Time passes: deadlines, unbondings, expiries and liveness
			// checks fire in EndBlock. Mostly a few blocks, which leave
			// votes and reveals under way time to happen; now and then a
			// silence long enough to jail providers (60 blocks).
			n := 3 + m.w.r.IntN(8)
			if m.w.oneIn(4) {
				n = 3 + m.w.r.IntN(70)
			}
			for ; n > 0; n-- {
				m.block(nil)
			}
		}
	}
	for n := 0; n < 30; n++ {
		m.block(nil)
	}
	m.report(time.Since(start), sent, grace)
}

func (m *metaRun) open(dir string) *chain.App {
	cfg := chain.Config{Dir: dir, KeepVersions: 0, CacheNodes: 10_000}
	if dir != "" {
		// Other settings than the memory app's, which change no result:
		// old versions pruned, a small node cache.
		cfg.KeepVersions, cfg.CacheNodes = 50, 300
	}
	app, err := chain.New(cfg)
	if err != nil {
		m.t.Fatal(err)
	}
	return app
}

// metaGenesis is the world at genesis: users with 1e9 of each denom, the
// issuer, providers and verifiers staked, the digits model's key, the
// proposer's fee recipient; and shorter windows than a real chain's, so
// that EndBlock's unbondings, liveness checks, key reviews and job
// deadlines fire within a run.
func metaGenesis(t *testing.T, fx *zkFixture) []byte {
	g := node.Genesis{ChainID: testChain, Time: genesisTime, Issuer: address("issuer"),
		ModelKeys: []node.ModelKey{{ModelID: fx.modelID, VerifyingKey: fx.vk}}, Audit: auditpb.DefaultParams()}
	g.Audit.KeyReviewCommitBlocks = 15
	// Short storage epochs with many probes, so that accusations and
	// rebuttals happen within a run.
	g.Storage = storagepb.DefaultParams()
	g.Storage.EpochBlocks, g.Storage.WindowBlocks, g.Storage.ProbesPerEpoch, g.Storage.RebutBlocks = 8, 5, 16, 8
	for _, n := range metaUsers {
		g.Accounts = append(g.Accounts, node.Account{Address: address(n), Coins: []*coin.Coin{coin.New(coin.Native, 1_000_000_000), coin.New(coin.Stable, 1_000_000_000)}})
	}
	g.Accounts = append(g.Accounts, node.Account{Address: address("issuer"), Coins: []*coin.Coin{coin.New(coin.Native, 1_000_000_000)}})
	for _, n := range metaProviders {
		g.Accounts = append(g.Accounts, node.Account{Address: address(n), Coins: []*coin.Coin{coin.New(coin.Native, 2_000_000_000)}})
		g.Stakes = append(g.Stakes, node.Stake{Address: address(n), Amount: 300_000_000})
	}
	for _, n := range metaValidators {
		g.Accounts = append(g.Accounts, node.Account{Address: address(n), Coins: []*coin.Coin{coin.New(coin.Native, 2_000_000_000)}})
		g.Validators = append(g.Validators, node.Validator{Key: cmttypes.GenesisValidator{PubKey: cmted25519.PubKey(consKey(n)), Name: n},
			Operator: address(n), SelfBond: 50_000_000, CommissionBps: 1000})
	}
	for _, n := range metaVerifiers {
		g.Accounts = append(g.Accounts, node.Account{Address: address(n), Coins: []*coin.Coin{coin.New(coin.Native, 2_000_000_000)}})
		g.Stakes = append(g.Stakes, node.Stake{Address: address(n), Amount: 200_000_000})
	}
	doc, err := g.Doc()
	if err != nil {
		t.Fatal(err)
	}
	var state map[string]json.RawMessage
	if err := json.Unmarshal(doc.AppState, &state); err != nil {
		t.Fatal(err)
	}
	tweak(t, state, stakingpb.Name, &stakingpb.Genesis{}, func(g *stakingpb.Genesis) {
		g.Params.UnbondingBlocks, g.Params.SignedBlocksWindow, g.Params.DowntimeJailBlocks, g.Params.MaxValidators = 12, 20, 10, 4
		g.Params.DowntimeBps = 100 // large enough to see
	})
	tweak(t, state, govpb.Name, &govpb.Genesis{}, func(g *govpb.Genesis) {
		g.Params.DepositPeriod, g.Params.VotingPeriod, g.Params.LateWindowBlocks, g.Params.ExtensionBlocks = 20, 15, 5, 5
		g.Params.MinDeposit = 5_000_000 // a few deposits reach it, so votes have proposals to vote on
	})
	tweak(t, state, providerpb.Name, &providerpb.Genesis{}, func(g *providerpb.Genesis) {
		g.Params.OfflineAfterBlocks, g.Params.JailAfterBlocks, g.Params.DowntimeJailBlocks = 12, 60, 10
	})
	tweak(t, state, beaconpb.Name, &beaconpb.Genesis{}, func(g *beaconpb.Genesis) {
		g.Params.EpochBlocks, g.Params.MissJailBlocks, g.Params.MissBps = 4, 10, 100
	})
	tweak(t, state, jobpb.Name, &jobpb.Genesis{}, func(g *jobpb.Genesis) {
		g.Params.DefaultBidWindow, g.Params.DefaultDeadlineBlocks, g.Params.RevealBlocks = 6, 12, 8
	})
	b, err := json.Marshal(state)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tweak edits one module's genesis.
func tweak[G proto.Message](t *testing.T, state map[string]json.RawMessage, name string, g G, edit func(G)) {
	if err := protojson.Unmarshal(state[name], g); err != nil {
		t.Fatalf("%s genesis: %v", name, err)
	}
	edit(g)
	state[name] = module.EncodeGenesis(g)
}

func (m *metaRun) initChain(fx *zkFixture) {
	req := &abci.RequestInitChain{ChainId: testChain, Time: genesisTime, InitialHeight: 1, AppStateBytes: metaGenesis(m.t, fx)}
	a, err := m.mem.InitChain(context.Background(), req)
	if err != nil {
		m.t.Fatal(err)
	}
	b, err := m.disk.InitChain(context.Background(), req)
	if err != nil {
		m.t.Fatal(err)
	}
	if !bytes.Equal(a.AppHash, b.AppHash) {
		m.t.Fatalf("genesis app hashes differ: memory %X, disk %X", a.AppHash, b.AppHash)
	}
}

// setup registers the providers (with a service of the digits model),
// the verifiers, and two agents, and funds the agents. These txs must
// succeed; they are not tallied.
func (m *metaRun) setup() {
	w := m.w
	w.height = m.height + 1
	var txs []*metaTx
	for _, p := range metaProviders {
		txs = append(txs, m.scripted(p, &providerpb.MsgRegisterProvider{Operator: addrOf(p), Endpoint: "https://" + p + ".example:8443", TlsKeySha256: make([]byte, 32)},
			w.serviceMsg(p, ""), w.serviceMsg(p, metaModels[1])))
	}
	for _, v := range metaVerifiers {
		txs = append(txs, m.scripted(v, &auditpb.MsgRegisterVerifier{Verifier: addrOf(v)}))
	}
	agents := []struct{ agent, owner, denom string }{{"robot1", "alice", coin.Stable}, {"robot2", "bob", coin.Native}}
	for _, a := range agents {
		txs = append(txs, m.scripted(a.owner, &agentpb.MsgCreateAgent{Owner: addrOf(a.owner), AgentKey: pubOf(a.agent),
			Consent: ed25519Consent(a.agent, a.owner), Policy: &agentpb.Policy{Denom: a.denom, FeeAllowance: 1_000_000_000}}))
	}
	m.block(txs)
	txs = nil
	for _, a := range agents {
		w.agents = append(w.agents, a.agent)
		w.owner[a.agent] = a.owner
		txs = append(txs, m.scripted(a.owner, &bankpb.MsgSend{From: addrOf(a.owner), To: addrOf(a.agent),
			Amount: []*coin.Coin{coin.New(coin.Native, 100_000_000), coin.New(coin.Stable, 10_000_000)}}))
	}
	m.block(txs)
}

func ed25519Consent(agent, owner string) []byte {
	return ed25519.Sign(key(agent), agentpb.ConsentBytes(testChain, addrOf(owner)))
}

// scripted is a setup tx.
func (m *metaRun) scripted(name string, msgs ...module.Msg) *metaTx {
	const gasLimit = 2_000_000
	raw, err := signTxGas(key(name), m.w.nextSeq(name), gasLimit, msgs...)
	if err != nil {
		m.t.Fatal(err)
	}
	m.w.seq[name]++
	return &metaTx{raw: raw, desc: name + ": setup", setup: true, hooks: make([][]metaHook, len(msgs))}
}

// nextSeq is the sequence name's next tx in this block takes.
func (w *world) nextSeq(name string) uint64 {
	if s, ok := w.seq[name]; ok {
		return s
	}
	var s uint64
	if acc, ok := metaAsk(w.app, authpb.QueryAccount, &authpb.QueryAccountRequest{Address: addrOf(name)}); ok {
		s = acc.Sequence
	}
	w.seq[name] = s
	return s
}

func (m *metaRun) pickType() string {
	n := m.w.r.IntN(m.weights)
	for _, url := range m.types {
		if n -= metaGenerators[url].weight; n < 0 {
			return url
		}
	}
	panic("unreachable")
}

// gasOf is a gas limit enough for msg.
func gasOf(msg module.Msg) uint64 {
	switch msg := msg.(type) {
	case *auditpb.MsgVerifyInference, *auditpb.MsgSettleWithProof:
		return 2_500_000
	case *channelpb.MsgClaim:
		return 300_000 + 200_000*uint64(len(msg.Claims))
	}
	return 600_000
}

// genTx makes a random tx: one message, or a few from one signer; now
// and then a tx-level fault (wrong sequence, too little gas, a fee below
// the minimum or in the wrong denom, the wrong key, a bad signature,
// another chain, a long memo, or bytes that are no tx at all).
func (m *metaRun) genTx() *metaTx {
	w := m.w
	w.height = m.height + 1
	n := 1
	if w.oneIn(7) {
		n = 2 + w.r.IntN(2)
	}
	mismatch := w.oneIn(30) // messages of several signers: Decode refuses the tx
	var msgs []module.Msg
	mt := &metaTx{}
	signer := ""
	for i := 0; i < n; i++ {
		var url, s string
		var msg module.Msg
		for try := 0; ; try++ {
			url = m.pickType()
			w.hooks, w.idle = nil, false
			s, msg = metaGenerators[url].gen(w)
			// Mostly a message that has something to do, and in a tx of
			// several messages one with the first one's signer (else,
			// mostly, the tx has one message less).
			if (i == 0 || s == signer || mismatch) && (!w.idle || w.oneIn(4)) {
				break
			}
			if try == 10 {
				if i > 0 {
					msg = nil
				}
				break
			}
		}
		if msg == nil {
			break
		}
		if i == 0 {
			signer = s
			w.signer = s
		}
		msgs = append(msgs, msg)
		mt.types = append(mt.types, url)
		mt.hooks = append(mt.hooks, w.hooks)
	}
	w.signer, w.hooks = "", nil
	var gasLimit uint64
	for _, msg := range msgs {
		gasLimit += gasOf(msg)
	}
	p := authpb.DefaultParams()
	h := tx.Header{ChainID: testChain, Sequence: w.nextSeq(signer), GasLimit: gasLimit}
	signKey, admitted, fault := signer, true, ""
	fee := authpb.MinFee(p, gasLimit)
	switch w.r.IntN(150) {
	case 0, 1:
		h.Sequence, admitted, fault = h.Sequence+1, false, "sequence+1"
	case 2:
		h.Sequence, admitted, fault = h.Sequence-1, false, "sequence-1"
	case 3, 4, 5:
		h.GasLimit = 20_000 + w.r.Uint64N(120_000)
		fee, fault = authpb.MinFee(p, h.GasLimit), "little gas"
	case 6, 7, 8:
		fee, admitted, fault = fee-1, false, "fee below the minimum"
	case 9:
		fee, admitted, fault = 0, false, "no fee"
	case 10:
		h.GasLimit, admitted, fault = p.MaxTxGas+1, false, "gas over max_tx_gas"
		fee = authpb.MinFee(p, h.GasLimit)
	case 11:
		signKey, admitted, fault = pick(w, metaUsers), false, "signed by another key"
		if signKey == signer {
			signKey = "carol"
		}
	case 12:
		h.ChainID, admitted, fault = "another-chain", false, "another chain"
	case 13:
		h.Memo, admitted, fault = strings.Repeat("m", 300), false, "long memo"
	case 14:
		admitted, fault = false, "bad signature"
	case 15:
		admitted, fault = false, "not a tx"
	case 16, 17, 18:
		fee, fault = fee+w.r.Uint64N(5000), "fee above the minimum"
	}
	h.Fee = coin.New(coin.Native, fee)
	if w.oneIn(150) {
		h.Fee.Denom, admitted, fault = coin.Stable, false, "fee in uusdc"
	}
	signPriv := w.key(signKey)
	if w.rotations[signer] > 0 {
		h.Signer = addrOf(signer)
		if fault == "" && w.oneIn(40) {
			// The account's first key still derives its address, and signs
			// for nothing.
			signPriv, h.Signer, admitted, fault = key(signer), "", false, "a retired key"
		}
	}
	raw, err := tx.Sign(signPriv, h, msgs...)
	if err != nil {
		m.t.Fatal(err)
	}
	switch fault {
	case "bad signature":
		raw[len(raw)-1] ^= 1
	case "not a tx":
		raw = w.bytes(1 + w.r.IntN(200))
		mt.types, mt.hooks = []string{"(not a tx)"}, [][]metaHook{nil}
	}
	if admitted {
		w.seq[signer]++
	}
	var short []string
	for _, msg := range msgs {
		short = append(short, string(proto.MessageName(msg).Name()))
	}
	mt.raw = raw
	mt.desc = fmt.Sprintf("%s seq %d gas %d fee %d: %s", signer, h.Sequence, h.GasLimit, fee, strings.Join(short, "+"))
	if fault != "" {
		mt.desc += " [" + fault + "]"
	}
	return mt
}

// block runs txs as the next block on both apps and checks them.
func (m *metaRun) block(txs []*metaTx) {
	m.height++
	ctx := context.Background()
	seed := sha256.Sum256(binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, m.seed), uint64(m.height)))
	req := &abci.RequestFinalizeBlock{Height: m.height, Time: genesisTime.Add(time.Duration(m.height) * time.Second), Hash: seed[:], ProposerAddress: metaProposer}
	m.w.commitInfo(req)
	var desc strings.Builder
	fmt.Fprintf(&desc, "block %d:\n", m.height)
	for i, t := range txs {
		req.Txs = append(req.Txs, t.raw)
		fmt.Fprintf(&desc, "  tx %d: %s\n", i, t.desc)
	}
	m.history = append(m.history, desc.String())
	if len(m.history) > 3 {
		m.history = m.history[1:]
	}
	if len(txs) > 0 && m.w.oneIn(2) {
		// The disk app sees the txs in its mempool first, which keeps
		// their decoded, verified form for the block: that must change
		// no result.
		for _, raw := range req.Txs {
			if _, err := m.disk.CheckTx(ctx, &abci.RequestCheckTx{Tx: raw, Type: abci.CheckTxType_New}); err != nil {
				m.fatalf("CheckTx: %v", err)
			}
			m.checked++
		}
	}
	rm, err := m.mem.FinalizeBlock(ctx, req)
	if err != nil {
		m.fatalf("the memory app's FinalizeBlock: %v", err)
	}
	rd, err := m.disk.FinalizeBlock(ctx, req)
	if err != nil {
		m.fatalf("the disk app's FinalizeBlock: %v", err)
	}
	m.compare(rm, rd)
	for _, app := range []*chain.App{m.mem, m.disk} {
		if _, err := app.Commit(ctx, &abci.RequestCommit{}); err != nil {
			m.fatalf("Commit: %v", err)
		}
		if err := chain.CheckInvariants(app); err != nil {
			m.fatalf("an invariant broke: %v", err)
		}
	}
	m.lastHash = rm.AppHash
	for i, t := range txs {
		res := rm.TxResults[i]
		if res.Code == codes.ErrInternal.Code || !knownCode(res.Code) {
			m.fatalf("tx %d (%s) ended with code %d, which is a bug (a panic or an error without a code): %s", i, t.desc, res.Code, res.Log)
		}
		if t.setup {
			if res.Code != 0 {
				m.fatalf("setup tx %d (%s) failed: %s", i, t.desc, res.Log)
			}
		} else {
			m.tally(t, res)
		}
		if res.Code == 0 {
			m.runHooks(t, res.Data)
		}
	}
	clear(m.w.seq)
	if m.height%25 == 0 {
		m.restart()
	}
}

func knownCode(c uint32) bool {
	if c == 0 {
		return true
	}
	for _, e := range codes.All {
		if e.Code == c {
			return true
		}
	}
	return false
}

// compare fails unless both apps' answers to a block are the same.
func (m *metaRun) compare(a, b *abci.ResponseFinalizeBlock) {
	if len(a.TxResults) != len(b.TxResults) {
		m.fatalf("%d tx results in memory, %d on disk", len(a.TxResults), len(b.TxResults))
	}
	for i := range a.TxResults {
		x, y := a.TxResults[i], b.TxResults[i]
		if x.Code != y.Code || x.Log != y.Log || x.GasUsed != y.GasUsed || x.GasWanted != y.GasWanted || !bytes.Equal(x.Data, y.Data) {
			m.fatalf("tx %d's results differ:\nmemory: code %d gas %d/%d data %X log %s\ndisk:   code %d gas %d/%d data %X log %s",
				i, x.Code, x.GasUsed, x.GasWanted, x.Data, x.Log, y.Code, y.GasUsed, y.GasWanted, y.Data, y.Log)
		}
		if !reflect.DeepEqual(x.Events, y.Events) {
			m.fatalf("tx %d's events differ:\nmemory: %v\ndisk:   %v", i, x.Events, y.Events)
		}
	}
	if !reflect.DeepEqual(a.Events, b.Events) {
		m.fatalf("the block's events differ:\nmemory: %v\ndisk:   %v", a.Events, b.Events)
	}
	if !bytes.Equal(a.AppHash, b.AppHash) {
		m.fatalf("app hashes differ: memory %X, disk %X", a.AppHash, b.AppHash)
	}
}

// restart reopens the disk app from its directory, as after a crash
// between blocks; it must resume at the same height and hash.
func (m *metaRun) restart() {
	if err := m.disk.Close(); err != nil {
		m.fatalf("close: %v", err)
	}
	m.disk = m.open(m.dir)
	m.restarts++
	info, err := m.disk.Info(context.Background(), &abci.RequestInfo{})
	if err != nil {
		m.fatalf("Info after a restart: %v", err)
	}
	if info.LastBlockHeight != m.height || !bytes.Equal(info.LastBlockAppHash, m.lastHash) {
		m.fatalf("after a restart the disk app is at height %d hash %X, want %d %X", info.LastBlockHeight, info.LastBlockAppHash, m.height, m.lastHash)
	}
}

func (m *metaRun) tally(t *metaTx, res *abci.ExecTxResult) {
	for _, url := range t.types {
		if res.Code == 0 {
			m.ok[url]++
			continue
		}
		m.bad[url]++
		if m.codes[url] == nil {
			m.codes[url] = map[uint32]int{}
		}
		m.codes[url][res.Code]++
	}
}

func (m *metaRun) runHooks(t *metaTx, data []byte) {
	var rs tx.Responses
	if err := proto.Unmarshal(data, &rs); err != nil {
		m.fatalf("a tx's result data is not a tx.Responses: %v", err)
	}
	for i, hooks := range t.hooks {
		var resp proto.Message
		if i < len(rs.Responses) && rs.Responses[i].GetTypeUrl() != "" {
			var err error
			if resp, err = rs.Responses[i].UnmarshalNew(); err != nil {
				m.fatalf("response %d: %v", i, err)
			}
		}
		for _, h := range hooks {
			h(resp)
		}
	}
}

func (m *metaRun) fatalf(format string, args ...any) {
	m.t.Helper()
	m.t.Fatalf("%s\n\nseed %d, at height %d; rerun with\n\tgo test -run TestMetamorphic ./internal/chain -meta.seed=%d -meta.txs=%d\nthe last blocks:\n%s",
		fmt.Sprintf(format, args...), m.seed, m.height, m.seed, *metaTxs, strings.Join(m.history, ""))
}

// report logs the tally and fails for any message type that never
// succeeded, at the default count or more: a generator that only makes
// garbage tests nothing.
func (m *metaRun) report(took time.Duration, sent, grace int) {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "message\tok\tfailed\tfailure codes\t")
	var okTotal, badTotal int
	types := append(append([]string(nil), m.types...), "(not a tx)")
	for _, url := range types {
		var cs []string
		var keys []uint32
		for c := range m.codes[url] {
			keys = append(keys, c)
		}
		sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
		for _, c := range keys {
			cs = append(cs, fmt.Sprintf("%d×%d", c, m.codes[url][c]))
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t\n", strings.TrimPrefix(url, "type.googleapis.com/agora."), m.ok[url], m.bad[url], strings.Join(cs, " "))
		okTotal += m.ok[url]
		badTotal += m.bad[url]
	}
	tw.Flush()
	m.t.Logf("%d txs (%d past the %d asked for, until every message type had succeeded) in %d blocks, %d restarts, %d txs through CheckTx first, in %v; messages %d ok, %d failed:\n%s",
		sent, grace, *metaTxs, m.height, m.restarts, m.checked, took.Round(time.Millisecond), okTotal, badTotal, b.String())
	if *metaTxs < metaDefaultTxs {
		return
	}
	for _, url := range m.neverOK() {
		m.t.Errorf("no %s succeeded in %d txs: its generator makes only invalid messages (seed %d)", url, sent, m.seed)
	}
}

// neverOK lists the message types that have not succeeded yet, but for
// the exempt.
func (m *metaRun) neverOK() []string {
	var out []string
	for _, url := range m.types {
		if m.ok[url] == 0 && metaExempt[url] == "" {
			out = append(out, url)
		}
	}
	return out
}
