package model

import (
	"context"
	"errors"
	"fmt"
	"math"
)

// ArchGRU is the architecture tag of a byte-level GRU language model
// (agora/tiny-lm).
//
// Its tensors, in this order, with V vocabulary bytes and H hidden units:
//
//	vocab    uint8 [V]       shift 0   the vocabulary, strictly increasing bytes
//	special  int32 [2]       shift 0   token ids of the unknown-byte fallback and
//	                                   of the start token fed before an empty prompt
//	gru.x    int16 [V, 3H]   shift 12  per-token input terms of the r, z, n gates,
//	                                   input and (for r and z) hidden biases folded in
//	gru.wh   int16 [3H, H]   shift s   recurrent weights of r, z, n
//	gru.bhn  int32 [H]       shift 12  recurrent bias of n
//	out.w    int16 [V, H]    shift o   output projection
//	out.b    int32 [V]       shift 12  output bias
//
// The hidden state h, the gates and the logits are Q12 integers (value/4096).
// One step on token t, with acc = gru.wh·h in int32 and ⌊·⌉s a rounding
// arithmetic right shift by s:
//
//	r  = σ(x[t].r + ⌊acc.r⌉s)
//	z  = σ(x[t].z + ⌊acc.z⌉s)
//	m  = clamp(⌊acc.n⌉s + bhn, ±64)
//	n  = tanh(x[t].n + ⌊r·m⌉12)
//	h' = n + ⌊z·(h - n)⌉12
//	logits = ⌊out.w·h'⌉o + out.b
//
// σ and tanh come from a 257-entry table with linear interpolation (see
// fixed.go). The parser rejects weights for which any int32 accumulator
// could exceed 2^30 in magnitude, so no arithmetic ever wraps.
const ArchGRU = "gru-int16"

// Limits of one generation request.
const (
	MaxTokens           = 2048
	MaxPromptBytes      = 8192
	MaxTemperatureMilli = 2000
)

// ErrStop, returned by the emit function of GenerateStream, ends generation
// early without an error (for stop sequences).
var ErrStop = errors.New("model: stop generation")

// LM is a loaded ArchGRU model. It is immutable and safe for concurrent use.
type LM struct {
	name, license string
	vocab         []byte
	index         [256]uint8 // byte to token id; unknown bytes map to unk
	unk, bos      int
	v, h          int
	x             []int16 // [v][3h]
	wh            []int16 // [3h][h]
	whShift       uint
	bhn           []int32
	wo            []int16 // [v][h]
	woShift       uint
	bo            []int32
}

// Vocab returns a copy of the model's vocabulary; each token is one byte.
func (m *LM) Vocab() []byte { return append([]byte(nil), m.vocab...) }

// Hidden returns the number of hidden units.
func (m *LM) Hidden() int { return m.h }

// Fallback returns the byte that stands for prompt bytes outside the
// vocabulary.
func (m *LM) Fallback() byte { return m.vocab[m.unk] }

// lmState is the per-request state. Generation allocates it once and nothing
// per token.
type lmState struct {
	h      []int16 // hidden state, Q12
	acc    []int32 // [3h] recurrent accumulators
	logits []int32 // [v], Q12
	w      []int64 // [v] sampling weights, Q30
	tok    [1]byte
}

func (m *LM) newState() *lmState {
	return &lmState{
		h:      make([]int16, m.h),
		acc:    make([]int32, 3*m.h),
		logits: make([]int32, m.v),
		w:      make([]int64, m.v),
	}
}

