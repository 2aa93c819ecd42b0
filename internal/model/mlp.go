package model

import (
	"errors"
	"fmt"
	"math"
)

// ArchMLP is the architecture tag of a two-layer integer perceptron
// classifier (agora/digits-mlp).
//
// Its tensors, in this order, with H hidden units, I inputs and C classes:
//
//	fc1.w  int8  [H, I]  shift s1
//	fc1.b  int32 [H]     shift 8+s1    (the scale of fc1's accumulator)
//	fc2.w  int8  [C, H]  shift s2
//	fc2.b  int32 [C]     shift a+s2    (a: the hidden activations' shift)
//
// Inference, with x the input bytes read as x/256:
//
//	acc1[j] = fc1.b[j] + Σ fc1.w[j][i]·x[i]                 (int32)
//	h[j]    = clamp(round(acc1[j] / 2^(8+s1-a)), 0, 127)     (ReLU, int8)
//	logit[k] = fc2.b[k] + Σ fc2.w[k][j]·h[j]                (int32)
//
// where round is an arithmetic right shift that rounds half up, and the
// class is the first index of the largest logit. Every operation is a small
// integer one so that the network can be proven in a Groth16 circuit.
const ArchMLP = "mlp-int8"

// ErrInput is wrapped by errors about a request's input: its size, length
// or parameters.
var ErrInput = errors.New("model: invalid input")

// MLP is a loaded ArchMLP model. It is immutable and safe for concurrent use.
type MLP struct {
	name, license string
	inputs        int
	hidden        int
	classes       int
	w1            []int8
	b1            []int32
	w2            []int8
	b2            []int32
	s1, s2        int // weight shifts
	act           int // shift of the hidden activations
}

// Inputs returns the length of the input Infer expects.
func (m *MLP) Inputs() int { return m.inputs }

// Classes returns the number of logits Infer returns.
func (m *MLP) Classes() int { return m.classes }

// Hidden returns the number of hidden units.
func (m *MLP) Hidden() int { return m.hidden }

// Infer classifies one input (for agora/digits-mlp, DigitPixels grayscale
// bytes) and returns the logits, whose real value is logit·2^-LogitShift,
// and the predicted class.
func (m *MLP) Infer(input []byte) (logits []int32, class int, err error) {
	if len(input) != m.inputs {
		return nil, 0, fmt.Errorf("%w: got %d input bytes, want %d", ErrInput, len(input), m.inputs)
	}
	var hbuf [256]int32
	h := hbuf[:0]
	if m.hidden > len(hbuf) {
		h = make([]int32, 0, m.hidden)
	}
	rq := uint(8 + m.s1 - m.act)
	for j := range m.hidden {
		row := m.w1[j*m.inputs : (j+1)*m.inputs]
		acc := m.b1[j]
		for i, x := range input[:len(row)] {
			acc += int32(row[i]) * int32(x)
		}
		h = append(h, min(max(shiftRound(acc, rq), 0), 127))
	}
	logits = make([]int32, m.classes)
	for k := range logits {
		row := m.w2[k*m.hidden : (k+1)*m.hidden]
		acc := m.b2[k]
		for j, v := range h[:len(row)] {
			acc += int32(row[j]) * v
		}
		logits[k] = acc
		if acc > logits[class] {
			class = k
		}
	}
	return logits, class, nil
}

// LogitShift is the shift of the logits: their real value is
// logit·2^-LogitShift.
func (m *MLP) LogitShift() int { return m.act + m.s2 }

// Encode returns the model as a weights file.
func (m *MLP) Encode() []byte {
	e := newEncoder(ArchMLP, m.name, m.license)
	e.int8s("fc1.w", m.s1, []int{m.hidden, m.inputs}, m.w1)
	e.int32s("fc1.b", 8+m.s1, []int{m.hidden}, m.b1)
	e.int8s("fc2.w", m.s2, []int{m.classes, m.hidden}, m.w2)
	e.int32s("fc2.b", m.act+m.s2, []int{m.classes}, m.b2)
	return e.bytes()
}

func parseMLP(f *weightsFile) (*MLP, error) {
	if err := f.checkNames("fc1.w", "fc1.b", "fc2.w", "fc2.b"); err != nil {
		return nil, err
	}
	w1, err := f.lookup("fc1.w", dtInt8, anyShift, 0, 0)
	if err != nil {
		return nil, err
	}
	hidden, inputs := w1.dims[0], w1.dims[1]
	b1, err := f.lookup("fc1.b", dtInt32, 8+int(w1.shift), hidden)
	if err != nil {
		return nil, err
	}
	w2, err := f.lookup("fc2.w", dtInt8, anyShift, 0, hidden)
	if err != nil {
		return nil, err
	}
	classes := w2.dims[0]
	b2, err := f.lookup("fc2.b", dtInt32, anyShift, classes)
	if err != nil {
		return nil, err
	}
	m := &MLP{
		name: f.name, license: f.license,
		inputs: inputs, hidden: hidden, classes: classes,
		w1: w1.int8s(), b1: b1.int32s(), w2: w2.int8s(), b2: b2.int32s(),
		s1: int(w1.shift), s2: int(w2.shift), act: int(b2.shift) - int(w2.shift),
	}
	if m.s1 < 0 || m.s1 > 16 || m.s2 < 0 || m.s2 > 16 {
		return nil, formatError("weight shifts %d and %d, want 0 to 16", m.s1, m.s2)
	}
	if rq := 8 + m.s1 - m.act; m.act < 0 || rq < 0 || rq > 30 {
		return nil, formatError("hidden activation shift %d gives requantisation shift %d, want 0 to 30", m.act, rq)
	}
	if err := checkRange("fc1", m.b1, widen(m.w1), inputs, 255); err != nil {
		return nil, err
	}
	if err := checkRange("fc2", m.b2, widen(m.w2), hidden, 127); err != nil {
		return nil, err
	}
	return m, nil
}

func widen[T int8 | int16](w []T) []int32 {
	out := make([]int32, len(w))
	for i, v := range w {
		out[i] = int32(v)
	}
	return out
}

// checkRange rejects a layer whose int32 accumulator could overflow for
// some input with elements in [-maxIn, maxIn], so that no file can make
// inference depend on wrap-around.
func checkRange(layer string, bias, w []int32, cols int, maxIn int64) error {
	for r, b := range bias {
		sum := int64(b)
		if sum < 0 {
			sum = -sum
		}
		for _, v := range w[r*cols : (r+1)*cols] {
			sum += int64(max(v, -v)) * maxIn
		}
		if sum > math.MaxInt32 {
			return formatError("%s row %d can overflow an int32 accumulator", layer, r)
		}
	}
	return nil
}

// Layers exposes the weights, biases and the hidden layer's
// requantisation shift, for circuits that prove an inference
// (internal/zk). The slices are the model's own: do not modify them.
func (m *MLP) Layers() (w1 []int8, b1 []int32, w2 []int8, b2 []int32, shift uint) {
	return m.w1, m.b1, m.w2, m.b2, uint(8 + m.s1 - m.act)
}
