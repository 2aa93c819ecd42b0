package chain_test

import (
	"crypto/ed25519"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/agent/agentpb"
	"github.com/agoranet/agora/internal/chain/audit/auditpb"
	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/channel/channelpb"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/receipt"
	abci "github.com/cometbft/cometbft/abci/types"
)

// TestAgentCannotOverspendByAnyPath throws random spends at an agent with
// a per-period limit — sends, multi-sends, channel deposits and top-ups,
// and transfer authorizations submitted by someone else — and checks that
// in no period did its balance fall by more than the limit.
func TestAgentCannotOverspendByAnyPath(t *testing.T) {
	const limit, period = 100, 5
	h := newHarness(t, "")
	defer h.close()
	robot := address("robot")
	robotKey := key("robot")
	txs := newSigner(t)
	h.pending = [][]byte{
		txs.sign("alice", &agentpb.MsgCreateAgent{Owner: address("alice").String(), AgentKey: robotKey.Public().(ed25519.PublicKey),
			Consent: ed25519.Sign(robotKey, agentpb.ConsentBytes(testChain, address("alice").String())),
			Policy:  &agentpb.Policy{Denom: "uusdc", MaxPerPeriod: limit, PeriodBlocks: period}}),
		txs.sign("alice", &bankpb.MsgSend{From: address("alice").String(), To: robot.String(), Amount: []*coin.Coin{coin.New("uusdc", 100_000), coin.New("uagr", 100_000)}}),
	}
	h.block()
	r := rand.New(rand.NewPCG(11, 12))
	bob := address("bob").String()
	channels := 0
	nonce := byte(0)
	balanceAt := map[int64]uint64{h.height: h.balance(robot, "uusdc")}
	for b := 0; b < 40; b++ {
		for i := 0; i < 6; i++ {
			amt := uint64(r.IntN(60) + 1)
			var raw []byte
			switch r.IntN(5) {
			case 0:
				raw = txs.sign("robot", &bankpb.MsgSend{From: robot.String(), To: bob, Amount: []*coin.Coin{coin.New("uusdc", amt)}})
			case 1:
				raw = txs.sign("robot", &bankpb.MsgMultiSend{From: robot.String(), Outputs: []*bankpb.Output{{To: bob, Amount: []*coin.Coin{coin.New("uusdc", amt)}}, {To: bob, Amount: []*coin.Coin{coin.New("uusdc", amt)}}}})
			case 2:
				raw = txs.sign("robot", &channelpb.MsgOpenChannel{Payer: robot.String(), Payee: bob, Deposit: coin.New("uusdc", amt), ExpiresAt: h.height + 100, PayerKey: robotKey.Public().(ed25519.PublicKey)})
				channels++
			case 3:
				if channels == 0 {
					continue
				}
				raw = txs.sign("robot", &channelpb.MsgFundChannel{Payer: robot.String(), ChannelId: uint64(r.IntN(channels) + 1), Amount: coin.New("uusdc", amt)})
			case 4:
				nonce++
				a := &bankpb.Authorization{From: robot.String(), To: bob, Amount: coin.New("uusdc", amt), ValidBefore: 1 << 40, Nonce: make([]byte, 32)}
				a.Nonce[0] = nonce
				bankpb.SignAuthorization(robotKey, testChain, a)
				raw = txs.sign("bob", &bankpb.MsgTransferWithAuthorization{Submitter: bob, Authorization: a})
			}
			h.pending = append(h.pending, raw)
		}
		resp, _ := h.block()
		for i, res := range resp.TxResults {
			if res.Code != 0 && res.Code != 10 && res.Code != 14 { // refused by the policy; a channel that was refused
				t.Logf("tx %d: %s", i, res.Log)
			}
		}
		txs.resync(h)
		balanceAt[h.height] = h.balance(robot, "uusdc")
	}
	// Periods start at the agent's creation (height 1) every 5 blocks; the
	// spends of period [s, s+5) show between the balances after blocks s-1
	// and s+4.
	spentTotal := uint64(0)
	for start := int64(1); start+period-1 <= h.height; start += period {
		base := balanceAt[start-1]
		if start == 1 { // block 1 funded the agent; it spent nothing in it
			base = balanceAt[1]
		}
		spent := base - balanceAt[start+period-1]
		if spent > limit {
			t.Errorf("blocks %d-%d: the agent spent %d, its limit is %d", start, start+period-1, spent, limit)
		}
		spentTotal += spent
	}
	if spentTotal == 0 {
		t.Error("the agent never spent anything; the test proves nothing")
	}
	t.Logf("spent %d over %d blocks", spentTotal, h.height)
}