// step advances the state by one token.
func (m *LM) step(s *lmState, tok int) {
	n := m.h
	matvec(s.acc, m.wh, s.h)
	x := m.x[tok*3*n : (tok+1)*3*n]
	xr, xz, xn := x[:n], x[n:2*n], x[2*n:3*n]
	ar, az, an := s.acc[:n], s.acc[n:2*n], s.acc[2*n:3*n]
	bhn, h := m.bhn[:n], s.h[:n]
	for j := range h {
		r := sigmoidQ12(int32(xr[j]) + shiftRound(ar[j], m.whShift))
		z := sigmoidQ12(int32(xz[j]) + shiftRound(az[j], m.whShift))
		hn := min(max(shiftRound(an[j], m.whShift)+bhn[j], -64*one), 64*one)
		c := tanhQ12(int32(xn[j]) + (r*hn+one/2)>>12)
		h[j] = int16(c + (z*(int32(h[j])-c)+one/2)>>12)
	}
}

// computeLogits fills s.logits from the hidden state.
func (m *LM) computeLogits(s *lmState) {
	matvec(s.logits, m.wo, s.h)
	for i, b := range m.bo {
		s.logits[i] = shiftRound(s.logits[i], m.woShift) + b
	}
}

// matvec sets dst = w·x for a row-major w of len(dst) rows and len(x)
// columns. Int32 addition is exact here (the parser bounds every row), so
// the order of the four partial sums does not change the result.
func matvec(dst []int32, w, x []int16) {
	n := len(x)
	for i := range dst {
		row := w[i*n : (i+1)*n]
		var a0, a1, a2, a3 int32
		j := 0
		for ; j+4 <= n; j += 4 {
			r, v := row[j:j+4:j+4], x[j:j+4:j+4]
			a0 += int32(r[0]) * int32(v[0])
			a1 += int32(r[1]) * int32(v[1])
			a2 += int32(r[2]) * int32(v[2])
			a3 += int32(r[3]) * int32(v[3])
		}
		for ; j < n; j++ {
			a0 += int32(row[j]) * int32(x[j])
		}
		dst[i] = a0 + a1 + a2 + a3
	}
}

// sample picks the next token from s.logits: the first largest logit when
// temperatureMilli is 0, otherwise a draw from softmax(logits/T) with
// T = temperatureMilli/1000, computed with integer exp weights.
func (m *LM) sample(s *lmState, temperatureMilli int, rng *splitMix64) int {
	best := 0
	for i, l := range s.logits {
		if l > s.logits[best] {
			best = i
		}
	}
	if temperatureMilli == 0 {
		return best
	}
	top := int64(s.logits[best])
	t := int64(temperatureMilli)
	var total int64
	for i, l := range s.logits {
		w := expNeg((top - int64(l)) * 1000 / t)
		s.w[i] = w
		total += w
	}
	r := int64(rng.below(uint64(total)))
	for i, w := range s.w {
		if r < w {
			return i
		}
		r -= w
	}
	return best // unreachable: the weights sum to total
}

// checkRequest validates the parameters of a generation request.
func checkRequest(prompt []byte, maxTokens, temperatureMilli int) error {
	switch {
	case maxTokens < 1 || maxTokens > MaxTokens:
		return fmt.Errorf("%w: max tokens %d, want 1 to %d", ErrInput, maxTokens, MaxTokens)
	case temperatureMilli < 0 || temperatureMilli > MaxTemperatureMilli:
		return fmt.Errorf("%w: temperature %d thousandths, want 0 to %d", ErrInput, temperatureMilli, MaxTemperatureMilli)
	case len(prompt) > MaxPromptBytes:
		return fmt.Errorf("%w: prompt of %d bytes, want at most %d", ErrInput, len(prompt), MaxPromptBytes)
	}
	return nil
}

// prime runs the prompt through a fresh state; an empty prompt feeds the
// start token so the first logits come from a stepped state too.
func (m *LM) prime(ctx context.Context, prompt []byte) (*lmState, error) {
	s := m.newState()
	if len(prompt) == 0 {
		m.step(s, m.bos)
	}
	for i, b := range prompt {
		if i%8 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		m.step(s, int(m.index[b]))
	}
	return s, nil
}

