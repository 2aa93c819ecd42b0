package verifier_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agoranet/agora/internal/chain"
	"github.com/agoranet/agora/internal/chain/audit/auditpb"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/e2e"
	"github.com/agoranet/agora/internal/keyring"
	"github.com/agoranet/agora/internal/model"
	"github.com/agoranet/agora/internal/node"
	"github.com/agoranet/agora/internal/verifier"
)

// keyChain is a one-validator chain in this process whose genesis has no
// model keys (the devnet's has digits-mlp's), with funded keys.
func keyChain(t *testing.T, names ...string) (*node.Node, map[string]*keyring.Key) {
	t.Helper()
	home := t.TempDir()
	base := e2e.FreePorts(t, 2)
	comet := node.CometConfig(home, "keys", node.Ports{P2P: base, RPC: base + 1}, 250*time.Millisecond)
	comet.P2P.PexReactor = false
	val, err := node.WriteHome(comet)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]*keyring.Key{}
	g := node.Genesis{ChainID: "agora-keys-test", Time: time.Now().UTC().Truncate(time.Second)}
	for _, n := range append(names, "issuer") {
		seed := sha256.Sum256([]byte("key test " + n))
		k := &keyring.Key{Name: n, Private: ed25519.NewKeyFromSeed(seed[:])}
		keys[n] = k
		g.Accounts = append(g.Accounts, node.Account{Address: k.Address(), Coins: []*coin.Coin{coin.New(coin.Native, 10_000_000_000)}})
	}
	g.Issuer = keys["issuer"].Address()
	g.Validators = []node.Validator{{Key: val, Operator: keys["issuer"].Address()}}
	// Key reviews' members get 600 blocks to check a transcript by
	// default; the check is faked here, so a few will do.
	ap := auditpb.DefaultParams()
	ap.KeyReviewCommitBlocks = 24
	g.Audit = ap
	doc, err := g.Doc()
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.SaveAs(comet.GenesisFile()); err != nil {
		t.Fatal(err)
	}
	n, err := node.Start(node.Config{Comet: comet, App: chain.DefaultConfig()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop() })
	if err := n.WaitForHeight(1, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	return n, keys
}

// TestKeyReview: verifier daemons drawn for a key review fetch the
// transcript over HTTP, check its digest, check it against the model and
// vote; the chain approves the key whose transcript checks and rejects a
// proposal whose transcript is not the one it names. The transcript check
// itself (zk.VerifyTranscript, tens of seconds, minutes under the race
// detector) is replaced here by one that returns what a real check of
// this transcript yields; internal/zk's TestCeremony tests cover it.
func TestKeyReview(t *testing.T) {
	if testing.Short() {
		t.Skip("a chain and five verifiers; skipped with -short")
	}
	names := []string{"proposer", "c1", "c2", "v1", "v2", "v3"}
	n, keys := keyChain(t, names...)
	m, err := model.Lookup(model.DigitsName)
	if err != nil {
		t.Fatal(err)
	}
	// What the check yields: a key, and the contributors c1 and c2.
	vk := bytes.Repeat([]byte{7}, 200)
	contributors := [][]byte{keys["c1"].Public(), keys["c2"].Public()}
	transcript := []byte("a transcript whose check yields vk and c1, c2")
	var checks atomic.Int32
	check := func(ctx context.Context, mm *model.Model, b []byte, proposed [][]byte) ([]byte, error) {
		checks.Add(1)
		if mm.Manifest.ID != m.Manifest.ID || !bytes.Equal(b, transcript) {
			return nil, errors.New("not the transcript")
		}
		if !slices.EqualFunc(proposed, contributors, bytes.Equal) {
			return nil, errors.New("not the transcript's contributors")
		}
		return vk, nil
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(transcript) }))
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, name := range names[1:] {
		c, _ := client.New(n.RPC())
		// The transcript is served on 127.0.0.1: LocalTranscripts lets the
		// verifiers fetch from a loopback address, which they refuse
		// otherwise.
		v, err := verifier.Start(ctx, verifier.Config{Listen: "127.0.0.1:0", Key: keys[name].Private, Chain: c, Bond: 200_000_000, CheckTranscript: check, LocalTranscripts: true,
			Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
		if err != nil {
			t.Fatalf("verifier %s: %v", name, err)
		}
		t.Cleanup(func() { v.Shutdown(context.Background()) })
	}
	c, err := client.New(n.RPC())
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256(transcript)
	propose := func(digest []byte) *auditpb.KeyReview {
		t.Helper()
		msg := &auditpb.MsgProposeModelKey{Proposer: keys["proposer"].Address().String(), ModelId: m.Manifest.ID, VerifyingKey: vk,
			TranscriptDigest: digest, TranscriptUrl: srv.URL + "/transcript", Contributors: contributors}
		if _, err := c.Submit(ctx, keys["proposer"], "", msg); err != nil {
			t.Fatal(err)
		}
		var r *auditpb.KeyReview
		e2e.Eventually(t, 60*time.Second, "the review is settled", func() error {
			for id := uint64(1); ; id++ {
				got, err := client.Ask(ctx, c, auditpb.QueryReview, &auditpb.QueryKeyReviewRequest{Id: id})
				if err != nil {
					return fmt.Errorf("no settled review yet: %v", err)
				}
				if bytes.Equal(got.TranscriptDigest, digest) && got.Status != auditpb.ReviewStatus_REVIEW_STATUS_OPEN {
					r = got
					return nil
				}
			}
		})
		return r
	}

	// A proposal whose digest is not its transcript's is rejected.
	wrong := sha256.Sum256([]byte("another transcript"))
	if r := propose(wrong[:]); r.Status != auditpb.ReviewStatus_REVIEW_STATUS_REJECTED {
		t.Fatalf("a proposal naming another transcript: %s", r.Status)
	}
	if _, err := client.Ask(ctx, c, auditpb.QueryKey, &auditpb.QueryKeyRequest{ModelId: m.Manifest.ID}); err == nil {
		t.Fatal("a rejected key became the model's")
	}
	if got := checks.Load(); got != 0 {
		t.Errorf("%d transcript checks ran for a transcript whose digest did not match", got)
	}

	r := propose(digest[:])
	if r.Status != auditpb.ReviewStatus_REVIEW_STATUS_APPROVED {
		t.Fatalf("the review: %s", r.Status)
	}
	want := auditpb.KeyVerdict(m.Manifest.ID, vk, contributors)
	for _, v := range r.Votes {
		if !bytes.Equal(v.ResponseHash, want) {
			t.Errorf("member %s voted %x, want the verdict %x", v.Verifier, v.ResponseHash, want)
		}
	}
	if got := checks.Load(); got != int32(len(r.Votes)) {
		t.Errorf("%d transcript checks for %d members; each member checks once", got, len(r.Votes))
	}
	got, err := client.Ask(ctx, c, auditpb.QueryKey, &auditpb.QueryKeyRequest{ModelId: m.Manifest.ID})
	if err != nil || !bytes.Equal(got.VerifyingKey, vk) {
		t.Fatalf("the approved key is not the model's: %v %v", got, err)
	}
}
