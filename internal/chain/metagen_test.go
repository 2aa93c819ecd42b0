package chain_test

// The generators of TestMetamorphic: one per message type, registered by
// type URL in metaGenerators. Each builds a message from a random source
// and what the world knows (accounts, agents, channels, orders, disputes,
// key reviews, the secrets behind commitments), usually valid and
// sometimes not: a wrong amount, an unknown id, a wrong signer, a value
// over a limit, zero or huge. A module that adds a message type adds its
// generator here; TestEveryMessageHasAGenerator fails until it does.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	"google.golang.org/protobuf/proto"

	"github.com/agoranet/agora/internal/chain"
	"github.com/agoranet/agora/internal/chain/agent/agentpb"
	"github.com/agoranet/agora/internal/chain/audit/auditpb"
	"github.com/agoranet/agora/internal/chain/auth/authpb"
	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/beacon/beaconpb"
	"github.com/agoranet/agora/internal/chain/channel/channelpb"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/commit"
	"github.com/agoranet/agora/internal/chain/gov/govpb"
	"github.com/agoranet/agora/internal/chain/job/jobpb"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/provider/providerpb"
	"github.com/agoranet/agora/internal/chain/staking"
	"github.com/agoranet/agora/internal/chain/staking/stakingpb"
	"github.com/agoranet/agora/internal/chain/tx"
	"github.com/agoranet/agora/internal/model"
	"github.com/agoranet/agora/internal/openai"
	"github.com/agoranet/agora/internal/receipt"
	"github.com/agoranet/agora/internal/zk"
)

// metaGen generates one message: it returns the name of the key that
// should sign it and the message. It always returns a message; with
// nothing valid to do (no vote is due, say) it returns an invalid one (an
// unknown id) and sets w.idle, and the driver mostly tries another type:
// so the steps of a flow can weigh much, and still cost little when
// there is nothing for them to do. Hooks it registers with w.onOK run if
// the tx succeeds.
type metaGen struct {
	// weight is how often the generator is picked, relative to the others.
	weight int
	gen    func(w *world) (signer string, msg module.Msg)
}

// metaGenerators is the registry, by message type URL.
var metaGenerators = map[string]metaGen{
	tx.TypeURL(&bankpb.MsgSend{}):                      {6, genSend},
	tx.TypeURL(&bankpb.MsgMultiSend{}):                 {2, genMultiSend},
	tx.TypeURL(&bankpb.MsgMint{}):                      {2, genMint},
	tx.TypeURL(&bankpb.MsgBurn{}):                      {1, genBurn},
	tx.TypeURL(&bankpb.MsgTransferWithAuthorization{}): {2, genTransferWithAuthorization},

	tx.TypeURL(&stakingpb.MsgBond{}):   {2, genBond},
	tx.TypeURL(&stakingpb.MsgUnbond{}): {2, genUnbond},

	tx.TypeURL(&stakingpb.MsgCreateValidator{}):    {1, genCreateValidator},
	tx.TypeURL(&stakingpb.MsgEditValidator{}):      {1, genEditValidator},
	tx.TypeURL(&stakingpb.MsgDelegate{}):           {4, genDelegate},
	tx.TypeURL(&stakingpb.MsgUndelegate{}):         {3, genUndelegate},
	tx.TypeURL(&stakingpb.MsgRedelegate{}):         {2, genRedelegate},
	tx.TypeURL(&stakingpb.MsgWithdrawRewards{}):    {3, genWithdrawRewards},
	tx.TypeURL(&stakingpb.MsgUnjail{}):             {4, genUnjail},
	tx.TypeURL(&stakingpb.MsgRotateConsensusKey{}): {1, genRotateConsensusKey},

	tx.TypeURL(&authpb.MsgRotateKey{}): {1, genRotateKey},

	tx.TypeURL(&beaconpb.MsgCommit{}): {6, genBeaconCommit},
	tx.TypeURL(&beaconpb.MsgReveal{}): {6, genBeaconReveal},

	tx.TypeURL(&govpb.MsgSubmitProposal{}): {1, genSubmitProposal},
	tx.TypeURL(&govpb.MsgDeposit{}):        {3, genDeposit},
	tx.TypeURL(&govpb.MsgVote{}):           {6, genVote},

	tx.TypeURL(&providerpb.MsgRegisterProvider{}): {2, genRegisterProvider},
	tx.TypeURL(&providerpb.MsgRegisterService{}):  {2, genRegisterService},
	tx.TypeURL(&providerpb.MsgRemoveService{}):    {1, genRemoveService},
	tx.TypeURL(&providerpb.MsgHeartbeat{}):        {8, genHeartbeat},
	tx.TypeURL(&providerpb.MsgDeregister{}):       {1, genDeregister},

	tx.TypeURL(&channelpb.MsgOpenChannel{}):      {4, genOpenChannel},
	tx.TypeURL(&channelpb.MsgFundChannel{}):      {2, genFundChannel},
	tx.TypeURL(&channelpb.MsgExtendChannel{}):    {2, genExtendChannel},
	tx.TypeURL(&channelpb.MsgClaim{}):            {5, genClaim},
	tx.TypeURL(&channelpb.MsgCloseChannel{}):     {2, genCloseChannel},
	tx.TypeURL(&channelpb.MsgSettleExpired{}):    {2, genSettleExpired},
	tx.TypeURL(&channelpb.MsgRevokeSessionKey{}): {3, genRevokeSessionKey},

	tx.TypeURL(&agentpb.MsgCreateAgent{}):   {2, genCreateAgent},
	tx.TypeURL(&agentpb.MsgSetPolicy{}):     {2, genSetPolicy},
	tx.TypeURL(&agentpb.MsgFreezeAgent{}):   {1, genFreezeAgent},
	tx.TypeURL(&agentpb.MsgUnfreezeAgent{}): {2, genUnfreezeAgent},
	tx.TypeURL(&agentpb.MsgRevokeAgent{}):   {1, genRevokeAgent},

	tx.TypeURL(&auditpb.MsgProposeModelKey{}):  {1, genProposeModelKey},
	tx.TypeURL(&auditpb.MsgCommitKeyVote{}):    {10, genCommitKeyVote},
	tx.TypeURL(&auditpb.MsgRevealKeyVote{}):    {10, genRevealKeyVote},
	tx.TypeURL(&auditpb.MsgVerifyInference{}):  {1, genVerifyInference},
	tx.TypeURL(&auditpb.MsgRegisterVerifier{}): {1, genRegisterVerifier},
	tx.TypeURL(&auditpb.MsgChallenge{}):        {2, genChallenge},
	tx.TypeURL(&auditpb.MsgCommit{}):           {10, genCommit},
	tx.TypeURL(&auditpb.MsgReveal{}):           {10, genReveal},
	tx.TypeURL(&auditpb.MsgSettleWithProof{}):  {6, genSettleWithProof},

	tx.TypeURL(&jobpb.MsgCreateOrder{}):  {6, genCreateOrder},
	tx.TypeURL(&jobpb.MsgCancelOrder{}):  {1, genCancelOrder},
	tx.TypeURL(&jobpb.MsgBid{}):          {14, genBid},
	tx.TypeURL(&jobpb.MsgCommitResult{}): {10, genCommitResult},
	tx.TypeURL(&jobpb.MsgRevealResult{}): {10, genRevealResult},
	tx.TypeURL(&jobpb.MsgCommitVote{}):   {10, genCommitVote},
	tx.TypeURL(&jobpb.MsgRevealVote{}):   {10, genRevealVote},
}

// The world's accounts. Users spend (1e9 of each denom), providers and
// verifiers are staked at genesis, agents are created by users from the
// agent keys as the run goes, and nobody has nothing.
var (
	metaUsers     = []string{"alice", "bob", "carol", "dave"}
	metaProviders = []string{"p1", "p2", "p3", "p4"}
	metaVerifiers = []string{"v1", "v2", "v3", "v4", "v5", "v6"}
	// metaValidators are validators at genesis; users may create more.
	metaValidators = []string{"val1", "val2", "val3"}
	metaAgentKeys  = []string{"robot1", "robot2", "robot3", "robot4", "robot5", "robot6", "robot7", "robot8", "robot9", "robot10", "robot11", "robot12"}
)

// metaModels are the model ids services are offered for: the digits
// model, whose verifying key is in genesis, and two without keys.
var metaModels = []string{"", modelID("model-a"), modelID("model-b")}

// metaKeyModels are the models key proposals are for.
var metaKeyModels = []string{modelID("key-1"), modelID("key-2"), modelID("key-3"), modelID("key-4"), modelID("key-5"), modelID("key-6")}

func modelID(s string) string {
	h := sha256.Sum256([]byte(s))
	return fmt.Sprintf("%x", h)
}

// metaHook runs after the tx that carries its message succeeds, with the
// message's typed response (nil if it has none).
type metaHook func(resp proto.Message)

// metaReceipt is a receipt a challenge can use.
type metaReceipt struct {
	enc      string
	request  []byte
	truth    []byte // the true response hash
	proven   bool   // a digits-mlp answer whose proof the fixture holds
	channel  uint64 // anchored by a claim on this channel, or 0
	anchor   uint32
	leaf     uint32
	path     [][]byte
	disputed bool
}

// metaSecret is what a committee member or lessee committed to.
type metaSecret struct {
	value  []byte
	result *jobpb.Result
	salt   []byte
}

