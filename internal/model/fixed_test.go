package model

import (
	"math"
	"testing"
)

// TestTables checks the integer nonlinearities against package math over
// their whole input range.
func TestTables(t *testing.T) {
	tests := []struct {
		name     string
		f        func(int32) int32
		want     func(float64) float64
		lo, hi   int32
		maxError float64 // in Q12 steps
	}{
		{"sigmoid", sigmoidQ12, func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }, -12 * one, 12 * one, 1.01},
		{"tanh", tanhQ12, math.Tanh, -6 * one, 6 * one, 3}, // saturates at ±4
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prev := tt.f(tt.lo)
			for x := tt.lo; x <= tt.hi; x++ {
				got := tt.f(x)
				want := tt.want(float64(x)/one) * one
				if math.Abs(float64(got)-want) > tt.maxError {
					t.Fatalf("%s(%d/4096) = %d/4096, want %.2f/4096", tt.name, x, got, want)
				}
				if got < prev {
					t.Fatalf("%s is not monotonic at %d/4096", tt.name, x)
				}
				prev = got
			}
		})
	}
	t.Run("exp", func(t *testing.T) {
		for y := int64(0); y <= 17*one; y++ {
			got := float64(expNeg(y))
			want := math.Exp(-float64(y)/one) * (1 << 30)
			if y >= 16*one {
				want = 0
			}
			if math.Abs(got-want) > want*5e-4+2 {
				t.Fatalf("expNeg(%d/4096) = %v, want %.0f", y, got, want)
			}
		}
	})
}

func TestShiftRound(t *testing.T) {
	tests := []struct {
		x    int32
		s    uint
		want int32
	}{
		{5, 0, 5},
		{5, 1, 3},
		{4, 1, 2},
		{-5, 1, -2},
		{-6, 1, -3},
		{math.MaxInt32, 4, 1 << 27},
		{math.MinInt32, 4, -(1 << 27)},
		{1023, 10, 1},
		{511, 10, 0},
	}
	for _, tt := range tests {
		if got := shiftRound(tt.x, tt.s); got != tt.want {
			t.Errorf("shiftRound(%d, %d) = %d, want %d", tt.x, tt.s, got, tt.want)
		}
	}
}

func TestSplitMix64(t *testing.T) {
	// Reference outputs of SplitMix64 seeded with 1234567 (from the
	// generator's published C implementation).
	r := splitMix64{1234567}
	want := []uint64{6457827717110365317, 3203168211198807973, 9817491932198370423, 4593380528125082431, 16408922859458223821}
	for i, w := range want {
		if got := r.next(); got != w {
			t.Errorf("output %d: got %d, want %d", i, got, w)
		}
	}
}
