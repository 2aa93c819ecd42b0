package model

import (
	"math"
	"testing"
)

// TestGRUGradient checks the GRU's backward pass against central
// differences on a tiny network.
func TestGRUGradient(t *testing.T) {
	const V, H, T = 5, 4, 6
	g := newGRU(V, H)
	rng := splitMix64{7}
	for i := range g.p {
		g.p[i] = rng.float()*2 - 1
	}
	toks := []int{1, 3, 0, 4, 2, 2, 1}
	loss := func() float64 {
		var sum float64
		hp := make([]float64, H)
		for t := range T {
			st := newStep(V, H)
			st.tok, st.target, st.hp = toks[t], toks[t+1], hp
			sum += g.forward(st, make([]float64, 3*H))
			hp = st.h
		}
		return sum
	}
	grad := newGRU(V, H)
	steps := make([]*gruStep, T)
	hp := make([]float64, H)
	for t := range T {
		steps[t] = newStep(V, H)
		steps[t].tok, steps[t].target, steps[t].hp = toks[t], toks[t+1], hp
		g.forward(steps[t], make([]float64, 3*H))
		hp = steps[t].h
	}
	dh := make([]float64, H)
	for t := T - 1; t >= 0; t-- {
		g.backward(grad, steps[t], dh, 1, make([]float64, 4*H))
	}
	const eps = 1e-6
	for i := range g.p {
		old := g.p[i]
		g.p[i] = old + eps
		up := loss()
		g.p[i] = old - eps
		down := loss()
		g.p[i] = old
		num := (up - down) / (2 * eps)
		if math.Abs(num-grad.p[i]) > 1e-6*max(1, math.Abs(num)) {
			t.Errorf("parameter %d: got gradient %g, want %g", i, grad.p[i], num)
		}
	}
}

func newStep(V, H int) *gruStep {
	buf := make([]float64, 5*H+V)
	return &gruStep{r: buf[:H], z: buf[H : 2*H], n: buf[2*H : 3*H], hn: buf[3*H : 4*H], h: buf[4*H : 5*H], probs: buf[5*H:]}
}
