package main_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/agoranet/agora/internal/e2e"
)

// TestCLI runs the golden CLI scripts in testdata/cli (testscript's txtar
// format: commands, then the exact output or a pattern it must match)
// against the agora binary and an in-process devnet. Each script uses its
// own keys, so the scripts can run in parallel on one chain. Outputs that
// do not change between runs (keys, balances, errors) are compared whole;
// those with hashes and heights by pattern.
func TestCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("a devnet and the agora binary; skipped with -short")
	}
	bin := e2e.Binary(t)
	d := e2e.Devnet(t, nil)
	testscript.Run(t, testscript.Params{
		Dir: "testdata/cli",
		// AGORA_UPDATE_GOLDEN=1 rewrites the expected outputs in place;
		// review the diff before committing it.
		UpdateScripts: os.Getenv("AGORA_UPDATE_GOLDEN") != "",
		Setup: func(env *testscript.Env) error {
			env.Setenv("PATH", filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"))
			env.Setenv("AGORA_HOME", filepath.Dir(d.Keyring.Dir()))
			env.Setenv("AGORA_NODE", d.Node.RPC())
			env.Setenv("PROVIDER", d.Providers[0].URL())
			env.Setenv("GATEWAY", d.Gateway.URL())
			return nil
		},
	})
}