// world is what the generators know. They read the chain's committed
// state through app and learn ids from the responses of the txs that
// succeeded; they never range over a map, so a seed makes one run.
type world struct {
	t      testing.TB
	r      *rand.Rand
	app    *chain.App // the in-memory app: its latest commit
	fx     *zkFixture
	height int64 // of the block being built

	agents  []string          // agent names created, in order
	owner   map[string]string // agent name -> owner name
	revoked map[string]bool
	names   map[string]string // address -> name, for every key the test uses
	seq     map[string]uint64 // the next sequence of signers in the block being built

	channels, closedChannels []uint64
	sessions                 map[uint64]string // channel -> session key name
	orders, endedOrders      []uint64
	orderTruth               map[uint64]*jobpb.Result
	disputes                 []uint64
	disputeTruth             map[uint64][]byte
	reviews                  []uint64
	reviewVerdict            map[uint64][]byte
	receipts                 []*metaReceipt
	secrets                  map[string]metaSecret
	usedNonces               [][]byte
	nonce, receiptSeq        uint64

	// signer, when set, is the signer of the tx being built: generators of
	// messages any user may send use it, so multi-message txs are valid.
	signer string
	// rotations counts the key rotations of each account that made them
	// (only rotator's): its key is then keyAt(name, n).
	rotations map[string]int
	hooks     []metaHook
	// idle is set by a generator that found nothing valid to do and made
	// an invalid message instead; the driver mostly picks another type.
	idle bool
	// stored is every storage deal's pieces, as their owner encoded them
	// (metagen_storage_test.go).
	stored map[[3]uint64][]byte
	deals  []uint64
}

func newWorld(t testing.TB, seed uint64, app *chain.App, fx *zkFixture) *world {
	w := &world{t: t, r: rand.New(rand.NewPCG(seed, 0x6d657461)), app: app, fx: fx, owner: map[string]string{}, revoked: map[string]bool{},
		names: map[string]string{}, seq: map[string]uint64{}, sessions: map[uint64]string{}, orderTruth: map[uint64]*jobpb.Result{},
		disputeTruth: map[uint64][]byte{}, reviewVerdict: map[uint64][]byte{}, secrets: map[string]metaSecret{}, rotations: map[string]int{},
		stored: map[[3]uint64][]byte{}}
	for _, group := range [][]string{metaUsers, metaProviders, metaVerifiers, metaAgentKeys, {"issuer", "nobody", "validator"}} {
		for _, n := range group {
			w.names[address(n).String()] = n
		}
	}
	return w
}

func (w *world) onOK(h metaHook) { w.hooks = append(w.hooks, h) }

// rotator is the one account the world rotates the key of: its vouchers,
// authorizations and txs follow its current key.
const rotator = "dave"

// keyAt is name's key after n rotations.
func keyAt(name string, n int) ed25519.PrivateKey {
	if n == 0 {
		return key(name)
	}
	return key(fmt.Sprintf("%s rotated %d", name, n))
}

// key is the key name signs with now.
func (w *world) key(name string) ed25519.PrivateKey { return keyAt(name, w.rotations[name]) }

// keyWithPub is the one of name's keys, now or before, whose public key is
// pub: the key a channel opened before a rotation still takes vouchers by.
func (w *world) keyWithPub(name string, pub []byte) ed25519.PrivateKey {
	for n := w.rotations[name]; n > 0; n-- {
		if k := keyAt(name, n); bytes.Equal(k.Public().(ed25519.PublicKey), pub) {
			return k
		}
	}
	return key(name)
}

// genRotateKey rotates the rotator's key, now and then with a proof that
// is not the new key's or a key it had before; any other signer's
// rotation has a bad proof.
func genRotateKey(w *world) (string, module.Msg) {
	who := rotator
	if w.signer != "" {
		who = w.signer
	}
	if who != rotator {
		w.idle = true
		return who, &authpb.MsgRotateKey{Account: addrOf(who), NewPublicKey: pubOf("carol"), Proof: make([]byte, ed25519.SignatureSize)}
	}
	n := w.rotations[who] + 1
	next := keyAt(who, n)
	old := w.key(who).Public().(ed25519.PublicKey)
	proof := ed25519.Sign(next, authpb.RotateKeySignBytes(testChain, addrOf(who), old))
	switch w.r.IntN(8) {
	case 0: // signed by someone else
		proof = ed25519.Sign(key("carol"), authpb.RotateKeySignBytes(testChain, addrOf(who), old))
	case 1: // for another chain
		proof = ed25519.Sign(next, authpb.RotateKeySignBytes("another-chain", addrOf(who), old))
	case 2: // back to a key it had before
		if n > 1 {
			next = keyAt(who, n-2)
			proof = ed25519.Sign(next, authpb.RotateKeySignBytes(testChain, addrOf(who), old))
		}
	}
	w.onOK(func(proto.Message) { w.rotations[who] = n })
	return who, &authpb.MsgRotateKey{Account: addrOf(who), NewPublicKey: next.Public().(ed25519.PublicKey), Proof: proof}
}

// oneIn is true once in n times.
func (w *world) oneIn(n int) bool { return w.r.IntN(n) == 0 }

func pick[T any](w *world, xs []T) T { return xs[w.r.IntN(len(xs))] }

func addrOf(name string) string { return address(name).String() }

func pubOf(name string) []byte { return key(name).Public().(ed25519.PublicKey) }

// liveAgents are the created agents not revoked.
func (w *world) liveAgents() []string {
	var out []string
	for _, a := range w.agents {
		if !w.revoked[a] {
			out = append(out, a)
		}
	}
	return out
}

// user is who sends a message any account may send: the tx's signer if
// set; else mostly a user, sometimes an agent (now and then a revoked
// one), a provider or verifier, or nobody.
func (w *world) user() string {
	if w.signer != "" {
		return w.signer
	}
	switch n := w.r.IntN(20); {
	case n < 11:
		return pick(w, metaUsers)
	case n < 16:
		if live := w.liveAgents(); len(live) > 0 {
			return pick(w, live)
		}
		return pick(w, metaUsers)
	case n == 16 && len(w.agents) > 0:
		return pick(w, w.agents)
	case n == 17:
		return pick(w, metaProviders)
	case n == 18:
		return pick(w, metaVerifiers)
	}
	return "nobody"
}

// recipient is whom a payment goes to: anyone the test knows, agents
// often (they need coins), now and then a module account.
func (w *world) recipient() string {
	switch n := w.r.IntN(30); {
	case n == 0:
		return pick(w, []string{channelpb.Escrow.String(), stakingpb.BondedPool.String(), authpb.FeePool.String(), auditpb.Escrow.String(), jobpb.Escrow.String()})
	case n < 10:
		if len(w.agents) > 0 {
			return addrOf(pick(w, w.agents))
		}
	case n < 13:
		return addrOf(pick(w, metaProviders))
	case n == 13:
		return addrOf("nobody")
	}
	return addrOf(pick(w, metaUsers))
}

// denom is mostly one of the chain's two, now and then one it does not know.
func (w *world) denom() string {
	switch n := w.r.IntN(20); {
	case n == 0:
		return "ufoo"
	case n < 10:
		return coin.Native
	}
	return coin.Stable
}

// amt is a typical amount up to max, now and then zero or huge.
func (w *world) amt(max uint64) uint64 {
	switch w.r.IntN(25) {
	case 0:
		return 0
	case 1:
		return 1 << 62
	}
	return 1 + w.r.Uint64N(max)
}

func (w *world) coins(max uint64) []*coin.Coin {
	if w.oneIn(10) {
		return []*coin.Coin{coin.New(coin.Native, w.amt(max)), coin.New(coin.Stable, w.amt(max))}
	}
	return []*coin.Coin{coin.New(w.denom(), w.amt(max))}
}

func (w *world) bytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(w.r.Uint32())
	}
	return b
}

// now is the block time in unix seconds.
func (w *world) now() int64 { return genesisTime.Unix() + w.height }

// metaAsk runs a typed query against the app's latest commit.
func metaAsk[Req, Resp proto.Message](app *chain.App, q module.Query[Req, Resp], req Req) (Resp, bool) {
	var zero Resp
	data, err := proto.Marshal(req)
	if err != nil {
		panic(err)
	}
	r, err := app.Query(context.Background(), &abci.RequestQuery{Path: q.Path, Data: data})
	if err != nil || r.Code != 0 {
		return zero, false
	}
	out := zero.ProtoReflect().Type().New().Interface().(Resp)
	if err := proto.Unmarshal(r.Value, out); err != nil {
		panic(err)
	}
	return out, true
}

func (w *world) name(a string) string {
	if n, ok := w.names[a]; ok {
		return n
	}
	return "nobody"
}

