/*
 * The kernel job (examples/jobs/kernel) written in C: the same integer
 * matrix products and checksums, line for line, so bench/jobs can time
 * ordinary compiled WebAssembly against native code. Go's own wasm output
 * is slow in any runtime; this is what a C, C++ or Rust job looks like.
 *
 *   clang --target=wasm32-wasi --sysroot=/usr/share/wasi-sysroot -O2 -o kernel.wasm kernel.c
 *   clang -O2 -o kernel kernel.c
 *
 * The input is one line, "N ROUNDS" (default "96 4"); the output is a
 * checksum of each round's product, one a line.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int main(void) {
	int n = 96, rounds = 4;
	char line[64];
	if (fgets(line, sizeof line, stdin) != NULL) {
		if (sscanf(line, "%d %d", &n, &rounds) != 2 || n < 1 || n > 2048 || rounds < 1) {
			fprintf(stderr, "kernel: the input is \"N ROUNDS\", with 1 <= N <= 2048 and ROUNDS >= 1\n");
			return 2;
		}
	}
	size_t cells = (size_t)n * (size_t)n;
	uint32_t *a = malloc(cells * sizeof *a), *b = malloc(cells * sizeof *b), *c = malloc(cells * sizeof *c);
	if (a == NULL || b == NULL || c == NULL) {
		fprintf(stderr, "kernel: out of memory for %d x %d matrices\n", n, n);
		return 1;
	}
	uint32_t x = 2463534242u;
	for (size_t i = 0; i < cells; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		a[i] = x;
		b[i] = x * 2654435761u;
	}
	for (int r = 0; r < rounds; r++) {
		for (int i = 0; i < n; i++) {
			for (int j = 0; j < n; j++) {
				uint32_t s = 0;
				for (int k = 0; k < n; k++) {
					s += a[i * n + k] * b[k * n + j];
				}
				c[i * n + j] = s;
			}
		}
		uint64_t sum = 0;
		for (size_t i = 0; i < cells; i++) {
			sum = sum * 31 + c[i];
		}
		printf("%" PRIu64 "\n", sum);
		uint32_t *t = a;
		a = c;
		c = t;
	}
	return 0;
}
