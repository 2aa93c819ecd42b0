package zk

import (
	"math/big"

	"github.com/consensys/gnark/frontend"

	"github.com/agoranet/agora/internal/model"
)

// packedCircuit is the circuit before each pixel was a public input of
// its own: the pixels packed packedPerEl to an input and unpacked with
// bit decompositions that also range-checked them, and every hidden
// unit's clamp through a 34-bit decomposition and an OR of its top bits.
// 3,777 constraints for digits-mlp. A chain that registered a key of
// this circuit keeps it for good, so its provers still prove with it:
// Load picks this circuit for keys of its shape. It must not change, or
// those keys stop fitting it.
type packedCircuit struct {
	Input  []frontend.Variable `gnark:",public"`
	Logits []frontend.Variable `gnark:",public"`

	mlp *model.MLP
}

func newPackedCircuit(m *model.MLP) *packedCircuit {
	return &packedCircuit{Input: make([]frontend.Variable, packed(m.Inputs())), Logits: make([]frontend.Variable, m.Classes()), mlp: m}
}

// Define builds the constraints, as they were.
func (c *packedCircuit) Define(api frontend.API) error {
	w1, b1, w2, b2, shift := c.mlp.Layers()
	hidden := len(b1)
	pixels := c.mlp.Inputs()
	x := make([]frontend.Variable, 0, pixels)
	for k := range c.Input {
		n := min(packedPerEl, pixels-k*packedPerEl)
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
