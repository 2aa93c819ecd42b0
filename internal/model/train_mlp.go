package model

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
)

// DigitsTrainConfig configures TrainDigits.
type DigitsTrainConfig struct {
	// Name and License are written into the weights file.
	Name, License string
	// Seed seeds the training images and the initial weights.
	Seed uint64
	// TestSeed seeds the held-out images; it must differ from Seed.
	TestSeed uint64
	// TrainSamples is the number of fresh images drawn for each epoch.
	TrainSamples int
	// TestSamples is the size of the held-out set.
	TestSamples int
	// Hidden is the number of hidden units; small, for the zk circuit.
	Hidden int
	// Side is the images' side in pixels (GenerateDigitSide); 0 means
	// DigitSide, agora/digits-mlp's 16.
	Side int
	// Epochs is the number of passes, each over new images.
	Epochs int
	// BatchSize is the number of images per Adam step.
	BatchSize int
	// LearningRate is Adam's initial step size; it decays linearly to zero.
	LearningRate float64
}

// DefaultDigitsTrainConfig returns the configuration of the built-in
// agora/digits-mlp, which trains in about 13 s on one core and classifies
// 99.76% of the 5000 held-out images (TestSeed 2) correctly.
func DefaultDigitsTrainConfig() DigitsTrainConfig {
	return DigitsTrainConfig{
		Name:         DigitsName,
		License:      BuiltinLicense,
		Seed:         1,
		TestSeed:     2,
		TrainSamples: 20000,
		TestSamples:  5000,
		Hidden:       32,
		Epochs:       12,
		BatchSize:    32,
		LearningRate: 3e-3,
	}
}

// Validate reports the first invalid field.
func (c DigitsTrainConfig) Validate() error {
	switch {
	case !validString(c.Name) || !validString(c.License):
		return errors.New("model: name and license must be 1 to 128 printable ASCII bytes")
	case c.Seed == c.TestSeed:
		return errors.New("model: test seed must differ from the training seed")
	case c.TrainSamples < 10 || c.TrainSamples > 1_000_000:
		return fmt.Errorf("model: train samples %d, want 10 to 1000000", c.TrainSamples)
	case c.TestSamples < 10 || c.TestSamples > 1_000_000:
		return fmt.Errorf("model: test samples %d, want 10 to 1000000", c.TestSamples)
	case c.Hidden < 1 || c.Hidden > 256:
		return fmt.Errorf("model: hidden units %d, want 1 to 256", c.Hidden)
	case c.Side != 0 && (c.Side < MinDigitSide || c.Side > MaxDigitSide):
		return fmt.Errorf("model: image side %d, want %d to %d (or 0 for %d)", c.Side, MinDigitSide, MaxDigitSide, DigitSide)
	case c.Epochs < 1 || c.Epochs > 1000:
		return fmt.Errorf("model: epochs %d, want 1 to 1000", c.Epochs)
	case c.BatchSize < 1 || c.BatchSize > c.TrainSamples:
		return fmt.Errorf("model: batch size %d, want 1 to the train samples", c.BatchSize)
	case !(c.LearningRate > 0 && c.LearningRate < 1):
		return fmt.Errorf("model: learning rate %g, want in (0, 1)", c.LearningRate)
	}
	return nil
}

func (c DigitsTrainConfig) side() int {
	if c.Side == 0 {
		return DigitSide
	}
	return c.Side
}

// adam is the Adam optimiser over one flat parameter vector.
type adam struct {
	m, v []float64
	t    int
}

func newAdam(n int) *adam { return &adam{m: make([]float64, n), v: make([]float64, n)} }

