package paygate

import (
	"path/filepath"
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