// Generate continues prompt by maxTokens bytes (1 to MaxTokens) sampled at
// temperatureMilli thousandths (0 to MaxTemperatureMilli; 0 is greedy) with
// a SplitMix64 stream seeded by seed. The output is a function of the
// arguments and the weights alone: identical on every machine. Prompt bytes
// outside the vocabulary are read as Fallback(). Errors wrap ErrInput.
func (m *LM) Generate(prompt []byte, maxTokens, temperatureMilli int, seed uint64) ([]byte, error) {
	if err := checkRequest(prompt, maxTokens, temperatureMilli); err != nil {
		return nil, err
	}
	out := make([]byte, 0, maxTokens)
	err := m.GenerateStream(prompt, maxTokens, temperatureMilli, seed, func(tok []byte) error {
		out = append(out, tok...)
		return nil
	})
	return out, err
}

// GenerateStream is Generate that calls emit with each token as it is
// sampled, for server-sent events. The slice passed to emit is valid only
// during the call. If emit returns ErrStop, generation ends and
// GenerateStream returns nil; any other error ends it and is returned.
func (m *LM) GenerateStream(prompt []byte, maxTokens, temperatureMilli int, seed uint64, emit func(tok []byte) error) error {
	return m.GenerateStreamContext(context.Background(), prompt, maxTokens, temperatureMilli, seed, emit)
}

// GenerateStreamContext is GenerateStream that stops within a step (a
// prompt byte or a token, tens of µs) of ctx ending, and returns its
// error: a provider starts the model before a payment's signature is
// checked, and a forged one must not cost it a whole answer.
func (m *LM) GenerateStreamContext(ctx context.Context, prompt []byte, maxTokens, temperatureMilli int, seed uint64, emit func(tok []byte) error) error {
	if err := checkRequest(prompt, maxTokens, temperatureMilli); err != nil {
		return err
	}
	s, err := m.prime(ctx, prompt)
	if err != nil {
		return err
	}
	rng := splitMix64{seed}
	for i := range maxTokens {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		m.computeLogits(s)
		t := m.sample(s, temperatureMilli, &rng)
		s.tok[0] = m.vocab[t]
		if err := emit(s.tok[:]); err != nil {
			if errors.Is(err, ErrStop) {
				return nil
			}
			return err
		}
		if i+1 < maxTokens {
			m.step(s, t)
		}
	}
	return nil
}

// BitsPerChar returns the integer model's cross-entropy on text, in bits per
// byte, predicting text[1:] from the state primed with text[0]. Bytes
// outside the vocabulary count as Fallback(). It is for evaluation; the
// floating-point log here is not on the inference path.
func (m *LM) BitsPerChar(text []byte) (float64, error) {
	if len(text) < 2 {
		return 0, fmt.Errorf("%w: need at least 2 bytes of text", ErrInput)
	}
	s := m.newState()
	var nats float64
	for i := 0; i+1 < len(text); i++ {
		m.step(s, int(m.index[text[i]]))
		m.computeLogits(s)
		nats += crossEntropyQ12(s.logits, int(m.index[text[i+1]]))
	}
	return nats / float64(len(text)-1) / math.Ln2, nil
}

func crossEntropyQ12(logits []int32, target int) float64 {
	top := logits[0]
	for _, l := range logits {
		top = max(top, l)
	}
	var sum float64
	for _, l := range logits {
		sum += math.Exp(float64(l-top) / one)
	}
	return math.Log(sum) - float64(logits[target]-top)/one
}

// Encode returns the model as a weights file.
func (m *LM) Encode() []byte {
	e := newEncoder(ArchGRU, m.name, m.license)
	e.uint8s("vocab", 0, []int{m.v}, m.vocab)
	e.int32s("special", 0, []int{2}, []int32{int32(m.unk), int32(m.bos)})
	e.int16s("gru.x", 12, []int{m.v, 3 * m.h}, m.x)
	e.int16s("gru.wh", int(m.whShift), []int{3 * m.h, m.h}, m.wh)
	e.int32s("gru.bhn", 12, []int{m.h}, m.bhn)
	e.int16s("out.w", int(m.woShift), []int{m.v, m.h}, m.wo)
	e.int32s("out.b", 12, []int{m.v}, m.bo)
	return e.bytes()
}

