// Package model provides Agora's built-in deterministic models and the
// weights file format that providers load their own models from.
//
// There are two built-ins, embedded in the binary:
//
//   - agora/digits-mlp classifies 16×16 grayscale digits (see GenerateDigit)
//     with a 256-32-10 int8 perceptron small enough for a Groth16 circuit.
//   - agora/tiny-lm is a byte-level GRU language model trained on Tiny
//     Shakespeare; Generate and GenerateStream sample from it.
//
// Inference uses integer arithmetic only (int8/int16 weights, int32
// accumulators, power-of-two scales, table-driven sigmoid, tanh and exp,
// and a SplitMix64 sampler), so the same request gives the same bytes on
// every machine and an auditor can re-execute any answer bit for bit.
// Training uses float64 and is deterministic per architecture only.
//
// Serving: Builtin and Lookup return Models whose Manifest a provider
// advertises. An MLP answers Infer(pixels) with logits and a class; an LM
// answers Generate(prompt, maxTokens, temperatureMilli, seed), or
// GenerateStream with a callback per token for server-sent events (the
// callback returns ErrStop to end early, say on a stop sequence). Request
// errors wrap ErrInput; weights file errors wrap ErrFormat or ErrChecksum.
// Training: TrainDigits and TrainLM with DefaultDigitsTrainConfig and
// DefaultLMTrainConfig (or a user's own text); `agora model train` rebuilds the
// committed files.
//
// A model's id is the lowercase hex SHA-256 of its weights file (ID). Parse
// and Load read the format described in format.go, and the built-ins go
// through the same parser:
//
//	m, err := model.Lookup("agora/tiny-lm")
//	out, err := m.LM.Generate([]byte("ROMEO:"), 200, 800, 42)
//
// Measured on one core of the development machine (testdata/figures.txt
// has the details): digits-mlp classifies 99.76% of 5000 held-out images
// correctly and runs about 230k inferences/s; tiny-lm scores 2.07
// bits/byte on held-out Shakespeare (2.39 over the whole held-out tail),
// trains in under 10 minutes and generates about 26k tokens/s.
package model

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
)

// Names of the built-in models.
const (
	DigitsName = "agora/digits-mlp"
	TinyLMName = "agora/tiny-lm"
)

// BuiltinLicense is the license of the built-in weights: they are trained by
// this project on generated digits and on public-domain text.
const BuiltinLicense = "CC0-1.0"

// ErrNotFound is returned by Lookup for an unknown model.
var ErrNotFound = errors.New("model: no such built-in model")

// Manifest describes a model; it is what a provider advertises and what a
// receipt's model hash refers to.
type Manifest struct {
	// Name is the model's name, such as "agora/tiny-lm".
	Name string `json:"name"`
	// ID is the lowercase hex SHA-256 of the weights file.
	ID string `json:"id"`
	// Architecture is the file's architecture tag (ArchMLP or ArchGRU).
	Architecture string `json:"architecture"`
	// License is an SPDX license identifier for the weights.
	License string `json:"license"`
	// Task is "classification" or "text-generation".
	Task string `json:"task"`
	// Input and Output describe the request and response.
	Input  string `json:"input"`
	Output string `json:"output"`
	// Parameters is the number of weights and biases.
	Parameters int `json:"parameters"`
	// Size is the size of the weights file in bytes.
	Size int `json:"size"`
}

// Model is a parsed weights file: its manifest and exactly one of MLP and
// LM, as the architecture says. It is immutable and safe for concurrent use.
type Model struct {
	Manifest Manifest
	MLP      *MLP
	LM       *LM
}

// ID returns the id of a weights file: the lowercase hex SHA-256 of its
// bytes.
func ID(weights []byte) string {
	sum := sha256.Sum256(weights)
	return hex.EncodeToString(sum[:])
}

