// Package e2e runs the agora binary as separate processes for end-to-end
// and fault tests: it builds the binary once, starts and SIGKILLs daemons,
// and finds free loopback ports. Every process it starts is killed when
// the test ends.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agoranet/agora/internal/devnet"
)

// builds holds one build of ./cmd/agora per set of build tags.
var (
	buildMu sync.Mutex
	builds  = map[string]*build{}
)

type build struct {
	once sync.Once
	path string
	err  error
}

// Binary builds ./cmd/agora once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	return BinaryTags(t, "")
}

// BinaryTags is Binary built with the comma-separated build tags, once per
// test process: the upgrade test's "new release" is the binary built with
// a tag that registers one more migration.
func BinaryTags(t testing.TB, tags string) string {
	t.Helper()
	buildMu.Lock()
	b := builds[tags]
	if b == nil {
		b = &build{}
		builds[tags] = b
	}
	buildMu.Unlock()
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "agora-e2e-bin")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, "agora")
		args := []string{"build", "-o", b.path}
		if tags != "" {
			args = append(args, "-tags", tags)
		}
		cmd := exec.Command("go", append(args, "./cmd/agora")...)
		cmd.Dir = moduleRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build -tags %q: %v\n%s", tags, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Run runs the binary to completion and returns its stdout; a non-zero exit
// fails the test with stderr.
//
// A tx the CLI reports dropped (client.ErrDropped: its sequence was taken
// by another tx of the same key, as a validator's own beacon txs take its
// operator key's) is sent again, up to twice, as the error says it may be.
func Run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := RunErr(t, args...)
	for try := 0; try < 2 && err != nil && strings.Contains(err.Error(), "dropped from the mempool"); try++ {
		t.Logf("agora %s: %v; sending it again", strings.Join(args, " "), err)
		out, err = RunErr(t, args...)
	}
	if err != nil {
		t.Fatalf("agora %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// RunErr is Run that returns the error (with stderr) instead of failing.
func RunErr(t testing.TB, args ...string) (string, error) {
	t.Helper()
	return RunBinary(t, Binary(t), args...)
}

// RunBinary is RunErr with another build of the binary (see BinaryTags).
func RunBinary(t testing.TB, bin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = append(os.Environ(), "AGORA_HOME=", "AGORA_NODE=")
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Proc is a daemon started by Start.
type Proc struct {
	Name string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
}

// Start launches the binary in the background with its output in
// <logDir>/<name>.log. The test's cleanup kills it.
func Start(t testing.TB, logDir, name string, args ...string) *Proc {
	t.Helper()
	return StartBinary(t, Binary(t), logDir, name, args...)
}

// StartBinary is Start with another build of the binary (see BinaryTags).
func StartBinary(t testing.TB, bin, logDir, name string, args ...string) *Proc {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(logDir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), "AGORA_HOME=", "AGORA_NODE=")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatal(err)
	}
	p := &Proc{Name: name, cmd: cmd, log: f, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.Kill(); f.Close() })
	return p
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Proc) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// Stop freezes the process (SIGSTOP): it keeps its sockets and answers
// nothing, like a stuck GPU or a swapping host. Continue (SIGCONT) lets it
// go on; a test's cleanup kills a stopped process too.
func (p *Proc) Stop() { _ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGSTOP) }

// Continue resumes a process Stop froze.
func (p *Proc) Continue() { _ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGCONT) }

// Interrupt sends SIGINT and waits up to timeout for a clean exit.
func (p *Proc) Interrupt(timeout time.Duration) error {
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
		if code := p.cmd.ProcessState.ExitCode(); code != 0 {
			return fmt.Errorf("%s exited with %d after SIGINT", p.Name, code)
		}
		return nil
	case <-time.After(timeout):
		p.Kill()
		return fmt.Errorf("%s did not stop within %s of SIGINT", p.Name, timeout)
	}
}

