package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/agoranet/agora/examples/jobs/kernel/matmul"
	"github.com/agoranet/agora/internal/chain/channel/channelpb"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/storage/storagepb"
	"github.com/agoranet/agora/internal/client"
	agoradevnet "github.com/agoranet/agora/internal/devnet"
	"github.com/agoranet/agora/internal/e2e"
	"github.com/agoranet/agora/internal/model"
	"github.com/agoranet/agora/internal/storage/prover"
	"github.com/agoranet/agora/internal/storage/transfer"
	"github.com/agoranet/agora/sdk"
	"github.com/agoranet/agora/x402"
)

// startStorageNode runs `agora storage start` as a process of its own on
// a port the kernel picks, and returns its URL and the process.
func startStorageNode(t *testing.T, bin string) (string, *exec.Cmd) {
	t.Helper()
	cmd := exec.Command(bin, "storage", "start", "--dir", t.TempDir(), "--quota", "64MiB", "--listen", "127.0.0.1:0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := bufio.NewScanner(stderr)
	url := regexp.MustCompile(`storage node at (http://[0-9.]+:[0-9]+)`)
	found := make(chan string, 1)
	go func() {
		for lines.Scan() {
			if m := url.FindStringSubmatch(lines.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	select {
	case u := <-found:
		return u, cmd
	case <-time.After(20 * time.Second):
		t.Fatal("the storage node did not say where it listens")
	}
	return "", nil
}

// A file put on six storage node processes comes back byte for byte,
// with two of them killed.
func TestStoragePutGet(t *testing.T) {
	e2e.MultiProcess(t)
	bin := e2e.Binary(t)
	var urls []string
	var procs []*exec.Cmd
	for range 6 {
		u, p := startStorageNode(t, bin)
		urls, procs = append(urls, u), append(procs, p)
	}
	nodes := strings.Join(urls, ",")
	dir := t.TempDir()
	data := make([]byte, 9<<20+12345) // three segments, the last short
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	in := filepath.Join(dir, "in.bin")
	os.WriteFile(in, data, 0o600)
	agora := func(args ...string) (string, string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "AGORA_HOME="+dir)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		return out.String(), errb.String(), err
	}
	out, errs, err := agora("storage", "put", in, "--nodes", nodes, "--output", "json")
	if err != nil {
		t.Fatalf("put: %v\n%s", err, errs)
	}
	var put struct {
		CID      string `json:"cid"`
		Size     int    `json:"size"`
		Segments int    `json:"segments"`
	}
	if err := json.Unmarshal([]byte(out), &put); err != nil || put.Size != len(data) || put.Segments != 3 {
		t.Fatalf("put printed %q (%v)", out, err)
	}
	if errs != "" {
		t.Fatalf("put --output json wrote progress: %q", errs)
	}
	got := filepath.Join(dir, "out.bin")
	if _, errs, err := agora("storage", "get", put.CID, "--nodes", nodes, "--out", got); err != nil {
		t.Fatalf("get: %v\n%s", err, errs)
	} else if !strings.Contains(errs, "(100%)") {
		t.Fatalf("get showed no progress: %q", errs)
	}
	if b, _ := os.ReadFile(got); !bytes.Equal(b, data) {
		t.Fatal("got back other bytes")
	}
	procs[1].Process.Kill()
	procs[4].Process.Kill()
	procs[1].Wait()
	procs[4].Wait()
	os.Remove(got)
	if _, errs, err := agora("storage", "get", put.CID, "--nodes", nodes, "--out", got); err != nil {
		t.Fatalf("get with two nodes killed: %v\n%s", err, errs)
	}
	if b, _ := os.ReadFile(got); !bytes.Equal(b, data) {
		t.Fatal("with two nodes killed, got back other bytes")
	}

	// Four nodes down: a get fails, and leaves no partial file.
	procs[0].Process.Kill()
	procs[2].Process.Kill()
	procs[0].Wait()
	procs[2].Wait()
	lost := filepath.Join(dir, "lost.bin")
	if _, errs, err := agora("storage", "get", put.CID, "--nodes", nodes, "--out", lost); err == nil || !strings.Contains(errs, "too few") {
		t.Fatalf("get with four of six nodes dead: %v, %q; want too few pieces", err, errs)
	}
	if _, err := os.Stat(lost + ".part"); err == nil {
		t.Fatal("a failed get left its .part file")
	}
	nodes = urls[3] + "," + urls[5] + "," + urls[1] // the two live ones first, for the errors below

	// Bad input: clear errors, nothing left behind.
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"storage", "get", "not-a-cid", "--nodes", nodes}, "is not a CID"},
		{[]string{"storage", "get", "bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", "--nodes", nodes, "--out", filepath.Join(dir, "none")}, "has the manifest"},
		{[]string{"storage", "put", in, "--nodes", urls[0] + "," + urls[2]}, "name at least 6"},
		{[]string{"storage", "put", in}, "no such key"}, // without --nodes, a deal on chain, paid by --from
		{[]string{"storage", "put", in, "--nodes", nodes, "--k", "7"}, "1 <= k <= n"},
		{[]string{"storage", "start", "--quota", "lots"}, "--quota"},
	} {
		_, errs, err := agora(c.args...)
		if err == nil || !strings.Contains(errs, c.says) {
			t.Errorf("agora %s: %v, %q; want an error saying %q", strings.Join(c.args, " "), err, errs, c.says)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "none.part")); err == nil {
		t.Error("a failed get left its .part file")
	}
}

