package main_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/agoranet/agora/internal/blob"
	"github.com/agoranet/agora/internal/chain/job"
	"github.com/agoranet/agora/internal/e2e"
	"github.com/agoranet/agora/internal/model"
)

// TestJobSubmitDigits is the compute market's acceptance: on the devnet,
// `agora job submit` of the batch-inference example returns the same
// result bytes from two providers, both are paid, and the result is what
// the model computes natively.
func TestJobSubmitDigits(t *testing.T) {
	if testing.Short() {
		t.Skip("a devnet process and a WebAssembly job; skipped with -short")
	}
	home, node, _ := devnetWith(t)
	wasm := e2e.Wasm(t, "./examples/jobs/digits")
	dir := t.TempDir()
	in, resultPath := filepath.Join(dir, "digits.in"), filepath.Join(dir, "result.txt")

	// The input: 200 generated images; the expected output: what the
	// model says natively, in the example's format.
	images, _ := model.DigitsDataset(7, 200)
	m, err := model.Lookup(model.DigitsName)
	if err != nil {
		t.Fatal(err)
	}
	var data []byte
	var want bytes.Buffer
	for i, img := range images {
		data = append(data, img...)
		logits, class, err := m.MLP.Infer(img)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&want, "%d %d", i, class)
		for _, l := range logits {
			fmt.Fprintf(&want, " %d", l)
		}
		want.WriteString("\n")
	}
	if err := os.WriteFile(in, data, 0o644); err != nil {
		t.Fatal(err)
	}

	out := e2e.Run(t, "job", "submit", wasm, "--input", in, "--max-price", "2000uusdc", "--redundancy", "2", "--memory", "128",
		"--wait", "--out", resultPath, "--home", home, "--node", node)
	if !strings.Contains(out, "order 1: completed") {
		t.Fatalf("submit printed:\n%s", out)
	}
	got, err := os.ReadFile(resultPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("the result differs from native inference:\n got %.200q\nwant %.200q", got, want.Bytes())
	}

	var o job.Order
	if err := protojson.Unmarshal([]byte(e2e.Run(t, "job", "status", "1", "-o", "json", "--home", home, "--node", node)), &o); err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	var paid uint64
	for _, l := range o.Leases {
		if l.Status != job.LeaseStatus_LEASE_STATUS_PAID {
			t.Errorf("lease of %s is %s, want paid", l.Provider, l.Status)
			continue
		}
		paid += l.Price
		// Each lessee serves the same bytes.
		b, err := blob.Fetch(context.Background(), hc, l.OutputUrl, o.Result.OutputHash, 1<<20)
		if err != nil || !bytes.Equal(b, want.Bytes()) {
			t.Errorf("%s's output at %s: %d bytes, %v", l.Provider, l.OutputUrl, len(b), err)
		}
	}
	if len(o.Leases) != 2 || o.Paid != paid || o.Paid+o.Refunded != 4000 || o.Escrow != 0 {
		t.Fatalf("%d leases, paid %d (leases sum %d), refunded %d, held %d; want 2 leases and 4000 accounted for", len(o.Leases), o.Paid, paid, o.Refunded, o.Escrow)
	}
	t.Logf("order 1 completed in %d blocks: paid %d, refunded %d", o.FinishedAt-o.CreatedAt, o.Paid, o.Refunded)
}