// Bounds that keep every intermediate value inside int32 (see ArchGRU).
const (
	maxAccumulator = 1 << 30
	maxBias        = 1 << 24
)

func parseLM(f *weightsFile) (*LM, error) {
	if err := f.checkNames("vocab", "special", "gru.x", "gru.wh", "gru.bhn", "out.w", "out.b"); err != nil {
		return nil, err
	}
	vt, err := f.lookup("vocab", dtUint8, 0, 0)
	if err != nil {
		return nil, err
	}
	m := &LM{name: f.name, license: f.license, vocab: vt.uint8s(), v: vt.dims[0]}
	if m.v < 2 {
		return nil, formatError("vocabulary of %d bytes, want at least 2", m.v)
	}
	for i := 1; i < m.v; i++ {
		if m.vocab[i] <= m.vocab[i-1] {
			return nil, formatError("vocabulary is not strictly increasing at %d", i)
		}
	}
	st, err := f.lookup("special", dtInt32, 0, 2)
	if err != nil {
		return nil, err
	}
	sp := st.int32s()
	if sp[0] < 0 || int(sp[0]) >= m.v || sp[1] < 0 || int(sp[1]) >= m.v {
		return nil, formatError("special token ids %v outside the vocabulary of %d", sp, m.v)
	}
	m.unk, m.bos = int(sp[0]), int(sp[1])
	for i := range m.index {
		m.index[i] = uint8(m.unk)
	}
	for i, b := range m.vocab {
		m.index[b] = uint8(i)
	}

	wh, err := f.lookup("gru.wh", dtInt16, anyShift, 0, 0)
	if err != nil {
		return nil, err
	}
	m.h = wh.dims[1]
	if wh.dims[0] != 3*m.h {
		return nil, formatError("tensor %q: shape %v, want [3H H]", "gru.wh", wh.dims)
	}
	xt, err := f.lookup("gru.x", dtInt16, 12, m.v, 3*m.h)
	if err != nil {
		return nil, err
	}
	bt, err := f.lookup("gru.bhn", dtInt32, 12, m.h)
	if err != nil {
		return nil, err
	}
	wo, err := f.lookup("out.w", dtInt16, anyShift, m.v, m.h)
	if err != nil {
		return nil, err
	}
	bo, err := f.lookup("out.b", dtInt32, 12, m.v)
	if err != nil {
		return nil, err
	}
	if wh.shift < 0 || wh.shift > 24 || wo.shift < 0 || wo.shift > 24 {
		return nil, formatError("weight shifts %d and %d, want 0 to 24", wh.shift, wo.shift)
	}
	m.x, m.wh, m.bhn, m.wo, m.bo = xt.int16s(), wh.int16s(), bt.int32s(), wo.int16s(), bo.int32s()
	m.whShift, m.woShift = uint(wh.shift), uint(wo.shift)
	for _, b := range append(append([]int32(nil), m.bhn...), m.bo...) {
		if b > maxBias || b < -maxBias {
			return nil, formatError("bias %d beyond ±%d", b, maxBias)
		}
	}
	if err := checkRows("gru.wh", m.wh, m.h); err != nil {
		return nil, err
	}
	if err := checkRows("out.w", m.wo, m.h); err != nil {
		return nil, err
	}
	return m, nil
}

// checkRows rejects weights whose product with a Q12 state in [-1, 1] could
// reach maxAccumulator.
func checkRows(name string, w []int16, cols int) error {
	for r := 0; r*cols < len(w); r++ {
		var sum int64
		for _, v := range w[r*cols : (r+1)*cols] {
			a := int64(v)
			sum += max(a, -a)
		}
		if sum*one >= maxAccumulator {
			return formatError("tensor %q row %d can overflow its accumulator", name, r)
		}
	}
	return nil
}
