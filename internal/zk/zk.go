// Package zk proves inferences of the digits-mlp classifier in zero
// knowledge: a Groth16 proof on BN254 that the model, whose weights the
// circuit holds as constants, maps this input to these logits. Anyone with
// the model's verifying key checks it in a millisecond or two.
//
// The circuit follows the model's integer inference exactly: the 256
// pixels arrive packed 31 to a field element (9 public inputs, unpacked
// with bit decompositions that also range-check them); each hidden unit's
// accumulator is shifted with rounding and clamped to 0..127 through one
// 34-bit decomposition; the logits are linear in the hidden units and
// public. Multiplications by the constant weights cost no constraints.
//
// The trust assumption of Groth16: the per-model setup must be run
// honestly (or as a multi-party ceremony in which one honest party is
// enough); whoever knows its toxic waste can forge proofs for that model.
package zk

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"slices"
	"sync"

	"github.com/consensys/gnark-crypto/ecc"
	curve "github.com/consensys/gnark-crypto/ecc/bn254"
	"github.com/consensys/gnark-crypto/ecc/bn254/fr"
	"github.com/consensys/gnark/backend/groth16"
	groth16bn254 "github.com/consensys/gnark/backend/groth16/bn254"
	"github.com/consensys/gnark/constraint"
	"github.com/consensys/gnark/frontend"
	"github.com/consensys/gnark/frontend/cs/r1cs"
	"github.com/consensys/gnark/logger"

	"github.com/agoranet/agora/internal/model"
)

// gnark logs every compilation to stdout; a daemon's logs are its own.
func init() { logger.Disable() }

// Sizes of digits-mlp's public inputs, the model the chain's proofs are
// of. The circuit itself takes any MLP of 8-bit inputs (bench/zk proves a
// 784-64-10 one too).
const (
	Pixels       = model.DigitPixels
	PixelsPerEl  = 31
	PackedInputs = (Pixels + PixelsPerEl - 1) / PixelsPerEl
	Classes      = model.DigitClasses
)

// packed is the number of field elements n pixels are packed into.
func packed(n int) int { return (n + PixelsPerEl - 1) / PixelsPerEl }

// maxInputs keeps every hidden accumulator below 2^30 in magnitude, which
// the clamp's 34-bit decomposition needs: 255 * 127 per input, and a bias
// below 2^24.
const maxInputs = 16384

// Circuit is an MLP's inference circuit: packed pixels in, logits out,
// both public.
type Circuit struct {
	Input  []frontend.Variable `gnark:",public"`
	Logits []frontend.Variable `gnark:",public"`

	mlp *model.MLP
}

// newCircuit sizes the circuit for m (gnark compiles slices at the length
// they have).
func newCircuit(m *model.MLP) *Circuit {
	return &Circuit{Input: make([]frontend.Variable, packed(m.Inputs())), Logits: make([]frontend.Variable, m.Classes()), mlp: m}
}

// Define builds the constraints.
func (c *Circuit) Define(api frontend.API) error {
	w1, b1, w2, b2, shift := c.mlp.Layers()
	hidden := len(b1)
	pixels := c.mlp.Inputs()
	x := make([]frontend.Variable, 0, pixels)
	for k := range c.Input {
		n := min(PixelsPerEl, pixels-k*PixelsPerEl)
		bits := api.ToBinary(c.Input[k], 8*n)
		for i := 0; i < n; i++ {
			x = append(x, api.FromBinary(bits[8*i:8*i+8]...))
		}
	}
	const top = 33 // accumulators are below 2^30 in magnitude (the model parser checks)
	h := make([]frontend.Variable, hidden)
	for j := 0; j < hidden; j++ {
		acc := frontend.Variable(big.NewInt(int64(b1[j])))
		for i, w := range w1[j*pixels : (j+1)*pixels] {
			if w != 0 {
				acc = api.Add(acc, api.Mul(x[i], int64(w)))
			}
		}
		// t = acc + rounding + 2^top is in [0, 2^(top+1)); its bits above
		// the shift are q + 2^(top-shift), q = round(acc / 2^shift).
		t := api.Add(acc, new(big.Int).Lsh(big.NewInt(1), top))
		if shift > 0 {
			t = api.Add(t, int64(1)<<(shift-1))
		}
		bits := api.ToBinary(t, top+1)
		nonneg := bits[top] // q >= 0
		var low7 frontend.Variable = 0
		for b := 0; b < 7; b++ {
			low7 = api.Add(low7, api.Mul(bits[int(shift)+b], 1<<b))
		}
		var big128 frontend.Variable = 0 // q >= 128, given q >= 0
		for b := int(shift) + 7; b < top; b++ {
			big128 = api.Or(big128, bits[b])
		}
		clamped := api.Add(low7, api.Mul(big128, api.Sub(127, low7)))
		h[j] = api.Mul(nonneg, clamped)
	}
	for k := range c.Logits {
		acc := frontend.Variable(big.NewInt(int64(b2[k])))
		for j, w := range w2[k*hidden : (k+1)*hidden] {
			if w != 0 {
				acc = api.Add(acc, api.Mul(h[j], int64(w)))
			}
		}
		api.AssertIsEqual(acc, c.Logits[k])
	}
	return nil
}

