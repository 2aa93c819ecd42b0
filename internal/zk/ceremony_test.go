//go:build !race

// The ceremony's phase 1 takes tens of seconds; under the race detector it
// would take many minutes, so this test runs in the plain test pass only.

package zk

import (
	"testing"
	"time"

	"github.com/agoranet/agora/internal/model"
)

// TestCeremony: keys from a two-party ceremony prove and verify.
func TestCeremony(t *testing.T) {
	m, _ := model.Lookup(model.DigitsName)
	start := time.Now()
	sys, err := Ceremony(m.MLP, 2, []byte("test beacon"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("2-party ceremony: %s", time.Since(start))
	dir := t.TempDir()
	if err := sys.Save(dir+"/pk", dir+"/vk"); err != nil {
		t.Fatal(err)
	}
	loaded, err := Load(m.MLP, dir+"/pk", dir+"/vk")
	if err != nil {
		t.Fatal(err)
	}
	px, _ := model.GenerateDigit(3, 3)
	logits, proof, err := loaded.Prove(px)
	if err != nil {
		t.Fatal(err)
	}
	vk, _ := sys.VerifyingKey()
	if err := Verify(vk, proof, px, logits); err != nil {
		t.Fatalf("a proof under ceremony keys failed: %v", err)
	}
}
