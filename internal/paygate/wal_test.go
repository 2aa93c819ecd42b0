package paygate

import (
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestTheVoucherLogIsSyncedWithinItsInterval: with a sync interval, a
// write returns before its fsync and the background fsync covers it soon
// after; close syncs what is left, and a reopened log replays it all.
// Without one, nothing syncs in the background and append syncs itself.
func TestTheVoucherLogIsSyncedWithinItsInterval(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vouchers.log")
	w, err := openWAL(path, 20*time.Millisecond, func(err error) { t.Error(err) }, func(record) {})
	if err != nil {
		t.Fatal(err)
	}
	offsets := func() (int64, int64) {
		w.mu.Lock()
		written := w.written
		w.mu.Unlock()
		w.syncMu.Lock()
		defer w.syncMu.Unlock()
		return written, w.synced
	}
	for i := uint64(1); i <= 50; i++ {
		if err := w.write(record{Channel: 1, Voucher: i, Signature: []byte{1}}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for written, synced := offsets(); synced < written; written, synced = offsets() {
		if time.Now().After(deadline) {
			t.Fatalf("5 s after the writes: %d bytes written, %d synced", written, synced)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := w.write(record{Channel: 1, Voucher: 51, Signature: []byte{1}}); err != nil {
		t.Fatal(err)
	}
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	if written, synced := offsets(); synced != written {
		t.Errorf("after close: %d bytes written, %d synced", written, synced)
	}
	var best uint64
	w, err = openWAL(path, 0, nil, func(r record) { best = max(best, r.Voucher) })
	if err != nil {
		t.Fatal(err)
	}
	if best != 51 {
		t.Errorf("replayed the best voucher %d, want 51", best)
	}
	w.write(record{Channel: 1, Voucher: 52, Signature: []byte{1}})
	time.Sleep(50 * time.Millisecond)
	if written, synced := offsets(); synced == written {
		t.Error("a log without a sync interval synced a write in the background")
	}
	if err := w.append(record{Channel: 1, Voucher: 53, Signature: []byte{1}}); err != nil {
		t.Fatal(err)
	}
	if written, synced := offsets(); synced != written {
		t.Errorf("append returned with %d bytes written, %d synced", written, synced)
	}
	w.close()
}

// TestAFailedBackgroundSyncStopsTheLog: once a background fsync has
// failed, the log cannot say what is on disk, so writes (and with them
// paid answers) are refused; closing twice at once is safe.
func TestAFailedBackgroundSyncStopsTheLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vouchers.log")
	failed := make(chan error, 1)
	w, err := openWAL(path, 200*time.Millisecond, func(err error) { failed <- err }, func(record) {})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.write(record{Channel: 1, Voucher: 1, Signature: []byte{1}}); err != nil {
		t.Fatal(err)
	}
	w.f.Close() // the background fsync, due in 200 ms, fails as a failing disk's would
	select {
	case <-failed:
	case <-time.After(5 * time.Second):
		t.Fatal("the failed background fsync was not reported")
	}
	if err := w.write(record{Channel: 1, Voucher: 2, Signature: []byte{1}}); err == nil || !strings.Contains(err.Error(), "restart once the disk is sound") {
		t.Errorf("a write after a failed fsync: %v, want it refused", err)
	}
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { w.close() })
	}
	wg.Wait()
}
