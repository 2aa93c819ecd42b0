package model

import "math/bits"

// splitMix64 is the SplitMix64 generator (Steele, Lea and Flood, 2014). It is
// implemented here rather than taken from math/rand so that its output, and
// with it every sampled token and generated digit, is fixed by this package
// alone.
type splitMix64 struct{ state uint64 }

func (r *splitMix64) next() uint64 {
	r.state += 0x9e3779b97f4a7c15
	z := r.state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// below returns a uniform integer in [0, n) for n > 0 (Lemire's
// multiply-high; the bias of at most n/2^64 does not matter here).
func (r *splitMix64) below(n uint64) uint64 {
	hi, _ := bits.Mul64(r.next(), n)
	return hi
}

// between returns a uniform integer in [lo, hi].
func (r *splitMix64) between(lo, hi int32) int32 {
	return lo + int32(r.below(uint64(hi-lo)+1))
}

// float returns a uniform float64 in [0, 1); training only.
func (r *splitMix64) float() float64 {
	return float64(r.next()>>11) / (1 << 53)
}

// mix derives the seed of item i of a stream seeded with seed.
func mix(seed, i uint64) uint64 {
	r := splitMix64{seed ^ (i * 0xd1342543de82ef95)}
	r.next()
	return r.next()
}
