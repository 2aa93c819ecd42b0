package zk

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"math"
	"math/big"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"

	"github.com/consensys/gnark-crypto/ecc"
	curve "github.com/consensys/gnark-crypto/ecc/bn254"
	"github.com/consensys/gnark-crypto/ecc/bn254/fr"
	"github.com/consensys/gnark/backend/groth16"
	"github.com/google/go-cmp/cmp"

	"github.com/agoranet/agora/internal/model"
)

// TestProveVerify: a proof verifies for the model's real output, and not
// for a changed output, a changed input, or another model's key.
func TestProveVerify(t *testing.T) {
	m, err := model.Lookup(model.DigitsName)
	if err != nil {
		t.Fatal(err)
	}
	sys, err := Setup(m.MLP)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("constraints: %d", sys.CS.GetNbConstraints())
	vk, err := sys.VerifyingKey()
	if err != nil {
		t.Fatal(err)
	}
	// Three digits, then the extremes: all pixels 255 drives hidden units
	// past the clamp at both ends, all 0 leaves only the biases.
	inputs := [][]byte{bytes.Repeat([]byte{255}, Pixels), make([]byte, Pixels)}
	for d := 0; d < 3; d++ {
		px, _ := model.GenerateDigit(uint64(100+d), d*3)
		inputs = append([][]byte{px}, inputs...)
	}
	for d, px := range inputs {
		logits, proof, err := sys.Prove(px)
		if err != nil {
			t.Fatalf("input %d: %v", d, err)
		}
		if err := Verify(vk, proof, px, logits); err != nil {
			t.Fatalf("input %d: a true proof failed: %v", d, err)
		}
		bad := append([]int32(nil), logits...)
		bad[0]++
		if err := Verify(vk, proof, px, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("a changed output verified: %v", err)
		}
		px2 := append([]byte(nil), px...)
		px2[120] ^= 1 // a pixel in the digit's middle, which the model reads
		if err := Verify(vk, proof, px2, logits); !errors.Is(err, ErrInvalid) {
			t.Errorf("a changed input verified: %v", err)
		}
	}
	// Another model (another setup) cannot vouch for this proof.
	other, err := Setup(m.MLP)
	if err != nil {
		t.Fatal(err)
	}
	ovk, _ := other.VerifyingKey()
	px, _ := model.GenerateDigit(7, 7)
	logits, proof, _ := sys.Prove(px)
	if err := Verify(ovk, proof, px, logits); !errors.Is(err, ErrInvalid) {
		t.Errorf("a proof verified under another key: %v", err)
	}
}

var update = flag.Bool("update", false, "rewrite testdata/verify.json from a fresh setup")

// verifyFile holds a verifying key and true proofs made with it. FuzzVerify
// reads them rather than running a setup, because the fuzzing engine runs
// the target in several processes: a setup in each would give each its
// own key, and a seed proof from one would be junk to the others.
const verifyFile = "testdata/verify.json"

type proven struct {
	Pixels []byte
	Logits []int32
	Proof  []byte
}

type verifyData struct {
	VK     []byte
	Proofs []proven
}

func loadVerifyData(tb testing.TB) *verifyData {
	tb.Helper()
	b, err := os.ReadFile(verifyFile)
	if err != nil {
		tb.Fatalf("%v; make it with: go test ./internal/zk -run '^TestVerifyData$' -update", err)
	}
	var d verifyData
	if err := json.Unmarshal(b, &d); err != nil {
		tb.Fatalf("%s: %v", verifyFile, err)
	}
	if len(d.Proofs) < 2 {
		tb.Fatalf("%s has %d proofs, want at least 2", verifyFile, len(d.Proofs))
	}
	return &d
}

// TestVerifyData checks that FuzzVerify's key and proofs still hold: each
// proof verifies and its logits are what the model now computes. With
// -update it makes them afresh.
func TestVerifyData(t *testing.T) {
	m, err := model.Lookup(model.DigitsName)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		sys, err := Setup(m.MLP)
		if err != nil {
			t.Fatal(err)
		}
		vk, err := sys.VerifyingKey()
		if err != nil {
			t.Fatal(err)
		}
		d := verifyData{VK: vk}
		for _, digit := range []int{1, 8} {
			px, _ := model.GenerateDigit(uint64(digit), digit)
			logits, proof, err := sys.Prove(px)
			if err != nil {
				t.Fatal(err)
			}
			d.Proofs = append(d.Proofs, proven{Pixels: px, Logits: logits, Proof: proof})
		}
		b, err := json.MarshalIndent(d, "", "\t")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(verifyFile, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d := loadVerifyData(t)
	for i, p := range d.Proofs {
		want, _, err := m.MLP.Infer(p.Pixels)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, p.Logits); diff != "" {
			t.Errorf("proof %d: the model's logits changed (-now +stored); rerun with -update:\n%s", i, diff)
		}
		if err := Verify(d.VK, p.Proof, p.Pixels, p.Logits); err != nil {
			t.Errorf("proof %d: got %v, want it to verify; rerun with -update", i, err)
		}
	}
}

