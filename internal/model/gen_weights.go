//go:build ignore

// Command gen_weights retrains the built-in models and rewrites their
// weights files under weights/. Run it from this directory on one core:
//
//	GOMAXPROCS=1 nice -n 19 go run gen_weights.go -corpus /path/to/tinyshakespeare.txt
//
// With the default configs it reproduces the committed files on linux/amd64.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/agoranet/agora/internal/model"
)

func main() {
	which := flag.String("model", "all", "which model to train: digits, tiny-lm or all")
	corpus := flag.String("corpus", "../../../shared/data/tinyshakespeare.txt", "training text for tiny-lm")
	out := flag.String("out", "weights", "directory for the weights files")
	steps := flag.Int("lm-steps", 0, "override the LM's training steps (0: default)")
	flag.Parse()
	ctx := context.Background()

	if *which == "digits" || *which == "all" {
		m, err := model.TrainDigits(ctx, model.DefaultDigitsTrainConfig(), os.Stdout)
		if err != nil {
			log.Fatal(err)
		}
		write(filepath.Join(*out, "digits-mlp.agw"), m.Encode())
	}
	if *which == "tiny-lm" || *which == "all" {
		text, err := os.ReadFile(*corpus)
		if err != nil {
			log.Fatal(err)
		}
		cfg := model.DefaultLMTrainConfig()
		if *steps > 0 {
			cfg.Steps = *steps
		}
		m, err := model.TrainLM(ctx, text, cfg, os.Stdout)
		if err != nil {
			log.Fatal(err)
		}
		write(filepath.Join(*out, "tiny-lm.agw"), m.Encode())
	}
}

func write(path string, b []byte) {
	if _, err := model.Parse(b); err != nil {
		log.Fatalf("%s: %v", path, err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("wrote %s: %d bytes, id %s\n", path, len(b), model.ID(b))
}
