package model

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"
)

const corpusPath = "../../../shared/data/tinyshakespeare.txt"

func builtinLM(t testing.TB) *LM {
	t.Helper()
	m, err := Lookup(TinyLMName)
	if err != nil {
		t.Fatal(err)
	}
	if m.LM == nil {
		t.Fatalf("%s has no LM", TinyLMName)
	}
	return m.LM
}

// TestGenerateGolden pins the exact output of fixed requests against the
// committed weights. Inference is integer-only, so these bytes must be the
// same on every machine; a failure here means cross-machine drift or a
// change in the inference semantics (which needs new weights ids anyway).
func TestGenerateGolden(t *testing.T) {
	tests := []struct {
		prompt      string
		maxTokens   int
		temperature int
		seed        uint64
		want        string
	}{
		{"ROMEO:", 80, 0, 0,
			"\nSo sure the strange of the sented the state,\nAnd the stand of the sentent the s"},
		{"ROMEO:", 120, 800, 42,
			"\nCite by the more ansell beftretcher free\nJulients be and tedural with service of feels.\n\nPETRUCHIO:\nCome and blow not y"},
		{"", 60, 1000, 7,
			"HAtPARDICII:\nWhere so is wastes me, Such than our near?\n\nGLO"},
		{"To be, or not to be", 60, 2000, 1 << 63,
			" sig-foop-in-o'ct!\nTruit toma,\nWivin out.\nhreation;\ntyrbatmm"},
	}
	m := builtinLM(t)
	for _, tt := range tests {
		got, err := m.Generate([]byte(tt.prompt), tt.maxTokens, tt.temperature, tt.seed)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tt.want {
			t.Errorf("Generate(%q, %d, %d, %d) = %q, want %q", tt.prompt, tt.maxTokens, tt.temperature, tt.seed, got, tt.want)
		}
	}
}

func TestGenerateDeterministic(t *testing.T) {
	m := builtinLM(t)
	prompt := []byte("KING HENRY:\n")
	a, err := m.Generate(prompt, 200, 900, 12345)
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Generate(prompt, 200, 900, 12345)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Errorf("same request gave different outputs:\n%q\n%q", a, b)
	}
	if len(a) != 200 {
		t.Errorf("got %d bytes, want 200", len(a))
	}
	c, err := m.Generate(prompt, 200, 900, 12346)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, c) {
		t.Error("different seeds gave the same output")
	}
	// A prefix of the tokens does not depend on how many follow.
	d, err := m.Generate(prompt, 50, 900, 12345)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(d, a[:50]) {
		t.Errorf("50-token output %q is not a prefix of the 200-token one %q", d, a)
	}
}

