package model

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"time"
)

// LMTrainConfig configures TrainLM.
type LMTrainConfig struct {
	// Name and License are written into the weights file.
	Name, License string
	// Seed seeds the initial weights.
	Seed uint64
	// Hidden is the GRU's hidden size.
	Hidden int
	// SeqLen is the number of steps of truncated backpropagation through
	// time; the hidden state carries over between chunks.
	SeqLen int
	// Batch is the number of parallel streams through the corpus.
	Batch int
	// Steps is the number of Adam steps, each over Batch·SeqLen bytes.
	Steps int
	// LearningRate is Adam's peak step size; it decays to a tenth by the end.
	LearningRate float64
	// ValidFraction is the fraction of the corpus, taken from its end, held
	// out for validation.
	ValidFraction float64
	// EvalEvery is the number of steps between validation reports in the
	// log; 0 reports only at the end.
	EvalEvery int
	// EvalBytes caps the held-out bytes each report reads.
	EvalBytes int
}

// DefaultLMTrainConfig returns the configuration of the built-in
// agora/tiny-lm: about 7 passes over Tiny Shakespeare, 562 s on one core,
// 2.07 bits/byte on the first 20 kB of held-out text.
func DefaultLMTrainConfig() LMTrainConfig {
	return LMTrainConfig{
		Name:          TinyLMName,
		License:       BuiltinLicense,
		Seed:          1,
		Hidden:        128,
		SeqLen:        64,
		Batch:         16,
		Steps:         7000,
		LearningRate:  3e-3,
		ValidFraction: 0.05,
		EvalEvery:     500,
		EvalBytes:     20000,
	}
}

// Validate reports the first invalid field.
func (c LMTrainConfig) Validate() error {
	switch {
	case !validString(c.Name) || !validString(c.License):
		return errors.New("model: name and license must be 1 to 128 printable ASCII bytes")
	case c.Hidden < 1 || c.Hidden > 1024:
		return fmt.Errorf("model: hidden size %d, want 1 to 1024", c.Hidden)
	case c.SeqLen < 1 || c.SeqLen > 4096:
		return fmt.Errorf("model: sequence length %d, want 1 to 4096", c.SeqLen)
	case c.Batch < 1 || c.Batch > 1024:
		return fmt.Errorf("model: batch %d, want 1 to 1024", c.Batch)
	case c.Steps < 1:
		return fmt.Errorf("model: steps %d, want at least 1", c.Steps)
	case !(c.LearningRate > 0 && c.LearningRate < 1):
		return fmt.Errorf("model: learning rate %g, want in (0, 1)", c.LearningRate)
	case !(c.ValidFraction > 0 && c.ValidFraction < 0.5):
		return fmt.Errorf("model: validation fraction %g, want in (0, 0.5)", c.ValidFraction)
	case c.EvalEvery < 0:
		return fmt.Errorf("model: eval interval %d, want at least 0", c.EvalEvery)
	case c.EvalBytes < 2:
		return fmt.Errorf("model: eval bytes %d, want at least 2", c.EvalBytes)
	}
	return nil
}

// ErrCorpus is returned by TrainLM for a corpus it cannot train on.
var ErrCorpus = errors.New("model: unusable training corpus")

// gru holds float64 GRU parameters as views into one flat slice, so that
// the optimiser and the gradient share a layout.
type gru struct {
	v, h   int
	p      []float64
	wx     []float64 // [v][3h] per-token input weights of r, z, n
	b      []float64 // [3h] biases of r, z (input plus hidden) and n (input)
	wh     []float64 // [3h][h]
	bhn    []float64 // [h]
	wo, bo []float64 // [v][h], [v]
}

