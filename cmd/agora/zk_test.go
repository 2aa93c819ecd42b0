//go:build !race

// A ceremony takes tens of seconds, many minutes under the race
// detector; CI runs this package's tests without it too.

package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// TestZKSetupCeremony: two keyring keys run a ceremony through the CLI
// (init, contribute, seal, contribute, seal), the keys are written, the
// transcript verifies with agora zk verify, progress goes to stderr as
// plain lines and not at all with --output json, and the order rules are
// enforced.
func TestZKSetupCeremony(t *testing.T) {
	if testing.Short() {
		t.Skip("a ceremony takes tens of seconds; skipped with -short")
	}
	home := t.TempDir()
	tr := filepath.Join(home, "digits.transcript")
	run := func(args ...string) (string, string, error) {
		var out, errb bytes.Buffer
		cmd := rootCmd()
		cmd.SetArgs(append([]string{"--home", home}, args...))
		cmd.SetOut(&out)
		cmd.SetErr(&errb)
		err := cmd.Execute()
		return out.String(), errb.String(), err
	}
	must := func(args ...string) (string, string) {
		t.Helper()
		out, errs, err := run(args...)
		if err != nil {
			t.Fatalf("agora %s: %v\n%s", strings.Join(args, " "), err, errs)
		}
		return out, errs
	}
	must("keys", "add", "alice")
	must("keys", "add", "bob")
	must("zk", "setup", "init", "--out", tr)
	must("zk", "setup", "contribute", "--key", "alice", tr)
	if _, _, err := run("zk", "setup", "contribute", "--key", "alice", tr); err == nil {
		t.Error("alice contributed to phase 1 twice")
	}
	must("zk", "setup", "contribute", "--key", "bob", tr)
	out, _ := must("zk", "setup", "seal", "--beacon", "block 100", tr)
	if !strings.Contains(out, "phase 1 sealed") {
		t.Errorf("seal of phase 1 printed %q", out)
	}
	if _, _, err := run("zk", "setup", "contribute", "--key", "bob", tr); err == nil {
		t.Error("bob contributed to phase 2 before alice, out of phase 1's order")
	}
	must("zk", "setup", "contribute", "--key", "alice", tr)
	_, progress := must("zk", "setup", "contribute", "--key", "bob", tr)
	if !strings.Contains(progress, "phase 2: contributing as bob") {
		t.Errorf("no progress line on stderr: %q", progress)
	}
	out, _ = must("zk", "setup", "seal", "--beacon", "block 200", "--out", filepath.Join(home, "keys"), tr)
	if !strings.Contains(out, "transcript digest") || !strings.Contains(out, "keys in") {
		t.Errorf("seal of phase 2 printed %q", out)
	}
	out, errs := must("zk", "verify", "--output", "json", tr)
	if errs != "" {
		t.Errorf("progress with --output json: %q", errs)
	}
	var got transcriptJSON
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.Phase != 3 || len(got.Contributors) != 2 || len(got.Digest) != 64 {
		t.Errorf("agora zk verify -o json: %s (%v)", out, err)
	}
}
