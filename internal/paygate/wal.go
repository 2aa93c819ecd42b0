package paygate

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agoranet/agora/internal/durable"
)

// record is one line of the voucher log.
type record struct {
	Channel   uint64 `json:"c"`
	Voucher   uint64 `json:"v,omitempty"`  // a voucher for this cumulative…
	Signature []byte `json:"s,omitempty"`  // …with this signature
	Charged   uint64 `json:"ch,omitempty"` // the charged total after an answer…
	Receipt   []byte `json:"r,omitempty"`  // …and the hash of its receipt
	Claimed   uint64 `json:"cl,omitempty"` // a claim the chain accepted…
	Count     uint64 `json:"n,omitempty"`  // …covering this many receipts
	// Claiming is a claim about to be sent (with Count receipts), written
	// before it is: a crash between the chain's acceptance and the Claimed
	// record leaves this, which the next start settles against the chain's
	// anchors (see Gate.settleIntents). Dropped marks one that did not land.
	Claiming uint64 `json:"ci,omitempty"`
	Dropped  bool   `json:"x,omitempty"`
}

// wal is an append-only log of JSON lines. append returns once its records
// are on disk, and concurrent appends share fsyncs (group commit): whoever
// syncs, syncs everything written so far. write returns once the kernel
// has them; with a sync interval (see Config.SyncEvery), a background
// fsync follows every write within that interval.
type wal struct {
	mu      sync.Mutex // guards f writes and written
	f       *os.File
	written int64

	syncMu sync.Mutex // serialises fsyncs; guards synced
	synced int64

	every      time.Duration // the background fsync's interval; 0: none
	dirty      chan struct{} // a write is waiting for the background fsync
	stop       chan struct{}
	stopOnce   sync.Once
	stopped    chan struct{}
	onErr      func(error)  // a background fsync failed
	syncFailed atomic.Value // the error of a failed background fsync; writes fail after it
}

// openWAL opens path and replays its records into fn. A torn last line
// (a crash mid-write) is ignored. every > 0 starts the background fsync
// that writes wait for (see write); onErr hears of its failures.
func openWAL(path string, every time.Duration, onErr func(error), fn func(record)) (*wal, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("paygate: voucher log: %w", err)
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 4096), 1<<20)
	var size int64
	for sc.Scan() {
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			break
		}
		size += int64(len(sc.Bytes())) + 1
		fn(r)
	}
	// Cut a torn tail so new records start on a clean line.
	if err := f.Truncate(size); err != nil {
		f.Close()
		return nil, err
	}
	w := &wal{f: f, written: size, synced: size, every: every, onErr: onErr, dirty: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
	if every > 0 {
		go w.syncLoop()
	} else {
		close(w.stopped)
	}
	return w, nil
}

// syncLoop fsyncs what has been written at most every w.every after the
// write: a write waits at most that long (and the fsync's own time) to be
// on disk.
func (w *wal) syncLoop() {
	defer close(w.stopped)
	for {
		select {
		case <-w.stop:
			return
		case <-w.dirty:
		}
		select {
		case <-w.stop:
			return
		case <-time.After(w.every):
		}
		if err := w.sync(); err != nil {
			// Linux may drop the pages of a failed fsync and report the
			// next one a success: the log cannot say any more what is on
			// disk, so no more answers are served on its word.
			w.syncFailed.CompareAndSwap(nil, err)
			if w.onErr != nil {
				w.onErr(err)
			}
		}
	}
}

// scanLog reads the records of the log at path in order, while fn says
// go on; a torn last line ends it.
func scanLog(path string, fn func(record) bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 4096), 1<<20)
	for sc.Scan() {
		var r record
		if json.Unmarshal(sc.Bytes(), &r) != nil || !fn(r) {
			return nil
		}
	}
	return sc.Err()
}

// write appends r without waiting for the disk: it survives a crash of
// the process (the kernel has it), and, with a background fsync, of the
// machine once that has run.
func (w *wal) write(r record) error {
	if err := w.failed(); err != nil {
		return err
	}
	b, _ := json.Marshal(r)
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, err := w.f.Write(append(b, '\n')); err != nil {
		return w.undo(err)
	}
	w.written += int64(len(b)) + 1
	if w.every > 0 {
		select {
		case w.dirty <- struct{}{}:
		default: // a background fsync is due already
		}
	}
	return nil
}

// failed is why the log takes no more writes (a background fsync
// failed), or nil.
func (w *wal) failed() error {
	if err, _ := w.syncFailed.Load().(error); err != nil {
		return fmt.Errorf("paygate: the voucher log failed to reach the disk (%v); restart once the disk is sound", err)
	}
	return nil
}

// append writes rs, in one write, and returns once they are on disk.
func (w *wal) append(rs ...record) error {
	var b []byte
	for _, r := range rs {
		j, _ := json.Marshal(r)
		b = append(append(b, j...), '\n')
	}
	w.mu.Lock()
	if _, err := w.f.Write(b); err != nil {
		err = w.undo(err)
		w.mu.Unlock()
		return err
	}
	w.written += int64(len(b))
	mine := w.written
	w.mu.Unlock()
	return w.syncTo(mine)
}

// sync fsyncs everything written so far.
func (w *wal) sync() error {
	w.mu.Lock()
	mine := w.written
	w.mu.Unlock()
	return w.syncTo(mine)
}

// syncTo returns once the log is on disk up to offset mine, sharing an
// fsync with whoever is syncing.
func (w *wal) syncTo(mine int64) error {
	w.syncMu.Lock()
	defer w.syncMu.Unlock()
	if w.synced >= mine {
		return nil // another fsync covered this one
	}
	w.mu.Lock()
	target := w.written
	w.mu.Unlock()
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("paygate: sync voucher log: %w", err)
	}
	w.synced = target
	return nil
}

// undo cuts what a failed write left of a line, with w.mu held: a torn
// line mid-log would end every replay there, and with it every record
// after it.
func (w *wal) undo(err error) error {
	if terr := w.f.Truncate(w.written); terr != nil {
		return fmt.Errorf("paygate: write voucher log: %w (and cutting the torn line failed: %v)", err, terr)
	}
	return fmt.Errorf("paygate: write voucher log: %w", err)
}

// close stops the background fsync and syncs what it had not.
func (w *wal) close() error {
	w.stopOnce.Do(func() { close(w.stop) })
	<-w.stopped
	err := w.sync()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// BackupLog writes a consistent copy of the voucher log at src to dst,
// while a gate may be appending to it: every record is one write of a whole
// line, so the file up to its last newline is a state the log was in. The
// copy is synced before BackupLog returns; dst must not exist.
func BackupLog(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("paygate: back up the voucher log: %w", err)
	}
	b = b[:bytes.LastIndexByte(b, '\n')+1] // a line being written is not yet in the log
	if err := durable.WriteNew(dst, b); err != nil {
		return fmt.Errorf("paygate: back up the voucher log: %w", err)
	}
	return nil
}