// The devnet runs eight storage nodes on chain: a put makes a deal,
// which places the pieces on them, and a get finds them from the deal.
func TestStorageOnTheDevnet(t *testing.T) {
	e2e.MultiProcess(t)
	bin := e2e.Binary(t)
	d := e2e.Devnet(t, nil)
	if len(d.Storage) != 8 {
		t.Fatalf("the devnet runs %d storage nodes, want 8", len(d.Storage))
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "tour.txt")
	os.WriteFile(in, bytes.Repeat([]byte("stored on the devnet\n"), 50_000), 0o600)
	agora := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "AGORA_HOME="+filepath.Dir(d.Keyring.Dir()), "AGORA_NODE="+d.Node.RPC(), "AGORA_STORAGE_NODES=")
		out, err := cmd.Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				t.Fatalf("agora %s: %v\n%s", strings.Join(args, " "), err, ee.Stderr)
			}
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}
	id := agora("storage", "put", in)
	out := filepath.Join(dir, "back.txt")
	agora("storage", "get", id, "--out", out)
	a, _ := os.ReadFile(in)
	b, _ := os.ReadFile(out)
	if !bytes.Equal(a, b) {
		t.Fatal("the devnet gave back other bytes")
	}
	// A batch job whose module and input are stored objects runs, and
	// its result is stored and comes back by CID.
	wasm := e2e.Wasm(t, "./examples/jobs/kernel")
	kin := filepath.Join(dir, "kernel.in")
	os.WriteFile(kin, []byte("64 2"), 0o600)
	res := filepath.Join(dir, "kernel.out")
	printed := agora("job", "submit", wasm, "--input", kin, "--max-price", "2000uusdc", "--storage", "--wait", "--out", res)
	var want strings.Builder
	for _, sum := range matmul.Run(64, 2) {
		fmt.Fprintln(&want, sum)
	}
	if got, _ := os.ReadFile(res); string(got) != want.String() {
		t.Fatalf("the job stored as objects gave %q, want %q:\n%s", got, want.String(), printed)
	}
	m := regexp.MustCompile(`result stored as (\S+) \(deal`).FindStringSubmatch(printed)
	if m == nil {
		t.Fatalf("submit --storage did not store the result:\n%s", printed)
	}
	back := filepath.Join(dir, "kernel.back")
	agora("storage", "get", m[1], "--out", back)
	if got, _ := os.ReadFile(back); string(got) != want.String() {
		t.Fatalf("the stored result came back as %q", got)
	}

	// A weights file stored as an object loads by its CID, as a provider
	// loads --model CID.
	weights := agora("storage", "put", "../../internal/model/weights/digits-mlp.agw")
	var shown struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(agora("model", "show", weights, "--output", "json")), &shown); err != nil {
		t.Fatal(err)
	}
	if digits, _ := model.Lookup(model.DigitsName); shown.ID != digits.Manifest.ID {
		t.Fatalf("the weights stored as %s load as model %q, want %q", weights, shown.ID, digits.Manifest.ID)
	}

	// Reads are paid: a plain GET of the whole object gets the price.
	resp, err := http.Get(d.Storage[3].URL() + "/storage/" + id)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPaymentRequired || resp.Header.Get(x402.HeaderRequired) == "" {
		t.Fatalf("an unpaid GET /storage/%s: %s, want 402 with %s", id, resp.Status, x402.HeaderRequired)
	}
	paidReads(t, d, id, a)
	resp, err = http.Get(d.Storage[0].URL() + "/storage/bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET of an object no deal stores: %s, want 404", resp.Status)
	}
}