// Pack packs pixels, PixelsPerEl to an element, into the circuit's public
// input elements.
func Pack(pixels []byte) []*big.Int {
	out := make([]*big.Int, packed(len(pixels)))
	for k := range out {
		v := new(big.Int)
		end := min((k+1)*PixelsPerEl, len(pixels))
		for i := end - 1; i >= k*PixelsPerEl; i-- {
			v.Lsh(v, 8)
			v.Or(v, big.NewInt(int64(pixels[i])))
		}
		out[k] = v
	}
	return out
}

// System is a model's compiled circuit and keys.
type System struct {
	mlp *model.MLP
	CS  constraint.ConstraintSystem
	PK  groth16.ProvingKey
	VK  groth16.VerifyingKey
}

// Compile builds the circuit for a model.
func Compile(m *model.MLP) (constraint.ConstraintSystem, error) {
	if m.Inputs() < 1 || m.Inputs() > maxInputs || m.Classes() < 1 {
		return nil, fmt.Errorf("zk: a model of %d inputs and %d classes; the circuit takes 1 to %d inputs and a class or more", m.Inputs(), m.Classes(), maxInputs)
	}
	return frontend.Compile(ecc.BN254.ScalarField(), r1cs.NewBuilder, newCircuit(m))
}

// Setup compiles the circuit and runs a single-party Groth16 setup. It is
// for development: a real model's keys come from a ceremony.
func Setup(m *model.MLP) (*System, error) {
	cs, err := Compile(m)
	if err != nil {
		return nil, err
	}
	pk, vk, err := groth16.Setup(cs)
	if err != nil {
		return nil, fmt.Errorf("zk: setup: %w", err)
	}
	return &System{mlp: m, CS: cs, PK: pk, VK: vk}, nil
}

// assignment is the statement that pixels give logits, for a model of
// inputs pixels and classes logits.
func assignment(pixels []byte, logits []int32, inputs, classes int) (*Circuit, error) {
	if len(pixels) != inputs {
		return nil, fmt.Errorf("zk: %d pixels, want %d", len(pixels), inputs)
	}
	if len(logits) != classes {
		return nil, fmt.Errorf("zk: %d logits, want %d", len(logits), classes)
	}
	a := &Circuit{}
	for _, v := range Pack(pixels) {
		a.Input = append(a.Input, v)
	}
	for _, v := range logits {
		a.Logits = append(a.Logits, big.NewInt(int64(v)))
	}
	return a, nil
}

// Prove runs the model on pixels and proves the result; it returns the
// logits and the proof's bytes.
func (s *System) Prove(pixels []byte) ([]int32, []byte, error) {
	logits, _, err := s.mlp.Infer(pixels)
	if err != nil {
		return nil, nil, err
	}
	a, err := assignment(pixels, logits, s.mlp.Inputs(), s.mlp.Classes())
	if err != nil {
		return nil, nil, err
	}
	w, err := frontend.NewWitness(a, ecc.BN254.ScalarField())
	if err != nil {
		return nil, nil, err
	}
	proof, err := groth16.Prove(s.CS, s.PK, w)
	if err != nil {
		return nil, nil, fmt.Errorf("zk: prove: %w", err)
	}
	var buf bytes.Buffer
	if _, err := proof.WriteTo(&buf); err != nil {
		return nil, nil, err
	}
	return logits, buf.Bytes(), nil
}

// ErrInvalid is returned for a proof that does not verify.
var ErrInvalid = errors.New("zk: proof does not verify")

// Verify checks a proof that the digits-mlp model of vk maps pixels
// (Pixels of them) to logits (Classes).
func Verify(vkBytes, proofBytes []byte, pixels []byte, logits []int32) error {
	return VerifyStatement(vkBytes, proofBytes, Pixels, Classes, pixels, logits)
}

