package sdk

import (
	"path/filepath"
	"testing"
)

// TestAJournalAfterACrashBelievesOnlyItsReservations: with no clean close,
// a restored channel knows no voucher it signed, only that none went above
// its last reservation; a provider's account is believed up to there.
func TestAJournalAfterACrashBelievesOnlyItsReservations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j")
	j, _, _, err := openJournal(path, "payer", "chain")
	if err != nil {
		t.Fatal(err)
	}
	j.write(jrecord{Channel: 7, Payee: "p", Model: "m", Denom: "u", Deposit: 10_000, ExpiresAt: 99}, true)
	j.write(jrecord{Channel: 7, UpTo: 1200}, true)
	j.f.Close() // a crash: no books written

	j, chans, _, err := openJournal(path, "payer", "chain")
	if err != nil {
		t.Fatal(err)
	}
	if len(chans) != 1 || chans[0].signed != 0 || chans[0].restored != 1200 || chans[0].reserved != 1200 {
		t.Fatalf("restored %+v; want nothing known signed, 1200 believable", chans[0])
	}
	chans[0].signed, chans[0].charged, chans[0].restored = 900, 800, 0 // the provider's account adopted
	if err := j.close(chans); err != nil {
		t.Fatal(err)
	}
	j, chans, _, err = openJournal(path, "payer", "chain")
	if err != nil {
		t.Fatal(err)
	}
	if c := chans[0]; c.signed != 900 || c.charged != 800 || c.restored != 0 {
		t.Errorf("after a clean close: %+v; want the books as they were", c)
	}
	j.f.Close() // that run crashes: it may have signed past those books
	j, chans, _, err = openJournal(path, "payer", "chain")
	if err != nil {
		t.Fatal(err)
	}
	defer j.close(nil)
	if c := chans[0]; c.signed != 0 || c.restored != 1200 {
		t.Errorf("after a clean close and then a crash: %+v; want only the reservation believed", c)
	}
	if _, _, _, err := openJournal(filepath.Join(t.TempDir(), "j2"), "payer", "chain"); err != nil {
		t.Fatal(err)
	}
}
