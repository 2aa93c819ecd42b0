package model

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func builtinMLP(t testing.TB) *MLP {
	t.Helper()
	m, err := Lookup(DigitsName)
	if err != nil {
		t.Fatal(err)
	}
	if m.MLP == nil {
		t.Fatalf("%s has no MLP", DigitsName)
	}
	return m.MLP
}

// TestDigitsAccuracy measures the built-in classifier on held-out images;
// the seed is the held-out seed of DefaultDigitsTrainConfig, which training
// never draws from.
func TestDigitsAccuracy(t *testing.T) {
	const n = 2000
	m := builtinMLP(t)
	correct, err := EvaluateDigits(m, DefaultDigitsTrainConfig().TestSeed, n)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := float64(correct)/n, 0.98; got < want {
		t.Errorf("held-out accuracy %.4f, want at least %.2f", got, want)
	}
	t.Logf("held-out accuracy %d/%d", correct, n)
}

// TestDigitsDataGolden pins the generated data set: any change to the
// drawing code or the generator changes this hash.
func TestDigitsDataGolden(t *testing.T) {
	images, labels := DigitsDataset(2, 100)
	h := sha256.New()
	for i, img := range images {
		h.Write(img)
		h.Write([]byte{byte(labels[i])})
	}
	got := hex.EncodeToString(h.Sum(nil))
	const want = "a24992ce004136e6e64f5539946afc5c31d2a54df2254429fbe766de65a44206"
	if got != want {
		t.Errorf("data set hash %s, want %s", got, want)
	}
}

// TestDigitsInferGolden pins the logits of one image under the committed
// weights, so that a change in integer semantics is caught.
func TestDigitsInferGolden(t *testing.T) {
	img, err := GenerateDigit(12345, 7)
	if err != nil {
		t.Fatal(err)
	}
	logits, class, err := builtinMLP(t).Infer(img)
	if err != nil {
		t.Fatal(err)
	}
	want := []int32{-3186, 183, 1231, 167, -3383, -1806, -3359, 4226, -4549, -3259}
	if diff := cmp.Diff(want, logits); diff != "" {
		t.Errorf("logits (-want +got):\n%s", diff)
	}
	if class != 7 {
		t.Errorf("class %d, want 7", class)
	}
}

func TestDigitsBadInput(t *testing.T) {
	m := builtinMLP(t)
	for _, n := range []int{0, 1, DigitPixels - 1, DigitPixels + 1, 10000} {
		_, _, err := m.Infer(make([]byte, n))
		if !errors.Is(err, ErrInput) {
			t.Errorf("Infer(%d bytes): got error %v, want ErrInput", n, err)
		}
	}
	if _, _, err := m.Infer(nil); !errors.Is(err, ErrInput) {
		t.Errorf("Infer(nil): got error %v, want ErrInput", err)
	}
	for _, d := range []int{-1, 10, 1 << 40} {
		if _, err := GenerateDigit(1, d); !errors.Is(err, ErrDigit) {
			t.Errorf("GenerateDigit(1, %d): got error %v, want ErrDigit", d, err)
		}
	}
}

func TestGenerateDigitDeterministic(t *testing.T) {
	a, _ := GenerateDigit(99, 3)
	b, _ := GenerateDigit(99, 3)
	c, _ := GenerateDigit(100, 3)
	if !bytes.Equal(a, b) {
		t.Error("same seed gave different images")
	}
	if bytes.Equal(a, c) {
		t.Error("different seeds gave the same image")
	}
	if len(a) != DigitPixels {
		t.Errorf("image of %d bytes, want %d", len(a), DigitPixels)
	}
}