// VerifyStatement checks a proof that the model of vk, a model of inputs
// pixels and classes logits, maps pixels to logits. The caller names both
// counts, from the model: the key fixes only the total of public inputs,
// packed pixels and logits together, so a statement of 248 pixels and 11
// logits can share a 256-pixel, 10-logit statement's public inputs (its
// last 8 pixels 0, the first logit 0).
func VerifyStatement(vkBytes, proofBytes []byte, inputs, classes int, pixels []byte, logits []int32) error {
	if len(pixels) != inputs || len(logits) != classes {
		return fmt.Errorf("zk: %d pixels and %d logits, want %d and %d", len(pixels), len(logits), inputs, classes)
	}
	if len(pixels) == 0 || len(pixels) > maxInputs || len(logits) == 0 || len(logits) > maxInputs {
		return fmt.Errorf("zk: %d pixels and %d logits; a statement has 1 to %d of each", len(pixels), len(logits), maxInputs)
	}
	vk, err := prepared.get(vkBytes, packed(len(pixels))+len(logits))
	if err != nil {
		return err
	}
	if err := checkProof(proofBytes); err != nil {
		return fmt.Errorf("%w: malformed proof: %v", ErrInvalid, err)
	}
	proof := groth16.NewProof(ecc.BN254)
	n, err := proof.ReadFrom(bytes.NewReader(proofBytes))
	if err != nil {
		return fmt.Errorf("%w: malformed proof: %v", ErrInvalid, err)
	}
	// No bytes after the proof. A proof is still not unique: Groth16
	// proofs can be re-randomised, and the decoded commitment proof point
	// (unused without commitments) is not checked, so nothing may key on a
	// proof's bytes (the chain keys proven inferences on the statement).
	if n != int64(len(proofBytes)) {
		return fmt.Errorf("%w: malformed proof: %d bytes after the proof", ErrInvalid, int64(len(proofBytes))-n)
	}
	a, err := assignment(pixels, logits, len(pixels), len(logits))
	if err != nil {
		return err
	}
	pub, err := frontend.NewWitness(a, ecc.BN254.ScalarField(), frontend.PublicOnly())
	if err != nil {
		return err
	}
	if err := vk.check(proof.(*groth16bn254.Proof), pub.Vector().(fr.Vector)); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return nil
}

// preparedKey is a verifying key read for verifications: its points (each
// checked to be in its subgroup by the decoder), the pairing e([α]1, [β]2)
// every verification compares against, and the Miller loop's lines for
// its fixed G2 points -[δ]2 and -[γ]2, so that of a verification's three
// Miller loops only the proof's own e(A, B) walks a G2 point.
type preparedKey struct {
	k         []curve.G1Affine // [Kvk]1, one per public input and one for the constant
	alphaBeta curve.GT
	lines     [][2][len(curve.LoopCounter)]curve.LineEvaluationAff // for -[δ]2, -[γ]2
}

func prepare(vk *groth16bn254.VerifyingKey) (*preparedKey, error) {
	ab, err := curve.Pair([]curve.G1Affine{vk.G1.Alpha}, []curve.G2Affine{vk.G2.Beta})
	if err != nil {
		return nil, err
	}
	var deltaNeg, gammaNeg curve.G2Affine
	deltaNeg.Neg(&vk.G2.Delta)
	gammaNeg.Neg(&vk.G2.Gamma)
	lines := [][2][len(curve.LoopCounter)]curve.LineEvaluationAff{curve.PrecomputeLines(deltaNeg), curve.PrecomputeLines(gammaNeg)}
	return &preparedKey{k: vk.G1.K, alphaBeta: ab, lines: lines}, nil
}

