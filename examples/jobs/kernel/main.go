// Command kernel is a CPU-heavy job for the Agora compute market, and the
// workload bench/jobs times natively and in the sandbox. It multiplies
// integer matrices: the input is one line, "N ROUNDS" (default "96 4"),
// and the output is a checksum of each round's product. Build it as a job
// with
//
//	GOOS=wasip1 GOARCH=wasm go build -o kernel.wasm ./examples/jobs/kernel
package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	n, rounds := 96, 4
	in, _ := io.ReadAll(os.Stdin)
	if len(in) > 0 {
		if _, err := fmt.Sscan(string(in), &n, &rounds); err != nil || n < 1 || n > 2048 || rounds < 1 {
			fmt.Fprintln(os.Stderr, `kernel: the input is "N ROUNDS", with 1 <= N <= 2048 and ROUNDS >= 1`)
			os.Exit(2)
		}
	}
	for _, sum := range Run(n, rounds) {
		fmt.Println(sum)
	}
}

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