// Parse decodes and validates a weights file. Errors wrap ErrFormat, or
// ErrChecksum for a damaged file. The model does not alias b.
func Parse(b []byte) (*Model, error) {
	f, err := decodeFile(b)
	if err != nil {
		return nil, err
	}
	m := &Model{Manifest: Manifest{
		Name:         f.name,
		ID:           ID(b),
		Architecture: f.arch,
		License:      f.license,
		Size:         len(b),
	}}
	for _, t := range f.tensors {
		m.Manifest.Parameters += t.len()
	}
	switch f.arch {
	case ArchMLP:
		if m.MLP, err = parseMLP(f); err != nil {
			return nil, err
		}
		m.Manifest.Task = "classification"
		m.Manifest.Input = fmt.Sprintf("%d bytes: a %d×%d grayscale image, row-major, 0 background to 255 ink", m.MLP.inputs, DigitSide, DigitSide)
		if m.MLP.inputs != DigitPixels {
			m.Manifest.Input = fmt.Sprintf("%d bytes", m.MLP.inputs)
		}
		m.Manifest.Output = fmt.Sprintf("%d int32 logits (real value logit/2^%d) and the class of the first largest", m.MLP.classes, m.MLP.LogitShift())
	case ArchGRU:
		if m.LM, err = parseLM(f); err != nil {
			return nil, err
		}
		m.Manifest.Parameters -= m.LM.v + 2 // vocab and special are not weights
		m.Manifest.Task = "text-generation"
		m.Manifest.Input = fmt.Sprintf("prompt of 0 to %d bytes (bytes outside the %d-byte vocabulary read as %q), max_tokens 1 to %d, temperature 0 to %d thousandths (0 greedy), uint64 seed",
			MaxPromptBytes, m.LM.v, m.LM.Fallback(), MaxTokens, MaxTemperatureMilli)
		m.Manifest.Output = "max_tokens bytes, one per token, from the vocabulary"
	default:
		return nil, formatError("unknown architecture %q", f.arch)
	}
	return m, nil
}

// Load reads and parses the weights file at path.
func Load(path string) (*Model, error) {
	if fi, err := os.Stat(path); err == nil && fi.Size() > maxFileSize {
		return nil, formatError("%s is %d bytes, more than the limit of %d", path, fi.Size(), maxFileSize)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	m, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return m, nil
}

//go:embed weights/digits-mlp.agw weights/tiny-lm.agw
var weightsFS embed.FS

// builtinFiles maps each built-in's name to its embedded file.
var builtinFiles = []struct{ name, file string }{
	{DigitsName, "weights/digits-mlp.agw"},
	{TinyLMName, "weights/tiny-lm.agw"},
}

var builtins = sync.OnceValue(func() []*Model {
	var out []*Model
	for _, bf := range builtinFiles {
		b, err := weightsFS.ReadFile(bf.file)
		if err != nil {
			panic(fmt.Sprintf("model: embedded %s: %v", bf.file, err))
		}
		m, err := Parse(b)
		if err != nil {
			panic(fmt.Sprintf("model: embedded %s: %v", bf.file, err))
		}
		if m.Manifest.Name != bf.name {
			panic(fmt.Sprintf("model: embedded %s is named %q, want %q", bf.file, m.Manifest.Name, bf.name))
		}
		out = append(out, m)
	}
	return out
})

// Builtin returns the built-in models, parsed on first use. Each call
// returns new Model values (sharing the immutable MLP and LM), so callers
// may change them freely. The embedded files are checked by the tests, so a
// failure to parse them is a build defect and panics.
func Builtin() []*Model {
	var out []*Model
	for _, m := range builtins() {
		c := *m
		out = append(out, &c)
	}
	return out
}

// BuiltinWeights returns a copy of the weights file of the built-in named
// name, for serving or hashing.
func BuiltinWeights(name string) ([]byte, error) {
	for _, bf := range builtinFiles {
		if bf.name == name {
			return weightsFS.ReadFile(bf.file)
		}
	}
	return nil, fmt.Errorf("%w: %q", ErrNotFound, name)
}

// Lookup returns the built-in model whose name or id is nameOrID, as a new
// Model value like Builtin.
func Lookup(nameOrID string) (*Model, error) {
	for _, m := range builtins() {
		if m.Manifest.Name == nameOrID || m.Manifest.ID == nameOrID {
			c := *m
			return &c, nil
		}
	}
	return nil, fmt.Errorf("%w: %q", ErrNotFound, nameOrID)
}