// Wait waits up to timeout for the process to end by itself and returns
// its exit code, or -1 if it is still running (it is then left running).
func (p *Proc) Wait(timeout time.Duration) int {
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		return -1
	}
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Log returns what the process has printed so far.
func (p *Proc) Log() string {
	b, _ := os.ReadFile(p.log.Name())
	return string(b)
}

// FreePorts returns a base port such that base .. base+span-1 are all free
// on 127.0.0.1 right now. Test binaries of different packages run at the
// same time, so a base is also claimed with a lock file until the test
// ends, and no two tests get overlapping ranges.
func FreePorts(t testing.TB, span int) int {
	t.Helper()
	const step = 100 // ranges are claimed in whole blocks of 100 ports
	if span > step {
		t.Fatalf("e2e: at most %d ports per range", step)
	}
	for try := 0; try < 300; try++ {
		// Blocks from 20000 to 32699: below the kernel's ephemeral range
		// (32768-60999 here), where a client socket could take a port
		// after the check below and a listener then fails to bind.
		base := 20000 + ((os.Getpid()+try*7)%127)*step
		lock := filepath.Join(os.TempDir(), fmt.Sprintf("agora-e2e-ports-%d", base))
		if st, err := os.Stat(lock); err == nil && time.Since(st.ModTime()) > time.Hour {
			os.Remove(lock) // left by a test that was killed
		}
		f, err := os.OpenFile(lock, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			continue // another test holds this block
		}
		f.Close()
		ok := true
		for p := base; p < base+span && ok; p++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				ok = false
				continue
			}
			l.Close()
		}
		if !ok {
			os.Remove(lock)
			continue
		}
		t.Cleanup(func() { os.Remove(lock) })
		return base
	}
	t.Fatal("no free port range on 127.0.0.1")
	return 0
}

// Eventually polls cond every 100ms until it returns nil or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// MultiProcess marks a test that runs the agora binary as processes of its
// own. It is skipped with -short, and under the race detector: the
// processes are not instrumented, so -race would only slow the machine
// they share, and CI runs these tests in a step of their own without it.
func MultiProcess(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("multi-process test; skipped with -short")
	}
	if raceEnabled {
		t.Skip("multi-process test; skipped under -race (CI runs it in its own step: go test ./cmd/agora)")
	}
}

// Devnet runs a devnet in this process on free loopback ports with fast
// blocks, for tests; configure may adjust the config. The test's cleanup
// stops it.
func Devnet(t testing.TB, configure func(*devnet.Config)) *devnet.Devnet {
	t.Helper()
	cfg := devnet.DefaultConfig(t.TempDir())
	cfg.BasePort = FreePorts(t, 80) // storage nodes at +70…
	cfg.BlockTime = 100 * time.Millisecond
	if configure != nil {
		configure(&cfg)
	}
	d, err := devnet.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop() })
	return d
}

var (
	wasmMu    sync.Mutex // guards wasmBuilt
	wasmBuilt = map[string]string{}
)

// Wasm builds the Go program at pkg (like "./examples/jobs/kernel") for
// GOOS=wasip1, once per test process, and returns the module's path.
func Wasm(t testing.TB, pkg string) string {
	t.Helper()
	wasmMu.Lock()
	defer wasmMu.Unlock()
	if p, ok := wasmBuilt[pkg]; ok {
		return p
	}
	dir, err := os.MkdirTemp("", "agora-e2e-wasm")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, filepath.Base(pkg)+".wasm")
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = moduleRoot()
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s for wasip1: %v\n%s", pkg, err, msg)
	}
	wasmBuilt[pkg] = out
	return out
}

// KeyBalance reads an API key's spendable balance from a gateway's
// GET /v1/key.
func KeyBalance(t testing.TB, gateway, key string) uint64 {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, gateway+"/v1/key", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b struct{ Balance string }
	if err := json.NewDecoder(resp.Body).Decode(&b); err != nil {
		t.Fatalf("GET %s/v1/key: %v", gateway, err)
	}
	n, _ := strconv.ParseUint(b.Balance, 10, 64)
	return n
}
