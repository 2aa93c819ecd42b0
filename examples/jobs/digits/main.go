// Command digits is a batch-inference job for the Agora compute market:
// it classifies every image of a data set with the built-in digits-mlp
// model. Build it as a job with
//
//	GOOS=wasip1 GOARCH=wasm go build -o digits.wasm ./examples/jobs/digits
//
// and make an input with `go run ./examples/jobs/digits -gen 1000 > digits.in`
// (1000 generated 16×16 images, 256 bytes each). As a job it reads the
// images on stdin and writes one line per image: its index, the predicted
// class and the ten logits. Everything it does is integer arithmetic, so
// every provider's output is byte for byte the same.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/agoranet/agora/internal/model"
)

func main() {
	gen := flag.Int("gen", 0, "write a data set of this many images to stdout instead of classifying")
	seed := flag.Uint64("seed", 7, "the data set's seed (with -gen)")
	flag.Parse()
	if *gen > 0 {
		images, _ := model.DigitsDataset(*seed, *gen)
		w := bufio.NewWriter(os.Stdout)
		for _, img := range images {
			w.Write(img)
		}
		if err := w.Flush(); err != nil {
			fmt.Fprintln(os.Stderr, "digits:", err)
			os.Exit(1)
		}
		return
	}
	if err := classify(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "digits:", err)
		os.Exit(1)
	}
}

func classify(in io.Reader, out io.Writer) error {
	m, err := model.Lookup(model.DigitsName)
	if err != nil {
		return err
	}
	data, err := io.ReadAll(in)
	if err != nil {
		return err
	}
	if len(data)%model.DigitPixels != 0 {
		return fmt.Errorf("the input is %d bytes, not a whole number of %d-byte images", len(data), model.DigitPixels)
	}
	w := bufio.NewWriter(out)
	for i := 0; i*model.DigitPixels < len(data); i++ {
		logits, class, err := m.MLP.Infer(data[i*model.DigitPixels : (i+1)*model.DigitPixels])
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%d %d", i, class)
		for _, l := range logits {
			fmt.Fprintf(w, " %d", l)
		}
		fmt.Fprintln(w)
	}
	return w.Flush()
}
