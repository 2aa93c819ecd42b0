package sdk_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestClientsLinkNoChainInternals keeps dependencies pointing down: a
// program that only talks to the chain (the SDK, the chain client) links
// wire types and proof checking, never the state machine, its store, a
// database or the prover.
func TestClientsLinkNoChainInternals(t *testing.T) {
	forbidden := []string{
		"github.com/cosmos/iavl",
		"github.com/cometbft/cometbft-db",
		"github.com/syndtr/goleveldb",
		"github.com/consensys/gnark/", // the prover; gnark-crypto is fine
		"github.com/cometbft/cometbft/state",
		"github.com/cometbft/cometbft/store",
		"github.com/cometbft/cometbft/consensus",
		"github.com/agoranet/agora/internal/chain/", // only wire packages below
	}
	// Wire packages, proofs and the primitives they use are allowed.
	allowed := []string{"pb", "/addr", "/codes", "/coin", "/module", "/proof", "/store", "/tx"}
	for _, pkg := range []string{"github.com/agoranet/agora/sdk", "github.com/agoranet/agora/internal/client", "github.com/agoranet/agora/x402"} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
	deps:
		for _, dep := range strings.Fields(string(out)) {
			if dep == "github.com/consensys/gnark" || dep == "github.com/agoranet/agora/internal/chain" {
				t.Errorf("%s links %s", pkg, dep)
				continue
			}
			for _, f := range forbidden {
				if !strings.HasPrefix(dep, f) {
					continue
				}
				if strings.HasPrefix(f, "github.com/agoranet/agora/internal/chain/") {
					for _, a := range allowed {
						if strings.HasSuffix(dep, a) {
							continue deps
						}
					}
				}
				t.Errorf("%s links %s", pkg, dep)
			}
		}
	}
}
