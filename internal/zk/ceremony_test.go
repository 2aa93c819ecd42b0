//go:build !race

// A ceremony's phase 1 takes tens of seconds; under the race detector it
// would take many minutes, so these tests run in the plain test pass only
// (CI: go test -run TestCeremony ./internal/zk). One two-party transcript
// is built once and copied for every forgery.

package zk

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"hash/crc32"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agoranet/agora/internal/model"
)

var ceremony struct {
	once sync.Once
	t    *Transcript
	keys *Keys
	err  error
}

// goodCeremony is a two-party ceremony for digits-mlp, made by Ceremony
// once per test binary, and its verified keys.
func goodCeremony(tb testing.TB) (*model.Model, *Transcript, *Keys) {
	tb.Helper()
	m, err := model.Lookup(model.DigitsName)
	if err != nil {
		tb.Fatal(err)
	}
	ceremony.once.Do(func() {
		start := time.Now()
		ceremony.keys, ceremony.t, ceremony.err = Ceremony(context.Background(), m, 2, []byte("test beacon"), func(s string) {
			tb.Logf("%5.1fs %s", time.Since(start).Seconds(), s)
		})
		tb.Logf("a two-party ceremony, verified: %s", time.Since(start))
	})
	if ceremony.err != nil {
		tb.Fatal(ceremony.err)
	}
	return m, ceremony.t, ceremony.keys
}

