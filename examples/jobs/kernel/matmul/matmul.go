// Package matmul is the kernel job's workload, importable so bench/jobs
// can run the same code natively and in the sandbox.
package matmul

// Run multiplies pseudo-random n×n matrices rounds times, each product
// feeding the next, and returns a checksum per round.
func Run(n, rounds int) []uint64 {
	a, b, c := make([]uint32, n*n), make([]uint32, n*n), make([]uint32, n*n)
	x := uint32(2463534242)
	for i := range a {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		a[i], b[i] = x, x*2654435761
	}
	var sums []uint64
	for r := 0; r < rounds; r++ {
		for i := 0; i < n; i++ {
			for j := 0; j < n; j++ {
				var s uint32
				for k := 0; k < n; k++ {
					s += a[i*n+k] * b[k*n+j]
				}
				c[i*n+j] = s
			}
		}
		var sum uint64
		for _, v := range c {
			sum = sum*31 + uint64(v)
		}
		sums = append(sums, sum)
		a, c = c, a
	}
	return sums
}