// shuffled returns ids in a random order.
func (w *world) shuffled(ids []uint64) []uint64 {
	out := append([]uint64(nil), ids...)
	w.r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// --- bank ---

func genSend(w *world) (string, module.Msg) {
	from := w.user()
	return from, &bankpb.MsgSend{From: addrOf(from), To: w.recipient(), Amount: w.coins(5_000_000)}
}

func genMultiSend(w *world) (string, module.Msg) {
	from := w.user()
	m := &bankpb.MsgMultiSend{From: addrOf(from)}
	for i := w.r.IntN(4) + w.r.IntN(2); i >= 0; i-- {
		m.Outputs = append(m.Outputs, &bankpb.Output{To: w.recipient(), Amount: w.coins(100_000)})
	}
	if w.oneIn(30) {
		m.Outputs = nil
	}
	return from, m
}

func genMint(w *world) (string, module.Msg) {
	issuer := "issuer"
	if w.oneIn(6) {
		issuer = w.user()
	}
	d := coin.Stable
	if w.oneIn(8) {
		d = w.denom()
	}
	return issuer, &bankpb.MsgMint{Issuer: addrOf(issuer), To: w.recipient(), Amount: coin.New(d, w.amt(10_000_000))}
}

func genBurn(w *world) (string, module.Msg) {
	from := w.user()
	return from, &bankpb.MsgBurn{From: addrOf(from), Amount: coin.New(w.denom(), w.amt(1000))}
}

func genTransferWithAuthorization(w *world) (string, module.Msg) {
	submitter := w.user()
	payer := pick(w, metaUsers)
	if live := w.liveAgents(); len(live) > 0 && w.oneIn(3) {
		payer = pick(w, live)
	}
	w.nonce++
	nonce := make([]byte, 32)
	binary.BigEndian.PutUint64(nonce, w.nonce)
	if len(w.usedNonces) > 0 && w.oneIn(10) {
		nonce = pick(w, w.usedNonces)
	}
	before := w.now() + 1000
	if w.oneIn(12) {
		before = w.now() - 1
	}
	a := &bankpb.Authorization{From: addrOf(payer), To: w.recipient(), Amount: coin.New(w.denom(), w.amt(100_000)), ValidBefore: before, Nonce: nonce}
	signer := payer
	if w.oneIn(12) {
		signer = pick(w, metaUsers)
	}
	bankpb.SignAuthorization(w.key(signer), testChain, a)
	w.onOK(func(proto.Message) { w.usedNonces = append(w.usedNonces, nonce) })
	return submitter, &bankpb.MsgTransferWithAuthorization{Submitter: addrOf(submitter), Authorization: a}
}

// --- staking ---

func genBond(w *world) (string, module.Msg) {
	staker := w.user()
	if w.oneIn(2) {
		staker = pick(w, append(append([]string(nil), metaProviders...), metaVerifiers...))
	}
	return staker, &stakingpb.MsgBond{Staker: addrOf(staker), Amount: coin.New(coin.Native, w.amt(20_000_000))}
}

func genUnbond(w *world) (string, module.Msg) {
	staker := w.user()
	staked := w.oneIn(3)
	if staked {
		staker = pick(w, append(append([]string(nil), metaProviders...), metaVerifiers...))
	}
	var bonded uint64
	if s, ok := metaAsk(w.app, stakingpb.QueryStake, &stakingpb.QueryStakeRequest{Address: addrOf(staker)}); ok {
		bonded = s.Stake.Bonded
	}
	amount := 1 + w.r.Uint64N(bonded/2+1)
	switch {
	case staked && !w.oneIn(8):
		// Providers and verifiers keep most of their stake, or the run
		// soon has no one to lease a job to or sit on a committee.
		amount = 1 + w.r.Uint64N(2_000_000)
	case w.oneIn(8):
		amount = bonded + 1
	}
	return staker, &stakingpb.MsgUnbond{Staker: addrOf(staker), Amount: coin.New(coin.Native, amount)}
}

// --- validators ---

// consKey is the consensus key of a validator operated by name.
func consKey(name string) []byte { return pubOf("consensus " + name) }

// validators are the chain's validators now.
func (w *world) validators() []*stakingpb.Validator {
	r, _ := metaAsk(w.app, stakingpb.QueryValidators, &stakingpb.QueryValidatorsRequest{})
	if r == nil {
		return nil
	}
	return r.Validators
}

// validator is an operator to delegate to: mostly a validator, now and
// then someone who operates none.
func (w *world) validator() string {
	vals := w.validators()
	if len(vals) == 0 || w.oneIn(10) {
		return addrOf(w.user())
	}
	return pick(w, vals).Operator
}

func genCreateValidator(w *world) (string, module.Msg) {
	op := w.user()
	cons := consKey(op)
	if w.oneIn(6) {
		cons = consKey(pick(w, metaValidators)) // a key already in use
	}
	return op, &stakingpb.MsgCreateValidator{Operator: addrOf(op), ConsensusPubkey: cons, SelfBond: coin.New(coin.Native, w.amt(40_000_000)),
		CommissionBps: uint32(w.r.IntN(3000)), Moniker: op}
}

// genRotateConsensusKey rotates a validator to a fresh key, now and then
// to one in use, or as an account that operates none.
func genRotateConsensusKey(w *world) (string, module.Msg) {
	op := pick(w, metaValidators)
	if w.oneIn(4) {
		op = w.user()
	}
	k := consKey(fmt.Sprintf("%s rotated %d", op, w.r.IntN(1_000_000)))
	if w.oneIn(5) {
		k = consKey(pick(w, metaValidators))
	}
	return op, &stakingpb.MsgRotateConsensusKey{Operator: addrOf(op), NewConsensusPubkey: k}
}

func genEditValidator(w *world) (string, module.Msg) {
	op := pick(w, metaValidators)
	if w.oneIn(3) {
		op = w.user()
	}
	return op, &stakingpb.MsgEditValidator{Operator: addrOf(op), CommissionBps: uint32(w.r.IntN(1200))}
}

func genDelegate(w *world) (string, module.Msg) {
	// Now and then a jailed validator's operator tops up its own stake,
	// which a slash may have left under the minimum it needs to unjail.
	if w.oneIn(3) {
		for _, v := range w.validators() {
			if v.Jailed && !v.Tombstoned {
				for _, n := range append(append([]string(nil), metaValidators...), metaUsers...) {
					if addrOf(n) == v.Operator {
						return n, &stakingpb.MsgDelegate{Delegator: v.Operator, Validator: v.Operator, Amount: coin.New(coin.Native, 1+w.amt(5_000_000))}
					}
				}
			}
		}
	}
	d := w.user()
	return d, &stakingpb.MsgDelegate{Delegator: addrOf(d), Validator: w.validator(), Amount: coin.New(coin.Native, w.amt(30_000_000))}
}

// delegation picks a delegation to act on: its delegator, validator and
// worth; an unknown one now and then.
func (w *world) delegation() (string, string, uint64) {
	d := w.user()
	if w.oneIn(3) {
		d = pick(w, metaValidators)
	}
	r, _ := metaAsk(w.app, stakingpb.QueryDelegations, &stakingpb.QueryDelegationsRequest{Delegator: addrOf(d)})
	if r == nil || len(r.Delegations) == 0 || w.oneIn(10) {
		return d, w.validator(), 1 + w.r.Uint64N(1_000_000)
	}
	del := pick(w, r.Delegations)
	return d, del.Delegation.Validator, del.Tokens
}

func (w *world) portion(tokens uint64) uint64 {
	switch {
	case w.oneIn(5):
		return tokens
	case w.oneIn(10):
		return tokens + 1
	}
	return 1 + w.r.Uint64N(tokens/2+1)
}

func genUndelegate(w *world) (string, module.Msg) {
	d, v, tokens := w.delegation()
	return d, &stakingpb.MsgUndelegate{Delegator: addrOf(d), Validator: v, Amount: coin.New(coin.Native, w.portion(tokens))}
}

func genRedelegate(w *world) (string, module.Msg) {
	d, v, tokens := w.delegation()
	return d, &stakingpb.MsgRedelegate{Delegator: addrOf(d), Src: v, Dst: w.validator(), Amount: coin.New(coin.Native, w.portion(tokens))}
}

func genWithdrawRewards(w *world) (string, module.Msg) {
	d, v, _ := w.delegation()
	return d, &stakingpb.MsgWithdrawRewards{Delegator: addrOf(d), Validator: v}
}

// beaconEpoch is the epoch under way in the last committed state.
func (w *world) beaconEpoch() int64 {
	r, _ := metaAsk(w.app, beaconpb.QueryStatus, &beaconpb.QueryStatusRequest{})
	if r == nil {
		return 0
	}
	return r.Epoch.Number
}

// genBeaconCommit: a validator commits to a value it remembers (now and
// then for the wrong epoch, or someone who validates nothing).
func genBeaconCommit(w *world) (string, module.Msg) {
	op, e := pick(w, metaValidators), w.beaconEpoch()
	switch {
	case w.oneIn(10):
		op = w.user()
	case w.oneIn(10):
		e++
	}
	value := w.bytes(beaconpb.ValueSize)
	k := fmt.Sprintf("b/%d/%s", e, op)
	w.onOK(func(proto.Message) { w.secrets[k] = metaSecret{value: value} })
	return op, &beaconpb.MsgCommit{Validator: addrOf(op), Epoch: e, Commitment: beaconpb.Commit(testChain, e, addrOf(op), value)}
}

// genBeaconReveal: a validator reveals last epoch's value, or now and
// then one that does not match; some never reveal, and are penalised.
func genBeaconReveal(w *world) (string, module.Msg) {
	op, e := pick(w, metaValidators), w.beaconEpoch()-1
	s, ok := w.secrets[fmt.Sprintf("b/%d/%s", e, op)]
	if !ok || w.oneIn(8) {
		w.idle = !ok
		return op, &beaconpb.MsgReveal{Validator: addrOf(op), Epoch: max(e, 0), Value: w.bytes(beaconpb.ValueSize)}
	}
	return op, &beaconpb.MsgReveal{Validator: addrOf(op), Epoch: e, Value: s.value}
}

func genUnjail(w *world) (string, module.Msg) {
	for _, v := range w.validators() {
		if v.Jailed && !v.Tombstoned && !w.oneIn(4) {
			for _, n := range append(append([]string(nil), metaValidators...), metaUsers...) {
				if addrOf(n) == v.Operator {
					return n, &stakingpb.MsgUnjail{Operator: v.Operator}
				}
			}
		}
	}
	w.idle = true
	op := w.user()
	return op, &stakingpb.MsgUnjail{Operator: addrOf(op)}
}

// commitInfo fills a block's last commit from the validators with power:
// most sign, val3 is often absent (so downtime jails it now and then),
// and once in a long while one double-signs. A known validator proposes.
func (w *world) commitInfo(req *abci.RequestFinalizeBlock) {
	var active []*stakingpb.Validator
	for _, v := range w.validators() {
		if v.Power > 0 {
			active = append(active, v)
		}
	}
	for _, v := range active {
		flag := cmtproto.BlockIDFlagCommit
		if w.oneIn(12) || (v.Operator == addrOf("val3") && !w.oneIn(3)) {
			flag = cmtproto.BlockIDFlagAbsent
		}
		req.DecidedLastCommit.Votes = append(req.DecidedLastCommit.Votes, abci.VoteInfo{
			Validator: abci.Validator{Address: staking.ConsAddress(v.ConsensusPubkey), Power: v.Power}, BlockIdFlag: flag})
	}
	if len(active) > 0 && !w.oneIn(5) {
		req.ProposerAddress = staking.ConsAddress(pick(w, active).ConsensusPubkey)
	}
	if len(active) > 0 && w.oneIn(400) {
		v := pick(w, active)
		req.Misbehavior = append(req.Misbehavior, abci.Misbehavior{Type: abci.MisbehaviorType_DUPLICATE_VOTE,
			Validator: abci.Validator{Address: staking.ConsAddress(v.ConsensusPubkey), Power: v.Power}, Height: max(1, req.Height-1-int64(w.r.IntN(5)))})
	}
}

// --- gov ---

func genSubmitProposal(w *world) (string, module.Msg) {
	by := pick(w, metaValidators) // they keep the uagr a deposit needs
	if w.oneIn(3) {
		by = w.user()
	}
	c := &govpb.Content{Kind: &govpb.Content_Text{Text: &govpb.Text{}}}
	switch w.r.IntN(5) {
	case 4:
		// Approving a key review: refused unless the chain's keys need
		// governance and the review is checked.
		c.Kind = &govpb.Content_ApproveModelKey{ApproveModelKey: &govpb.ApproveModelKey{ReviewId: uint64(w.r.IntN(4))}}
	case 0:
		// A param the rest of the run can live with, or one out of range.
		v := 5 + w.r.IntN(30)
		if w.oneIn(6) {
			v = 1_000_000_000
		}
		c.Kind = &govpb.Content_Params{Params: &govpb.ParamsChange{Changes: []*govpb.ParamChange{{Module: "provider", Param: "offline_after_blocks", Value: strconv.Itoa(v)}}}}
	case 1:
		c.Kind = &govpb.Content_Params{Params: &govpb.ParamsChange{Changes: []*govpb.ParamChange{{Module: pick(w, []string{"gov", "staking", "bank", "nope"}),
			Param: pick(w, []string{"voting_period", "min_self_delegation", "unbonding_blocks", "denoms", "x"}), Value: strconv.Itoa(w.r.IntN(50))}}}}
	case 2:
		// An upgrade well past the run's end, or in the past.
		c.Kind = &govpb.Content_Upgrade{Upgrade: &govpb.UpgradePlan{Name: fmt.Sprintf("v%d", w.r.IntN(5)), Height: pick(w, []int64{1, 1_000_000})}}
	}
	deposit := w.amt(4_000_000)
	if w.oneIn(3) {
		deposit = 5_000_000 // the whole min_deposit: straight to voting
	}
	return by, &govpb.MsgSubmitProposal{Proposer: addrOf(by), Title: "proposal", Content: c, InitialDeposit: coin.New(coin.Native, deposit)}
}

// proposal is a proposal id to act on: mostly one in the status want,
// else one still open.
func (w *world) proposal(want govpb.Status) uint64 {
	r, _ := metaAsk(w.app, govpb.QueryProposals, &govpb.QueryProposalsRequest{})
	if r == nil || len(r.Proposals) == 0 || w.oneIn(10) {
		return uint64(1 + w.r.IntN(5))
	}
	var open, wanted []uint64
	for _, p := range r.Proposals {
		if p.Status == govpb.Status_STATUS_DEPOSIT || p.Status == govpb.Status_STATUS_VOTING {
			open = append(open, p.Id)
		}
		if p.Status == want {
			wanted = append(wanted, p.Id)
		}
	}
	if len(wanted) > 0 && !w.oneIn(4) {
		return pick(w, wanted)
	}
	if len(open) == 0 {
		return pick(w, r.Proposals).Id
	}
	return pick(w, open)
}

func genDeposit(w *world) (string, module.Msg) {
	by := w.user()
	return by, &govpb.MsgDeposit{Depositor: addrOf(by), ProposalId: w.proposal(govpb.Status_STATUS_DEPOSIT), Amount: coin.New(coin.Native, w.amt(6_000_000))}
}

func genVote(w *world) (string, module.Msg) {
	by := w.user()
	if !w.oneIn(3) {
		by = pick(w, metaValidators)
	}
	return by, &govpb.MsgVote{Voter: addrOf(by), ProposalId: w.proposal(govpb.Status_STATUS_VOTING), Option: govpb.Option(1 + w.r.IntN(4))}
}

// --- provider ---

func (w *world) provider() string {
	if w.oneIn(8) {
		return w.user()
	}
	return pick(w, metaProviders)
}

// providerInfo is p's registration, or nil.
func (w *world) providerInfo(p string) *providerpb.ProviderInfo {
	info, ok := metaAsk(w.app, providerpb.QueryProvider, &providerpb.QueryProviderRequest{Address: addrOf(p)})
	if !ok {
		return nil
	}
	return info
}

// providersWhere are the providers for which ok holds of their
// registration (nil if not registered).
func (w *world) providersWhere(ok func(*providerpb.ProviderInfo) bool) []string {
	var out []string
	for _, p := range metaProviders {
		if ok(w.providerInfo(p)) {
			out = append(out, p)
		}
	}
	return out
}

func genRegisterProvider(w *world) (string, module.Msg) {
	op := w.provider()
	if out := w.providersWhere(func(i *providerpb.ProviderInfo) bool { return i == nil }); len(out) > 0 && !w.oneIn(4) {
		op = pick(w, out) // back after deregistering
	}
	m := &providerpb.MsgRegisterProvider{Operator: addrOf(op), Endpoint: "https://" + op + ".example:8443", Region: "eu", Hardware: "cpu", TlsKeySha256: w.bytes(32)}
	switch w.r.IntN(12) {
	case 0:
		m.Endpoint = "ftp://" + op
	case 1: // plain http on a network address: refused by the params
		m.Endpoint, m.TlsKeySha256 = "http://"+op+".example:8080", nil
	case 2: // https without the certificate's key
		m.TlsKeySha256 = nil
	case 3, 4, 5:
		m.Endpoint, m.TlsKeySha256 = "http://127.0.0.1:8080", nil
	}
	return op, m
}

// serviceMsg offers model (the digits model for "") under its name.
func (w *world) serviceMsg(op, id string) *providerpb.MsgRegisterService {
	name := w.fx.name
	if id == "" {
		id = w.fx.modelID
	} else {
		name = "agora/" + id[:8]
	}
	m := &providerpb.MsgRegisterService{Operator: addrOf(op), ModelId: id, ModelName: name, MaxConcurrency: 4, PricePerRequest: coin.New(coin.Stable, w.r.Uint64N(10))}
	if w.oneIn(4) {
		m.Royalties = []*providerpb.Royalty{{Recipient: addrOf(pick(w, metaUsers)), Bps: 1 + w.r.Uint32N(2000)}}
	}
	return m
}

func genRegisterService(w *world) (string, module.Msg) {
	op := w.provider()
	if out := w.providersWhere(func(i *providerpb.ProviderInfo) bool { return i != nil }); len(out) > 0 && !w.oneIn(6) {
		op = pick(w, out)
	}
	model := pick(w, metaModels)
	if info := w.providerInfo(op); info != nil && !w.oneIn(3) {
		// Mostly a model it does not offer yet: the digits model first.
		for _, id := range metaModels {
			offered := false
			for _, s := range info.Services {
				offered = offered || s.ModelId == w.modelOrDigits(id)
			}
			if !offered {
				model = id
				break
			}
		}
	}
	m := w.serviceMsg(op, model)
	switch w.r.IntN(15) {
	case 0:
		m.MaxConcurrency = 0
	case 1:
		m.Royalties = []*providerpb.Royalty{{Recipient: addrOf("bob"), Bps: 20_000}}
	}
	return op, m
}

func (w *world) modelOrDigits(id string) string {
	if id == "" {
		return w.fx.modelID
	}
	return id
}

func genRemoveService(w *world) (string, module.Msg) {
	op := w.provider()
	model := w.modelOrDigits(pick(w, metaModels))
	if out := w.providersWhere(func(i *providerpb.ProviderInfo) bool { return len(i.GetServices()) > 0 }); len(out) > 0 && !w.oneIn(5) {
		op = pick(w, out)
		model = pick(w, w.providerInfo(op).Services).ModelId
	}
	return op, &providerpb.MsgRemoveService{Operator: addrOf(op), ModelId: model}
}

func genHeartbeat(w *world) (string, module.Msg) {
	op := w.provider()
	if out := w.providersWhere(func(i *providerpb.ProviderInfo) bool { return i != nil }); len(out) > 0 && !w.oneIn(6) {
		op = pick(w, out)
	}
	return op, &providerpb.MsgHeartbeat{Operator: addrOf(op)}
}

func genDeregister(w *world) (string, module.Msg) {
	op := w.provider()
	if out := w.providersWhere(func(i *providerpb.ProviderInfo) bool { return i != nil }); len(out) < 3 {
		// Keep most providers registered, so jobs find bidders.
		op = w.user()
	}
	return op, &providerpb.MsgDeregister{Operator: addrOf(op)}
}

// --- channel ---

// channel returns a known channel for which ok holds, looking at the
// channels still open (and moving closed ones aside), or nil.
func (w *world) channel(ok func(*channelpb.Channel) bool) *channelpb.Channel {
	for _, id := range w.shuffled(w.channels) {
		c, found := metaAsk(w.app, channelpb.QueryChannel, &channelpb.QueryChannelRequest{Id: id})
		if !found {
			continue
		}
		if c.Closed {
			w.dropChannel(id)
			continue
		}
		if ok(c) {
			return c
		}
	}
	return nil
}

func (w *world) dropChannel(id uint64) {
	for i, c := range w.channels {
		if c == id {
			w.channels = append(w.channels[:i:i], w.channels[i+1:]...)
			w.closedChannels = append(w.closedChannels, id)
			return
		}
	}
}

// unknownChannel is an id that is closed or never was.
func (w *world) unknownChannel() uint64 {
	if len(w.closedChannels) > 0 && w.oneIn(2) {
		return pick(w, w.closedChannels)
	}
	return 1_000_000 + w.r.Uint64N(10)
}

func genOpenChannel(w *world) (string, module.Msg) {
	payer := w.user()
	payee := pick(w, metaProviders)
	if w.oneIn(4) {
		payee = pick(w, metaUsers)
	}
	m := &channelpb.MsgOpenChannel{Payer: addrOf(payer), Payee: addrOf(payee), Deposit: coin.New(w.denom(), w.amt(20_000)),
		ExpiresAt: w.height + 3 + w.r.Int64N(40), PayerKey: w.key(payer).Public().(ed25519.PublicKey)}
	if w.oneIn(3) {
		m.ModelId = w.modelOrDigits(pick(w, metaModels))
	}
	session := ""
	if w.oneIn(3) {
		session = "session-" + payer
		m.SessionKey = pubOf(session)
	}
	switch w.r.IntN(20) {
	case 0:
		m.ExpiresAt = w.height
	case 1:
		m.PayerKey = pubOf("bob")
	case 2:
		m.ExpiresAt = w.height + 20_000_000
	}
	w.onOK(func(resp proto.Message) {
		id := resp.(*channelpb.MsgOpenChannelResponse).ChannelId
		w.channels = append(w.channels, id)
		if session != "" {
			w.sessions[id] = session
		}
	})
	return payer, m
}

// payerOf is who signs for a channel's payer: the payer, or now and then
// someone else.
func (w *world) payerOf(c *channelpb.Channel) string {
	if c == nil || w.oneIn(12) {
		return w.user()
	}
	return w.name(c.Payer)
}

func genFundChannel(w *world) (string, module.Msg) {
	c := w.channel(func(c *channelpb.Channel) bool { return c.ExpiresAt >= w.height })
	signer := w.payerOf(c)
	m := &channelpb.MsgFundChannel{Payer: addrOf(signer), ChannelId: w.unknownChannel(), Amount: coin.New(w.denom(), w.amt(10_000))}
	w.idle = c == nil
	if c != nil {
		m.ChannelId = c.Id
		if !w.oneIn(10) {
			m.Amount.Denom = c.Denom
		}
	}
	return signer, m
}

func genExtendChannel(w *world) (string, module.Msg) {
	c := w.channel(func(*channelpb.Channel) bool { return true })
	signer := w.payerOf(c)
	m := &channelpb.MsgExtendChannel{Payer: addrOf(signer), ChannelId: w.unknownChannel(), ExpiresAt: w.height + 10}
	w.idle = c == nil
	if c != nil {
		m.ChannelId, m.ExpiresAt = c.Id, c.ExpiresAt+1+w.r.Int64N(30)
		if w.oneIn(10) {
			m.ExpiresAt = c.ExpiresAt - 1
		}
	}
	return signer, m
}

// voucherKey is who signs a channel's vouchers: its payer or session key,
// now and then the wrong key.
func (w *world) voucherKey(c *channelpb.Channel) ed25519.PrivateKey {
	switch {
	case w.oneIn(15):
		return key("carol")
	case w.sessions[c.Id] != "" && w.oneIn(2):
		return key(w.sessions[c.Id])
	}
	return w.keyWithPub(w.name(c.Payer), c.PayerKey)
}

// claimOf builds a claim on c, with receipts anchored if the payee is a
// provider; the hook records the receipts once the claim is on chain.
func (w *world) claimOf(c *channelpb.Channel) *channelpb.Claim {
	left := c.Deposit - c.Claimed
	cum := c.Claimed + 1 + w.r.Uint64N(min(left, 2000)+1)
	cl := &channelpb.Claim{Amount: cum}
	switch w.r.IntN(15) {
	case 0:
		cl.Amount = c.Claimed
	case 1:
		cl.Amount = cum + 1
	}
	cl.Voucher = channelpb.SignVoucher(w.voucherKey(c), testChain, c.Id, cum)
	payee := w.name(c.Payee)
	isProvider := false
	for _, p := range metaProviders {
		isProvider = isProvider || p == payee
	}
	if !isProvider {
		cl.ReceiptsRoot, cl.ReceiptsCount = make([]byte, 32), 1
		return cl
	}
	var leaves [][]byte
	var rs []*metaReceipt
	for i := w.r.IntN(4); i >= 0; i-- {
		r := w.signReceipt(payee, w.height, !w.oneIn(3))
		rs = append(rs, r)
		leaves = append(leaves, receipt.Hash([]byte(r.enc)))
	}
	cl.ReceiptsRoot, cl.ReceiptsCount = receipt.Root(leaves), uint64(len(leaves))
	root, id := cl.ReceiptsRoot, c.Id
	w.onOK(func(proto.Message) {
		anchors, _ := metaAsk(w.app, channelpb.QueryAnchors, &channelpb.QueryAnchorsRequest{ChannelId: id})
		for n, a := range anchors.GetAnchors() {
			if string(a.Root) != string(root) {
				continue
			}
			for i, r := range rs {
				r.channel, r.anchor, r.leaf, r.path = id, uint32(n), uint32(i), receipt.Path(leaves, i)
				w.receipts = append(w.receipts, r)
			}
		}
	})
	return cl
}

// signReceipt is provider's receipt for an answer served at height,
// honest or a lie.
func (w *world) signReceipt(provider string, height int64, honest bool) *metaReceipt {
	w.receiptSeq++
	req := []byte(fmt.Sprintf("request %d", w.receiptSeq))
	truth := receipt.Hash([]byte(fmt.Sprintf("answer %d", w.receiptSeq)))
	claimed := truth
	if !honest {
		claimed = receipt.Hash([]byte("a lie"))
	}
	enc, err := receipt.Sign(key(provider), &receipt.Receipt{ChainId: testChain, ModelId: modelID("model-a"), RequestHash: receipt.Hash(req), ResponseHash: claimed,
		Height: height, Seq: w.receiptSeq})
	if err != nil {
		w.t.Fatal(err)
	}
	return &metaReceipt{enc: enc, request: req, truth: truth}
}

func genClaim(w *world) (string, module.Msg) {
	c := w.channel(func(c *channelpb.Channel) bool { return c.ExpiresAt >= w.height && c.Claimed < c.Deposit })
	if c == nil {
		w.idle = true
		payee := w.provider()
		return payee, &channelpb.MsgClaim{Payee: addrOf(payee), Claims: []*channelpb.Claim{{Voucher: channelpb.SignVoucher(key("alice"), testChain, w.unknownChannel(), 5), Amount: 5}}}
	}
	m := &channelpb.MsgClaim{Payee: c.Payee, Claims: []*channelpb.Claim{w.claimOf(c)}}
	for i := w.r.IntN(3); i > 0; i-- {
		more := w.channel(func(o *channelpb.Channel) bool {
			for _, cl := range m.Claims {
				if cl.Voucher.ChannelId == o.Id {
					return false
				}
			}
			return o.Payee == c.Payee && o.ExpiresAt >= w.height && o.Claimed < o.Deposit
		})
		if more == nil {
			break
		}
		m.Claims = append(m.Claims, w.claimOf(more))
	}
	signer := w.name(c.Payee)
	if w.oneIn(15) {
		signer = w.user()
		m.Payee = addrOf(signer)
	}
	return signer, m
}

func genCloseChannel(w *world) (string, module.Msg) {
	c := w.channel(func(*channelpb.Channel) bool { return true })
	if c == nil {
		w.idle = true
		payee := w.provider()
		return payee, &channelpb.MsgCloseChannel{Payee: addrOf(payee), ChannelId: w.unknownChannel()}
	}
	signer := w.name(c.Payee)
	if w.oneIn(10) {
		signer = w.user()
	}
	m := &channelpb.MsgCloseChannel{Payee: addrOf(signer), ChannelId: c.Id}
	if w.oneIn(2) && c.Claimed < c.Deposit {
		m.Final = w.claimOf(c)
	}
	return signer, m
}

func genSettleExpired(w *world) (string, module.Msg) {
	c := w.channel(func(c *channelpb.Channel) bool { return c.ExpiresAt < w.height || w.oneIn(6) })
	if c == nil {
		w.idle = true
		payer := w.user()
		return payer, &channelpb.MsgSettleExpired{Payer: addrOf(payer), ChannelId: w.unknownChannel()}
	}
	signer := w.payerOf(c)
	// The owner of a revoked agent settles its channels.
	if o, ok := w.owner[w.name(c.Payer)]; ok && w.revoked[w.name(c.Payer)] {
		signer = o
	}
	return signer, &channelpb.MsgSettleExpired{Payer: addrOf(signer), ChannelId: c.Id}
}

func genRevokeSessionKey(w *world) (string, module.Msg) {
	c := w.channel(func(c *channelpb.Channel) bool {
		return len(c.SessionKey) != 0 && c.SessionRevokedAt == 0 || w.oneIn(8)
	})
	signer := w.payerOf(c)
	id := w.unknownChannel()
	if c != nil {
		id = c.Id
	} else {
		w.idle = true
	}
	return signer, &channelpb.MsgRevokeSessionKey{Payer: addrOf(signer), ChannelId: id}
}

// --- agent ---

// policy is a random agent policy, now and then one ValidateBasic refuses.
func (w *world) policy() *agentpb.Policy {
	p := &agentpb.Policy{Denom: pick(w, []string{coin.Stable, coin.Native}), FeeAllowance: 1_000_000_000}
	if w.oneIn(3) {
		p.MaxPerTx = 1 + w.r.Uint64N(50_000)
	}
	if w.oneIn(3) {
		p.MaxPerPeriod, p.PeriodBlocks = 1+w.r.Uint64N(200_000), 1+w.r.Int64N(20)
	}
	if w.oneIn(4) {
		p.MaxLifetime = 1 + w.r.Uint64N(5_000_000)
	}
	if w.oneIn(5) {
		p.AllowedRecipients = []string{addrOf(pick(w, metaUsers)), addrOf(pick(w, metaProviders))}
	}
	if w.oneIn(5) {
		p.AllowedMsgs = []string{"agora.bank.v1.MsgSend", "agora.channel.v1.MsgOpenChannel", "agora.job.v1.MsgCreateOrder"}
	}
	if w.oneIn(8) {
		p.FeeAllowance = 5_000
	}
	if w.oneIn(8) {
		p.FeeAllowancePerPeriod, p.PeriodBlocks = 3_000, 1+w.r.Int64N(10)
	}
	if w.oneIn(10) {
		p.ExpiresAt = w.height + w.r.Int64N(30)
	}
	if w.oneIn(20) {
		p.MaxPerPeriod, p.PeriodBlocks = 10, 0
	}
	return p
}

func genCreateAgent(w *world) (string, module.Msg) {
	owner := pick(w, metaUsers)
	if len(w.agents) > 0 && w.oneIn(12) {
		owner = pick(w, w.agents)
	}
	var fresh []string
	for _, n := range metaAgentKeys {
		if _, ok := w.owner[n]; !ok {
			fresh = append(fresh, n)
		}
	}
	ag := pick(w, metaAgentKeys)
	if len(fresh) > 0 && !w.oneIn(10) {
		ag = fresh[0]
	}
	consent := ed25519.Sign(key(ag), agentpb.ConsentBytes(testChain, addrOf(owner)))
	switch w.r.IntN(15) {
	case 0:
		consent = ed25519.Sign(key(ag), agentpb.ConsentBytes("another-chain", addrOf(owner)))
	case 1:
		consent = ed25519.Sign(key("carol"), agentpb.ConsentBytes(testChain, addrOf(owner)))
	}
	w.onOK(func(proto.Message) {
		w.agents = append(w.agents, ag)
		w.owner[ag] = owner
	})
	return owner, &agentpb.MsgCreateAgent{Owner: addrOf(owner), AgentKey: pubOf(ag), Consent: consent, Policy: w.policy()}
}

// ownerOf is an agent and who signs for its owner: the owner, now and
// then someone else.
func (w *world) ownerOf() (agent, signer string) {
	if len(w.agents) == 0 {
		return pick(w, metaAgentKeys), pick(w, metaUsers)
	}
	agent = pick(w, w.agents)
	signer = w.owner[agent]
	if w.oneIn(10) {
		signer = pick(w, metaUsers)
	}
	return agent, signer
}

func genSetPolicy(w *world) (string, module.Msg) {
	ag, signer := w.ownerOf()
	return signer, &agentpb.MsgSetPolicy{Owner: addrOf(signer), Agent: addrOf(ag), Policy: w.policy()}
}

func genFreezeAgent(w *world) (string, module.Msg) {
	ag, signer := w.ownerOf()
	return signer, &agentpb.MsgFreezeAgent{Owner: addrOf(signer), Agent: addrOf(ag)}
}

func genUnfreezeAgent(w *world) (string, module.Msg) {
	ag, signer := w.ownerOf()
	return signer, &agentpb.MsgUnfreezeAgent{Owner: addrOf(signer), Agent: addrOf(ag)}
}

func genRevokeAgent(w *world) (string, module.Msg) {
	ag, signer := w.ownerOf()
	if len(w.liveAgents()) < 3 && !w.oneIn(4) {
		// Keep a few agents alive, so agents keep signing.
		signer = pick(w, metaVerifiers)
	}
	w.onOK(func(proto.Message) { w.revoked[ag] = true })
	return signer, &agentpb.MsgRevokeAgent{Owner: addrOf(signer), Agent: addrOf(ag)}
}

// --- audit ---

// zkFixture is one digits-mlp proof, made once per process: the model's
// verifying key goes in genesis, and the proof settles challenges of the
// answers providers sign with it and verifies as an inference.
type zkFixture struct {
	modelID, name string
	vk            []byte
	input         []byte
	logits        []int32
	class         int
	proof         []byte
	request       []byte // the canonical request
	body          []byte // the answer as a provider sends it
}

var (
	zkOnce sync.Once
	zkFix  *zkFixture
	zkErr  error
)

func digitsFixture(t testing.TB) *zkFixture {
	zkOnce.Do(func() {
		m, err := model.Lookup(model.DigitsName)
		if err != nil {
			zkErr = err
			return
		}
		sys, err := zk.Setup(m.MLP)
		if err != nil {
			zkErr = err
			return
		}
		f := &zkFixture{modelID: m.Manifest.ID, name: m.Manifest.Name}
		if f.vk, err = sys.VerifyingKey(); err != nil {
			zkErr = err
			return
		}
		f.input, _ = model.GenerateDigit(3, 3)
		if f.logits, f.proof, err = sys.Prove(f.input); err != nil {
			zkErr = err
			return
		}
		_, f.class, _ = m.MLP.Infer(f.input)
		in := make([]int, len(f.input))
		for i, p := range f.input {
			in[i] = int(p)
		}
		f.request = (&openai.Inference{Endpoint: "infer", Model: f.name, Input: in, Proof: true}).Canonical()
		f.body, _ = json.Marshal(openai.InferResponse{Model: f.name, Class: f.class, Logits: f.logits, Proof: base64.StdEncoding.EncodeToString(f.proof)})
		f.body = append(f.body, '\n')
		zkFix = f
	})
	if zkErr != nil {
		t.Fatal(zkErr)
	}
	return zkFix
}

// provenReceipt is provider's receipt for the fixture's proven answer.
func (w *world) provenReceipt(provider string) *metaReceipt {
	w.receiptSeq++
	enc, err := receipt.Sign(key(provider), &receipt.Receipt{ChainId: testChain, ModelId: w.fx.modelID, RequestHash: receipt.Hash(w.fx.request),
		ResponseHash: receipt.Hash(w.fx.body), Height: w.height, Seq: w.receiptSeq})
	if err != nil {
		w.t.Fatal(err)
	}
	return &metaReceipt{enc: enc, request: w.fx.request, truth: receipt.Hash(w.fx.body), proven: true}
}

func genRegisterVerifier(w *world) (string, module.Msg) {
	v := pick(w, metaVerifiers)
	if w.oneIn(4) {
		v = w.user()
	}
	return v, &auditpb.MsgRegisterVerifier{Verifier: addrOf(v)}
}

func genChallenge(w *world) (string, module.Msg) {
	challenger := w.user()
	if w.oneIn(3) {
		challenger = pick(w, metaVerifiers)
	}
	var r *metaReceipt
	switch n := w.r.IntN(10); {
	case n < 4:
		var fresh []*metaReceipt
		for _, x := range w.receipts {
			if !x.disputed {
				fresh = append(fresh, x)
			}
		}
		if len(fresh) > 0 {
			r = pick(w, fresh)
		}
	case n < 7:
		// By a provider that sells the digits model, so that the proof
		// can settle the challenge.
		sellers := w.providersWhere(func(i *providerpb.ProviderInfo) bool {
			for _, s := range i.GetServices() {
				if s.ModelId == w.fx.modelID && s.ModelName == w.fx.name {
					return true
				}
			}
			return false
		})
		if len(sellers) == 0 || w.oneIn(6) {
			sellers = metaProviders
		}
		r = w.provenReceipt(pick(w, sellers))
	case n == 7 && len(w.receipts) > 0:
		r = pick(w, w.receipts) // perhaps challenged already
	}
	if r == nil {
		height := w.height - w.r.Int64N(50)
		if w.oneIn(12) {
			height = w.height + 2*receipt.MaxLead
		}
		r = w.signReceipt(pick(w, metaProviders), height, !w.oneIn(2))
	}
	m := &auditpb.MsgChallenge{Challenger: addrOf(challenger), Receipt: []byte(r.enc), Request: r.request, ChannelId: r.channel, Anchor: r.anchor, LeafIndex: r.leaf, Path: r.path}
	switch w.r.IntN(20) {
	case 0:
		m.Request = []byte("another request")
	case 1:
		if m.ChannelId != 0 {
			m.LeafIndex++
		}
	}
	w.onOK(func(resp proto.Message) {
		id := resp.(*auditpb.MsgChallengeResponse).DisputeId
		r.disputed = true
		w.disputes = append(w.disputes, id)
		w.disputeTruth[id] = r.truth
	})
	return challenger, m
}

// dispute returns an open dispute for which ok holds, or nil.
func (w *world) dispute(ok func(*auditpb.Dispute) bool) *auditpb.Dispute {
	for _, id := range w.shuffled(w.disputes) {
		d, found := metaAsk(w.app, auditpb.QueryDispute, &auditpb.QueryDisputeRequest{Id: id})
		if !found {
			continue
		}
		if d.Dispute.Status != auditpb.DisputeStatus_DISPUTE_STATUS_OPEN {
			w.disputes = dropID(w.disputes, id)
			continue
		}
		if ok(d.Dispute) {
			return d.Dispute
		}
	}
	return nil
}

// dropID returns ids without id.
func dropID(ids []uint64, id uint64) []uint64 {
	for i, x := range ids {
		if x == id {
			return append(ids[:i:i], ids[i+1:]...)
		}
	}
	return ids
}

// member is a committee member whose vote satisfies ok, or "".
func member(votes []*auditpb.Vote, w *world, ok func(*auditpb.Vote) bool) string {
	var out []string
	for _, v := range votes {
		if ok(v) {
			out = append(out, w.name(v.Verifier))
		}
	}
	if len(out) == 0 {
		return ""
	}
	return pick(w, out)
}

func genCommit(w *world) (string, module.Msg) {
	var who string
	d := w.dispute(func(d *auditpb.Dispute) bool {
		who = member(d.Votes, w, func(v *auditpb.Vote) bool { return len(v.Commitment) == 0 })
		return d.CommitUntil >= w.height && who != ""
	})
	if d == nil || w.oneIn(12) {
		w.idle = d == nil
		v := pick(w, metaVerifiers)
		id := 1_000_000 + w.r.Uint64N(10)
		if d != nil {
			id = d.Id
		}
		return v, &auditpb.MsgCommit{Verifier: addrOf(v), DisputeId: id, Commitment: w.bytes(32)}
	}
	value := w.disputeTruth[d.Id]
	if w.oneIn(6) {
		value = d.ClaimedResponseHash
	}
	salt := w.bytes(16)
	k := fmt.Sprintf("d/%d/%s", d.Id, who)
	w.onOK(func(proto.Message) { w.secrets[k] = metaSecret{value: value, salt: salt} })
	return who, &auditpb.MsgCommit{Verifier: addrOf(who), DisputeId: d.Id, Commitment: auditpb.Commitment(value, salt, addrOf(who))}
}

func genReveal(w *world) (string, module.Msg) {
	var who string
	d := w.dispute(func(d *auditpb.Dispute) bool {
		who = member(d.Votes, w, func(v *auditpb.Vote) bool {
			_, ok := w.secrets[fmt.Sprintf("d/%d/%s", d.Id, w.name(v.Verifier))]
			return ok && len(v.ResponseHash) == 0
		})
		return d.CommitUntil < w.height && w.height <= d.RevealUntil && who != ""
	})
	if d == nil {
		w.idle = true
		v := pick(w, metaVerifiers)
		return v, &auditpb.MsgReveal{Verifier: addrOf(v), DisputeId: 1 + w.r.Uint64N(uint64(len(w.disputes))+2), ResponseHash: w.bytes(32), Salt: w.bytes(16)}
	}
	s := w.secrets[fmt.Sprintf("d/%d/%s", d.Id, who)]
	salt := s.salt
	if w.oneIn(10) {
		salt = w.bytes(16)
	}
	return who, &auditpb.MsgReveal{Verifier: addrOf(who), DisputeId: d.Id, ResponseHash: s.value, Salt: salt}
}

func genSettleWithProof(w *world) (string, module.Msg) {
	submitter := pick(w, metaUsers)
	if w.oneIn(6) {
		submitter = w.user()
	}
	// A dispute over a proven answer whose provider still sells the
	// model under the name it answered with.
	d := w.dispute(func(d *auditpb.Dispute) bool {
		if d.ModelId != w.fx.modelID {
			return false
		}
		for _, s := range w.providerInfo(w.name(d.Provider)).GetServices() {
			if s.ModelId == w.fx.modelID && s.ModelName == w.fx.name {
				return true
			}
		}
		return w.oneIn(6)
	})
	m := &auditpb.MsgSettleWithProof{Submitter: addrOf(submitter), DisputeId: 1_000_000, Class: int32(w.fx.class), Logits: w.fx.logits, Proof: w.fx.proof}
	if d != nil {
		m.DisputeId = d.Id
	} else {
		w.idle = true
	}
	if w.oneIn(8) {
		m.Logits = append([]int32(nil), w.fx.logits...)
		m.Logits[0]++
	}
	return submitter, m
}

func genVerifyInference(w *world) (string, module.Msg) {
	submitter := w.user()
	m := &auditpb.MsgVerifyInference{Submitter: addrOf(submitter), ModelId: w.fx.modelID, Input: w.fx.input, Logits: w.fx.logits, Proof: w.fx.proof}
	switch w.r.IntN(8) {
	case 0:
		m.ModelId = modelID("model-a")
	case 1:
		m.Logits = append([]int32(nil), w.fx.logits...)
		m.Logits[9]--
	}
	return submitter, m
}

func genProposeModelKey(w *world) (string, module.Msg) {
	proposer := w.user()
	vs := append([]string(nil), metaVerifiers...)
	w.r.Shuffle(len(vs), func(i, j int) { vs[i], vs[j] = vs[j], vs[i] })
	contributors := [][]byte{pubOf(vs[0]), pubOf(vs[1])}
	switch w.r.IntN(12) {
	case 0:
		contributors[1] = pubOf(pick(w, metaUsers))
	case 1:
		contributors = contributors[:1]
	}
	m := &auditpb.MsgProposeModelKey{Proposer: addrOf(proposer), ModelId: pick(w, metaKeyModels), VerifyingKey: w.bytes(64), TranscriptDigest: w.bytes(32),
		TranscriptUrl: "http://127.0.0.1:1/transcript", Contributors: contributors}
	if w.oneIn(15) {
		m.ModelId = w.fx.modelID // has its key since genesis
	}
	verdict := auditpb.KeyVerdict(m.ModelId, m.VerifyingKey, m.Contributors)
	w.onOK(func(resp proto.Message) {
		id := resp.(*auditpb.MsgProposeModelKeyResponse).ReviewId
		w.reviews = append(w.reviews, id)
		w.reviewVerdict[id] = verdict
	})
	return proposer, m
}

// review returns an open key review for which ok holds, or nil.
func (w *world) review(ok func(*auditpb.KeyReview) bool) *auditpb.KeyReview {
	for _, id := range w.shuffled(w.reviews) {
		r, found := metaAsk(w.app, auditpb.QueryReview, &auditpb.QueryKeyReviewRequest{Id: id})
		if !found {
			continue
		}
		if r.Status != auditpb.ReviewStatus_REVIEW_STATUS_OPEN {
			w.reviews = dropID(w.reviews, id)
			continue
		}
		if ok(r) {
			return r
		}
	}
	return nil
}

func genCommitKeyVote(w *world) (string, module.Msg) {
	var who string
	r := w.review(func(r *auditpb.KeyReview) bool {
		who = member(r.Votes, w, func(v *auditpb.Vote) bool { return len(v.Commitment) == 0 })
		return r.CommitUntil >= w.height && who != ""
	})
	if r == nil || w.oneIn(12) {
		w.idle = r == nil
		v := pick(w, metaVerifiers)
		id := 1_000_000 + w.r.Uint64N(10)
		if r != nil {
			id = r.Id
		}
		return v, &auditpb.MsgCommitKeyVote{Verifier: addrOf(v), ReviewId: id, Commitment: w.bytes(32)}
	}
	verdict := w.reviewVerdict[r.Id]
	if w.oneIn(4) {
		verdict = make([]byte, 32) // the member's check of the transcript failed
	}
	salt := w.bytes(16)
	k := fmt.Sprintf("k/%d/%s", r.Id, who)
	w.onOK(func(proto.Message) { w.secrets[k] = metaSecret{value: verdict, salt: salt} })
	return who, &auditpb.MsgCommitKeyVote{Verifier: addrOf(who), ReviewId: r.Id, Commitment: commit.Hash(auditpb.KeyVoteDomain, verdict, []byte(addrOf(who)), salt)}
}

func genRevealKeyVote(w *world) (string, module.Msg) {
	var who string
	r := w.review(func(r *auditpb.KeyReview) bool {
		who = member(r.Votes, w, func(v *auditpb.Vote) bool {
			_, ok := w.secrets[fmt.Sprintf("k/%d/%s", r.Id, w.name(v.Verifier))]
			return ok && len(v.ResponseHash) == 0
		})
		return r.CommitUntil < w.height && w.height <= r.RevealUntil && who != ""
	})
	if r == nil {
		w.idle = true
		v := pick(w, metaVerifiers)
		return v, &auditpb.MsgRevealKeyVote{Verifier: addrOf(v), ReviewId: 1 + w.r.Uint64N(5), Verdict: w.bytes(32), Salt: w.bytes(16)}
	}
	s := w.secrets[fmt.Sprintf("k/%d/%s", r.Id, who)]
	salt := s.salt
	if w.oneIn(10) {
		salt = w.bytes(16)
	}
	return who, &auditpb.MsgRevealKeyVote{Verifier: addrOf(who), ReviewId: r.Id, Verdict: s.value, Salt: salt}
}

// --- job ---

func genCreateOrder(w *world) (string, module.Msg) {
	tenant := w.user()
	mh, ih := sha256.Sum256(w.bytes(8)), sha256.Sum256(w.bytes(8))
	m := &jobpb.MsgCreateOrder{Tenant: addrOf(tenant), ModuleHash: mh[:], ModuleUrl: "http://127.0.0.1:9001/m", InputHash: ih[:], InputUrl: "http://127.0.0.1:9001/i",
		Fuel: 1000 + w.r.Uint64N(1_000_000), MemoryMib: 16 + w.r.Uint32N(256), MaxPrice: coin.New(coin.Stable, w.amt(500)),
		Redundancy: 1 + min(w.r.Uint32N(3), 1), BidWindow: 6 + w.r.Int64N(10), DeadlineBlocks: 6 + w.r.Int64N(15)}
	if w.oneIn(5) {
		m.MaxPrice.Denom = coin.Native
	}
	switch w.r.IntN(20) {
	case 0:
		m.Redundancy = 0 // the default, 2
	case 1:
		m.Redundancy = 9
	case 2:
		m.Fuel = 1 << 43
	case 3:
		m.MemoryMib = 1 << 20
	case 4:
		m.BidWindow = 5000
	case 5:
		m.ModuleHash = m.ModuleHash[:16]
	}
	w.onOK(func(resp proto.Message) {
		id := resp.(*jobpb.MsgCreateOrderResponse).OrderId
		w.orders = append(w.orders, id)
		w.orderTruth[id] = jobResult(fmt.Sprintf("output of order %d", id), "ok")
	})
	return tenant, m
}

// order returns an open order for which ok holds, or nil; ended orders
// are moved aside.
func (w *world) order(ok func(*jobpb.Order) bool) *jobpb.Order {
	for _, id := range w.shuffled(w.orders) {
		r, found := metaAsk(w.app, jobpb.QueryOrder, &jobpb.QueryOrderRequest{Id: id})
		if !found {
			continue
		}
		o := r.Order
		switch o.Status {
		case jobpb.OrderStatus_ORDER_STATUS_COMPLETED, jobpb.OrderStatus_ORDER_STATUS_FAILED, jobpb.OrderStatus_ORDER_STATUS_CANCELLED:
			w.orders = dropID(w.orders, id)
			w.endedOrders = append(w.endedOrders, id)
			continue
		}
		if ok(o) {
			return o
		}
	}
	return nil
}

func (w *world) unknownOrder() uint64 {
	if len(w.endedOrders) > 0 && w.oneIn(2) {
		return pick(w, w.endedOrders)
	}
	return 1_000_000 + w.r.Uint64N(10)
}

func genCancelOrder(w *world) (string, module.Msg) {
	o := w.order(func(o *jobpb.Order) bool {
		return o.Status == jobpb.OrderStatus_ORDER_STATUS_BIDDING && len(o.Leases) == 0 || w.oneIn(5)
	})
	if o == nil {
		w.idle = true
		tenant := w.user()
		return tenant, &jobpb.MsgCancelOrder{Tenant: addrOf(tenant), OrderId: w.unknownOrder()}
	}
	signer := w.name(o.Tenant)
	if w.oneIn(10) {
		signer = w.user()
	}
	return signer, &jobpb.MsgCancelOrder{Tenant: addrOf(signer), OrderId: o.Id}
}

func genBid(w *world) (string, module.Msg) {
	var who string
	o := w.order(func(o *jobpb.Order) bool {
		if o.Status != jobpb.OrderStatus_ORDER_STATUS_BIDDING || w.height > o.BiddingUntil {
			return false
		}
		var free []string
		online := w.providersWhere(func(i *providerpb.ProviderInfo) bool {
			return i != nil && i.Provider.Status == providerpb.Status_STATUS_ONLINE
		})
		if len(online) == 0 || w.oneIn(8) {
			online = metaProviders
		}
		for _, p := range online {
			bid := false
			for _, b := range o.Bids {
				bid = bid || b.Provider == addrOf(p)
			}
			if !bid {
				free = append(free, p)
			}
		}
		if len(free) == 0 {
			return false
		}
		who = pick(w, free)
		return true
	})
	if o == nil {
		w.idle = true
		p := w.provider()
		return p, &jobpb.MsgBid{Provider: addrOf(p), OrderId: w.unknownOrder(), Price: coin.New(coin.Stable, 1)}
	}
	if w.oneIn(12) {
		who = w.user()
	}
	price := coin.New(o.MaxPrice.Denom, 1+w.r.Uint64N(o.MaxPrice.Amount))
	switch w.r.IntN(15) {
	case 0:
		price.Amount = o.MaxPrice.Amount + 1
	case 1:
		price.Denom = "ufoo"
	}
	return who, &jobpb.MsgBid{Provider: addrOf(who), OrderId: o.Id, Price: price}
}

// lease returns an order and the name of a lessee whose lease is in
// status want, the one with the nearest deadline mostly.
func (w *world) lease(status jobpb.OrderStatus, want jobpb.LeaseStatus, ok func(*jobpb.Order, *jobpb.Lease) bool) (*jobpb.Order, string) {
	var best *jobpb.Order
	var bestLease *jobpb.Lease
	for _, id := range w.shuffled(w.orders) {
		r, found := metaAsk(w.app, jobpb.QueryOrder, &jobpb.QueryOrderRequest{Id: id})
		if !found || r.Order.Status != status {
			continue
		}
		for _, l := range r.Order.Leases {
			if l.Status == want && ok(r.Order, l) && (bestLease == nil || l.Deadline < bestLease.Deadline) {
				best, bestLease = r.Order, l
			}
		}
		if bestLease != nil && w.oneIn(4) {
			break
		}
	}
	if best == nil {
		return nil, ""
	}
	return best, w.name(bestLease.Provider)
}

func genCommitResult(w *world) (string, module.Msg) {
	o, who := w.lease(jobpb.OrderStatus_ORDER_STATUS_RUNNING, jobpb.LeaseStatus_LEASE_STATUS_ACTIVE, func(_ *jobpb.Order, l *jobpb.Lease) bool { return l.Deadline >= w.height })
	if o == nil {
		w.idle = true
		p := w.provider()
		return p, &jobpb.MsgCommitResult{Provider: addrOf(p), OrderId: w.unknownOrder(), Commitment: w.bytes(32)}
	}
	res := w.orderTruth[o.Id]
	switch w.r.IntN(10) {
	case 0, 1, 2:
		res = jobResult("a wrong output", "ok")
	case 3:
		res = jobResult(fmt.Sprintf("output of order %d", o.Id), "trap")
	}
	if res == nil {
		res = jobResult("output", "ok")
	}
	salt := w.bytes(16 + w.r.IntN(16))
	k := fmt.Sprintf("j/%d/%s", o.Id, who)
	w.onOK(func(proto.Message) { w.secrets[k] = metaSecret{result: res, salt: salt} })
	return who, &jobpb.MsgCommitResult{Provider: addrOf(who), OrderId: o.Id, Commitment: jobpb.ResultCommitment(o.Id, addrOf(who), res, salt)}
}

func genRevealResult(w *world) (string, module.Msg) {
	o, who := w.lease(jobpb.OrderStatus_ORDER_STATUS_REVEALING, jobpb.LeaseStatus_LEASE_STATUS_COMMITTED, func(o *jobpb.Order, l *jobpb.Lease) bool {
		_, ok := w.secrets[fmt.Sprintf("j/%d/%s", o.Id, w.name(l.Provider))]
		return ok && w.height <= o.RevealUntil
	})
	if o == nil {
		w.idle = true
		p := w.provider()
		return p, &jobpb.MsgRevealResult{Provider: addrOf(p), OrderId: w.unknownOrder(), Result: jobResult("x", "ok"), Salt: w.bytes(16)}
	}
	s := w.secrets[fmt.Sprintf("j/%d/%s", o.Id, who)]
	salt := s.salt
	if w.oneIn(10) {
		salt = w.bytes(16)
	}
	return who, &jobpb.MsgRevealResult{Provider: addrOf(who), OrderId: o.Id, Result: s.result, Salt: salt, OutputUrl: "http://127.0.0.1:9001/o"}
}

// jobMember is a committee member of a disputed order whose vote
// satisfies ok, or "".
func (w *world) jobMember(ok func(*jobpb.Order, *jobpb.Vote) bool) (*jobpb.Order, string) {
	var who string
	o := w.order(func(o *jobpb.Order) bool {
		if o.Status != jobpb.OrderStatus_ORDER_STATUS_DISPUTED {
			return false
		}
		var out []string
		for _, v := range o.Votes {
			if ok(o, v) {
				out = append(out, w.name(v.Verifier))
			}
		}
		if len(out) == 0 {
			return false
		}
		who = pick(w, out)
		return true
	})
	return o, who
}

func genCommitVote(w *world) (string, module.Msg) {
	o, who := w.jobMember(func(o *jobpb.Order, v *jobpb.Vote) bool {
		return len(v.Commitment) == 0 && w.height <= o.VoteCommitUntil
	})
	if o == nil || w.oneIn(12) {
		w.idle = o == nil
		v := pick(w, metaVerifiers)
		return v, &jobpb.MsgCommitVote{Verifier: addrOf(v), OrderId: w.unknownOrder(), Commitment: w.bytes(32)}
	}
	res := w.orderTruth[o.Id]
	if res == nil || w.oneIn(6) {
		res = jobResult("a wrong output", "ok")
	}
	salt := w.bytes(16)
	k := fmt.Sprintf("jv/%d/%s", o.Id, who)
	w.onOK(func(proto.Message) { w.secrets[k] = metaSecret{result: res, salt: salt} })
	return who, &jobpb.MsgCommitVote{Verifier: addrOf(who), OrderId: o.Id, Commitment: jobpb.ResultCommitment(o.Id, addrOf(who), res, salt)}
}

func genRevealVote(w *world) (string, module.Msg) {
	o, who := w.jobMember(func(o *jobpb.Order, v *jobpb.Vote) bool {
		_, ok := w.secrets[fmt.Sprintf("jv/%d/%s", o.Id, w.name(v.Verifier))]
		return ok && v.Result == nil && o.VoteCommitUntil < w.height && w.height <= o.VoteRevealUntil
	})
	if o == nil {
		w.idle = true
		v := pick(w, metaVerifiers)
		return v, &jobpb.MsgRevealVote{Verifier: addrOf(v), OrderId: w.unknownOrder(), Result: jobResult("x", "ok"), Salt: w.bytes(16)}
	}
	s := w.secrets[fmt.Sprintf("jv/%d/%s", o.Id, who)]
	salt := s.salt
	if w.oneIn(10) {
		salt = w.bytes(16)
	}
	return who, &jobpb.MsgRevealVote{Verifier: addrOf(who), OrderId: o.Id, Result: s.result, Salt: salt}
}