// copyOf is a deep copy of a transcript, through its encoding.
func copyOf(tb testing.TB, t *Transcript) *Transcript {
	tb.Helper()
	b, err := t.MarshalBinary()
	if err != nil {
		tb.Fatal(err)
	}
	c, err := ParseTranscript(b)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// resign makes keys[i] contributor i of both phases and signs everything
// again in order: a forger who holds every listed key.
func resign(t *Transcript, keys ...ed25519.PrivateKey) {
	sign := func(phase int, cs []Contribution) {
		for i := range cs {
			cs[i].Contributor = keys[i].Public().(ed25519.PublicKey)
			cs[i].Signature = make([]byte, ed25519.SignatureSize)
			prev := t.runBefore(phase, i)
			cs[i].Signature = ed25519.Sign(keys[i], SignBytes(t.ModelID, phase, i, prev, sha256.Sum256(cs[i].State)))
		}
	}
	sign(PhaseOne, t.Phase1)
	sign(PhaseTwo, t.Phase2)
}

// runBefore is the running hash before contribution i of phase, computed
// on a copy cut there.
func (t *Transcript) runBefore(phase, i int) [sha256.Size]byte {
	c := *t
	if phase == PhaseOne {
		c.Phase1, c.Beacon1, c.Start2, c.Phase2, c.Beacon2 = t.Phase1[:i], nil, nil, nil, nil
	} else {
		c.Phase2, c.Beacon2 = t.Phase2[:i], nil
	}
	run, err := c.chain()
	if err != nil {
		panic(err)
	}
	return run
}

// otherDigits is digits-mlp with one output-layer weight changed: another
// model, whose circuit has the same shape but other coefficients on its
// private wires (the hidden units). (A change to a bias, or to a weight
// of the first layer, would move only the coefficients of public wires,
// the constant and the pixels, which phase 2 leaves to the verifying key:
// the transcript would then verify for the other model too, to that
// model's own key.)
func otherDigits(tb testing.TB, m *model.Model) *model.Model {
	b := m.MLP.Encode()
	// fc2.w's data follows its name, type, shift, rank and two dimensions.
	at := bytes.Index(b, []byte("\x05fc2.w")) + 6 + 3 + 8
	for b[at] == 0 {
		at++
	}
	b[at]--
	end := len(b) - 4
	binary.LittleEndian.PutUint32(b[end:], crc32.Checksum(b[:end], crc32.MakeTable(crc32.Castagnoli)))
	o, err := model.Parse(b)
	if err != nil {
		tb.Fatal(err)
	}
	return o
}

// TestCeremonyTranscript: a two-party transcript verifies to keys whose
// proofs verify, survives its encoding with the same digest, and names
// its contributors in order.
func TestCeremonyTranscript(t *testing.T) {
	m, tr, keys := goodCeremony(t)
	b, err := tr.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("transcript: %d bytes (domain %d), digest %x", len(b), tr.Domain, tr.Digest())
	// The circuit fixes the transcript's length, but for its beacons.
	if got, err := TranscriptSize(m, 2, len(tr.Beacon1), len(tr.Beacon2)); err != nil || got != len(b) {
		t.Errorf("TranscriptSize = %d, %v; the transcript has %d bytes", got, err, len(b))
	}
	if got, err := MaxTranscriptSize(m, 2); err != nil || got != len(b)+2*(MaxBeacon-len("test beacon")) {
		t.Errorf("MaxTranscriptSize = %d, %v; want %d", got, err, len(b)+2*(MaxBeacon-len("test beacon")))
	}
	back, err := ReadTranscript(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.Digest(), tr.Digest()) || !bytes.Equal(back.Digest(), sha256Of(b)) {
		t.Fatal("the digest changed through the encoding")
	}
	// VerifyTranscript is a function of the encoding, which is the same:
	// the keys Ceremony verified are the decoded transcript's.
	if !bytes.Equal(back.encode(), b) {
		t.Fatal("the transcript does not encode back to its bytes")
	}
	again := keys
	if got := len(again.Contributors); got != 2 || !slices.EqualFunc(again.Contributors, back.Contributors(), func(a, b ed25519.PublicKey) bool { return a.Equal(b) }) {
		t.Errorf("contributors %x, want the transcript's %x", again.Contributors, back.Contributors())
	}
	if err := again.Matches(keys.VerifyingKeyBytes, keys.ContributorBytes()); err != nil {
		t.Errorf("the keys do not match themselves: %v", err)
	}
	// The keys prove, through Save and Load, and the proof verifies.
	dir := t.TempDir()
	if err := again.Save(dir+"/pk", dir+"/vk"); err != nil {
		t.Fatal(err)
	}
	loaded, err := Load(m.MLP, dir+"/pk", dir+"/vk")
	if err != nil {
		t.Fatal(err)
	}
	px, _ := model.GenerateDigit(3, 3)
	logits, proof, err := loaded.Prove(px)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(again.VerifyingKeyBytes, proof, px, logits); err != nil {
		t.Fatalf("a proof under ceremony keys failed: %v", err)
	}
	// A key from another setup is not this transcript's.
	other, err := Setup(m.MLP)
	if err != nil {
		t.Fatal(err)
	}
	ovk, _ := other.VerifyingKey()
	if err := again.Matches(ovk, keys.ContributorBytes()); err == nil {
		t.Error("another setup's verifying key matched the transcript")
	}
	c := keys.ContributorBytes()
	if err := again.Matches(keys.VerifyingKeyBytes, [][]byte{c[1], c[0]}); err == nil {
		t.Error("the contributors, reordered, matched the transcript")
	}
	if err := again.Matches(keys.VerifyingKeyBytes, c[:1]); err == nil {
		t.Error("one contributor dropped matched the transcript")
	}
}

// TestCeremonyForgeries: each way of forging a transcript is refused, with
// an error that says what is wrong.
func TestCeremonyForgeries(t *testing.T) {
	m, good, _ := goodCeremony(t)
	other := otherDigits(t, m)
	alice, bob, mallory := testKey("alice"), testKey("bob"), testKey("mallory")
	tests := []struct {
		name  string
		model *model.Model // nil: m
		forge func(tr *Transcript)
		want  string
	}{
		{"another model's transcript", other, func(*Transcript) {}, "is for model"},
		{"another circuit's transcript, signed for this model", other, func(tr *Transcript) {
			tr.ModelID = other.Manifest.ID
			resign(tr, alice, bob)
		}, "phase-2 starting state is not this circuit's"},
		{"a phase-1 contribution re-signed by someone else", nil, func(tr *Transcript) {
			c := &tr.Phase1[0]
			c.Contributor = mallory.Public().(ed25519.PublicKey)
			c.Signature = ed25519.Sign(mallory, SignBytes(tr.ModelID, PhaseOne, 0, tr.runBefore(PhaseOne, 0), sha256.Sum256(c.State)))
		}, "phase 1 contribution 1: the signature"},
		{"the last contribution re-signed under the first contributor's name", nil, func(tr *Transcript) {
			tr.Phase2[1].Contributor = tr.Phase2[0].Contributor
		}, "contributed twice"},
		{"a signature moved to another contribution", nil, func(tr *Transcript) {
			tr.Phase2[1].Signature = tr.Phase2[0].Signature
		}, "phase 2 contribution 1: the signature"},
		{"phase-2 contributions reordered", nil, func(tr *Transcript) {
			tr.Phase2[0], tr.Phase2[1] = tr.Phase2[1], tr.Phase2[0]
		}, "same contributors in the same order"},
		{"phase-1 contributions reordered and re-signed", nil, func(tr *Transcript) {
			tr.Phase1[0], tr.Phase1[1] = tr.Phase1[1], tr.Phase1[0]
			resign(tr, alice, bob)
		}, "phase 1 contribution 0 (by"},
		{"the first phase-1 contribution dropped, and the rest re-signed", nil, func(tr *Transcript) {
			tr.Phase1 = tr.Phase1[1:]
			tr.Phase2 = tr.Phase2[1:]
			resign(tr, alice)
		}, "phase 1 contribution 0 (by"},
		{"the last phase-2 contribution dropped", nil, func(tr *Transcript) {
			tr.Phase2 = tr.Phase2[:1]
		}, "phase 2 sealed with 1 contributions"},
		{"the first phase-2 contribution dropped, and the rest re-signed", nil, func(tr *Transcript) {
			tr.Phase2 = []Contribution{tr.Phase2[1], tr.Phase2[1]} // the counts must agree
			resign(tr, alice, bob)
		}, "phase 2 contribution 0 (by"},
		{"a state changed", nil, func(tr *Transcript) {
			s := bytes.Clone(tr.Phase2[1].State)
			s[40] ^= 1
			tr.Phase2[1].State = s
		}, "phase 2 contribution 1: the signature"},
		{"the phase-1 beacon changed", nil, func(tr *Transcript) {
			tr.Beacon1 = []byte("another beacon")
		}, "phase 2 contribution 0: the signature"},
		{"not sealed", nil, func(tr *Transcript) {
			tr.Beacon2 = nil
		}, "not sealed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := copyOf(t, good)
			tt.forge(tr)
			mm := tt.model
			if mm == nil {
				mm = m
			}
			start := time.Now()
			b := tr.encode()
			if parsed, err := ParseTranscript(b); err == nil {
				tr = parsed
			} else if strings.Contains(err.Error(), tt.want) {
				return // refused by its shape already
			} else {
				t.Fatalf("refused by ParseTranscript with %q, want an error containing %q", err, tt.want)
			}
			k, err := VerifyTranscript(context.Background(), mm, tr, nil)
			if err == nil {
				t.Fatalf("the forgery verified to key %x", sha256Of(k.VerifyingKeyBytes)[:8])
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q, want one containing %q", err, tt.want)
			}
			t.Logf("refused in %s: %v", time.Since(start).Round(time.Millisecond), err)
		})
	}
}