func newGRU(v, h int) *gru {
	g := &gru{v: v, h: h, p: make([]float64, v*3*h+3*h+3*h*h+h+v*h+v)}
	p := g.p
	take := func(n int) []float64 {
		s := p[:n:n]
		p = p[n:]
		return s
	}
	g.wx, g.b, g.wh, g.bhn, g.wo, g.bo = take(v*3*h), take(3*h), take(3*h*h), take(h), take(v*h), take(v)
	return g
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// gruStep is what the backward pass needs from one forward step.
type gruStep struct {
	tok, target               int
	hp, r, z, n, hn, h, probs []float64
}

// forward runs one step from hp on token tok into st (whose slices are
// preallocated), and returns the loss for target.
func (g *gru) forward(st *gruStep, acc []float64) float64 {
	h := g.h
	hp := st.hp
	for i := range 3 * h {
		row := g.wh[i*h : (i+1)*h]
		var s float64
		for k, w := range row {
			s += w * hp[k]
		}
		acc[i] = s
	}
	x := g.wx[st.tok*3*h : (st.tok+1)*3*h]
	for j := range h {
		r := sigmoid(x[j] + g.b[j] + acc[j])
		z := sigmoid(x[h+j] + g.b[h+j] + acc[h+j])
		hn := acc[2*h+j] + g.bhn[j]
		n := math.Tanh(x[2*h+j] + g.b[2*h+j] + r*hn)
		st.r[j], st.z[j], st.hn[j], st.n[j] = r, z, hn, n
		st.h[j] = (1-z)*n + z*hp[j]
	}
	if st.probs == nil {
		return 0
	}
	top := math.Inf(-1)
	for v := range g.v {
		row := g.wo[v*h : (v+1)*h]
		s := g.bo[v]
		for k, w := range row {
			s += w * st.h[k]
		}
		st.probs[v] = s
		top = max(top, s)
	}
	var sum float64
	for v, l := range st.probs {
		e := math.Exp(l - top)
		st.probs[v] = e
		sum += e
	}
	for v := range st.probs {
		st.probs[v] /= sum
	}
	return -math.Log(max(st.probs[st.target], 1e-300))
}

// backward accumulates into grad the gradient of one step, scaled by
// scale, given dh (the gradient flowing into st.h from later steps, which
// it overwrites with the gradient for st.hp). tmp needs 4h floats.
func (g *gru) backward(grad *gru, st *gruStep, dh []float64, scale float64, tmp []float64) {
	h := g.h
	for v, p := range st.probs {
		d := p * scale
		if v == st.target {
			d -= scale
		}
		grad.bo[v] += d
		row, grow := g.wo[v*h:(v+1)*h], grad.wo[v*h:(v+1)*h]
		for k := range row {
			grow[k] += d * st.h[k]
			dh[k] += d * row[k]
		}
	}
	gates, dhp := tmp[:3*h], tmp[3*h:4*h]
	gx := grad.wx[st.tok*3*h : (st.tok+1)*3*h]
	for j := range h {
		r, z, n, hn := st.r[j], st.z[j], st.n[j], st.hn[j]
		dn := dh[j] * (1 - z)
		dz := dh[j] * (st.hp[j] - n)
		dhp[j] = dh[j] * z
		dan := dn * (1 - n*n)
		daz := dz * z * (1 - z)
		dar := dan * hn * r * (1 - r)
		dhn := dan * r
		gates[j], gates[h+j], gates[2*h+j] = dar, daz, dhn
		gx[j] += dar
		gx[h+j] += daz
		gx[2*h+j] += dan
		grad.b[j] += dar
		grad.b[h+j] += daz
		grad.b[2*h+j] += dan
		grad.bhn[j] += dhn
	}
	for i, d := range gates {
		if d == 0 {
			continue
		}
		row, grow := g.wh[i*h:(i+1)*h], grad.wh[i*h:(i+1)*h]
		for k := range row {
			grow[k] += d * st.hp[k]
			dhp[k] += d * row[k]
		}
	}
	copy(dh, dhp)
}

// TrainLM trains a byte-level GRU on corpus and quantises it to ArchGRU. Its
// vocabulary is the set of bytes in corpus. It writes progress to log
// (which may be nil) and stops early if ctx is done. Training is
// single-threaded float64, deterministic for a given corpus and config on
// one architecture; the weights are not promised bit-identical across
// architectures (fused multiply-add may differ), only inference is.
func TrainLM(ctx context.Context, corpus []byte, cfg LMTrainConfig, log io.Writer) (*LM, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = io.Discard
	}
	nValid := int(float64(len(corpus)) * cfg.ValidFraction)
	train, valid := corpus[:len(corpus)-nValid], corpus[len(corpus)-nValid:]
	if len(train) < cfg.SeqLen+2 || len(valid) < 2 {
		return nil, fmt.Errorf("%w: %d bytes is too short for sequence length %d", ErrCorpus, len(corpus), cfg.SeqLen)
	}
	var seen [256]bool
	for _, b := range corpus {
		seen[b] = true
	}
	var vocab []byte
	var index [256]int
	for b, ok := range seen {
		if ok {
			index[b] = len(vocab)
			vocab = append(vocab, byte(b))
		}
	}
	if len(vocab) < 2 {
		return nil, fmt.Errorf("%w: it has %d distinct bytes, want at least 2", ErrCorpus, len(vocab))
	}
	start := time.Now()
	H, V, T, B := cfg.Hidden, len(vocab), cfg.SeqLen, cfg.Batch
	fmt.Fprintf(log, "lm: %d training bytes, %d held out, vocabulary %d, hidden %d, %d steps of %d×%d (%.2f passes)\n",
		len(train), len(valid), V, H, cfg.Steps, B, T, float64(cfg.Steps)*float64(B*T)/float64(len(train)))

	model := newGRU(V, H)
	rng := splitMix64{mix(cfg.Seed, 1<<42)}
	bound := 1 / math.Sqrt(float64(H))
	for i := range model.p {
		model.p[i] = (rng.float()*2 - 1) * bound
	}
	clear(model.b)
	clear(model.bhn)
	clear(model.bo)
	grad := newGRU(V, H)
	opt := newAdam(len(model.p))

	// Per-stream caches for one chunk.
	steps := make([][]gruStep, B)
	hs := make([][]float64, B) // the hidden state carried between chunks
	pos := make([]int, B)
	for b := range steps {
		steps[b] = make([]gruStep, T)
		for t := range steps[b] {
			buf := make([]float64, 5*H+V)
			st := &steps[b][t]
			st.r, st.z, st.n, st.hn, st.h, st.probs = buf[:H], buf[H:2*H], buf[2*H:3*H], buf[3*H:4*H], buf[4*H:5*H], buf[5*H:]
		}
		hs[b] = make([]float64, H)
		pos[b] = b * (len(train) / B)
	}
	acc := make([]float64, 3*H)
	dh := make([]float64, H)
	tmp := make([]float64, 4*H)
	scale := 1 / float64(B*T)
	var runLoss float64
	var runN int
	for step := range cfg.Steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		clear(grad.p)
		for b := range B {
			if pos[b]+T+1 > len(train) {
				pos[b] = 0
			}
			for t := range T {
				st := &steps[b][t]
				st.tok, st.target = index[train[pos[b]+t]], index[train[pos[b]+t+1]]
				st.hp = hs[b]
				if t > 0 {
					st.hp = steps[b][t-1].h
				}
				runLoss += model.forward(st, acc)
				runN++
			}
			copy(hs[b], steps[b][T-1].h)
			pos[b] += T
			clear(dh)
			for t := T - 1; t >= 0; t-- {
				model.backward(grad, &steps[b][t], dh, scale, tmp)
			}
		}
		var norm float64
		for _, x := range grad.p {
			norm += x * x
		}
		if norm = math.Sqrt(norm); norm > 1 {
			for i := range grad.p {
				grad.p[i] /= norm
			}
		}
		lr := cfg.LearningRate * (1 - 0.9*float64(step)/float64(cfg.Steps))
		opt.step(model.p, grad.p, lr, 0)
		if last := step+1 == cfg.Steps; last || (cfg.EvalEvery > 0 && (step+1)%cfg.EvalEvery == 0) {
			fmt.Fprintf(log, "lm: step %d/%d train loss %.4f nats/byte, held-out %.4f bits/byte (%.0fs)\n",
				step+1, cfg.Steps, runLoss/float64(runN), model.bitsPerChar(valid[:min(len(valid), cfg.EvalBytes)], index[:]), time.Since(start).Seconds())
			runLoss, runN = 0, 0
		}
	}

	m := quantizeLM(cfg, model, vocab)
	bpc, err := m.BitsPerChar(valid[:min(len(valid), cfg.EvalBytes)])
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "lm: integer model held-out %.4f bits/byte; trained in %.0fs\n", bpc, time.Since(start).Seconds())
	return m, nil
}