func TestGenerateStream(t *testing.T) {
	m := builtinLM(t)
	want, err := m.Generate([]byte("First Citizen:"), 64, 700, 3)
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	calls := 0
	err = m.GenerateStream([]byte("First Citizen:"), 64, 700, 3, func(tok []byte) error {
		calls++
		got = append(got, tok...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("streamed %q, want %q", got, want)
	}
	if calls != 64 {
		t.Errorf("emit called %d times, want 64", calls)
	}

	got = got[:0]
	err = m.GenerateStream([]byte("First Citizen:"), 64, 700, 3, func(tok []byte) error {
		got = append(got, tok...)
		if len(got) == 10 {
			return ErrStop
		}
		return nil
	})
	if err != nil || !bytes.Equal(got, want[:10]) {
		t.Errorf("stopped stream: got %q, %v; want %q, nil", got, err, want[:10])
	}

	boom := errors.New("client went away")
	err = m.GenerateStream(nil, 64, 0, 0, func([]byte) error { return boom })
	if !errors.Is(err, boom) {
		t.Errorf("got error %v, want the emit error", err)
	}
}

// TestGenerateStreamContext: a generation stops within a step of its
// context ending, in the prompt or in the answer (a provider starts the
// model before the payment's signature is checked).
func TestGenerateStreamContext(t *testing.T) {
	m := builtinLM(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	emitted := 0
	err := m.GenerateStreamContext(ctx, bytes.Repeat([]byte("First Citizen: "), 100), 64, 700, 3, func([]byte) error { emitted++; return nil })
	if !errors.Is(err, context.Canceled) || emitted != 0 {
		t.Errorf("an ended context: err %v after %d tokens; want context.Canceled before any", err, emitted)
	}
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	emitted = 0
	err = m.GenerateStreamContext(ctx, []byte("First Citizen:"), 64, 700, 3, func([]byte) error {
		if emitted++; emitted == 3 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || emitted != 3 {
		t.Errorf("a context ended at token 3: err %v after %d tokens", err, emitted)
	}
}

// TestUnknownBytes checks that bytes outside the vocabulary read as the
// fallback byte rather than failing.
func TestUnknownBytes(t *testing.T) {
	m := builtinLM(t)
	fb := m.Fallback()
	if bytes.IndexByte(m.Vocab(), 0xff) >= 0 || bytes.IndexByte(m.Vocab(), 0) >= 0 {
		t.Fatal("test assumes 0x00 and 0xff are outside the vocabulary")
	}
	a, err := m.Generate([]byte("O\xffRomeo\x00"), 40, 500, 9)
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Generate([]byte{'O', fb, 'R', 'o', 'm', 'e', 'o', fb}, 40, 500, 9)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Errorf("unknown bytes: got %q, want %q", a, b)
	}
}

func TestGenerateBadInput(t *testing.T) {
	m := builtinLM(t)
	long := bytes.Repeat([]byte("a"), MaxPromptBytes+1)
	tests := []struct {
		name        string
		prompt      []byte
		maxTokens   int
		temperature int
	}{
		{"zero tokens", nil, 0, 0},
		{"negative tokens", nil, -1, 0},
		{"too many tokens", nil, MaxTokens + 1, 0},
		{"negative temperature", nil, 10, -1},
		{"hot temperature", nil, 10, MaxTemperatureMilli + 1},
		{"long prompt", long, 10, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := m.Generate(tt.prompt, tt.maxTokens, tt.temperature, 1)
			if !errors.Is(err, ErrInput) || out != nil {
				t.Errorf("got %q, %v; want nil, ErrInput", out, err)
			}
			err = m.GenerateStream(tt.prompt, tt.maxTokens, tt.temperature, 1, func([]byte) error {
				t.Error("emit called")
				return nil
			})
			if !errors.Is(err, ErrInput) {
				t.Errorf("stream: got %v, want ErrInput", err)
			}
		})
	}
	// The limits themselves are accepted.
	if _, err := m.Generate(long[:MaxPromptBytes], 1, MaxTemperatureMilli, 1); err != nil {
		t.Errorf("prompt at the limit: %v", err)
	}
}

// TestLMQuality checks the built-in model on the held-out tail of the
// corpus (the part training never saw), if the corpus is present.
func TestLMQuality(t *testing.T) {
	corpus, err := os.ReadFile(corpusPath)
	if err != nil {
		t.Skipf("corpus not available: %v", err)
	}
	valid := corpus[len(corpus)-int(float64(len(corpus))*DefaultLMTrainConfig().ValidFraction):]
	bpc, err := builtinLM(t).BitsPerChar(valid[:5000])
	if err != nil {
		t.Fatal(err)
	}
	if want := 2.4; bpc > want {
		t.Errorf("held-out %.3f bits/byte, want at most %.1f", bpc, want)
	}
	t.Logf("held-out %.3f bits/byte", bpc)
}

const tinyText = `ALICE:
The quick brown fox jumps over the lazy dog, and so do we.

BOB:
Over the lazy dog? Then jump again, and jump once more.

`

func tinyLMConfig() LMTrainConfig {
	cfg := DefaultLMTrainConfig()
	cfg.Name = "test/tiny"
	cfg.Hidden, cfg.SeqLen, cfg.Batch, cfg.Steps, cfg.LearningRate = 16, 16, 4, 500, 0.01
	cfg.ValidFraction, cfg.EvalEvery, cfg.EvalBytes = 0.1, 0, 200
	return cfg
}

// TestTrainLM trains a tiny model twice on a small text: training must be
// reproducible, the result must parse, and it must beat a uniform guess.
func TestTrainLM(t *testing.T) {
	corpus := bytes.Repeat([]byte(tinyText), 8)
	cfg := tinyLMConfig()
	a, err := TrainLM(context.Background(), corpus, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := TrainLM(context.Background(), corpus, cfg, nil)
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
	if m.Manifest.Name != "test/tiny" || m.LM == nil {
		t.Fatalf("got manifest %+v", m.Manifest)
	}
	bpc, err := m.LM.BitsPerChar([]byte(tinyText))
	if err != nil {
		t.Fatal(err)
	}
	if uniform := 4.9; bpc > uniform-1 { // log2 of the ~30-byte vocabulary
		t.Errorf("trained model has %.2f bits/byte, want well below uniform", bpc)
	}
}

func TestTrainLMErrors(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	corpus := bytes.Repeat([]byte(tinyText), 8)
	if _, err := TrainLM(ctx, corpus, tinyLMConfig(), nil); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: got %v, want context.Canceled", err)
	}
	for _, c := range []string{"", "ab", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"} {
		if _, err := TrainLM(context.Background(), []byte(c), tinyLMConfig(), nil); !errors.Is(err, ErrCorpus) {
			t.Errorf("corpus %q: got %v, want ErrCorpus", c, err)
		}
	}
	bad := []func(*LMTrainConfig){
		func(c *LMTrainConfig) { c.Hidden = 0 },
		func(c *LMTrainConfig) { c.SeqLen = 0 },
		func(c *LMTrainConfig) { c.Batch = 0 },
		func(c *LMTrainConfig) { c.Steps = 0 },
		func(c *LMTrainConfig) { c.LearningRate = 2 },
		func(c *LMTrainConfig) { c.ValidFraction = 0 },
		func(c *LMTrainConfig) { c.EvalEvery = -1 },
		func(c *LMTrainConfig) { c.Name = "" },
	}
	if err := DefaultLMTrainConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	for i, modify := range bad {
		cfg := DefaultLMTrainConfig()
		modify(&cfg)
		if err := cfg.Validate(); err == nil {
			t.Errorf("bad config %d: got no error", i)
		}
	}
}

// FuzzGenerate feeds arbitrary prompts and parameters: generation must not
// panic, must either fail with ErrInput or return exactly maxTokens bytes
// of the vocabulary, and must be reproducible.
func FuzzGenerate(f *testing.F) {
	f.Add([]byte("ROMEO:"), 16, 800, uint64(1))
	f.Add([]byte{}, 1, 0, uint64(0))
	f.Add([]byte{0, 0xff, 0x80, '\n'}, 3, 2000, uint64(1<<63))
	f.Add([]byte("x"), 0, -5, uint64(9))
	m := builtinLM(f)
	vocab := m.Vocab()
	f.Fuzz(func(t *testing.T, prompt []byte, maxTokens, temperature int, seed uint64) {
		maxTokens %= 64 // keep each run fast; the range checks are covered above
		out, err := m.Generate(prompt, maxTokens, temperature, seed)
		if err != nil {
			if !errors.Is(err, ErrInput) {
				t.Fatalf("got error %v, want ErrInput", err)
			}
			return
		}
		if len(out) != maxTokens {
			t.Fatalf("got %d bytes, want %d", len(out), maxTokens)
		}
		for _, b := range out {
			if bytes.IndexByte(vocab, b) < 0 {
				t.Fatalf("output byte %#x is not in the vocabulary", b)
			}
		}
		again, _ := m.Generate(prompt, maxTokens, temperature, seed)
		if !bytes.Equal(out, again) {
			t.Fatalf("second run gave %q, want %q", again, out)
		}
	})
}

func BenchmarkGenerate(b *testing.B) {
	m := builtinLM(b)
	prompt := []byte("ROMEO:\n")
	const tokens = 256
	emit := func([]byte) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		if err := m.GenerateStream(prompt, tokens, 800, 1, emit); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*tokens)/b.Elapsed().Seconds(), "tokens/s")
}
