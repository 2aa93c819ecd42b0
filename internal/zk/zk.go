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
	"errors"
	"fmt"
	"math/big"

	"github.com/consensys/gnark-crypto/ecc"
	"github.com/consensys/gnark/backend/groth16"
	"github.com/consensys/gnark/constraint"
	"github.com/consensys/gnark/frontend"
	"github.com/consensys/gnark/frontend/cs/r1cs"

	"github.com/agoranet/agora/internal/model"
)

// Sizes of digits-mlp's public inputs.
const (
	Pixels       = model.DigitPixels
	PixelsPerEl  = 31
	PackedInputs = (Pixels + PixelsPerEl - 1) / PixelsPerEl
	Classes      = model.DigitClasses
)

// Circuit is the digits-mlp inference circuit.
type Circuit struct {
	Input  [PackedInputs]frontend.Variable `gnark:",public"`
	Logits [Classes]frontend.Variable      `gnark:",public"`

	mlp *model.MLP
}

// Define builds the constraints.
func (c *Circuit) Define(api frontend.API) error {
	w1, b1, w2, b2, shift := c.mlp.Layers()
	hidden := len(b1)
	x := make([]frontend.Variable, 0, Pixels)
	for k := 0; k < PackedInputs; k++ {
		n := min(PixelsPerEl, Pixels-k*PixelsPerEl)
		bits := api.ToBinary(c.Input[k], 8*n)
		for i := 0; i < n; i++ {
			x = append(x, api.FromBinary(bits[8*i:8*i+8]...))
		}
	}
	const top = 33 // accumulators are below 2^30 in magnitude (the model parser checks)
	h := make([]frontend.Variable, hidden)
	for j := 0; j < hidden; j++ {
		acc := frontend.Variable(big.NewInt(int64(b1[j])))
		for i, w := range w1[j*Pixels : (j+1)*Pixels] {
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
	for k := 0; k < Classes; k++ {
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

// Pack packs 256 pixels into the circuit's public input elements.
func Pack(pixels []byte) ([PackedInputs]*big.Int, error) {
	var out [PackedInputs]*big.Int
	if len(pixels) != Pixels {
		return out, fmt.Errorf("zk: %d pixels, want %d", len(pixels), Pixels)
	}
	for k := range out {
		v := new(big.Int)
		end := min((k+1)*PixelsPerEl, Pixels)
		for i := end - 1; i >= k*PixelsPerEl; i-- {
			v.Lsh(v, 8)
			v.Or(v, big.NewInt(int64(pixels[i])))
		}
		out[k] = v
	}
	return out, nil
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
	if m.Inputs() != Pixels || m.Classes() != Classes {
		return nil, errors.New("zk: the circuit is for 256-pixel, 10-class models")
	}
	return frontend.Compile(ecc.BN254.ScalarField(), r1cs.NewBuilder, &Circuit{mlp: m})
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

func assignment(pixels []byte, logits []int32) (*Circuit, error) {
	packed, err := Pack(pixels)
	if err != nil {
		return nil, err
	}
	if len(logits) != Classes {
		return nil, fmt.Errorf("zk: %d logits, want %d", len(logits), Classes)
	}
	a := &Circuit{}
	for i, v := range packed {
		a.Input[i] = v
	}
	for i, v := range logits {
		a.Logits[i] = big.NewInt(int64(v))
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
	a, err := assignment(pixels, logits)
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

// Verify checks a proof that the model of vk maps pixels to logits.
func Verify(vkBytes, proofBytes []byte, pixels []byte, logits []int32) error {
	vk := groth16.NewVerifyingKey(ecc.BN254)
	if _, err := vk.ReadFrom(bytes.NewReader(vkBytes)); err != nil {
		return fmt.Errorf("zk: verifying key: %w", err)
	}
	proof := groth16.NewProof(ecc.BN254)
	if _, err := proof.ReadFrom(bytes.NewReader(proofBytes)); err != nil {
		return fmt.Errorf("%w: malformed proof: %v", ErrInvalid, err)
	}
	a, err := assignment(pixels, logits)
	if err != nil {
		return err
	}
	pub, err := frontend.NewWitness(a, ecc.BN254.ScalarField(), frontend.PublicOnly())
	if err != nil {
		return err
	}
	if err := groth16.Verify(proof, vk, pub); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return nil
}

// VerifyingKey returns the system's verifying key bytes.
func (s *System) VerifyingKey() ([]byte, error) {
	var buf bytes.Buffer
	_, err := s.VK.WriteTo(&buf)
	return buf.Bytes(), err
}