// TestCeremonyContributeRules: Contribute and Seal keep the order rules
// the verifier checks: nobody contributes twice to a phase, phase 2 takes
// phase 1's contributors in order, a phase is sealed only when complete.
func TestCeremonyContributeRules(t *testing.T) {
	m, good, _ := goodCeremony(t)
	tr := copyOf(t, good)
	if err := tr.Contribute(testKey("carol")); err == nil {
		t.Error("a sealed transcript took a contribution")
	}
	// Phase 2 open, after its first contribution.
	tr.Phase2, tr.Beacon2 = tr.Phase2[:1], nil
	if err := tr.Seal(m, []byte("b")); err == nil || !strings.Contains(err.Error(), "1 of phase 1's 2") {
		t.Errorf("a phase-2 seal before everyone contributed: %v", err)
	}
	if err := tr.Contribute(testKey("carol")); err == nil || !strings.Contains(err.Error(), "phase 1's contributors in their order") {
		t.Errorf("a newcomer contributed to phase 2: %v", err)
	}
	fresh, err := NewTranscript(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := fresh.Seal(m, []byte("b")); err == nil {
		t.Error("phase 1 sealed with no contributions")
	}
	if err := fresh.Seal(m, nil); err == nil {
		t.Error("a seal without a beacon")
	}
}

// inflatePKK rewrites a Phase2 encoding so that it claims extra more
// private-wire points than it has, copies of its first (a valid
// compressed point, so gnark would decode every one).
func inflatePKK(tb testing.TB, b []byte, extra int) []byte {
	tb.Helper()
	off := 2 + g1Size
	pkk := int(binary.BigEndian.Uint32(b[off:]))
	first := b[off+4 : off+4+g1Size]
	out := slices.Clone(b[:off])
	out = binary.BigEndian.AppendUint32(out, uint32(pkk+extra))
	out = append(out, b[off+4:off+4+pkk*g1Size]...)
	out = append(out, bytes.Repeat(first, extra)...)
	return append(out, b[off+4+pkk*g1Size:]...)
}

// TestCeremonyOversizedPhase2: a proposer who keeps an honest phase 1 can
// inflate the phase-2 states with copies of a valid point (up to the
// transcript limit, hundreds of MB) and sign them again with keys it
// holds; ParseTranscript cannot tell, since the private-wire count is the
// circuit's. VerifyTranscript must refuse every state whose size is not
// the one the circuit fixes once it has compiled the circuit, before it
// decodes anything (no phase-1 check starts). A few extra points make the
// case: any size but the exact one is refused the same way, so the test
// needs no 200 MB transcript.
func TestCeremonyOversizedPhase2(t *testing.T) {
	m, good, _ := goodCeremony(t)
	tests := []struct {
		name   string
		forge  func(tr *Transcript)
		reason string
	}{
		{"the starting state and contributions", func(tr *Transcript) {
			tr.Start2 = inflatePKK(t, tr.Start2, 1000)
			for i := range tr.Phase2 {
				tr.Phase2[i].State = inflatePKK(t, tr.Phase2[i].State, 1000)
			}
		}, "private-wire"},
		{"the last contribution only", func(tr *Transcript) {
			tr.Phase2[1].State = inflatePKK(t, tr.Phase2[1].State, 1)
		}, "private-wire"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := copyOf(t, good)
			tt.forge(tr)
			resign(tr, testKey("mallory-1"), testKey("mallory-2"))
			parsed, err := ParseTranscript(tr.encode())
			if err != nil {
				t.Fatalf("ParseTranscript refused it (it cannot know the circuit): %v", err)
			}
			var steps []string
			start := time.Now()
			_, err = VerifyTranscript(context.Background(), m, parsed, func(s string) { steps = append(steps, s) })
			if err == nil || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("error %v, want one containing %q", err, tt.reason)
			}
			if len(steps) != 1 || !strings.HasPrefix(steps[0], "compiling") {
				t.Errorf("VerifyTranscript went through %q before refusing; it should refuse right after compiling the circuit", steps)
			}
			t.Logf("refused in %s: %v", time.Since(start).Round(time.Millisecond), err)
		})
	}
}