func (a *adam) step(p, g []float64, lr, decay float64) {
	const b1, b2, eps = 0.9, 0.999, 1e-8
	a.t++
	c1 := 1 - math.Pow(b1, float64(a.t))
	c2 := 1 - math.Pow(b2, float64(a.t))
	for i := range p {
		gi := g[i] + decay*p[i]
		a.m[i] = b1*a.m[i] + (1-b1)*gi
		a.v[i] = b2*a.v[i] + (1-b2)*gi*gi
		p[i] -= lr * (a.m[i] / c1) / (math.Sqrt(a.v[i]/c2) + eps)
	}
}

// TrainDigits trains an MLP on the digits data set and quantises it. It
// writes progress to log (which may be nil) and stops early if ctx is done.
// Training is single-threaded float64, so it is deterministic for a given
// config on one architecture; weights are not promised to be bit-identical
// across architectures (fused multiply-add may differ), only inference is.
func TrainDigits(ctx context.Context, cfg DigitsTrainConfig, log io.Writer) (*MLP, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = io.Discard
	}
	start := time.Now()
	side := cfg.side()
	in, out := side*side, DigitClasses
	hid := cfg.Hidden
	// Parameters in one slice: w1 [hid][in], b1 [hid], w2 [out][hid], b2 [out].
	n1, n2 := hid*in, out*hid
	p := make([]float64, n1+hid+n2+out)
	w1, b1 := p[:n1], p[n1:n1+hid]
	w2, b2 := p[n1+hid:n1+hid+n2], p[n1+hid+n2:]
	rng := splitMix64{mix(cfg.Seed, 1<<40)}
	for i := range w1 {
		w1[i] = (rng.float()*2 - 1) * math.Sqrt(6.0/float64(in))
	}
	for i := range w2 {
		w2[i] = (rng.float()*2 - 1) * math.Sqrt(6.0/float64(hid))
	}
	g := make([]float64, len(p))
	gw1, gb1 := g[:n1], g[n1:n1+hid]
	gw2, gb2 := g[n1+hid:n1+hid+n2], g[n1+hid+n2:]
	opt := newAdam(len(p))

	x := make([]float64, in)
	h := make([]float64, hid)
	dh := make([]float64, hid)
	logits := make([]float64, out)
	steps := cfg.Epochs * (cfg.TrainSamples / cfg.BatchSize)
	step := 0
	for epoch := range cfg.Epochs {
		images, labels := DigitsDatasetSide(mix(cfg.Seed, uint64(epoch)), cfg.TrainSamples, side)
		order := make([]int, len(images))
		for i := range order {
			order[i] = i
		}
		for i := len(order) - 1; i > 0; i-- {
			j := int(rng.below(uint64(i + 1)))
			order[i], order[j] = order[j], order[i]
		}
		var loss float64
		for b := 0; b+cfg.BatchSize <= len(order); b += cfg.BatchSize {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			clear(g)
			for _, idx := range order[b : b+cfg.BatchSize] {
				for i, v := range images[idx] {
					x[i] = float64(v) / 256
				}
				for j := range hid {
					s := b1[j]
					for i, w := range w1[j*in : (j+1)*in] {
						s += w * x[i]
					}
					h[j] = max(s, 0)
				}
				loss += softmaxGrad(logits, w2, b2, h, labels[idx])
				// logits now holds dloss/dlogits.
				clear(dh)
				for k, d := range logits {
					d /= float64(cfg.BatchSize)
					gb2[k] += d
					for j := range hid {
						gw2[k*hid+j] += d * h[j]
						dh[j] += d * w2[k*hid+j]
					}
				}
				for j := range hid {
					if h[j] <= 0 {
						continue
					}
					d := dh[j]
					gb1[j] += d
					row := gw1[j*in : (j+1)*in]
					for i := range row {
						row[i] += d * x[i]
					}
				}
			}
			lr := cfg.LearningRate * (1 - float64(step)/float64(steps))
			opt.step(p, g, lr, 1e-4)
			step++
		}
		fmt.Fprintf(log, "digits: epoch %d/%d loss %.4f (%.1fs)\n", epoch+1, cfg.Epochs, loss/float64(len(order)), time.Since(start).Seconds())
	}

	m := quantizeMLP(cfg, w1, b1, w2, b2)
	correct, err := EvaluateDigits(m, cfg.TestSeed, cfg.TestSamples)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "digits: int8 model held-out accuracy %d/%d = %.2f%% (seed %d), trained in %.1fs\n",
		correct, cfg.TestSamples, 100*float64(correct)/float64(cfg.TestSamples), cfg.TestSeed, time.Since(start).Seconds())
	return m, nil
}