// bitsPerChar is the float model's cross-entropy on text in bits per byte.
func (g *gru) bitsPerChar(text []byte, index []int) float64 {
	h := g.h
	st := &gruStep{hp: make([]float64, h)}
	buf := make([]float64, 5*h+g.v)
	st.r, st.z, st.n, st.hn, st.h, st.probs = buf[:h], buf[h:2*h], buf[2*h:3*h], buf[3*h:4*h], buf[4*h:5*h], buf[5*h:]
	acc := make([]float64, 3*h)
	var nats float64
	for i := 0; i+1 < len(text); i++ {
		st.tok, st.target = index[text[i]], index[text[i+1]]
		nats += g.forward(st, acc)
		copy(st.hp, st.h)
	}
	return nats / float64(len(text)-1) / math.Ln2
}

// weightShift returns the largest shift at most 14 that keeps the
// quantised w within int16 and every row's accumulator within
// maxAccumulator (see checkRows).
func weightShift(w []float64, cols int) int {
	var rowMax float64
	for r := 0; r*cols < len(w); r++ {
		var s float64
		for _, x := range w[r*cols : (r+1)*cols] {
			s += math.Abs(x)
		}
		rowMax = max(rowMax, s)
	}
	s := min(shiftFor(maxAbs(w), 32767, 14), shiftFor(rowMax*one, maxAccumulator/2, 14))
	for s > 0 && checkRows("", quantize[int16](w, s, 32767), cols) != nil {
		s--
	}
	return s
}

