package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/storage/storagepb"
	"github.com/agoranet/agora/internal/client"
	devnetcfg "github.com/agoranet/agora/internal/devnet"
	"github.com/agoranet/agora/internal/e2e"
)

// storageProc is a storage node process registered on chain.
type storageProc struct {
	key, url, dir string
	cmd           *exec.Cmd
	operator      string
}

// startChainStorageNode runs `agora storage start --key KEY` against the
// devnet's chain, with its pieces in a directory of its own.
func startChainStorageNode(t *testing.T, bin string, env []string, key string) *storageProc {
	t.Helper()
	p := &storageProc{key: key, dir: t.TempDir()}
	p.cmd = exec.Command(bin, "storage", "start", "--key", key, "--dir", p.dir, "--quota", "256MiB", "--listen", "127.0.0.1:0")
	p.cmd.Env = env
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill(); p.cmd.Wait() })
	url := regexp.MustCompile(`storage node at (http://[0-9.]+:[0-9]+)`)
	registered := regexp.MustCompile(`registered on chain as (\S+)'s storage node`)
	found := make(chan string, 2)
	go func() {
		lines := bufio.NewScanner(stderr)
		for lines.Scan() {
			if m := url.FindStringSubmatch(lines.Text()); m != nil {
				found <- "url " + m[1]
			}
			if m := registered.FindStringSubmatch(lines.Text()); m != nil {
				found <- "op " + m[1]
			}
		}
	}()
	for p.url == "" || p.operator == "" {
		select {
		case s := <-found:
			if u, ok := strings.CutPrefix(s, "url "); ok {
				p.url = u
			} else {
				p.operator = strings.TrimPrefix(s, "op ")
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("storage node %s did not start and register", key)
		}
	}
	return p
}

