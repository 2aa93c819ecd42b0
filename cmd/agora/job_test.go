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

	"github.com/agoranet/agora/examples/jobs/kernel/matmul"
	"github.com/agoranet/agora/internal/blob"
	"github.com/agoranet/agora/internal/chain/job/jobpb"
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

	var o jobpb.Order
	if err := protojson.Unmarshal([]byte(e2e.Run(t, "job", "status", "1", "-o", "json", "--home", home, "--node", node)), &o); err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	var paid uint64
	for _, l := range o.Leases {
		if l.Status != jobpb.LeaseStatus_LEASE_STATUS_PAID {
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

// TestJobLesseeSIGKILLed: two provider processes undercut the devnet's
// providers and are leased a job; one is SIGKILLed while the job runs. It
// misses its deadline, is penalised, the job goes to the next bid (a devnet
// provider), and the order completes with the kernel's result, the escrow
// fully accounted for.
func TestJobLesseeSIGKILLed(t *testing.T) {
	if testing.Short() {
		t.Skip("a devnet and two provider processes; skipped with -short")
	}
	home, node, base := devnetWith(t, "--free")
	wasm := e2e.Wasm(t, "./examples/jobs/kernel")
	procs := map[string]*e2e.Proc{}
	for i, key := range []string{"bob", "modelowner"} {
		listen := fmt.Sprintf("127.0.0.1:%d", base+15+i)
		procs[key] = e2e.Start(t, home, "jobs-"+key, "provider", "start", "--key", key, "--bond", "200000000uagr", "--listen", listen,
			"--model", "agora/digits-mlp", "--job-price", fmt.Sprintf("%duusdc", 500+100*i), "--home", home, "--node", node)
		e2e.Eventually(t, 30*time.Second, key+"'s provider up", func() error {
			resp, err := http.Get("http://" + listen + "/healthz")
			if err == nil {
				resp.Body.Close()
			}
			return err
		})
	}
	in := filepath.Join(t.TempDir(), "kernel.in")
	if err := os.WriteFile(in, []byte("160 4"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := e2e.Run(t, "job", "submit", wasm, "--input", in, "--max-price", "2000uusdc", "--deadline", "100", "--home", home, "--node", node)
	if !strings.Contains(out, "order 1 placed") {
		t.Fatalf("submit printed:\n%s", out)
	}
	status := func() *jobpb.Order {
		var o jobpb.Order
		if err := protojson.Unmarshal([]byte(e2e.Run(t, "job", "status", "1", "-o", "json", "--home", home, "--node", node)), &o); err != nil {
			t.Fatal(err)
		}
		return &o
	}
	addrOf := func(key string) string {
		return strings.TrimSpace(e2e.Run(t, "keys", "show", key, "--address", "--home", home))
	}
	victim := addrOf("bob")
	e2e.Eventually(t, 30*time.Second, "bob leased", func() error {
		for _, l := range status().Leases {
			if l.Provider == victim && l.Status == jobpb.LeaseStatus_LEASE_STATUS_ACTIVE {
				return nil
			}
		}
		return fmt.Errorf("bob holds no running lease yet")
	})
	procs["bob"].Kill()

	var o *jobpb.Order
	e2e.Eventually(t, 90*time.Second, "order 1 ends", func() error {
		if o = status(); o.FinishedAt == 0 {
			return fmt.Errorf("order 1 is %s", o.Status)
		}
		return nil
	})
	if o.Status != jobpb.OrderStatus_ORDER_STATUS_COMPLETED {
		t.Fatalf("order 1 ended %s: %s", o.Status, o.Reason)
	}
	var paid uint64
	for _, l := range o.Leases {
		switch {
		case l.Provider == victim && l.Status != jobpb.LeaseStatus_LEASE_STATUS_MISSED:
			t.Errorf("the killed lessee's lease is %s, want missed", l.Status)
		case l.Status == jobpb.LeaseStatus_LEASE_STATUS_PAID:
			paid += l.Price
		}
	}
	if len(o.Leases) != 3 || o.Releases != 1 || o.Paid != paid || o.Paid+o.Refunded != 4000 || o.Escrow != 0 {
		t.Fatalf("leases %d, releases %d, paid %d (leases %d) + refunded %d, held %d", len(o.Leases), o.Releases, o.Paid, paid, o.Refunded, o.Escrow)
	}
	if bound := o.BidWindow + 2*o.DeadlineBlocks + 40; o.FinishedAt-o.CreatedAt > bound {
		t.Errorf("the order took %d blocks, over the bound %d", o.FinishedAt-o.CreatedAt, bound)
	}
	// The result is the kernel's, computed natively.
	resultPath := filepath.Join(t.TempDir(), "kernel.out")
	e2e.Run(t, "job", "result", "1", "--out", resultPath, "--home", home, "--node", node)
	var want strings.Builder
	for _, sum := range matmul.Run(160, 4) {
		fmt.Fprintln(&want, sum)
	}
	if got, err := os.ReadFile(resultPath); err != nil || string(got) != want.String() {
		t.Fatalf("result %q (%v), want %q", got, err, want.String())
	}
	t.Logf("order 1: lessee SIGKILLed, re-leased, completed in %d blocks (paid %d, refunded %d)", o.FinishedAt-o.CreatedAt, o.Paid, o.Refunded)
}
