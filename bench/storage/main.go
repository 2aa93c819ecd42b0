// Command storage measures the coding a stored object costs: Reed-Solomon
// encode and decode on one core at 4-of-6 (Agora's default) and 29-of-80
// (Storj's), against a plain copy of the same bytes, and the whole of
// object.Encode (coding, the pieces' Merkle roots, the segment hashes).
//
//	go run ./bench/storage
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"time"

	"github.com/klauspost/reedsolomon"

	"github.com/agoranet/agora/internal/storage/object"
)

func main() {
	rounds := flag.Int("rounds", 5, "runs of each measurement; the best is kept")
	flag.Parse()
	log.SetFlags(0)
	fmt.Println("Reed-Solomon on one core, GB/s of the object's bytes (best of", *rounds, "runs)")
	fmt.Printf("%-8s %10s %10s %10s %12s %12s\n", "coding", "segment", "copy", "encode", "decode (-2)", "encode/copy")
	for _, c := range []struct {
		k, n    int
		segment int
	}{{4, 6, 4 << 20}, {29, 80, 64 << 20}} {
		data := make([]byte, c.segment)
		rng := rand.New(rand.NewPCG(1, 1))
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		enc, err := reedsolomon.New(c.k, c.n-c.k, reedsolomon.WithMaxGoroutines(1))
		if err != nil {
			log.Fatal(err)
		}
		shards, err := enc.Split(bytes.Clone(data))
		if err != nil {
			log.Fatal(err)
		}
		dst := make([]byte, len(data))
		cp := best(*rounds, len(data), func() { copy(dst, data) })
		en := best(*rounds, len(data), func() {
			if err := enc.Encode(shards); err != nil {
				log.Fatal(err)
			}
		})
		de := best(*rounds, len(data), func() {
			// Two data pieces lost, as after two dead nodes.
			lost := [][]byte{shards[0], shards[1]}
			shards[0], shards[1] = nil, nil
			if err := enc.ReconstructData(shards); err != nil {
				log.Fatal(err)
			}
			if !bytes.Equal(shards[0], lost[0]) {
				log.Fatal("decoded piece differs")
			}
		})
		fmt.Printf("%-8s %9dM %10.2f %10.2f %12.2f %12.2f\n", fmt.Sprintf("%d-of-%d", c.k, c.n), c.segment>>20, cp, en, de, en/cp)
	}
	fmt.Println("target: 4-of-6 encode >= 1 GB/s per core")

	// The whole of object.Encode, 64 MiB at the defaults (all cores).
	data := make([]byte, 64<<20)
	rng := rand.New(rand.NewPCG(2, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	p := object.DefaultParams()
	whole := best(*rounds, len(data), func() {
		if _, _, err := object.Encode(bytes.NewReader(data), p, func(object.Piece) error { return nil }); err != nil {
			log.Fatal(err)
		}
	})
	fmt.Printf("object.Encode, 64 MiB, %d-of-%d, %d MiB segments, %d-byte leaves (coding, piece roots, segment hashes): %.2f GB/s\n",
		p.K, p.N, p.SegmentSize>>20, p.LeafSize, whole)
}

// best runs f rounds times and returns the best rate, GB/s of n bytes.
func best(rounds, n int, f func()) float64 {
	var top float64
	for range rounds {
		t := time.Now()
		f()
		top = max(top, float64(n)/time.Since(t).Seconds()/1e9)
	}
	return top
}