// signer signs transactions for the test keys, each with its next
// sequence (counted here, as a block's pending txs are not on chain yet)
// and a fee of 10uagr a message.
type signer struct {
	t    *testing.T
	seqs map[string]uint64
}

func newSigner(t *testing.T) *signer { return &signer{t: t, seqs: map[string]uint64{}} }

func (s *signer) sign(name string, msgs ...module.Msg) []byte {
	raw, err := signTx(key(name), s.seqs[name], msgs...)
	if err != nil {
		s.t.Fatal(err)
	}
	s.seqs[name]++
	return raw
}

// resync takes the sequences from the chain again: a refused tx does not
// use one up.
func (s *signer) resync(h *harness) {
	for name := range s.seqs {
		s.seqs[name] = h.sequence(name)
	}
}

func (h *harness) balance(a addr.Address, denom string) uint64 {
	r, err := ask(h, bankpb.QueryBalance, &bankpb.QueryBalanceRequest{Address: a.String()})
	if err != nil {
		h.t.Fatal(err)
	}
	for _, c := range r.Balances {
		if c.Denom == denom {
			return c.Amount
		}
	}
	return 0
}

// TestAChallengeBondIsASpend is finding 3 of issue 14: a challenge's
// 10M uagr bond moved an agent's money outside every limit of its policy
// (before that, agents could not challenge at all). Now the bond leaves
// the agent through the bank like any spend: held to the policy's denom,
// per-transaction limit and lifetime limit, and counted.
func TestAChallengeBondIsASpend(t *testing.T) {
	d := newDisputes(t)
	defer d.close()
	robotKey := key("robot")
	robot := address("robot")
	policy := func(p *agentpb.Policy) *agentpb.Policy { p.FeeAllowance = 1_000_000; return p }
	if r := d.send("alice", &agentpb.MsgCreateAgent{Owner: address("alice").String(), AgentKey: robotKey.Public().(ed25519.PublicKey),
		Consent: ed25519.Sign(robotKey, agentpb.ConsentBytes(testChain, address("alice").String())),
		Policy:  policy(&agentpb.Policy{Denom: "uusdc", MaxPerPeriod: 100, PeriodBlocks: 5})}); r.Code != 0 {
		t.Fatal(r.Log)
	}
	if r := d.send("dave", &bankpb.MsgSend{From: address("dave").String(), To: robot.String(), Amount: []*coin.Coin{coin.New("uagr", 50_000_000)}}); r.Code != 0 {
		t.Fatal(r.Log)
	}
	challenge := func() *abci.ExecTxResult {
		return d.send("robot", &auditpb.MsgChallenge{Challenger: robot.String(), Receipt: []byte(d.receipts[1]), ChannelId: 1, Anchor: 0, LeafIndex: 1,
			Path: receipt.Path(d.leaves(), 1), Request: d.requests[1]})
	}
	setPolicy := func(p *agentpb.Policy) {
		t.Helper()
		if r := d.send("alice", &agentpb.MsgSetPolicy{Owner: address("alice").String(), Agent: robot.String(), Policy: policy(p)}); r.Code != 0 {
			t.Fatal(r.Log)
		}
	}
	if r := challenge(); r.Code != codes.ErrUnauthorized.Code || !strings.Contains(r.Log, "may spend only uusdc") {
		t.Errorf("a uagr bond from an agent limited to uusdc: code %d %q", r.Code, r.Log)
	}
	setPolicy(&agentpb.Policy{Denom: "uagr", MaxPerTx: 1_000_000})
	if r := challenge(); r.Code != codes.ErrUnauthorized.Code || !strings.Contains(r.Log, "per transaction") {
		t.Errorf("a 10M bond from an agent limited to 1M per tx: code %d %q", r.Code, r.Log)
	}
	setPolicy(&agentpb.Policy{Denom: "uagr", MaxLifetime: 5_000_000})
	if r := challenge(); r.Code != codes.ErrUnauthorized.Code || !strings.Contains(r.Log, "lifetime") {
		t.Errorf("a 10M bond from an agent with 5M for life: code %d %q", r.Code, r.Log)
	}
	setPolicy(&agentpb.Policy{Denom: "uagr", MaxLifetime: 20_000_000})
	if r := challenge(); r.Code != 0 {
		t.Fatalf("a bond within the policy: %s", r.Log)
	}
	ag, err := ask(d.harness, agentpb.QueryAgent, &agentpb.QueryAgentRequest{Address: robot.String()})
	if err != nil || ag.Agent.SpentTotal != 10_000_000 {
		t.Errorf("the bond was not counted as the agent's spend: %v %v", ag, err)
	}
}
