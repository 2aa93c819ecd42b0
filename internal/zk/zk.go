// Package zk proves inferences of the digits-mlp classifier in zero
// knowledge: a Groth16 proof on BN254 that the model, whose weights the
// circuit holds as constants, maps this input to these logits. Anyone with
// the model's verifying key checks it in a millisecond or two.
//
// The circuit follows the model's integer inference exactly: each pixel
// is a public input of its own, which needs no range check in the
// circuit because the verifier makes it from the statement's bytes; each
// hidden unit's accumulator is shifted with rounding and clamped to
// 0..127 through one bit decomposition, as wide as that unit's weights
// can make it; the logits are linear in the hidden units and public.
// Multiplications by the constant weights cost no constraints. That is
// 782 constraints for digits-mlp, under the 1,024 of a proving domain.
//
// Keys of the circuit before that (the pixels packed 31 to a public input
// and unpacked with bit decompositions: 3,777 constraints) still verify,
// since a chain replaying old blocks must reach the same verdicts, and
// still prove (packed.go), since a chain keeps a registered key for good.
// A ceremony transcript, though, is checked against this circuit only.
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
	"math/bits"
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
	Pixels  = model.DigitPixels
	Classes = model.DigitClasses
)

// packedPerEl is how many pixels the earlier circuit packed into a public
// input; packed is how many inputs n pixels took there.
const packedPerEl = 31

func packed(n int) int { return (n + packedPerEl - 1) / packedPerEl }

// maxInputs bounds a statement's pixels and logits (a verifying key holds
// a point for each). Hidden accumulators stay far inside the field: the
// model parser bounds each to an int32.
const maxInputs = 16384

// Circuit is an MLP's inference circuit: pixels in, logits out, all
// public.
type Circuit struct {
	Input  []frontend.Variable `gnark:",public"`
	Logits []frontend.Variable `gnark:",public"`

	mlp *model.MLP
}

// newCircuit sizes the circuit for m (gnark compiles slices at the length
// they have).
func newCircuit(m *model.MLP) *Circuit {
	return &Circuit{Input: make([]frontend.Variable, m.Inputs()), Logits: make([]frontend.Variable, m.Classes()), mlp: m}
}