// check is Groth16's verification equation,
//
//	e(A, B) · e(C, -[δ]2) · e(Σ xᵢ[Kᵢ]1, -[γ]2) = e([α]1, [β]2),
//
// as gnark's groth16.Verify has it, for keys and proofs without
// commitments (checkVerifyingKey and checkProof admit no other).
func (k *preparedKey) check(p *groth16bn254.Proof, public fr.Vector) error {
	if len(p.Commitments) != 0 {
		return errors.New("a proof with commitments")
	}
	if len(public) != len(k.k)-1 {
		return fmt.Errorf("%d public inputs, the key has %d", len(public), len(k.k)-1)
	}
	// The decoder checked these already; a proof built in memory is not
	// decoded, and the check is cheap beside the pairing.
	if !p.Ar.IsInSubGroup() || !p.Krs.IsInSubGroup() || !p.Bs.IsInSubGroup() {
		return errors.New("a proof point outside its subgroup")
	}
	// e(A, B) walks B, the one G2 point not known in advance: beside the
	// public inputs' sum and the fixed-point loop, on another core.
	var ab curve.GT
	abDone := make(chan error, 1)
	go func() {
		var err error
		ab, err = curve.MillerLoop([]curve.G1Affine{p.Ar}, []curve.G2Affine{p.Bs})
		abDone <- err
	}()
	var sum curve.G1Jac
	if _, err := sum.MultiExp(k.k[1:], public, ecc.MultiExpConfig{}); err != nil {
		<-abDone
		return err
	}
	sum.AddMixed(&k.k[0])
	var sumAff curve.G1Affine
	sumAff.FromJacobian(&sum)
	// MillerLoopFixedQ writes into the lines it is given (gnark-crypto
	// v0.21): each verification gets its own copy, or the key would be
	// spoilt after one use, and raced on by concurrent ones.
	lines := slices.Clone(k.lines)
	fixed, err := curve.MillerLoopFixedQ([]curve.G1Affine{p.Krs, sumAff}, lines)
	if err2 := <-abDone; err == nil {
		err = err2
	}
	if err != nil {
		return err
	}
	if got := curve.FinalExponentiation(&ab, &fixed); !got.Equal(&k.alphaBeta) {
		return errors.New("the pairing check failed")
	}
	return nil
}

// prepared holds the verifying keys read recently, by the hash of their
// bytes. Reading a key checks that each of its points is in its subgroup
// and computes the pairing e([α]1, [β]2) and the fixed points' lines:
// more than half of a verification's time, and the same for every proof
// of a model. A prepared key is immutable, so one copy serves concurrent
// verifications.
var prepared = &keyCache{keys: map[[32]byte]*preparedKey{}}

// keyCache is a small FIFO cache: a chain verifies proofs of a handful of
// models, and a flood of distinct keys (each paid for in a transaction)
// only evicts, it cannot grow memory.
type keyCache struct {
	mu    sync.Mutex
	keys  map[[32]byte]*preparedKey
	order [][32]byte
}

const cachedKeys = 64

