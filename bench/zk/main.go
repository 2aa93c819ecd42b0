// Command zk measures zero-knowledge proofs of digits-mlp inference in one
// run: the circuit's constraint count, proving time, verification time,
// proof size, and plain inference for comparison.
//
//	go run ./bench/zk
package main

import (
	"fmt"
	"log"
	"sort"
	"time"

	"github.com/agoranet/agora/internal/model"
	"github.com/agoranet/agora/internal/zk"
)

func main() {
	log.SetFlags(0)
	m, err := model.Lookup(model.DigitsName)
	if err != nil {
		log.Fatal(err)
	}
	start := time.Now()
	sys, err := zk.Setup(m.MLP)
	if err != nil {
		log.Fatal(err)
	}
	setup := time.Since(start)
	vk, _ := sys.VerifyingKey()
	// The first verification of a model reads its key (subgroup checks and
	// the pairing e([α]1, [β]2)); a node keeps it, so the loop measures the
	// verifications after that.
	px, _ := model.GenerateDigit(1000, 0)
	logits, proof, err := sys.Prove(px)
	if err != nil {
		log.Fatal(err)
	}
	t0 := time.Now()
	if err := zk.Verify(vk, proof, px, logits); err != nil {
		log.Fatal(err)
	}
	keyRead := time.Since(t0)
	const n = 30
	var prove, verify, infer []time.Duration
	size := 0
	for i := 0; i < n; i++ {
		px, _ := model.GenerateDigit(uint64(i), i%10)
		t := time.Now()
		if _, _, err := m.MLP.Infer(px); err != nil {
			log.Fatal(err)
		}
		infer = append(infer, time.Since(t))
		t = time.Now()
		logits, proof, err := sys.Prove(px)
		if err != nil {
			log.Fatal(err)
		}
		prove = append(prove, time.Since(t))
		size = len(proof)
		t = time.Now()
		if err := zk.Verify(vk, proof, px, logits); err != nil {
			log.Fatal(err)
		}
		verify = append(verify, time.Since(t))
	}
	fmt.Printf("\ndigits-mlp (256-32-10, int8) in Groth16 on BN254 (gnark)\n")
	fmt.Printf("  constraints          %d\n", sys.CS.GetNbConstraints())
	fmt.Printf("  setup (one party)    %s\n", setup.Round(time.Millisecond))
	fmt.Printf("  prove     p50 %8s  p90 %8s   (goal <= 30 ms, floor <= 40 ms)\n", med(prove, 50), med(prove, 90))
	fmt.Printf("  verify    p50 %8s  p90 %8s   (goal <= 1.5 ms, floor <= 2 ms)\n", med(verify, 50), med(verify, 90))
	fmt.Printf("  first verify of a model  %8s   (reads its key: subgroup checks and e([α]1, [β]2); kept after)\n", keyRead.Round(10*time.Microsecond))
	fmt.Printf("  proof size           %d bytes; verifying key %d bytes\n", size, len(vk))
	fmt.Printf("  plain inference p50  %s\n", med(infer, 50))
	fmt.Printf("For scale: EZKL reports 2.7-38 s to prove an MNIST MLP of similar size (its circuits have far more constraints).\n")
}

func med(d []time.Duration, pct int) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)*pct/100].Round(10 * time.Microsecond)
}