// softmaxGrad computes logits = w·h + b, returns the cross-entropy loss for
// label and leaves dloss/dlogits (softmax minus one-hot) in logits.
func softmaxGrad(logits, w, b, h []float64, label int) float64 {
	n := len(h)
	mx := math.Inf(-1)
	for k := range logits {
		s := b[k]
		for j, w := range w[k*n : (k+1)*n] {
			s += w * h[j]
		}
		logits[k] = s
		mx = max(mx, s)
	}
	var sum float64
	for k, v := range logits {
		logits[k] = math.Exp(v - mx)
		sum += logits[k]
	}
	for k := range logits {
		logits[k] /= sum
	}
	loss := -math.Log(max(logits[label], 1e-300))
	logits[label]--
	return loss
}

// shiftFor returns the largest shift s in [0, limit] with maxAbs·2^s <= q.
func shiftFor(maxAbs, q float64, limit int) int {
	s := 0
	for s < limit && maxAbs*math.Ldexp(1, s+1) <= q {
		s++
	}
	return s
}

func maxAbs(v []float64) float64 {
	var m float64
	for _, x := range v {
		m = max(m, math.Abs(x))
	}
	return m
}

func quantize[T int8 | int16 | int32](v []float64, shift int, lim float64) []T {
	out := make([]T, len(v))
	for i, x := range v {
		out[i] = T(min(max(math.Round(math.Ldexp(x, shift)), -lim), lim))
	}
	return out
}

// quantizeMLP turns float weights into an MLP with power-of-two scales; the
// hidden activations' scale is calibrated on training images.
func quantizeMLP(cfg DigitsTrainConfig, w1, b1, w2, b2 []float64) *MLP {
	side := cfg.side()
	in := side * side
	hid := len(b1)
	m := &MLP{name: cfg.Name, license: cfg.License, inputs: in, hidden: hid, classes: len(b2)}
	m.s1 = shiftFor(maxAbs(w1), 127, 16)
	m.w1 = quantize[int8](w1, m.s1, 127)
	m.b1 = quantize[int32](b1, 8+m.s1, 1<<24)
	images, _ := DigitsDatasetSide(mix(cfg.Seed, 1<<41), 2000, side)
	var top float64
	for _, img := range images {
		for j := range hid {
			acc := int64(m.b1[j])
			for i, v := range img {
				acc += int64(m.w1[j*in+i]) * int64(v)
			}
			top = max(top, math.Ldexp(float64(acc), -(8+m.s1)))
		}
	}
	m.act = min(shiftFor(top, 127, 16), 8+m.s1)
	m.s2 = shiftFor(maxAbs(w2), 127, 16)
	m.w2 = quantize[int8](w2, m.s2, 127)
	m.b2 = quantize[int32](b2, m.act+m.s2, 1<<24)
	return m
}

// EvaluateDigits returns how many of n held-out images drawn with seed m
// classifies correctly (images of the side m's inputs make a square of).
func EvaluateDigits(m *MLP, seed uint64, n int) (correct int, err error) {
	side := int(isqrt(int64(m.inputs)))
	if side*side != m.inputs {
		return 0, fmt.Errorf("model: %d inputs are not a square image", m.inputs)
	}
	images, labels := DigitsDatasetSide(seed, n, side)
	for i, img := range images {
		_, class, err := m.Infer(img)
		if err != nil {
			return 0, err
		}
		if class == labels[i] {
			correct++
		}
	}
	return correct, nil
}
