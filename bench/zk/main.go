// Command zk measures zero-knowledge proofs of MLP inference in one run:
// for agora/digits-mlp (256-32-10, the model the chain's proofs are of)
// and for a 784-64-10 classifier of 28×28 digits trained here, as large as
// the MNIST MLPs other zkML frameworks publish figures for: the circuit's
// constraint count, setup, proving and verification times, proof size,
// and plain inference for comparison.
//
//	go run ./bench/zk [-large=false]
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"sort"
	"time"

	"github.com/agoranet/agora/internal/model"
	"github.com/agoranet/agora/internal/zk"
)

func main() {
	large := flag.Bool("large", true, "also train and prove the 784-64-10 classifier (about a minute more)")
	flag.Parse()
	log.SetFlags(0)
	m, err := model.Lookup(model.DigitsName)
	if err != nil {
		log.Fatal(err)
	}
	measure("digits-mlp (256-32-10, int8)", m.MLP, model.DigitSide, 30,
		"prove goal <= 30 ms, floor <= 40 ms; verify goal <= 1.5 ms, floor <= 2 ms")
	if !*large {
		return
	}
	cfg := model.DefaultDigitsTrainConfig()
	cfg.Name = "bench/digits-28"
	cfg.Side, cfg.Hidden, cfg.Epochs, cfg.TrainSamples, cfg.TestSamples = 28, 64, 3, 6000, 1000
	start := time.Now()
	big, err := model.TrainDigits(context.Background(), cfg, nil)
	if err != nil {
		log.Fatal(err)
	}
	correct, err := model.EvaluateDigits(big, cfg.TestSeed, cfg.TestSamples)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("\n28x28 digits (GenerateDigitSide), 784-64-10 trained in %s: %.1f%% of %d held-out images right\n",
		time.Since(start).Round(100*time.Millisecond), 100*float64(correct)/float64(cfg.TestSamples), cfg.TestSamples)
	measure("digits-28 (784-64-10, int8)", big, 28, 10, "no target: the size EZKL's published MNIST MLP figures are for")
	fmt.Printf("EZKL, for scale (github.com/Guy1m0/ZKML-Benchmark, ezkl 7.1.4, hardware not given): a 784-56-10 MNIST MLP\n" +
		"  2.66 s a proof in its \"resources\" mode, 38.0 s in its \"accuracy\" mode, each timing a whole proving run per image\n" +
		"  (settings, calibration, compilation, keys and the proof), so an upper bound on its proving time alone.\n")
}

// measure sets up m's circuit, proves n digits and verifies each proof,
// and prints the figures.
func measure(name string, m *model.MLP, side, n int, targets string) {
	start := time.Now()
	sys, err := zk.Setup(m)
	if err != nil {
		log.Fatal(err)
	}
	setup := time.Since(start)
	vk, _ := sys.VerifyingKey()
	// The first verification of a model reads its key (subgroup checks and
	// the pairing e([α]1, [β]2)); a node keeps it, so the loop measures the
	// verifications after that.
	px, _ := model.GenerateDigitSide(1000, 0, side)
	logits, proof, err := sys.Prove(px)
	if err != nil {
		log.Fatal(err)
	}
	t0 := time.Now()
	if err := zk.VerifyStatement(vk, proof, side*side, m.Classes(), px, logits); err != nil {
		log.Fatal(err)
	}
	keyRead := time.Since(t0)
	var prove, verify, infer []time.Duration
	size := 0
	for i := 0; i < n; i++ {
		px, _ := model.GenerateDigitSide(uint64(i), i%10, side)
		t := time.Now()
		if _, _, err := m.Infer(px); err != nil {
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
		if err := zk.VerifyStatement(vk, proof, side*side, m.Classes(), px, logits); err != nil {
			log.Fatal(err)
		}
		verify = append(verify, time.Since(t))
	}
	fmt.Printf("\n%s in Groth16 on BN254 (gnark), %d proofs\n", name, n)
	fmt.Printf("  constraints          %d\n", sys.CS.GetNbConstraints())
	fmt.Printf("  setup (one party)    %s\n", setup.Round(time.Millisecond))
	fmt.Printf("  prove     p50 %8s  p90 %8s\n", med(prove, 50), med(prove, 90))
	fmt.Printf("  verify    p50 %8s  p90 %8s\n", med(verify, 50), med(verify, 90))
	fmt.Printf("  first verify of a model  %8s   (reads its key: subgroup checks and e([α]1, [β]2); kept after)\n", keyRead.Round(10*time.Microsecond))
	fmt.Printf("  proof size           %d bytes; verifying key %d bytes\n", size, len(vk))
	fmt.Printf("  plain inference p50  %s\n", med(infer, 50))
	fmt.Printf("  targets: %s\n", targets)
}

func med(d []time.Duration, pct int) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)*pct/100].Round(10 * time.Microsecond)
}