// get returns the key b, prepared, checking that it is for a statement of
// public inputs (packed pixels and logits).
func (c *keyCache) get(b []byte, public int) (*preparedKey, error) {
	id := sha256.Sum256(b)
	c.mu.Lock()
	pk, ok := c.keys[id]
	c.mu.Unlock()
	if ok {
		if n := len(pk.k) - 1; n != public {
			return nil, fmt.Errorf("zk: verifying key: %d public inputs, the statement has %d", n, public)
		}
		return pk, nil
	}
	if err := checkVerifyingKey(b, public); err != nil {
		return nil, fmt.Errorf("zk: verifying key: %w", err)
	}
	vk := groth16.NewVerifyingKey(ecc.BN254)
	if _, err := vk.ReadFrom(bytes.NewReader(b)); err != nil {
		return nil, fmt.Errorf("zk: verifying key: %w", err)
	}
	pk, err := prepare(vk.(*groth16bn254.VerifyingKey))
	if err != nil {
		return nil, fmt.Errorf("zk: verifying key: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.keys[id]; !ok {
		if len(c.order) == cachedKeys {
			delete(c.keys, c.order[0])
			c.order = c.order[1:]
		}
		c.keys[id] = pk
		c.order = append(c.order, id)
	}
	return c.keys[id], nil
}

// checkVerifyingKey and checkProof guard gnark's decoders, which allocate
// a slice as long as the uint32 count in front of it before reading a
// single element: a proof or key of a hundred-odd bytes that claims 2^32
// points makes the process run out of memory, a fatal error that no
// recover catches. Keys and proofs arrive in transactions, so that would
// stop every validator. The digits circuit fixes the counts (one K point
// per public input plus one, no commitments), so these read the points in
// front of each count, as gnark lays them out, and check the count (public
// inputs, as the statement has them) before the real decoder sees it. A circuit that used api.Commit would need
// them relaxed; TestProveVerify would fail first.
func checkVerifyingKey(b []byte, publicInputs int) error {
	dec := curve.NewDecoder(bytes.NewReader(b), curve.NoSubgroupChecks())
	var (
		g1 curve.G1Affine
		g2 curve.G2Affine
	)
	for _, p := range []any{&g1, &g1, &g2, &g2, &g1, &g2} { // [α]1 [β]1 [β]2 [γ]2 [δ]1 [δ]2
		if err := dec.Decode(p); err != nil {
			return err
		}
	}
	if err := wantCount(b, dec.BytesRead(), uint32(publicInputs+1), "K points"); err != nil {
		return err
	}
	var k []curve.G1Affine
	if err := dec.Decode(&k); err != nil {
		return err
	}
	// Then the lists of public inputs each commitment covers, and the
	// commitment keys.
	if err := wantCount(b, dec.BytesRead(), 0, "committed input lists"); err != nil {
		return err
	}
	return wantCount(b, dec.BytesRead()+4, 0, "commitment keys")
}

func checkProof(b []byte) error {
	dec := curve.NewDecoder(bytes.NewReader(b), curve.NoSubgroupChecks())
	var (
		g1 curve.G1Affine
		g2 curve.G2Affine
	)
	for _, p := range []any{&g1, &g2, &g1} { // Ar Bs Krs
		if err := dec.Decode(p); err != nil {
			return err
		}
	}
	return wantCount(b, dec.BytesRead(), 0, "commitments")
}

func wantCount(b []byte, off int64, want uint32, what string) error {
	if off < 0 || off+4 > int64(len(b)) {
		return fmt.Errorf("truncated before the number of %s", what)
	}
	if got := binary.BigEndian.Uint32(b[off:]); got != want {
		return fmt.Errorf("%d %s, the circuit has %d", got, what, want)
	}
	return nil
}

// VerifyingKey returns the system's verifying key bytes.
func (s *System) VerifyingKey() ([]byte, error) {
	var buf bytes.Buffer
	_, err := s.VK.WriteTo(&buf)
	return buf.Bytes(), err
}

// Ceremony runs the Groth16 setup for a model as a multi-party ceremony
// (gnark's mpcsetup) in this process, through a Transcript: each of
// contributors (an ephemeral key here) adds randomness to phase 1 (powers
// of tau) and then to phase 2 (the circuit), the beacon seals each phase,
// and the whole transcript is verified as a key's reviewers would. The
// keys are sound if any one contributor threw its randomness away; here
// one process holds them all, so it is for development and tests. A real
// ceremony passes the transcript from party to party (agora zk setup
// init, contribute, seal).
func Ceremony(ctx context.Context, m *model.Model, contributors int, beacon []byte, progress func(string)) (*Keys, *Transcript, error) {
	if contributors < 1 || contributors > MaxContributors {
		return nil, nil, fmt.Errorf("zk: a ceremony needs 1 to %d contributors", MaxContributors)
	}
	if len(beacon) == 0 {
		beacon = []byte("agora zk setup")
	}
	say := func(format string, args ...any) {
		if progress != nil {
			progress(fmt.Sprintf(format, args...))
		}
	}
	t, err := NewTranscript(m)
	if err != nil {
		return nil, nil, err
	}
	keys := make([]ed25519.PrivateKey, contributors)
	for i := range keys {
		if _, keys[i], err = ed25519.GenerateKey(nil); err != nil {
			return nil, nil, err
		}
	}
	for phase := PhaseOne; phase <= PhaseTwo; phase++ {
		for i, k := range keys {
			if err := ctx.Err(); err != nil {
				return nil, nil, err
			}
			say("phase %d: contribution %d of %d", phase, i+1, contributors)
			if err := t.Contribute(k); err != nil {
				return nil, nil, err
			}
		}
		say("phase %d: sealing", phase)
		if err := t.Seal(m, beacon); err != nil {
			return nil, nil, err
		}
	}
	k, err := VerifyTranscript(ctx, m, t, progress)
	if err != nil {
		return nil, nil, err
	}
	return k, t, nil
}

// Save writes the proving and verifying keys.
func (s *System) Save(pkPath, vkPath string) error {
	var pk, vk bytes.Buffer
	if _, err := s.PK.WriteTo(&pk); err != nil {
		return err
	}
	if _, err := s.VK.WriteTo(&vk); err != nil {
		return err
	}
	if err := os.WriteFile(pkPath, pk.Bytes(), 0o644); err != nil {
		return err
	}
	return os.WriteFile(vkPath, vk.Bytes(), 0o644)
}

// Load reads keys that Save wrote, for a model.
func Load(m *model.MLP, pkPath, vkPath string) (*System, error) {
	ccs, err := Compile(m)
	if err != nil {
		return nil, err
	}
	pk, vk := groth16.NewProvingKey(ecc.BN254), groth16.NewVerifyingKey(ecc.BN254)
	for _, f := range []struct {
		path string
		r    io.ReaderFrom
	}{{pkPath, pk}, {vkPath, vk}} {
		b, err := os.ReadFile(f.path)
		if err != nil {
			return nil, err
		}
		if _, err := f.r.ReadFrom(bytes.NewReader(b)); err != nil {
			return nil, fmt.Errorf("zk: %s: %w", f.path, err)
		}
	}
	return &System{mlp: m, CS: ccs, PK: pk, VK: vk}, nil
}