// Define builds the constraints.
func (c *Circuit) Define(api frontend.API) error {
	w1, b1, w2, b2, shift := c.mlp.Layers()
	hidden := len(b1)
	pixels := c.mlp.Inputs()
	if len(c.Input) != pixels {
		return fmt.Errorf("zk: a circuit of %d inputs for a model of %d", len(c.Input), pixels)
	}
	x := c.Input
	h := make([]frontend.Variable, hidden)
	for j := 0; j < hidden; j++ {
		acc := frontend.Variable(big.NewInt(int64(b1[j])))
		for i, w := range w1[j*pixels : (j+1)*pixels] {
			if w != 0 {
				acc = api.Add(acc, api.Mul(x[i], int64(w)))
			}
		}
		top := clampBits(w1[j*pixels:(j+1)*pixels], b1[j], shift)
		// t = acc + rounding + 2^top is in [0, 2^(top+1)); its bits above
		// the shift are q + 2^(top-shift), q = round(acc / 2^shift).
		t := api.Add(acc, new(big.Int).Lsh(big.NewInt(1), uint(top)))
		if shift > 0 {
			t = api.Add(t, int64(1)<<(shift-1))
		}
		bits := api.ToBinary(t, top+1)
		nonneg := bits[top] // q >= 0
		var low7 frontend.Variable = 0
		for b := 0; b < 7; b++ {
			low7 = api.Add(low7, api.Mul(bits[int(shift)+b], 1<<b))
		}
		var high frontend.Variable = 0 // q >> 7, given q >= 0
		for b := int(shift) + 7; b < top; b++ {
			high = api.Add(high, api.Mul(bits[b], new(big.Int).Lsh(big.NewInt(1), uint(b-int(shift)-7))))
		}
		big128 := api.Sub(1, api.IsZero(high)) // q >= 128
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

// clampBits is the number of bits below the sign bit of a hidden unit's
// shifted accumulator t = acc + rounding + 2^top, for the unit of weights
// w and bias b: the least top with |acc| + rounding < 2^top for every
// input of bytes (so t is in [0, 2^(top+1)) and its bit top is the sign),
// and at least shift + 7, so that the bits of q from 2^0 to 2^6 exist.
// Inputs are public and bytes by construction (the verifier builds them
// from the statement), so the bound is exact; sizing each unit to its
// own weights is what keeps digits-mlp's circuit under 1,024 constraints.
func clampBits(w []int8, b int32, shift uint) int {
	bound := new(big.Int).Abs(big.NewInt(int64(b)))
	for _, v := range w {
		bound.Add(bound, big.NewInt(255*max(int64(v), -int64(v))))
	}
	if shift > 0 {
		bound.Add(bound, big.NewInt(int64(1)<<(shift-1)))
	}
	return max(bound.BitLen(), int(shift)+7)
}

// packInputs is the earlier circuit's public pixel inputs: pixels packed
// packedPerEl to an element, the first pixel in the lowest byte.
func packInputs(pixels []byte) fr.Vector {
	out := make(fr.Vector, packed(len(pixels)))
	for k := range out {
		v := new(big.Int)
		end := min((k+1)*packedPerEl, len(pixels))
		for i := end - 1; i >= k*packedPerEl; i-- {
			v.Lsh(v, 8)
			v.Or(v, big.NewInt(int64(pixels[i])))
		}
		out[k].SetBigInt(v)
	}
	return out
}

// System is a model's compiled circuit and keys.
type System struct {
	mlp *model.MLP
	CS  constraint.ConstraintSystem
	PK  groth16.ProvingKey
	VK  groth16.VerifyingKey

	packed bool // CS is the packed circuit (packed.go): keys Load found of its shape
}

// Compile builds the circuit for a model.
func Compile(m *model.MLP) (constraint.ConstraintSystem, error) {
	return compile(m, newCircuit(m))
}

// compilePacked builds the earlier, packed circuit for a model.
func compilePacked(m *model.MLP) (constraint.ConstraintSystem, error) {
	return compile(m, newPackedCircuit(m))
}

func compile(m *model.MLP, c frontend.Circuit) (constraint.ConstraintSystem, error) {
	if m.Inputs() < 1 || m.Inputs() > maxInputs || m.Classes() < 1 {
		return nil, fmt.Errorf("zk: a model of %d inputs and %d classes; the circuit takes 1 to %d inputs and a class or more", m.Inputs(), m.Classes(), maxInputs)
	}
	return frontend.Compile(ecc.BN254.ScalarField(), r1cs.NewBuilder, c)
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
	for _, v := range pixels {
		a.Input = append(a.Input, int(v))
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
	var circuit frontend.Circuit = a
	if s.packed {
		p := &packedCircuit{Logits: a.Logits}
		for _, e := range packInputs(pixels) {
			p.Input = append(p.Input, e.BigInt(new(big.Int)))
		}
		circuit = p
	}
	w, err := frontend.NewWitness(circuit, ecc.BN254.ScalarField())
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
// pixels and logits together, so a statement of 255 pixels and 11 logits
// can share a 256-pixel, 10-logit statement's public inputs (the last
// pixel read as the first logit). A key of the earlier circuit, with the
// pixels packed, verifies its own proofs as it always did.
func VerifyStatement(vkBytes, proofBytes []byte, inputs, classes int, pixels []byte, logits []int32) error {
	if len(pixels) != inputs || len(logits) != classes {
		return fmt.Errorf("zk: %d pixels and %d logits, want %d and %d", len(pixels), len(logits), inputs, classes)
	}
	if len(pixels) == 0 || len(pixels) > maxInputs || len(logits) == 0 || len(logits) > maxInputs {
		return fmt.Errorf("zk: %d pixels and %d logits; a statement has 1 to %d of each", len(pixels), len(logits), maxInputs)
	}
	vk, err := prepared.get(vkBytes, len(pixels)+len(logits), packed(len(pixels))+len(logits))
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
	// The public inputs as the circuit orders them: the pixels, then the
	// logits; for a key of the earlier circuit, the pixels packed.
	var wide fr.Vector
	small := make([]int64, 0, len(pixels)+len(logits))
	if len(vk.k)-1 == len(pixels)+len(logits) {
		for _, v := range pixels {
			small = append(small, int64(v))
		}
	} else {
		wide = packInputs(pixels)
	}
	for _, l := range logits {
		small = append(small, int64(l))
	}
	if err := vk.check(proof.(*groth16bn254.Proof), wide, small); err != nil {
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
// commitments (checkVerifyingKey and checkProof admit no other). The
// public inputs xᵢ are wide field elements, then small integers (pixels
// and logits), whose part of the sum sumSmall takes at a fraction of a
// general multi-exponentiation's cost.
func (k *preparedKey) check(p *groth16bn254.Proof, wide fr.Vector, small []int64) error {
	if len(p.Commitments) != 0 {
		return errors.New("a proof with commitments")
	}
	if n := len(wide) + len(small); n != len(k.k)-1 {
		return fmt.Errorf("%d public inputs, the key has %d", n, len(k.k)-1)
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
	if len(wide) > 0 {
		if _, err := sum.MultiExp(k.k[1:1+len(wide)], wide, ecc.MultiExpConfig{}); err != nil {
			<-abDone
			return err
		}
	}
	smallSum := sumSmall(k.k[1+len(wide):], small)
	sum.AddAssign(&smallSum)
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

// sumSmall is Σ xᵢ·Pᵢ for small integer scalars, as a statement's pixels
// (bytes) and logits (int32) are (any int64 gives the right sum; the work
// grows with the widest): Pippenger's buckets,
// four bits at a time from the top digit down, a negative scalar adding
// its point negated. A pixel costs at most two additions and a logit
// eight, and the digits above a byte hold only the logits, so their
// buckets are nearly empty; a general multi-exponentiation walks all 254
// bits of every scalar (a negative logit is a field element that wide).
func sumSmall(points []curve.G1Affine, x []int64) curve.G1Jac {
	var (
		sum  curve.G1Jac
		high uint64
	)
	mag := make([]uint64, len(x))
	for i, v := range x {
		mag[i] = uint64(max(v, -v))
		high |= mag[i]
	}
	digits := (bits.Len64(high) + 3) / 4
	var neg curve.G1Affine
	for d := digits - 1; d >= 0; d-- {
		for range 4 {
			sum.DoubleAssign()
		}
		var buckets [15]curve.G1Jac // bucket v-1 holds the points of digit v; the zero value is infinity
		for i, m := range mag {
			v := (m >> (4 * d)) & 15
			switch {
			case v == 0:
			case x[i] < 0:
				neg.Neg(&points[i])
				buckets[v-1].AddMixed(&neg)
			default:
				buckets[v-1].AddMixed(&points[i])
			}
		}
		// Σ v·bucket(v): a running sum from the top bucket down adds
		// bucket v in v times.
		var run, part curve.G1Jac
		for v := len(buckets) - 1; v >= 0; v-- {
			run.AddAssign(&buckets[v])
			part.AddAssign(&run)
		}
		sum.AddAssign(&part)
	}
	return sum
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

// get returns the key b, prepared, checking that it has one of the
// numbers of public inputs a statement may have (pixels and logits, or
// the earlier circuit's packed pixels and logits).
func (c *keyCache) get(b []byte, public ...int) (*preparedKey, error) {
	id := sha256.Sum256(b)
	c.mu.Lock()
	pk, ok := c.keys[id]
	c.mu.Unlock()
	if ok {
		if n := len(pk.k) - 1; !slices.Contains(public, n) {
			return nil, fmt.Errorf("zk: verifying key: %d public inputs, the statement has %d (a key of the packed circuit: %v)", n, public[0], public)
		}
		return pk, nil
	}
	if err := checkVerifyingKey(b, public...); err != nil {
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
func checkVerifyingKey(b []byte, publicInputs ...int) error {
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
	want := make([]uint32, len(publicInputs))
	for i, n := range publicInputs {
		want[i] = uint32(n + 1)
	}
	if err := wantCount(b, dec.BytesRead(), "K points", want...); err != nil {
		return err
	}
	var k []curve.G1Affine
	if err := dec.Decode(&k); err != nil {
		return err
	}
	// Then the lists of public inputs each commitment covers, and the
	// commitment keys.
	if err := wantCount(b, dec.BytesRead(), "committed input lists", 0); err != nil {
		return err
	}
	return wantCount(b, dec.BytesRead()+4, "commitment keys", 0)
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
	return wantCount(b, dec.BytesRead(), "commitments", 0)
}

func wantCount(b []byte, off int64, what string, want ...uint32) error {
	if off < 0 || off+4 > int64(len(b)) {
		return fmt.Errorf("truncated before the number of %s", what)
	}
	if got := binary.BigEndian.Uint32(b[off:]); !slices.Contains(want, got) {
		if len(want) > 1 {
			return fmt.Errorf("%d %s, want one of %v", got, what, want)
		}
		return fmt.Errorf("%d %s, the circuit has %d", got, what, want[0])
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

// ErrNotThisCircuit is returned by Load for keys that are not of the
// model's circuit.
var ErrNotThisCircuit = errors.New("zk: the keys are not of this model's circuit")

// Load reads keys that Save wrote, for a model: keys of its circuit, or
// of the earlier packed circuit (packed.go), which a chain that
// registered one keeps for good, so its provers must still prove with it.
func Load(m *model.MLP, pkPath, vkPath string) (*System, error) {
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
	ccs, err := Compile(m)
	if err != nil {
		return nil, err
	}
	err = fits(ccs, pk, vk)
	if err == nil {
		return &System{mlp: m, CS: ccs, PK: pk, VK: vk}, nil
	}
	if pcs, perr := compilePacked(m); perr == nil && fits(pcs, pk, vk) == nil {
		return &System{mlp: m, CS: pcs, PK: pk, VK: vk, packed: true}, nil
	}
	return nil, fmt.Errorf("%w: %s and %s: %v", ErrNotThisCircuit, pkPath, vkPath, err)
}

// fits checks that keys are sized for a circuit (gnark's prover indexes
// the key by the circuit's wires, and panics on a key of another shape)
// and that the two are of one setup: the points they share are equal.
func fits(ccs constraint.ConstraintSystem, pk groth16.ProvingKey, vk groth16.VerifyingKey) error {
	p, ok1 := pk.(*groth16bn254.ProvingKey)
	v, ok2 := vk.(*groth16bn254.VerifyingKey)
	if !ok1 || !ok2 {
		return errors.New("keys for another curve")
	}
	public, wires := ccs.GetNbPublicVariables(), ccs.GetNbPublicVariables()+ccs.GetNbSecretVariables()+ccs.GetNbInternalVariables()
	switch {
	case len(v.G1.K) != public:
		return fmt.Errorf("the verifying key has %d public inputs, the circuit %d", len(v.G1.K)-1, public-1)
	case p.Domain.Cardinality != ecc.NextPowerOfTwo(uint64(ccs.GetNbConstraints())):
		return fmt.Errorf("the proving key's domain has %d points, the circuit's %d", p.Domain.Cardinality, ecc.NextPowerOfTwo(uint64(ccs.GetNbConstraints())))
	case len(p.G1.K) != wires-public || len(p.InfinityA) != wires:
		return fmt.Errorf("the proving key has %d private wires, the circuit %d", len(p.G1.K), wires-public)
	case !p.G1.Alpha.Equal(&v.G1.Alpha) || !p.G1.Beta.Equal(&v.G1.Beta) || !p.G1.Delta.Equal(&v.G1.Delta) ||
		!p.G2.Beta.Equal(&v.G2.Beta) || !p.G2.Delta.Equal(&v.G2.Delta):
		return errors.New("the proving and verifying keys are of different setups")
	}
	return nil
}
