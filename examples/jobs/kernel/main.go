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

	"github.com/agoranet/agora/examples/jobs/kernel/matmul"
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
	for _, sum := range matmul.Run(n, rounds) {
		fmt.Println(sum)
	}
}