// logitsBytes and bytesLogits carry logits through the fuzzer, which
// takes no []int32: four bytes each, little-endian, a ragged tail ignored.
func logitsBytes(l []int32) []byte {
	b := make([]byte, 0, 4*len(l))
	for _, v := range l {
		b = binary.LittleEndian.AppendUint32(b, uint32(v))
	}
	return b
}

func bytesLogits(b []byte) []int32 {
	l := make([]int32, len(b)/4)
	for i := range l {
		l[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return l
}

// canonical is a proof's compressed encoding, or nil if b is not a proof:
// the same points written raw or compressed are the same proof.
func canonical(b []byte) []byte {
	p := groth16.NewProof(ecc.BN254)
	if _, err := p.ReadFrom(bytes.NewReader(b)); err != nil {
		return nil
	}
	var buf bytes.Buffer
	if _, err := p.WriteTo(&buf); err != nil {
		return nil
	}
	return buf.Bytes()
}

// FuzzVerify: a proof verifies only for the statement it was made for,
// and only if it is that proof; nothing else verifies, and nothing
// panics. Mutating proof, pixels or logits must never produce a valid
// (proof, statement) pair: Groth16 is sound, and the only other valid
// proofs are re-randomisations the fuzzer cannot compute.
func FuzzVerify(f *testing.F) {
	d := loadVerifyData(f)
	flip := func(b []byte, i int) []byte {
		c := bytes.Clone(b)
		c[i] ^= 1
		return c
	}
	for i, p := range d.Proofs {
		px, lg, pr := p.Pixels, logitsBytes(p.Logits), p.Proof
		f.Add(pr, px, lg) // must verify
		// The same proof with its points uncompressed: must verify.
		raw := groth16.NewProof(ecc.BN254)
		if _, err := raw.ReadFrom(bytes.NewReader(pr)); err != nil {
			f.Fatal(err)
		}
		var rawBuf bytes.Buffer
		if _, err := raw.WriteRawTo(&rawBuf); err != nil {
			f.Fatal(err)
		}
		f.Add(rawBuf.Bytes(), px, lg)
		// Mutations: none may verify.
		for _, at := range []int{0, 1, 31, 32, 63, 95, 96, 127, len(pr) - 1} {
			f.Add(flip(pr, at), px, lg)
		}
		f.Add(pr[:len(pr)-1], px, lg)
		f.Add(append(bytes.Clone(pr), 0), px, lg)
		f.Add(pr, flip(px, 40), lg)
		f.Add(pr, px, flip(lg, 0))
		other := d.Proofs[(i+1)%len(d.Proofs)]
		f.Add(other.Proof, px, lg)                         // another statement's proof
		f.Add(pr, other.Pixels, logitsBytes(other.Logits)) // for another statement
		f.Add(pr, other.Pixels, lg)                        // another input, same output
		// A commitment count of 2^32-1 after Ar, Bs, Krs (128 bytes
		// compressed): it used to make the decoder allocate until the
		// process died.
		huge := append(append(bytes.Clone(pr[:128]), 0xff, 0xff, 0xff, 0xff), pr[132:]...)
		f.Add(huge, px, lg)
		// Malformed statements: an error, not a panic.
		f.Add(pr, px[:Pixels-1], lg)
		f.Add(pr, px, lg[:4*(Classes-1)])
		f.Add(pr, px, lg[:3])
	}
	f.Add([]byte{}, []byte{}, []byte{})
	f.Fuzz(func(t *testing.T, proof, pixels, logitBytes []byte) {
		logits := bytesLogits(logitBytes)
		err := Verify(d.VK, proof, pixels, logits)
		var made *proven // the proof made for exactly this statement
		for i, p := range d.Proofs {
			if bytes.Equal(p.Pixels, pixels) && slices.Equal(p.Logits, logits) {
				made = &d.Proofs[i]
			}
		}
		if err == nil {
			if made == nil {
				t.Fatalf("forged: a %d-byte proof verified pixels %x, logits %v, which no proof was made for", len(proof), pixels, logits)
			}
			if got := canonical(proof); !bytes.Equal(got, made.Proof) {
				t.Fatalf("forged: a proof other than the one made verified\n got %x\nwant %x", got, made.Proof)
			}
			return
		}
		if made != nil && bytes.Equal(proof, made.Proof) {
			t.Fatalf("the true proof failed: %v", err)
		}
		// A well-formed statement with a bad proof is ErrInvalid, which
		// callers test for; a malformed one may fail any way but panic.
		if len(pixels) == Pixels && len(logits) == Classes && !errors.Is(err, ErrInvalid) {
			t.Errorf("got %v, want ErrInvalid", err)
		}
	})
}

// TestVerifyingKeysAreKeptBounded: verifications share a key read once,
// concurrently (run with -race), a stream of distinct keys only evicts, it
// never grows the cache past cachedKeys, and a key is only taken for a
// statement of its size.
func TestVerifyingKeysAreKeptBounded(t *testing.T) {
	d := loadVerifyData(t)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		p := d.Proofs[i%len(d.Proofs)]
		wg.Go(func() {
			if err := Verify(d.VK, p.Proof, p.Pixels, p.Logits); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	c := &keyCache{keys: map[[32]byte]*preparedKey{}}
	for i := 0; i < cachedKeys+5; i++ {
		// The same key with a distinct tail: distinct bytes, one key.
		if _, err := c.get(append(append([]byte(nil), d.VK...), byte(i)), Pixels+Classes); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.keys) != cachedKeys || len(c.order) != cachedKeys {
		t.Errorf("%d keys cached (%d in order), want %d", len(c.keys), len(c.order), cachedKeys)
	}
	if _, err := c.get(d.VK[:len(d.VK)-1], Pixels+Classes); err == nil {
		t.Error("a truncated key was read")
	}
	// A key read for one statement's size is not taken for another's.
	if _, err := c.get(append(append([]byte(nil), d.VK...), byte(cachedKeys+4)), Pixels+Classes+1); err == nil {
		t.Error("a cached key was taken for a statement of another size")
	}
	if len(c.keys) != cachedKeys {
		t.Errorf("a failed read changed the cache: %d keys", len(c.keys))
	}
}

// TestAnotherSizeOfModelProves: the circuit takes an MLP of any input and
// class count (here 12×12 digits, 8 hidden units), and a statement of one
// size is never checked against a key of another.
func TestAnotherSizeOfModelProves(t *testing.T) {
	cfg := model.DefaultDigitsTrainConfig()
	cfg.Side, cfg.Hidden, cfg.Epochs, cfg.TrainSamples, cfg.TestSamples = 12, 8, 1, 200, 50
	m, err := model.TrainDigits(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	sys, err := Setup(m)
	if err != nil {
		t.Fatal(err)
	}
	vk, _ := sys.VerifyingKey()
	px, _ := model.GenerateDigitSide(3, 3, 12)
	logits, proof, err := sys.Prove(px)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyStatement(vk, proof, 144, 10, px, logits); err != nil {
		t.Fatalf("a true proof of a 144-pixel model failed: %v", err)
	}
	bad := append([]int32(nil), logits...)
	bad[1]++
	if err := VerifyStatement(vk, proof, 144, 10, px, bad); !errors.Is(err, ErrInvalid) {
		t.Errorf("a changed output verified: %v", err)
	}
	// The input count the caller names is what binds the statement.
	if err := VerifyStatement(vk, proof, 144, 10, px[:143], logits); err == nil {
		t.Error("a statement of 143 pixels verified for a 144-pixel model")
	}
	// Nor do counts the caller takes from the statement: 143 pixels and 11
	// logits have as many public inputs as 144 and 10 (the last pixel read
	// as the first logit); the model's counts refuse it before any pairing.
	shifted := append([]int32{int32(px[143])}, logits...)
	if err := VerifyStatement(vk, proof, 144, 10, px[:143], shifted); err == nil || errors.Is(err, ErrInvalid) {
		t.Errorf("a 143-pixel, 11-logit statement against a 144-pixel, 10-logit model: %v, want it refused", err)
	}
	// The digits-mlp statement against this key, and this statement
	// against digits-mlp's key, are refused before any pairing.
	d := loadVerifyData(t)
	if err := Verify(vk, d.Proofs[0].Proof, d.Proofs[0].Pixels, d.Proofs[0].Logits); err == nil || errors.Is(err, ErrInvalid) {
		t.Errorf("a 256-pixel statement against a 144-pixel key: %v, want the key refused for its size", err)
	}
	if err := VerifyStatement(d.VK, proof, 144, 10, px, logits); err == nil || errors.Is(err, ErrInvalid) {
		t.Errorf("a 144-pixel statement against digits-mlp's key: %v, want the key refused for its size", err)
	}
}

// packedFile holds a key of the circuit before each pixel was a public
// input of its own (pixels packed 31 to an element, 3,777 constraints),
// and two true proofs made with it.
const packedFile = "testdata/verify-packed.json"

// TestPackedKeysStillVerify: a verifying key of the earlier circuit, as a
// chain's genesis or a block may hold one, still verifies its proofs and
// still refuses a changed statement, so a node replaying old blocks
// reaches the verdicts they recorded.
func TestPackedKeysStillVerify(t *testing.T) {
	b, err := os.ReadFile(packedFile)
	if err != nil {
		t.Fatal(err)
	}
	var d verifyData
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	for i, p := range d.Proofs {
		if err := Verify(d.VK, p.Proof, p.Pixels, p.Logits); err != nil {
			t.Errorf("proof %d of the packed circuit: %v", i, err)
		}
		bad := slices.Clone(p.Pixels)
		bad[120] ^= 1
		if err := Verify(d.VK, p.Proof, bad, p.Logits); !errors.Is(err, ErrInvalid) {
			t.Errorf("proof %d of the packed circuit verified a changed pixel: %v", i, err)
		}
	}
	// Nor is a packed key mistaken for a key of per-pixel inputs.
	cur := loadVerifyData(t)
	if err := Verify(d.VK, cur.Proofs[0].Proof, cur.Proofs[0].Pixels, cur.Proofs[0].Logits); !errors.Is(err, ErrInvalid) {
		t.Errorf("a proof of the current circuit under a packed key: %v", err)
	}
}

// TestCircuitFitsItsDomain: digits-mlp's circuit stays under 1,024
// constraints. Groth16's proving work follows the next power of two up,
// so one constraint over would double the quotient's multi-exponentiation.
func TestCircuitFitsItsDomain(t *testing.T) {
	m, err := model.Lookup(model.DigitsName)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := Compile(m.MLP)
	if err != nil {
		t.Fatal(err)
	}
	if n := cs.GetNbConstraints(); n > 1024 {
		t.Errorf("digits-mlp: %d constraints, want at most 1,024", n)
	}
	if n := cs.GetNbPublicVariables() - 1; n != Pixels+Classes {
		t.Errorf("%d public inputs, want %d pixels and %d logits", n, Pixels, Classes)
	}
}

// TestClampBits: the sign bit of a hidden unit sits above the largest
// accumulator any byte input can make, weights of -128 included (whose
// magnitude int8 cannot hold), and never below the clamp's own bits.
func TestClampBits(t *testing.T) {
	for _, c := range []struct {
		w     []int8
		b     int32
		shift uint
		want  int
	}{
		{[]int8{-128, -128}, 0, 0, 16},   // 255*256 = 65,280 < 2^16
		{[]int8{127}, 0, 0, 15},          // 32,385 < 2^15
		{[]int8{1}, -(1 << 20), 3, 21},   // the bias dominates: 2^20 + 255 + 4 < 2^21
		{[]int8{0, 0}, 0, 12, 19},        // shift + 7
		{[]int8{-128}, 1<<15 - 1, 0, 16}, // 32,767 + 32,640 = 65,407 < 2^16
	} {
		if got := clampBits(c.w, c.b, c.shift); got != c.want {
			t.Errorf("clampBits(%v, %d, %d) = %d, want %d", c.w, c.b, c.shift, got, c.want)
		}
	}
}

// TestLoadRefusesKeysOfAnotherCircuit: keys saved for one circuit (here
// another model's, as keys of an earlier circuit version would be) are
// refused with the way out, not handed to gnark's prover to panic on.
func TestLoadRefusesKeysOfAnotherCircuit(t *testing.T) {
	cfg := model.DefaultDigitsTrainConfig()
	cfg.Side, cfg.Hidden, cfg.Epochs, cfg.TrainSamples, cfg.TestSamples = 8, 4, 1, 50, 10
	small, err := model.TrainDigits(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	sys, err := Setup(small)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pk, vk := dir+"/k.pk", dir+"/k.vk"
	if err := sys.Save(pk, vk); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(small, pk, vk); err != nil {
		t.Fatalf("the keys' own circuit: %v", err)
	}
	m, err := model.Lookup(model.DigitsName)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Load(m.MLP, pk, vk); !errors.Is(err, ErrNotThisCircuit) {
		t.Errorf("digits-mlp's circuit with another circuit's keys: %v, want them refused", err)
	}
	// A proving key and a verifying key of two setups of one circuit fit
	// it in shape, but its proofs would fail under that verifying key.
	other, err := Setup(small)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Save(dir+"/o.pk", dir+"/o.vk"); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(small, pk, dir+"/o.vk"); !errors.Is(err, ErrNotThisCircuit) {
		t.Errorf("the proving key of one setup with the verifying key of another: %v, want them refused", err)
	}
}

// TestPackedKeysStillProve: keys of the earlier packed circuit, as a
// chain that registered one holds for good, load as that circuit's and
// still make proofs that verify under their verifying key; and the
// packed circuit is still the 3,777 constraints such keys were made for.
func TestPackedKeysStillProve(t *testing.T) {
	m, err := model.Lookup(model.DigitsName)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := compilePacked(m.MLP)
	if err != nil {
		t.Fatal(err)
	}
	if n := cs.GetNbConstraints(); n != 3777 {
		t.Fatalf("the packed circuit has %d constraints, want the 3,777 its keys were made for", n)
	}
	pk, vk, err := groth16.Setup(cs)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	old := &System{mlp: m.MLP, CS: cs, PK: pk, VK: vk}
	if err := old.Save(dir+"/p.pk", dir+"/p.vk"); err != nil {
		t.Fatal(err)
	}
	sys, err := Load(m.MLP, dir+"/p.pk", dir+"/p.vk")
	if err != nil {
		t.Fatal(err)
	}
	if !sys.packed {
		t.Fatal("packed keys loaded as the current circuit's")
	}
	vkb, _ := sys.VerifyingKey()
	px, _ := model.GenerateDigit(5, 5)
	logits, proof, err := sys.Prove(px)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(vkb, proof, px, logits); err != nil {
		t.Fatalf("a proof with packed keys: %v", err)
	}
	bad := slices.Clone(logits)
	bad[2]--
	if err := Verify(vkb, proof, px, bad); !errors.Is(err, ErrInvalid) {
		t.Errorf("a changed logit verified under the packed key: %v", err)
	}
}

// TestSumSmallIsTheMultiExp: sumSmall agrees with gnark's general
// multi-exponentiation on scalars of every kind a statement has: zero,
// bytes, logits of either sign up to int32's ends, repeated points and
// the point at infinity (a key's point for an input no constraint reads).
func TestSumSmallIsTheMultiExp(t *testing.T) {
	_, _, g, _ := curve.Generators()
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 20; round++ {
		n := 1 + rng.IntN(40)
		points := make([]curve.G1Affine, n)
		x := make([]int64, n)
		for i := range points {
			points[i].ScalarMultiplication(&g, big.NewInt(rng.Int64()))
			switch rng.IntN(6) {
			case 0:
				x[i] = 0
			case 1:
				x[i] = int64(rng.IntN(256))
			case 2:
				x[i] = math.MinInt32
			case 3:
				x[i] = math.MaxInt32
			default:
				x[i] = int64(int32(rng.Uint32()))
			}
		}
		points[rng.IntN(n)] = curve.G1Affine{} // infinity
		if n > 1 {
			points[1] = points[0]
		}
		scalars := make(fr.Vector, n)
		for i, v := range x {
			scalars[i].SetInt64(v)
		}
		var want curve.G1Jac
		if _, err := want.MultiExp(points, scalars, ecc.MultiExpConfig{}); err != nil {
			t.Fatal(err)
		}
		got := sumSmall(points, x)
		if !got.Equal(&want) {
			t.Fatalf("round %d: sumSmall of %v differs from the multi-exponentiation", round, x)
		}
	}
	var empty curve.G1Jac
	if got := sumSmall(nil, nil); !got.Equal(&empty) {
		t.Error("the empty sum is not infinity")
	}
}