// paidReads reads object id (whose bytes are want) from the devnet's
// storage nodes as an x402 payer: whole at a node's plain HTTP path,
// charged in its trailer; a range of one piece, charged in its header;
// and with a cap below a node's price, which is refused unpaid. What the
// payer was charged is what the nodes claim on chain, to the unit.
func paidReads(t *testing.T, d *agoradevnet.Devnet, id string, want []byte) {
	ctx := context.Background()
	k, err := d.Keyring.Get("bob")
	if err != nil {
		t.Fatal(err)
	}
	payer, err := transfer.OpenPayer(k, d.Node.RPC(), filepath.Join(t.TempDir(), "bob.journal"), sdk.Budget{Denom: coin.Stable, Max: 1_000_000, Deposit: 100_000})
	if err != nil {
		t.Fatal(err)
	}
	defer payer.Close()
	hc := transfer.Paying(payer)
	cost := func(n uint64) uint64 { c, _ := storagepb.Per(n, agoradevnet.RetrievalPrice); return c }

	resp, err := hc.Get(d.Storage[3].URL() + "/storage/" + id)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) {
		t.Fatalf("a paid GET /storage/%s: %s, %d bytes, %v", id, resp.Status, len(body), err)
	}
	if got, w := payer.Spent(), cost(uint64(len(want))); got != w {
		t.Fatalf("a %d-byte object at %duusdc a GiB was charged %d, want %d", len(want), agoradevnet.RetrievalPrice, got, w)
	}

	c, err := client.New(d.Node.RPC())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cd, _ := cid.Decode(id)
	o, err := prover.Find(ctx, c, cd)
	if err != nil {
		t.Fatal(err)
	}
	node := o.Locate(0, 0)[0]
	// readRange reads a range of the first piece as a payer, and what it cost.
	readRange := func(r string) (*http.Response, []byte, uint64) {
		before := payer.Spent()
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/storage/v1/pieces/%x", node, o.Manifest.Segments[0].PieceRoots[0]), nil)
		req.Header.Set("Range", r)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, body, payer.Spent() - before
	}
	resp, body, paid := readRange("bytes=100-4195")
	if resp.StatusCode != http.StatusPartialContent || len(body) != 4096 {
		t.Fatalf("a paid range of a piece: %s, %d bytes", resp.Status, len(body))
	}
	if paid != cost(4096) {
		t.Fatalf("4096 bytes of a piece were charged %d, want %d", paid, cost(4096))
	}

	// A range past int64 is read as the node charged it: to the piece's end.
	size := o.Manifest.Segments[0].PieceSize
	if resp, body, paid = readRange("bytes=0-18446744073709551615"); resp.StatusCode != http.StatusPartialContent || uint64(len(body)) != size || paid != cost(size) {
		t.Fatalf("a range to 2^64-1 of a %d-byte piece: %s, %d bytes, charged %d (want %d)", size, resp.Status, len(body), paid, cost(size))
	}

	// A HEAD of a whole object fetches nothing and costs nothing.
	resp, err = http.Head(d.Storage[3].URL() + "/storage/" + id)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len(want)) {
		t.Fatalf("HEAD /storage/%s: %s, Content-Length %d", id, resp.Status, resp.ContentLength)
	}

	// A node asking more than the reader's cap (here: nothing) is not paid.
	before := payer.Spent()
	tc := &transfer.Client{HTTP: hc, Price: func(string, uint64) (uint64, bool) { return 0, true }}
	if err := tc.Get(ctx, o.Manifest, io.Discard, o.Locate); err == nil || !strings.Contains(err.Error(), "allows at most 0") {
		t.Fatalf("a get capped at 0 against priced nodes: %v, want the payer's refusal", err)
	}
	if payer.Spent() != before {
		t.Fatalf("a refused read was charged %d", payer.Spent()-before)
	}

	// Every channel bob opened is claimed, in time, for what he was charged.
	spent := payer.Spent()
	e2e.Eventually(t, 30*time.Second, "the nodes claim what bob was charged", func() error {
		var claimed uint64
		for _, ch := range payer.Channels() {
			got, err := client.Ask(ctx, c, channelpb.QueryChannel, &channelpb.QueryChannelRequest{Id: ch})
			if err != nil {
				return err
			}
			claimed += got.Claimed
		}
		if claimed != spent {
			return fmt.Errorf("claimed %d on %d channels, charged %d", claimed, len(payer.Channels()), spent)
		}
		return nil
	})
}
