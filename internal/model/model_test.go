package model

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The ids of the committed weights files. Retraining changes them; update
// these together with the goldens in lm_test.go and mlp_test.go.
const (
	digitsID = "635bcb1fbb1e43ed1f8e28a3621564bfc3870e8c4990027a5d2e3e9395c46b61"
	tinyLMID = "678950efeb15da9b79e1af4ab4a96bdddcec91eaf7093087e99707497d10f436"
)

func TestBuiltin(t *testing.T) {
	want := map[string]string{DigitsName: digitsID, TinyLMName: tinyLMID}
	models := Builtin()
	if len(models) != len(want) {
		t.Fatalf("got %d built-in models, want %d", len(models), len(want))
	}
	for _, m := range models {
		b, err := BuiltinWeights(m.Manifest.Name)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if got, want := m.Manifest.ID, hex.EncodeToString(sum[:]); got != want {
			t.Errorf("%s: manifest id %s, want sha256 of the file %s", m.Manifest.Name, got, want)
		}
		if got, want := m.Manifest.ID, want[m.Manifest.Name]; got != want {
			t.Errorf("%s: id %s, want the pinned %s", m.Manifest.Name, got, want)
		}
		if got := m.Manifest.Size; got != len(b) {
			t.Errorf("%s: size %d, want %d", m.Manifest.Name, got, len(b))
		}
		for _, key := range []string{m.Manifest.Name, m.Manifest.ID} {
			got, err := Lookup(key)
			if err != nil {
				t.Fatalf("Lookup(%q): %v", key, err)
			}
			if diff := cmp.Diff(m.Manifest, got.Manifest); diff != "" {
				t.Errorf("Lookup(%q) manifest (-want +got):\n%s", key, diff)
			}
			if got.MLP != m.MLP || got.LM != m.LM {
				t.Errorf("Lookup(%q) loaded the model again", key)
			}
		}
	}
	models[0].Manifest.Name = "changed"
	if got := Builtin()[0].Manifest.Name; got != DigitsName {
		t.Errorf("after a caller's change, the first built-in is %q, want %q", got, DigitsName)
	}
}

func TestLookupUnknown(t *testing.T) {
	for _, name := range []string{"", "agora/gpt", TinyLMName + " "} {
		if _, err := Lookup(name); !errors.Is(err, ErrNotFound) {
			t.Errorf("Lookup(%q): got %v, want ErrNotFound", name, err)
		}
		if _, err := BuiltinWeights(name); !errors.Is(err, ErrNotFound) {
			t.Errorf("BuiltinWeights(%q): got %v, want ErrNotFound", name, err)
		}
	}
}

func TestManifest(t *testing.T) {
	m, err := Lookup(DigitsName)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(m.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"name":         DigitsName,
		"id":           digitsID,
		"architecture": ArchMLP,
		"license":      BuiltinLicense,
		"task":         "classification",
		"input":        "256 bytes: a 16×16 grayscale image, row-major, 0 background to 255 ink",
		"output":       "10 int32 logits (real value logit/2^9) and the class of the first largest",
		"parameters":   float64(256*32 + 32 + 32*10 + 10),
		"size":         float64(m.Manifest.Size),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("manifest JSON (-want +got):\n%s", diff)
	}

	lm, err := Lookup(TinyLMName)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := lm.Manifest.Task, "text-generation"; got != want {
		t.Errorf("task %q, want %q", got, want)
	}
	h, v := lm.LM.Hidden(), len(lm.LM.Vocab())
	if got, want := lm.Manifest.Parameters, v*3*h+3*h*h+h+v*h+v; got != want {
		t.Errorf("parameters %d, want %d", got, want)
	}
}
