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
	allowed := []string{"pb", "/addr", "/codes", "/coin", "/gas", "/module", "/proof", "/store", "/tx"}
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

// TestDaemonsDoNotImportDaemons keeps each daemon a leaf: the verifier
// re-executes with internal/answer and internal/jobrun, not by running a
// provider or a worker inside itself. (paygate is the seller's side of
// x402, a library that the provider, the gateway and the facilitator share.)
func TestDaemonsDoNotImportDaemons(t *testing.T) {
	daemons := []string{"provider", "worker", "gateway", "facilitator", "verifier"}
	for _, d := range daemons {
		pkg := "github.com/agoranet/agora/internal/" + d
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, other := range daemons {
				// A provider runs a worker for batch jobs; nothing else
				// embeds another daemon.
				if other == d || d == "provider" && other == "worker" {
					continue
				}
				if dep == "github.com/agoranet/agora/internal/"+other {
					t.Errorf("%s imports the %s daemon", d, other)
				}
			}
		}
	}
}
