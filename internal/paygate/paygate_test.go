package paygate_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agoranet/agora/internal/chain/agent/agentpb"
	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/channel/channelpb"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/devnet"
	"github.com/agoranet/agora/internal/e2e"
	"github.com/agoranet/agora/internal/keyring"
	"github.com/agoranet/agora/internal/paygate"
	"github.com/agoranet/agora/internal/receipt"
	"github.com/agoranet/agora/x402"
)

// world is a devnet without providers, a payee key and a gate of its own.
type world struct {
	t       *testing.T
	d       *devnet.Devnet
	c       *client.Client
	chainID string
	payer   *keyring.Key
	payee   *keyring.Key
	cfg     paygate.Config
}

func newWorld(t *testing.T) *world {
	d := e2e.Devnet(t, func(c *devnet.Config) { c.Providers = 0 })
	c, err := client.New(d.Node.RPC())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	id, err := c.ChainID(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	payer, _ := d.Keyring.Get("alice")
	payee, _ := d.Keyring.Get("bob")
	cfg := paygate.DefaultConfig()
	cfg.Key, cfg.Chain, cfg.ChainID, cfg.LogPath = payee.Private, c, id, filepath.Join(t.TempDir(), "vouchers.log")
	cfg.ClaimInterval = time.Hour // claims only when a test asks
	return &world{t: t, d: d, c: c, chainID: id, payer: payer, payee: payee, cfg: cfg}
}

func (w *world) open() *paygate.Gate {
	g, err := paygate.Open(w.cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	return g
}

// channel opens a channel from the payer to the payee with deposit.
func (w *world) channel(deposit uint64) uint64 {
	w.t.Helper()
	return w.channelFor(deposit, 10_000)
}

// channelFor opens a channel that expires blocks from now.
func (w *world) channelFor(deposit uint64, blocks int64) uint64 {
	w.t.Helper()
	return e2e.OpenChannel(w.t, w.c, w.payer, w.payee.Address().String(), deposit, blocks)
}

// paid is a request carrying a voucher for cum on channel id.
func (w *world) paid(id, cum uint64) *http.Request { return w.paidBy(w.payer.Private, id, cum) }

// paidBy is paid with a voucher signed by key.
func (w *world) paidBy(key ed25519.PrivateKey, id, cum uint64) *http.Request {
	r := httptest.NewRequest("POST", "/v1/chat/completions", nil)
	r.Header.Set(x402.HeaderSignature, e2e.Voucher(key, w.chainID, id, cum, x402.PaymentRequirements{Scheme: x402.SchemeBatch, Network: x402.Network(w.chainID)}))
	return r
}

var price = paygate.Price{Denom: coin.Stable, Max: 10}

// TestRefreshNeverExposesNil: a voucher above the deposit makes the gate
// reread its channel from chain. It used to set the channel to nil for the
// length of that query, so a Finish on the same channel meanwhile
// dereferenced nil while holding the gate's mutex: the panic (recovered by
// net/http in a server) left the mutex locked and every later request hung.
func TestRefreshNeverExposesNil(t *testing.T) {
	w := newWorld(t)
	g := w.open()
	defer g.Close()
	id := w.channel(1_000_000)
	var wg sync.WaitGroup
	stop := time.Now().Add(2 * time.Second)
	wg.Add(2)
	go func() { // honest requests, each finishing
		defer wg.Done()
		for n := uint64(1); time.Now().Before(stop); n++ {
			pay, perr := g.Begin(w.paid(id, n*10), price)
			if perr != nil {
				t.Errorf("request %d: %v", n, perr)
				return
			}
			if _, err := pay.Finish(10, []byte{byte(n)}); err != nil {
				t.Errorf("finish %d: %v", n, err)
				return
			}
		}
	}()
	go func() { // vouchers above the deposit: each makes the gate reread the channel
		defer wg.Done()
		for time.Now().Before(stop) {
			if _, perr := g.Begin(w.paid(id, 2_000_000), price); perr == nil || perr.Reason != x402.ReasonInsufficientFunds {
				t.Errorf("a voucher above the deposit: %v, want insufficient funds", perr)
				return
			}
		}
	}()
	wg.Wait()
}

// channels opens n channels at once (in as few transactions as the chain
// allows), each with deposit, expiring expiresIn blocks from now.
func (w *world) channels(n int, deposit uint64, expiresIn int64) []uint64 {
	w.t.Helper()
	ctx := context.Background()
	st, err := w.c.Status(ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	var ids []uint64
	for len(ids) < n {
		var msgs []module.Msg
		for range min(64, n-len(ids)) {
			msgs = append(msgs, &channelpb.MsgOpenChannel{Payer: w.payer.Address().String(), Payee: w.payee.Address().String(),
				Deposit: coin.New(coin.Stable, deposit), ExpiresAt: st.Height + expiresIn, PayerKey: w.payer.Public()})
		}
		res, err := w.c.Submit(ctx, w.payer, "", msgs...)
		if err != nil {
			w.t.Fatal(err)
		}
		for i := range msgs {
			var r channelpb.MsgOpenChannelResponse
			if err := res.Response(i, &r); err != nil {
				w.t.Fatal(err)
			}
			ids = append(ids, r.ChannelId)
		}
	}
	return ids
}

func (w *world) claimed(id uint64) uint64 {
	ch, err := client.Ask(context.Background(), w.c, channelpb.QueryChannel, &channelpb.QueryChannelRequest{Id: id})
	if err != nil {
		w.t.Fatal(err)
	}
	return ch.Claimed
}

// TestClaimManyChannels: one claim used to put every channel in one
// transaction. About 560 channels exceed the 64 KiB tx limit, and one
// channel the chain will not pay (expired, or closed behind the gate's
// back) made it refuse the whole message; either way the provider could
// never claim again, and an attacker could force that with a few hundred
// cheap channels. Now claims are split to fit, and a refused claim is
// isolated from the others.
func TestClaimManyChannels(t *testing.T) {
	w := newWorld(t)
	w.cfg.ExpiryMargin = 2
	// The gate learns the height only from the test: otherwise the short
	// channel's approaching expiry would (rightly) start a claim of
	// everything before the test closes a channel behind its back.
	w.cfg.HeightEvery = time.Hour
	g := w.open()
	defer g.Close()
	ids := w.channels(600, 1000, 10_000)
	// The short channel is paid first: it expires in a couple of seconds,
	// which a slow machine could spend on the 600 payments before it.
	short := w.channels(1, 1000, 12)[0]
	ids = append([]uint64{short}, ids...)
	st, _ := w.c.Status(context.Background())
	g.SetHeight(st.Height)
	for i, id := range ids {
		pay, perr := g.Begin(w.paid(id, 100), price)
		if perr != nil {
			t.Fatalf("channel %d: %v", id, perr)
		}
		if _, err := pay.Finish(7, []byte{byte(i), byte(i >> 8)}); err != nil {
			t.Fatal(err)
		}
	}
	// One channel closed by its payee directly on chain: the gate does
	// not know, and its claim will be refused.
	closed := ids[300]
	if _, err := w.c.Submit(context.Background(), w.payee, "", &channelpb.MsgCloseChannel{Payee: w.payee.Address().String(), ChannelId: closed}); err != nil {
		t.Fatal(err)
	}
	e2e.Eventually(t, 20*time.Second, "the short channel expires", func() error {
		st, err := w.c.Status(context.Background())
		if err != nil {
			return err
		}
		if w.expired(short, st.Height) {
			g.SetHeight(st.Height) // past its expiry: no claim starts
			return nil
		}
		return fmt.Errorf("height %d", st.Height)
	})
	err := g.Claim(context.Background())
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("channel %d", closed)) {
		t.Errorf("claim: %v; want one failure, for the closed channel %d", err, closed)
	}
	for _, id := range ids {
		want := uint64(7)
		if id == closed || id == short {
			want = 0
		}
		if got := w.claimed(id); got != want {
			t.Fatalf("channel %d: claimed %d, want %d", id, got, want)
		}
	}
	if err := g.Claim(context.Background()); err != nil {
		t.Errorf("a second claim, with nothing left to claim: %v", err)
	}
}

// TestConcurrentClaims: the claim loop and a caller claiming at once
// used to submit the same vouchers twice; the chain refused the second
// (it pays only increases), so a fee was spent for nothing and a claim
// that had in fact succeeded was reported as failed.
func TestConcurrentClaims(t *testing.T) {
	w := newWorld(t)
	g := w.open()
	defer g.Close()
	ids := w.channels(100, 1000, 10_000)
	for i, id := range ids {
		pay, perr := g.Begin(w.paid(id, 100), price)
		if perr != nil {
			t.Fatalf("channel %d: %v", id, perr)
		}
		if _, err := pay.Finish(7, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	errs := make(chan error, 3)
	for range 3 {
		go func() { errs <- g.Claim(context.Background()) }()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Errorf("claim: %v", err)
		}
	}
	for _, id := range ids {
		if got := w.claimed(id); got != 7 {
			t.Fatalf("channel %d: claimed %d, want 7", id, got)
		}
	}
}

func (w *world) expired(id uint64, height int64) bool {
	ch, err := client.Ask(context.Background(), w.c, channelpb.QueryChannel, &channelpb.QueryChannelRequest{Id: id})
	return err == nil && height > ch.ExpiresAt
}

// TestReceiptsKeepAnchorOrderAcrossRestart: concurrent answers on one
// channel used to write their charge records in a different order from
// the receipt list the claim's Merkle root is built from, so after a
// restart the receipts no longer matched the root the chain anchored and
// no receipt of that claim could be proven (or challenged).
func TestReceiptsKeepAnchorOrderAcrossRestart(t *testing.T) {
	w := newWorld(t)
	g := w.open()
	id := w.channel(1_000_000)
	var cum atomic.Uint64
	var wg sync.WaitGroup
	for n := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 60 {
				pay, perr := g.Begin(w.paid(id, cum.Add(10)+1000), price)
				if perr != nil {
					t.Errorf("begin: %v", perr)
					return
				}
				leaf := sha256.Sum256([]byte{byte(n), byte(i)})
				if _, err := pay.Finish(3, leaf[:]); err != nil {
					t.Errorf("finish: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := g.Claim(context.Background()); err != nil {
		t.Fatal(err)
	}
	before := g.Anchored(id, 0)
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	g = w.open()
	defer g.Close()
	after := g.Anchored(id, 0)
	an, err := client.Ask(context.Background(), w.c, channelpb.QueryAnchors, &channelpb.QueryAnchorsRequest{ChannelId: id})
	if err != nil || len(an.Anchors) != 1 {
		t.Fatalf("anchors %v, %v", an, err)
	}
	if len(before) != 480 || len(after) != 480 {
		t.Fatalf("%d receipts anchored before the restart, %d after; want 480", len(before), len(after))
	}
	if !bytes.Equal(receipt.Root(after), an.Anchors[0].Root) {
		t.Fatal("after a restart the anchored receipts no longer hash to the root on chain")
	}
}

// TestCrashAfterAnAcceptedClaim: a gate that dies after the chain took a
// claim and before the claim's record reached the log used to count that
// claim's receipts into the next one after a restart: its anchors were
// numbered one behind the chain's, and no receipt of either claim could be
// proven. The claim is logged as about to be sent first, and the next
// start asks the chain whether it landed.
func TestCrashAfterAnAcceptedClaim(t *testing.T) {
	w := newWorld(t)
	g := w.open()
	id := w.channel(1_000_000)
	cum := uint64(0)
	charge := func(g *paygate.Gate, n int) {
		for i := range n {
			cum += 10
			pay, perr := g.Begin(w.paid(id, cum+1000), price)
			if perr != nil {
				t.Fatalf("begin: %v", perr)
			}
			leaf := sha256.Sum256([]byte{byte(cum), byte(cum >> 8), byte(i)})
			if _, err := pay.Finish(3, leaf[:]); err != nil {
				t.Fatalf("finish: %v", err)
			}
		}
	}
	charge(g, 5)
	if err := g.Claim(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	// The crash: the log loses its last line, the accepted claim's record.
	b, err := os.ReadFile(w.cfg.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
	if last := lines[len(lines)-1]; !bytes.Contains(last, []byte(`"cl":`)) {
		t.Fatalf("the log's last record is not the claim: %s", last)
	}
	if err := os.WriteFile(w.cfg.LogPath, bytes.Join(lines[:len(lines)-1], nil), 0o600); err != nil {
		t.Fatal(err)
	}
	g = w.open()
	defer g.Close()
	charge(g, 3)
	if err := g.Claim(context.Background()); err != nil {
		t.Fatal(err)
	}
	an, err := client.Ask(context.Background(), w.c, channelpb.QueryAnchors, &channelpb.QueryAnchorsRequest{ChannelId: id})
	if err != nil || len(an.Anchors) != 2 {
		t.Fatalf("anchors %v, %v", an, err)
	}
	for i, a := range an.Anchors {
		if got := g.Anchored(id, i); len(got) != int(a.Count) || !bytes.Equal(receipt.Root(got), a.Root) {
			t.Errorf("claim %d: the gate has %d receipts, the chain anchored %d under another root", i, len(got), a.Count)
		}
	}
	// A claim logged as about to be sent that never reached the chain
	// (the crash came first) is dropped, and the claims after it keep the
	// chain's numbering. (Close claims what is charged, so the intent
	// written here is for receipts the log does not have.)
	charge(g, 2)
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(w.cfg.LogPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, `{"c":%d,"ci":%d,"n":2}`+"\n", id, cum+20)
	f.Close()
	g = w.open()
	defer g.Close()
	charge(g, 1)
	// It may still land for a while (intentLanding blocks); then it is
	// dropped and the channel claims again.
	deadline := time.Now().Add(30 * time.Second)
	for w.claimed(id) < cum*3/10 && time.Now().Before(deadline) {
		g.Claim(context.Background())
		time.Sleep(100 * time.Millisecond)
	}
	an, err = client.Ask(context.Background(), w.c, channelpb.QueryAnchors, &channelpb.QueryAnchorsRequest{ChannelId: id})
	if err != nil || len(an.Anchors) != 4 || an.Anchors[3].Count != 1 {
		t.Fatalf("after an intent that never landed: anchors %v, %v", an, err)
	}
	for i, a := range an.Anchors {
		if got := g.Anchored(id, i); !bytes.Equal(receipt.Root(got), a.Root) {
			t.Errorf("after an intent that never landed, claim %d's receipts do not hash to its root", i)
		}
	}
}

// TestAClaimWhoseOutcomeIsUnknown: a claim whose submission gave up
// before the chain answered (here a deadline; in life a slow block) may
// still land. It used to be sent again with the next claim, so the chain
// anchored its receipts twice and the gate's anchors no longer matched the
// chain's. Now the gate settles it against the chain first.
func TestAClaimWhoseOutcomeIsUnknown(t *testing.T) {
	w := newWorld(t)
	g := w.open()
	defer g.Close()
	id := w.channel(1_000_000)
	cum := uint64(0)
	charge := func(n int) {
		for i := range n {
			cum += 10
			pay, perr := g.Begin(w.paid(id, cum+1000), price)
			if perr != nil {
				t.Fatalf("begin: %v", perr)
			}
			leaf := sha256.Sum256([]byte{byte(cum), byte(i), 7})
			if _, err := pay.Finish(3, leaf[:]); err != nil {
				t.Fatalf("finish: %v", err)
			}
		}
	}
	charge(4)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	if err := g.Claim(ctx); err == nil {
		t.Log("the claim landed within the deadline; the case under test did not arise")
	}
	cancel()
	charge(2)
	charged := uint64(6 * 3)
	deadline := time.Now().Add(30 * time.Second)
	for {
		g.Claim(context.Background())
		c, err := client.Ask(context.Background(), w.c, channelpb.QueryChannel, &channelpb.QueryChannelRequest{Id: id})
		if err == nil && c.Claimed == charged {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the chain has %v claimed, want %d", c.GetClaimed(), charged)
		}
		time.Sleep(200 * time.Millisecond)
	}
	an, err := client.Ask(context.Background(), w.c, channelpb.QueryAnchors, &channelpb.QueryAnchorsRequest{ChannelId: id})
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for i, a := range an.Anchors {
		total += int(a.Count)
		if got := g.Anchored(id, i); !bytes.Equal(receipt.Root(got), a.Root) {
			t.Errorf("claim %d: the gate's receipts do not hash to the root the chain anchored", i)
		}
	}
	if total != 6 {
		t.Errorf("the chain anchored %d receipts for 6 answers", total)
	}
}

// TestAFreeAnswerKeepsItsReceiptAcrossRestart: the charge record of an
// answer that cost nothing while the channel's total was still 0 had no
// total in the log, so replay skipped its receipt and every later anchor
// of the channel was one receipt off after a restart (found by review).
func TestAFreeAnswerKeepsItsReceiptAcrossRestart(t *testing.T) {
	w := newWorld(t)
	g := w.open()
	id := w.channel(1_000_000)
	for i, cost := range []uint64{0, 3, 3} {
		pay, perr := g.Begin(w.paid(id, uint64(1000+10*i)), price)
		if perr != nil {
			t.Fatal(perr)
		}
		leaf := sha256.Sum256([]byte{byte(i), 9})
		if _, err := pay.Finish(cost, leaf[:]); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.Close(); err != nil { // Close claims
		t.Fatal(err)
	}
	g = w.open()
	defer g.Close()
	an, err := client.Ask(context.Background(), w.c, channelpb.QueryAnchors, &channelpb.QueryAnchorsRequest{ChannelId: id})
	if err != nil || len(an.Anchors) != 1 || an.Anchors[0].Count != 3 {
		t.Fatalf("anchors %v, %v", an, err)
	}
	if got := g.Anchored(id, 0); len(got) != 3 || !bytes.Equal(receipt.Root(got), an.Anchors[0].Root) {
		t.Errorf("after a restart the gate has %d receipts for the claim, not the 3 the chain anchored", len(got))
	}
}

// exact is a request paying amount with a fresh exact authorization.
func (w *world) exact(amount uint64) (*http.Request, []byte) {
	nonce := make([]byte, 32)
	rand.Read(nonce)
	now := time.Now().Unix()
	a := &bankpb.Authorization{From: w.payer.Address().String(), To: w.payee.Address().String(), Amount: coin.New(coin.Stable, amount),
		ValidAfter: now - 60, ValidBefore: now + 600, Nonce: nonce}
	bankpb.SignAuthorization(w.payer.Private, w.chainID, a)
	payload, _ := json.Marshal(x402.ExactPayload{Signature: base64.StdEncoding.EncodeToString(a.Signature), Authorization: x402.ExactAuthorization{
		From: a.From, To: a.To, Value: strconv.FormatUint(amount, 10), ValidAfter: strconv.FormatInt(a.ValidAfter, 10), ValidBefore: strconv.FormatInt(a.ValidBefore, 10),
		Nonce: hex.EncodeToString(nonce), PublicKey: base64.StdEncoding.EncodeToString(a.PublicKey)}})
	h, _ := x402.Encode(x402.PaymentPayload{X402Version: x402.Version, Accepted: x402.PaymentRequirements{Scheme: x402.SchemeExact, Network: x402.Network(w.chainID)}, Payload: payload})
	r := httptest.NewRequest("POST", "/v1/chat/completions", nil)
	r.Header.Set(x402.HeaderSignature, h)
	return r, nonce
}

// TestExactSettlesBeforeTheAnswer: an exact payment used to be settled
// only when the answer was finished, after a stream had been sent, with a
// failed settlement merely logged; and several concurrent streams with
// one authorization all passed verification. Now Durable, which the
// provider calls before the first byte, settles on chain, and an
// authorization pays one answer at a time.
func TestExactSettlesBeforeTheAnswer(t *testing.T) {
	w := newWorld(t)
	g := w.open()
	defer g.Close()
	r, nonce := w.exact(price.Max)
	pay, perr := g.Begin(r, price)
	if perr != nil {
		t.Fatal(perr)
	}
	r2 := r.Clone(r.Context())
	if _, perr := g.Begin(r2, price); perr == nil || perr.Reason != x402.ReasonNonceUsed {
		t.Errorf("a second answer on an authorization in use: %v, want nonce used", perr)
	}
	if err := pay.Durable(); err != nil {
		t.Fatal(err)
	}
	used, err := client.Ask(context.Background(), w.c, bankpb.QueryNonce, &bankpb.QueryNonceRequest{Address: w.payer.Address().String(), Nonce: nonce})
	if err != nil || !used.Used {
		t.Fatalf("after Durable the transfer is not on chain: %v %v", used, err)
	}
	if resp, err := pay.Finish(price.Max, []byte("r")); err != nil || resp == "" {
		t.Fatalf("finish: %q %v", resp, err)
	}
	if _, perr := g.Begin(r.Clone(r.Context()), price); perr == nil || perr.Reason != x402.ReasonNonceUsed {
		t.Errorf("a settled authorization again: %v, want nonce used", perr)
	}
	// An answer that fails before settling frees its authorization.
	r3, _ := w.exact(price.Max)
	pay, perr = g.Begin(r3, price)
	if perr != nil {
		t.Fatal(perr)
	}
	pay.Abort()
	if pay, perr = g.Begin(r3.Clone(r3.Context()), price); perr != nil {
		t.Fatalf("an aborted authorization, again: %v", perr)
	}
	pay.Abort()
}

// TestRestoredLogClaimsWhatItHad: a backup of the voucher log taken while
// the gate runs, restored after the disk is lost, claims exactly what was
// charged when it was taken.
func TestRestoredLogClaimsWhatItHad(t *testing.T) {
	w := newWorld(t)
	g := w.open()
	id := w.channel(1_000_000)
	for n := uint64(1); n <= 20; n++ {
		pay, perr := g.Begin(w.paid(id, n*10), price)
		if perr != nil {
			t.Fatal(perr)
		}
		if _, err := pay.Finish(5, []byte{byte(n)}); err != nil {
			t.Fatal(err)
		}
	}
	backup := filepath.Join(t.TempDir(), "vouchers.log.bak")
	if err := paygate.BackupLog(w.cfg.LogPath, backup); err != nil {
		t.Fatal(err)
	}
	if err := paygate.BackupLog(w.cfg.LogPath, backup); err == nil {
		t.Error("a backup over an existing file succeeded")
	}
	// The machine dies before any claim (the gate claims only when asked
	// here) and its disk with it: the backup is put in the log's place.
	t.Cleanup(func() { g.Close() })
	if err := os.Remove(w.cfg.LogPath); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(backup)
	if err := os.WriteFile(w.cfg.LogPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	restored := w.open()
	defer restored.Close()
	if err := restored.Claim(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := w.claimed(id); got != 100 {
		t.Errorf("the restored log claimed %d, want the 100 charged when it was backed up", got)
	}
}

// TestCutStreamPaysForItsPrefix: a stream that was cut (the client went
// away) used to be aborted and charged nothing, though the client had the
// text up to the cut. Now the last interim receipt's price is charged and
// its receipt anchored; a payment with no interim receipt still costs
// nothing.
func TestCutStreamPaysForItsPrefix(t *testing.T) {
	w := newWorld(t)
	g := w.open()
	defer g.Close()
	id := w.channel(1_000_000)
	pay, perr := g.Begin(w.paid(id, 10), price)
	if perr != nil {
		t.Fatal(perr)
	}
	if err := pay.Durable(); err != nil {
		t.Fatal(err)
	}
	pay.Interim(3, []byte("interim at 3"))
	pay.Interim(6, []byte("interim at 6"))
	pay.Abort() // the client is gone
	pay.Abort() // a second Abort changes nothing
	unpaid, perr := g.Begin(w.paid(id, 20), price)
	if perr != nil {
		t.Fatal(perr)
	}
	unpaid.Abort()
	if err := g.Claim(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := w.claimed(id); got != 6 {
		t.Errorf("claimed %d for a stream cut after an interim receipt of 6, want 6", got)
	}
}

// TestGateKnowsTheHeightByItself is finding 3 of the buyer-and-seller
// review: only providers told their gate the chain's height, so the
// gateway's gate believed it 0 and took vouchers on channels that had
// expired; the buyer then took its deposit back with MsgSettleExpired and
// the gateway was never paid. A gate now follows the height itself.
func TestGateKnowsTheHeightByItself(t *testing.T) {
	w := newWorld(t)
	g := w.open() // nobody calls SetHeight
	defer g.Close()
	id := w.channelFor(1000, 25) // the margin is 20 blocks
	e2e.Eventually(t, 30*time.Second, "the channel comes within the expiry margin", func() error {
		pay, perr := g.Begin(w.paid(id, 10), price)
		if perr == nil {
			pay.Abort()
			return fmt.Errorf("a voucher on channel %d was taken", id)
		}
		if perr.Reason != x402.ReasonChannelExpiring {
			t.Fatalf("refused for %q (%v), want %q", perr.Reason, perr, x402.ReasonChannelExpiring)
		}
		return nil
	})
}

// TestAFrozenAgentsVouchersAreRefused is finding 9's: freezing an agent
// did not stop vouchers on channels it had already opened, so a stolen
// agent key went on spending what its channels held. The gate now follows
// the chain's view of its agent payers.
func TestAFrozenAgentsVouchersAreRefused(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	_, robotKey, _ := ed25519.GenerateKey(nil)
	robot := &keyring.Key{Name: "robot", Private: robotKey}
	owner := w.payer
	if _, err := w.c.Submit(ctx, owner, "", &agentpb.MsgCreateAgent{Owner: owner.Address().String(), AgentKey: robot.Public(),
		Consent: ed25519.Sign(robotKey, agentpb.ConsentBytes(w.chainID, owner.Address().String())), Policy: &agentpb.Policy{Denom: coin.Stable, FeeAllowance: 10_000_000}}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.c.Submit(ctx, owner, "", &bankpb.MsgSend{From: owner.Address().String(), To: robot.Address().String(),
		Amount: []*coin.Coin{coin.New(coin.Stable, 10_000), coin.New(coin.Native, 10_000_000)}}); err != nil {
		t.Fatal(err)
	}
	w.payer = robot
	id := w.channel(1000)
	g := w.open()
	defer g.Close()
	pay, perr := g.Begin(w.paid(id, 10), price)
	if perr != nil {
		t.Fatalf("the agent's voucher: %v", perr)
	}
	pay.Abort()
	if _, err := w.c.Submit(ctx, owner, "", &agentpb.MsgFreezeAgent{Owner: owner.Address().String(), Agent: robot.Address().String()}); err != nil {
		t.Fatal(err)
	}
	e2e.Eventually(t, 10*time.Second, "the frozen agent's vouchers are refused", func() error {
		pay, perr := g.Begin(w.paid(id, 20), price)
		if perr == nil {
			pay.Abort()
			return errors.New("a frozen agent's voucher was taken")
		}
		if perr.Reason != x402.ReasonAgentStopped {
			t.Fatalf("refused for %q (%v)", perr.Reason, perr)
		}
		return nil
	})
}

// TestARevokedSessionKeySignsNothingMore is finding 9's: a channel's
// session key could not be revoked. Now MsgRevokeSessionKey stops it at
// the payee's gate at once (the gate follows the chain's events) and on
// chain after a delay in which the payee claims what it signed before;
// the payer's own key still signs.
func TestARevokedSessionKeySignsNothingMore(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	pub, session, _ := ed25519.GenerateKey(nil)
	st, _ := w.c.Status(ctx)
	res, err := w.c.Submit(ctx, w.payer, "", &channelpb.MsgOpenChannel{Payer: w.payer.Address().String(), Payee: w.payee.Address().String(),
		Deposit: coin.New(coin.Stable, 1000), ExpiresAt: st.Height + 10_000, PayerKey: w.payer.Public(), SessionKey: pub})
	if err != nil {
		t.Fatal(err)
	}
	var opened channelpb.MsgOpenChannelResponse
	res.Response(0, &opened)
	id := opened.ChannelId
	g := w.open()
	defer g.Close()
	pay, perr := g.Begin(w.paidBy(session, id, 10), price)
	if perr != nil {
		t.Fatalf("a session key's voucher: %v", perr)
	}
	if _, err := pay.Finish(10, receipt.Hash([]byte("r"))); err != nil {
		t.Fatal(err)
	}
	if _, err := w.c.Submit(ctx, w.payer, "", &channelpb.MsgRevokeSessionKey{Payer: w.payer.Address().String(), ChannelId: id}); err != nil {
		t.Fatal(err)
	}
	e2e.Eventually(t, 10*time.Second, "the revoked session key's vouchers are refused", func() error {
		pay, perr := g.Begin(w.paidBy(session, id, 20), price)
		if perr == nil {
			pay.Abort()
			return errors.New("a revoked session key's voucher was taken")
		}
		if perr.Reason != x402.ReasonVoucherSignature {
			t.Fatalf("refused for %q (%v)", perr.Reason, perr)
		}
		return nil
	})
	pay, perr = g.Begin(w.paid(id, 20), price)
	if perr != nil {
		t.Fatalf("the payer's own voucher after the revocation: %v", perr)
	}
	pay.Abort()
	// What the session key signed before is claimed in time.
	e2e.Eventually(t, 10*time.Second, "the payee claims the session key's voucher", func() error {
		ch, err := client.Ask(ctx, w.c, channelpb.QueryChannel, &channelpb.QueryChannelRequest{Id: id})
		if err != nil {
			return err
		}
		if ch.Claimed != 10 {
			return fmt.Errorf("claimed %d, want 10", ch.Claimed)
		}
		return nil
	})
}

// TestOldAnchorsComeFromTheLog is issue 12's soak finding: the gate kept
// the receipt hashes of every claim in memory, so a provider's heap grew
// with every answer it ever gave (4 to 22 MiB in ten minutes); then, kept
// per channel, with every channel it was ever paid through (4 to 11 MiB,
// a payer opening a new channel when one ran dry). It keeps the latest
// claims' of all channels within one budget, and reads older ones back
// from its voucher log.
func TestOldAnchorsComeFromTheLog(t *testing.T) {
	for _, c := range []struct{ budget, kept int }{{1 << 16, 10}, {7, 2}} {
		t.Run(fmt.Sprintf("budget %d", c.budget), func(t *testing.T) {
			oldAnchorsComeFromTheLog(t, c.budget, c.kept)
		})
	}
}

func oldAnchorsComeFromTheLog(t *testing.T, budget, kept int) {
	defer paygate.SetAnchorBudget(budget)()
	w := newWorld(t)
	ids := []uint64{w.channel(1000), w.channel(1000)}
	g := w.open()
	want := map[uint64][][][]byte{}
	for i := range 5 {
		for k, id := range ids {
			var leaves [][]byte
			for j := range 2 { // two answers a claim: each claim costs 3
				pay, perr := g.Begin(w.paid(id, uint64(10*(2*i+j+1))), price)
				if perr != nil {
					t.Fatal(perr)
				}
				h := receipt.Hash([]byte{byte(k), byte(i), byte(j)})
				if _, err := pay.Finish(10, h); err != nil {
					t.Fatal(err)
				}
				leaves = append(leaves, h)
			}
			want[id] = append(want[id], leaves)
		}
		if err := g.Claim(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	check := func(g *paygate.Gate, when string) {
		inMemory := 0
		for _, id := range ids {
			for n, leaves := range want[id] {
				if got := g.Anchored(id, n); fmt.Sprint(got) != fmt.Sprint(leaves) {
					t.Errorf("%s: channel %d claim %d's leaves %x, want %x", when, id, n, got, leaves)
				}
			}
			if g.Anchored(id, len(want[id])) != nil {
				t.Errorf("%s: a claim that never was has leaves", when)
			}
			inMemory += g.KeptAnchors(id)
		}
		if inMemory != kept {
			t.Errorf("%s: %d claims' leaves in memory, want %d", when, inMemory, kept)
		}
	}
	check(g, "running")
	g.Close()
	g = w.open()
	defer g.Close()
	check(g, "after a restart")
}

// TestStartChecksTheSignatureWhileTheAnswerIsMade: Start returns before
// the voucher's signature is checked, so the answer can be computed
// meanwhile. A forged voucher ends the payment's context with its
// refusal, reserves nothing (the payer's honest voucher for the same room
// still passes) and cannot be finished; of concurrent requests sharing one
// voucher with room for one answer, exactly one is admitted, the others
// refused with the channel's state to resync from.
func TestStartChecksTheSignatureWhileTheAnswerIsMade(t *testing.T) {
	w := newWorld(t)
	id := w.channel(1000)
	g := w.open()
	defer g.Close()
	_, forger, _ := ed25519.GenerateKey(nil)
	forged, perr := g.Start(w.paidBy(forger, id, 10), price)
	if perr != nil {
		t.Fatalf("Start refused before the signature check: %v", perr)
	}
	ctx := forged.Context(context.Background())
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a forged voucher's payment context did not end")
	}
	if perr := forged.Admitted(); perr == nil || perr.Reason != x402.ReasonVoucherSignature {
		t.Fatalf("the forged voucher: %v, want %s", perr, x402.ReasonVoucherSignature)
	}
	if r := forged.Refusal(); r == nil || r.Reason != x402.ReasonVoucherSignature {
		t.Errorf("Refusal: %v", r)
	}
	if _, err := forged.Finish(10, make([]byte, 32)); err == nil {
		t.Fatal("a forged voucher's answer was charged")
	}
	forged.Abort()

	honest, perr := g.Begin(w.paid(id, 10), price)
	if perr != nil {
		t.Fatalf("the payer's voucher for the room the forgery asked for: %v", perr)
	}
	if _, err := honest.Finish(10, make([]byte, 32)); err != nil {
		t.Fatal(err)
	}

	// Room for one more answer (10 charged, a voucher for 20), asked for
	// by four at once.
	var wg sync.WaitGroup
	var admitted, refused atomic.Int32
	for range 4 {
		wg.Go(func() {
			pay, perr := g.Start(w.paid(id, 20), price)
			if perr == nil {
				perr = pay.Admitted()
			}
			switch {
			case perr == nil:
				admitted.Add(1)
				if _, err := pay.Finish(10, make([]byte, 32)); err != nil {
					t.Error(err)
				}
			case perr.Reason == x402.ReasonCumulativeMismatch && perr.State != nil:
				refused.Add(1)
				pay.Abort() // nothing to undo; must not free another's room
			default:
				t.Errorf("refused for %q: %v", perr.Reason, perr)
			}
		})
	}
	wg.Wait()
	if admitted.Load() != 1 || refused.Load() != 3 {
		t.Fatalf("%d admitted, %d refused; want 1 and 3", admitted.Load(), refused.Load())
	}
	// The books hold 20 charged and nothing in flight: a voucher for 30
	// has room for exactly one more.
	next, perr := g.Begin(w.paid(id, 30), price)
	if perr != nil {
		t.Fatalf("after the race: %v", perr)
	}
	if _, perr := g.Begin(w.paid(id, 30), price); perr == nil || perr.State == nil || perr.State.ChargedCumulativeAmount != "30" {
		t.Fatalf("a second voucher for 30 with 20 charged and 10 in flight: %+v", perr)
	}
	next.Abort()
}