// TestStorageOnChain is issue 18's acceptance run: eight storage node
// processes on a devnet; a 64 MiB file put 4-of-6; two nodes holding its
// pieces SIGKILLed; the file still comes back byte for byte; the chain
// sees their missed proofs, slashes them and repairs every segment to six
// live pieces on the others; a get works after that with the two still
// dead; a node whose piece rots on disk fails its next challenge and is
// slashed; no honest node is ever slashed; and when the deal ends, its
// escrow has gone to proofs, repairs and the refund, to the unit.
func TestStorageOnChain(t *testing.T) {
	e2e.MultiProcess(t)
	bin := e2e.Binary(t)
	d := e2e.Devnet(t, func(c *devnetcfg.Config) { c.StorageNodes, c.Providers = 0, 0 })
	home := filepath.Dir(d.Keyring.Dir())
	env := append(os.Environ(), "AGORA_HOME="+home, "AGORA_NODE="+d.Node.RPC(), "AGORA_STORAGE_NODES=")
	var procs []*storageProc
	for i := range 8 {
		procs = append(procs, startChainStorageNode(t, bin, env, "storage"+string(rune('1'+i))))
	}
	agora := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = env
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
	c, err := client.New(d.Node.RPC())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	alice, _ := d.Keyring.Get("alice")
	balance := func() uint64 {
		b, err := c.Balance(ctx, alice.Address(), coin.Stable)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	before := balance()

	dir := t.TempDir()
	data := make([]byte, 64<<20)
	rng := rand.New(rand.NewPCG(18, 18))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	in := filepath.Join(dir, "in.bin")
	os.WriteFile(in, data, 0o600)
	const epochs = 16
	var put struct {
		CID    string `json:"cid"`
		DealID string `json:"deal_id"`
	}
	if err := json.Unmarshal([]byte(agora("storage", "put", in, "--duration", "16", "--output", "json")), &put); err != nil || put.DealID == "" {
		t.Fatalf("put printed no deal: %v", err)
	}
	get := func(what string) {
		t.Helper()
		out := filepath.Join(dir, "out.bin")
		os.Remove(out)
		// Bob reads (paying the nodes), so that alice's balance moves by
		// her deal alone.
		agora("storage", "get", put.CID, "--out", out, "--from", "bob")
		if b, _ := os.ReadFile(out); !bytes.Equal(b, data) {
			t.Fatalf("%s: got back other bytes", what)
		}
	}
	deal := func() *storagepb.QueryDealResponse {
		t.Helper()
		r, err := client.Ask(ctx, c, storagepb.QueryDeal, &storagepb.QueryDealRequest{Id: 1})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	node := func(op string) *storagepb.StorageNode {
		t.Helper()
		r, err := client.Ask(ctx, c, storagepb.QueryNode, &storagepb.QueryNodeRequest{Operator: op})
		if err != nil {
			t.Fatal(err)
		}
		return r.Node
	}
	height := func() int64 {
		st, err := c.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st.Height
	}
	start := time.Now()
	// waitFor polls cond until it holds, for at most blocks blocks, and
	// returns how many blocks it took.
	waitFor := func(what string, blocks int, cond func() bool) int {
		t.Helper()
		from := height()
		for height() < from+int64(blocks) {
			if cond() {
				h := height()
				t.Logf("%s: at height %d, %d blocks, %v in", what, h, h-from, time.Since(start).Round(time.Second))
				return int(h - from)
			}
			time.Sleep(100 * time.Millisecond)
		}
		for _, pi := range deal().Pieces {
			if pi.Piece.Status != storagepb.PieceStatus_PIECE_STATUS_LIVE {
				t.Logf("piece %d/%d: %s on %s (due %d, accept by %d, lost from %s)", pi.Piece.Segment, pi.Piece.Index, pi.Piece.Status, pi.Piece.Node, pi.Piece.DueEpoch, pi.Piece.AcceptBy, pi.Piece.LostFrom)
			}
		}
		for _, p := range procs {
			n := node(p.operator)
			t.Logf("%s %s: %s used %d misses %d slashed %d probes %d/%d false %d", p.key, p.operator, n.Status, n.Used, n.Misses, n.Slashed, n.ProbesServed, n.ProbesFailed, n.FalseReports)
		}
		t.Fatalf("%s: not within %d blocks", what, blocks)
		return 0
	}
	var status struct {
		Safe     bool `json:"safe"`
		Segments []struct {
			Proven int `json:"proven"`
		} `json:"segments"`
	}
	waitFor("every piece proven", 200, func() bool {
		json.Unmarshal([]byte(agora("storage", "status", put.CID, "--output", "json")), &status)
		for _, s := range status.Segments {
			if s.Proven != 6 {
				return false
			}
		}
		return len(status.Segments) == 16
	})
	t.Logf("deal %s made and its pieces up by %v", put.DealID, time.Since(start).Round(time.Second))
	get("with every node up")

	// SIGKILL the two nodes holding the most pieces.
	held := map[string]int{}
	for _, pi := range deal().Pieces {
		held[pi.Piece.Node]++
	}
	byOp := map[string]*storageProc{}
	for _, p := range procs {
		byOp[p.operator] = p
	}
	var dead []*storageProc
	for range 2 {
		var best *storageProc
		for _, p := range procs {
			if (best == nil || held[p.operator] > held[best.operator]) && !contains(dead, p) {
				best = p
			}
		}
		dead = append(dead, best)
		best.cmd.Process.Signal(syscall.SIGKILL)
		best.cmd.Wait()
	}
	t.Logf("killed %s (%d pieces) and %s (%d pieces)", dead[0].key, held[dead[0].operator], dead[1].key, held[dead[1].operator])
	get("with two nodes killed")

	blocks := waitFor("the dead nodes slashed and every segment repaired to six live pieces", 200, func() bool {
		for _, p := range dead {
			if n := node(p.operator); n.Slashed == 0 || n.Status != storagepb.NodeStatus_NODE_STATUS_SUSPENDED {
				return false
			}
		}
		live := map[uint32]int{}
		for _, pi := range deal().Pieces {
			if pi.Piece.Status == storagepb.PieceStatus_PIECE_STATUS_LIVE && !contains(dead, byOp[pi.Piece.Node]) {
				live[pi.Piece.Segment]++
			}
		}
		for s := range uint32(16) {
			if live[s] != 6 {
				return false
			}
		}
		return true
	})
	r := deal()
	t.Logf("repaired in about %d blocks: %d repairs, %d paid for them", blocks, r.Deal.Repairs, r.Deal.PaidRepairs)
	get("after repair, with the two nodes still dead")

	// A piece rots on a live node's disk: its next proof is missed.
	var rot *storageProc
	var root []byte
	for _, pi := range r.Pieces {
		if p := byOp[pi.Piece.Node]; p != nil && !contains(dead, p) {
			rot, root = p, pi.Piece.Root
			break
		}
	}
	var rotted bool
	filepath.Walk(rot.dir, func(path string, info os.FileInfo, err error) error {
		if err == nil && info.Name() == hex.EncodeToString(root) {
			b, _ := os.ReadFile(path)
			for i := range b {
				b[i] ^= 0x5a
			}
			rotted = os.WriteFile(path, b, 0o600) == nil
		}
		return nil
	})
	if !rotted {
		t.Fatalf("no piece file %x under %s", root, rot.dir)
	}
	waitFor("the node with a rotten piece slashed", 300, func() bool { return node(rot.operator).Slashed > 0 })
	for _, p := range procs {
		if p != rot && !contains(dead, p) {
			if n := node(p.operator); n.Slashed != 0 || n.Status != storagepb.NodeStatus_NODE_STATUS_ACTIVE {
				t.Errorf("honest %s is %s, slashed %d", p.key, n.Status, n.Slashed)
			}
		}
	}

	// The deal runs out; its escrow is accounted for to the unit.
	escrow := r.Deal.Escrow
	waitFor("the deal's end", (epochs+4)*20, func() bool {
		_, err := client.Ask(ctx, c, storagepb.QueryDeal, &storagepb.QueryDealRequest{Id: 1})
		return err != nil && strings.Contains(err.Error(), "no open deal")
	})
	var earned, served, failed, falses uint64
	for _, p := range procs {
		n := node(p.operator)
		earned += n.Earned
		served, failed, falses = served+n.ProbesServed, failed+n.ProbesFailed, falses+n.FalseReports
	}
	t.Logf("retrieval probes: %d served, %d failed, %d false reports", served, failed, falses)
	if served == 0 || falses != 0 {
		t.Errorf("%d probes served and %d false reports among honest probers", served, falses)
	}
	refund := balance() - (before - escrow)
	if earned+refund != escrow {
		t.Errorf("nodes earned %d and alice got back %d of an escrow of %d", earned, refund, escrow)
	}
	t.Logf("escrow %d: %d to nodes for proofs and repairs, %d refunded", escrow, earned, refund)
}

func contains(ps []*storageProc, p *storageProc) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}