// TestDigitsOfAnotherSide: GenerateDigitSide at DigitSide is GenerateDigit;
// at 28 it draws a 784-pixel image with ink on it; sides out of range are
// refused; a tiny network learns 28×28 digits too.
func TestDigitsOfAnotherSide(t *testing.T) {
	a, _ := GenerateDigit(7, 4)
	b, err := GenerateDigitSide(7, 4, DigitSide)
	if err != nil || !bytes.Equal(a, b) {
		t.Errorf("GenerateDigitSide at %d differs from GenerateDigit (%v)", DigitSide, err)
	}
	big, err := GenerateDigitSide(7, 4, 28)
	if err != nil {
		t.Fatal(err)
	}
	inked := 0
	for _, v := range big {
		if v > 128 {
			inked++
		}
	}
	if len(big) != 28*28 || inked < 40 || inked > 400 {
		t.Errorf("a 28×28 four: %d bytes, %d inked pixels", len(big), inked)
	}
	for _, side := range []int{MinDigitSide - 1, MaxDigitSide + 1} {
		if _, err := GenerateDigitSide(7, 4, side); err == nil {
			t.Errorf("side %d was drawn", side)
		}
	}
	cfg := tinyDigitsConfig()
	cfg.Side = 28
	m, err := TrainDigits(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Inputs() != 28*28 {
		t.Errorf("%d inputs, want 784", m.Inputs())
	}
	if correct, err := EvaluateDigits(m, cfg.TestSeed, cfg.TestSamples); err != nil || correct < cfg.TestSamples/2 {
		t.Errorf("tiny 28×28 network got %d/%d right (%v), want at least half", correct, cfg.TestSamples, err)
	}
}

func tinyDigitsConfig() DigitsTrainConfig {
	cfg := DefaultDigitsTrainConfig()
	cfg.TrainSamples, cfg.TestSamples, cfg.Hidden, cfg.Epochs, cfg.BatchSize = 2000, 200, 8, 2, 16
	return cfg
}

// TestTrainDigits trains a tiny network twice and checks that training is
// reproducible, the result round-trips through the weights format, and it
// learned something.
func TestTrainDigits(t *testing.T) {
	cfg := tinyDigitsConfig()
	a, err := TrainDigits(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := TrainDigits(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Encode(), b.Encode()) {
		t.Error("two trainings with one config gave different weights")
	}
	m, err := Parse(a.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.Manifest.Parameters, 8*256+8+10*8+10; got != want {
		t.Errorf("parameters %d, want %d", got, want)
	}
	correct, err := EvaluateDigits(m.MLP, cfg.TestSeed, cfg.TestSamples)
	if err != nil {
		t.Fatal(err)
	}
	if correct < cfg.TestSamples/2 {
		t.Errorf("tiny network got %d/%d right, want at least half", correct, cfg.TestSamples)
	}
}

func TestTrainDigitsCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := TrainDigits(ctx, tinyDigitsConfig(), nil); !errors.Is(err, context.Canceled) {
		t.Errorf("got error %v, want context.Canceled", err)
	}
}

func TestDigitsConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*DigitsTrainConfig)
	}{
		{"same seeds", func(c *DigitsTrainConfig) { c.TestSeed = c.Seed }},
		{"no hidden", func(c *DigitsTrainConfig) { c.Hidden = 0 }},
		{"no epochs", func(c *DigitsTrainConfig) { c.Epochs = 0 }},
		{"big batch", func(c *DigitsTrainConfig) { c.BatchSize = c.TrainSamples + 1 }},
		{"bad rate", func(c *DigitsTrainConfig) { c.LearningRate = 0 }},
		{"empty name", func(c *DigitsTrainConfig) { c.Name = "" }},
		{"control in license", func(c *DigitsTrainConfig) { c.License = "MIT\n" }},
		{"tiny side", func(c *DigitsTrainConfig) { c.Side = MinDigitSide - 1 }},
	}
	if err := DefaultDigitsTrainConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultDigitsTrainConfig()
			tt.modify(&cfg)
			if err := cfg.Validate(); err == nil {
				t.Error("got no error")
			}
		})
	}
}

func BenchmarkDigitsInfer(b *testing.B) {
	m := builtinMLP(b)
	img, _ := GenerateDigit(1, 5)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := m.Infer(img); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "inferences/s")
}