func quantizeLM(cfg LMTrainConfig, g *gru, vocab []byte) *LM {
	h, v := g.h, g.v
	m := &LM{name: cfg.Name, license: cfg.License, vocab: slices.Clone(vocab), v: v, h: h}
	m.unk, m.bos = 0, 0
	if i := slices.Index(vocab, ' '); i >= 0 {
		m.unk, m.bos = i, i
	}
	if i := slices.Index(vocab, '\n'); i >= 0 {
		m.bos = i
	}
	for i := range m.index {
		m.index[i] = uint8(m.unk)
	}
	for i, b := range vocab {
		m.index[b] = uint8(i)
	}
	x := make([]float64, len(g.wx))
	for t := range v {
		for i := range 3 * h {
			x[t*3*h+i] = g.wx[t*3*h+i] + g.b[i]
		}
	}
	m.x = quantize[int16](x, 12, 32767)
	m.whShift = uint(weightShift(g.wh, h))
	m.wh = quantize[int16](g.wh, int(m.whShift), 32767)
	m.bhn = quantize[int32](g.bhn, 12, maxBias)
	m.woShift = uint(weightShift(g.wo, h))
	m.wo = quantize[int16](g.wo, int(m.woShift), 32767)
	m.bo = quantize[int32](g.bo, 12, maxBias)
	return m
}
