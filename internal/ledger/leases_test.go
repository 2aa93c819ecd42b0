package ledger_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agoranet/agora/internal/e2e"
	"github.com/agoranet/agora/internal/ledger"
)

// TestLeasesRefuseOnlyWhatTheKeyCannotPay: one replica, a key of 1,000 and
// requests of up to 100 settled at their maximum: exactly ten are served,
// as without leases, and the eleventh is refused.
func TestLeasesRefuseOnlyWhatTheKeyCannotPay(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		l := open(t, dsn, "gw1")
		key, _, _ := l.CreateKey(ctx, "uusdc", 1000)
		ls := l.Leased(ledger.LeaseConfig{Flush: time.Hour})
		for i := range 10 {
			r, err := ls.Reserve(ctx, key, 100)
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			if err := ls.Settle(r, 100); err != nil {
				t.Fatal(err)
			}
			if err := ls.Settle(r, 100); !errors.Is(err, ledger.ErrSettled) {
				t.Fatalf("a second settle: %v", err)
			}
		}
		if _, err := ls.Reserve(ctx, key, 1); !errors.Is(err, ledger.ErrBalance) {
			t.Fatalf("a request beyond the balance: %v", err)
		}
		if _, err := ls.Reserve(ctx, "agk_nobody", 1); !errors.Is(err, ledger.ErrUnknownKey) {
			t.Fatalf("an unknown key: %v", err)
		}
		if a, _ := ls.Balance(ctx, key); a.Balance != 0 || a.Debited != 1000 || a.Reserved != 0 {
			t.Errorf("before the debits are written, the replica reports %+v", a)
		}
		if err := ls.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if a, _ := l.Balance(ctx, key); a.Balance != 0 || a.Debited != 1000 || a.Reserved != 0 {
			t.Errorf("after close the ledger holds %+v", a)
		}
	})
}

// TestLeasesShareOneKeyAcrossReplicas: two replicas lease from one key and
// serve eight workers until it runs out. After both close the key holds
// exactly its credit less the debits, nothing reserved; while they run the
// database's books are whole (balance + leases + debits = credit).
func TestLeasesShareOneKeyAcrossReplicas(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		dbs := []*ledger.Ledger{open(t, dsn, "gw1"), open(t, dsn, "gw2")}
		const credit = 200_000
		key, _, err := dbs[0].CreateKey(ctx, "uusdc", credit)
		if err != nil {
			t.Fatal(err)
		}
		replicas := []*ledger.Leases{dbs[0].Leased(ledger.LeaseConfig{Flush: 5 * time.Millisecond, Idle: 20 * time.Millisecond}), dbs[1].Leased(ledger.LeaseConfig{Flush: 5 * time.Millisecond, Idle: 20 * time.Millisecond})}
		var debited, served, refused atomic.Uint64
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ls := replicas[w%2]
				for i := range 400 {
					r, err := ls.Reserve(ctx, key, 200)
					if errors.Is(err, ledger.ErrBalance) {
						refused.Add(1)
						continue
					}
					if err != nil {
						t.Error(err)
						return
					}
					actual := uint64(rand.IntN(201))
					if err := ls.Settle(r, actual); err != nil {
						t.Error(err)
						return
					}
					debited.Add(actual)
					served.Add(1)
					if i%50 == 0 {
						time.Sleep(30 * time.Millisecond) // let leases go idle and come back
					}
				}
			}()
		}
		stop := make(chan struct{})
		var checks sync.WaitGroup
		checks.Add(1)
		go func() {
			defer checks.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(3 * time.Millisecond):
				}
				a, err := dbs[1].Balance(ctx, key)
				if err != nil {
					t.Error(err)
					return
				}
				if a.Balance+a.Reserved+a.Debited != credit {
					t.Errorf("the books are not whole: balance %d + reserved %d + debited %d != %d", a.Balance, a.Reserved, a.Debited, credit)
					return
				}
			}
		}()
		wg.Wait()
		close(stop)
		checks.Wait()
		for _, ls := range replicas {
			if err := ls.Close(ctx); err != nil {
				t.Fatal(err)
			}
		}
		a, err := dbs[1].Balance(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if a.Balance != credit-debited.Load() || a.Debited != debited.Load() || a.Reserved != 0 {
			t.Errorf("balance %d (debited %d, reserved %d); want %d, debited %d", a.Balance, a.Debited, a.Reserved, credit-debited.Load(), debited.Load())
		}
		t.Logf("%d served, %d refused", served.Load(), refused.Load())
		if refused.Load() == 0 {
			t.Log("the key never ran out; the test still checks the arithmetic")
		}
	})
}

// TestLeasesOfAKilledReplicaAreReleased: a replica that dies holding a lease
// loses the debits it had not written (the key is charged less, never
// more); the lease itself returns to the key when the replica starts again.
func TestLeasesOfAKilledReplicaAreReleased(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		l := open(t, dsn, "gw1")
		key, _, _ := l.CreateKey(ctx, "uusdc", 10_000)
		ls := l.Leased(ledger.LeaseConfig{Flush: time.Hour, Idle: time.Hour})
		t.Cleanup(func() { ls.Close(ctx) }) // only to stop its loop, once the test is over
		r, err := ls.Reserve(ctx, key, 100)
		if err != nil {
			t.Fatal(err)
		}
		ls.Settle(r, 60)
		if a, _ := l.Balance(ctx, key); a.Reserved == 0 || a.Balance+a.Reserved != 10_000 {
			t.Fatalf("the lease is not in the database: %+v", a)
		}
		// The process dies: Close is never called. It starts again.
		open(t, dsn, "gw2") // another replica releases nothing of gw1's
		if a, _ := l.Balance(ctx, key); a.Reserved == 0 {
			t.Fatalf("another replica released gw1's lease: %+v", a)
		}
		open(t, dsn, "gw1")
		if a, _ := l.Balance(ctx, key); a.Balance != 10_000 || a.Reserved != 0 || a.Debited != 0 {
			t.Errorf("after gw1 restarts: %+v, want all 10000 back (the unwritten debit of 60 is lost)", a)
		}
	})
}

// want checks one key's book as the database holds it.
func want(t *testing.T, got map[string]book, id string, balance, reserved, debited int64) {
	t.Helper()
	b := got[id]
	if b.balance != balance || b.reserved != reserved || b.debited != debited {
		t.Errorf("key %s: balance %d, reserved %d, debited %d; want %d, %d, %d", id, b.balance, b.reserved, b.debited, balance, reserved, debited)
	}
}

// TestLeasesAReleasedLeaseDoesNotBlockTheOthers: another process with this
// owner name releases one of the replica's leases. The next flush still
// writes every other lease's debits; the released lease's debits are
// charged to its key's balance directly, its free balance (returned by the
// release) is dropped, and the key's next request takes a fresh lease.
func TestLeasesAReleasedLeaseDoesNotBlockTheOthers(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		l := open(t, dsn, "gw1")
		db := raw(t, dsn)
		keyA, idA, _ := l.CreateKey(ctx, "uusdc", 10_000)
		keyB, idB, _ := l.CreateKey(ctx, "uusdc", 10_000)
		ls := l.Leased(ledger.LeaseConfig{Flush: time.Hour, Idle: time.Hour})
		defer ls.Close(ctx)
		rA, err := ls.Reserve(ctx, keyA, 100)
		if err != nil {
			t.Fatal(err)
		}
		open(t, dsn, "gw1") // a second process with this owner name releases A's lease
		rB, err := ls.Reserve(ctx, keyB, 100)
		if err != nil {
			t.Fatal(err)
		}
		ls.Settle(rA, 60)
		ls.Settle(rB, 70)
		if err := ls.Write(ctx); err != nil {
			t.Fatalf("a flush with one released lease: %v", err)
		}
		got := books(ctx, t, db)
		want(t, got, idA, 10_000-60, 0, 60)
		if b := got[idB]; b.debited != 70 || b.reserved == 0 {
			t.Errorf("key B after the flush: %+v; want its debit of 70 written and its lease kept", b)
		}
		if err := ls.Write(ctx); err != nil {
			t.Fatalf("the flush after: %v", err)
		}
		rA, err = ls.Reserve(ctx, keyA, 100)
		if err != nil {
			t.Fatal(err)
		}
		ls.Settle(rA, 40)
		if err := ls.Close(ctx); err != nil {
			t.Fatal(err)
		}
		got = books(ctx, t, db)
		want(t, got, idA, 10_000-100, 0, 100)
		want(t, got, idB, 10_000-70, 0, 70)
	})
}

// TestLeasesAReleasedLeaseIsNotExtendedInPlace: once its row is released,
// a lease that runs short must not be extended by recreating its row with
// only the new amount (the lease would then hold more in memory than its
// row, and spend it); it is dropped and the request takes a fresh lease.
func TestLeasesAReleasedLeaseIsNotExtendedInPlace(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		l := open(t, dsn, "gw1")
		db := raw(t, dsn)
		key, id, _ := l.CreateKey(ctx, "uusdc", 10_000)
		ls := l.Leased(ledger.LeaseConfig{Flush: time.Hour, Idle: time.Hour})
		defer ls.Close(ctx)
		r, err := ls.Reserve(ctx, key, 100) // a lease of 1,250
		if err != nil {
			t.Fatal(err)
		}
		ls.Settle(r, 100)
		// Another process with this owner name releases it (the key holds
		// 10,000 again); then a request needs more than the lease holds.
		open(t, dsn, "gw1")
		r, err = ls.Reserve(ctx, key, 2000)
		if err != nil {
			t.Fatal(err)
		}
		got := books(ctx, t, db)
		if b := got[id]; b.reserved < 2000 {
			t.Errorf("a reservation of 2000 is served from %d reserved in the database", b.reserved)
		}
		ls.Settle(r, 500)
		if err := ls.Close(ctx); err != nil {
			t.Fatal(err)
		}
		want(t, books(ctx, t, db), id, 10_000-600, 0, 600)
	})
}

// TestLeasesCloseWaitsForRequestsInFlight: Close lets requests in flight
// settle (until its context ends) and writes their debits; one that gave
// up waiting still writes what settled and returns all the free balance,
// keeping reserved only what the unsettled requests hold.
func TestLeasesCloseWaitsForRequestsInFlight(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		l := open(t, dsn, "gw1")
		db := raw(t, dsn)
		key, id, _ := l.CreateKey(ctx, "uusdc", 10_000)
		ls := l.Leased(ledger.LeaseConfig{Flush: time.Hour, Idle: time.Hour})
		r, err := ls.Reserve(ctx, key, 100)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			time.Sleep(100 * time.Millisecond)
			ls.Settle(r, 30)
		}()
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := ls.Close(cctx); err != nil {
			t.Fatal(err)
		}
		want(t, books(ctx, t, db), id, 10_000-30, 0, 30)

		ls = l.Leased(ledger.LeaseConfig{Flush: time.Hour, Idle: time.Hour})
		if _, err := ls.Reserve(ctx, key, 100); err != nil { // never settles
			t.Fatal(err)
		}
		r, err = ls.Reserve(ctx, key, 50)
		if err != nil {
			t.Fatal(err)
		}
		ls.Settle(r, 50)
		cctx, cancel = context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		if err := ls.Close(cctx); err == nil {
			t.Error("Close with a request in flight past its deadline reported no error")
		}
		want(t, books(ctx, t, db), id, 10_000-30-50-100, 100, 30+50)
	})
}

// TestLeasesAWriteWhoseCommitWasUnacknowledged: a flush commits but its
// acknowledgement is lost (the connection drops during the COMMIT). The
// next flush must not write the same debits and returns again: the key
// ends charged exactly what its requests settled, once. (Before write
// marks, the retry charged the 30 twice and returned the idle lease's
// balance twice.)
func TestLeasesAWriteWhoseCommitWasUnacknowledged(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		l := open(t, dsn, "gw1")
		key, id, _ := l.CreateKey(ctx, "uusdc", 10_000)
		ls := l.Leased(ledger.LeaseConfig{Flush: time.Hour, Idle: time.Nanosecond})
		if err := ls.Write(ctx); err != nil { // the first write sets up the replica's mark
			t.Fatal(err)
		}
		r, err := ls.Reserve(ctx, key, 100)
		if err != nil {
			t.Fatal(err)
		}
		ls.Settle(r, 30)
		l.LoseCommitAcks(1)
		if err := ls.Write(ctx); err == nil {
			t.Fatal("a write whose commit was unacknowledged reported success")
		}
		want(t, books(ctx, t, raw(t, dsn)), id, 9_970, 0, 30) // it did land
		// Requests go on meanwhile: the key takes a lease again.
		r, err = ls.Reserve(ctx, key, 100)
		if err != nil {
			t.Fatal(err)
		}
		ls.Settle(r, 50)
		if err := ls.Write(ctx); err != nil {
			t.Fatal(err)
		}
		want(t, books(ctx, t, raw(t, dsn)), id, 9_920, 0, 80)
		if err := ls.Close(ctx); err != nil {
			t.Fatal(err)
		}
		want(t, books(ctx, t, raw(t, dsn)), id, 9_920, 0, 80)
	})
}

// TestLeasesAWriteThatFailedIsWrittenAgain: the other side of the
// unacknowledged commit: a write that did not land (the transaction failed
// before its commit) is written by the next flush, so nothing settled is
// lost.
func TestLeasesAWriteThatFailedIsWrittenAgain(t *testing.T) {
	ctx := context.Background()
	dsn := filepath.Join(t.TempDir(), "ledger.db")
	l := open(t, dsn, "gw1")
	key, id, _ := l.CreateKey(ctx, "uusdc", 10_000)
	ls := l.Leased(ledger.LeaseConfig{Flush: time.Hour, Idle: time.Hour})
	r, err := ls.Reserve(ctx, key, 100)
	if err != nil {
		t.Fatal(err)
	}
	ls.Settle(r, 30)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := ls.Write(cancelled); err == nil {
		t.Fatal("a write with a cancelled context reported success")
	}
	if err := ls.Write(ctx); err != nil {
		t.Fatal(err)
	}
	b := books(ctx, t, raw(t, dsn))[id]
	if b.debited != 30 || b.balance+b.reserved != 9_970 {
		t.Errorf("after the second write: %+v, want 30 debited", b)
	}
	ls.Close(ctx)
}

// TestLandedWaitsForAWriteStillUnderWay: on PostgreSQL a COMMIT whose
// connection was cut carries on in the server, so the next write's
// question "did it land?" must wait for it, not read the mark as it was
// and write the same debits again. A transaction that has moved the mark
// but not committed stands in for it.
func TestLandedWaitsForAWriteStillUnderWay(t *testing.T) {
	ctx := context.Background()
	dsn := e2e.Postgres(t)
	l := open(t, dsn, "gw1")
	if err := l.MakeMark(ctx, "w1"); err != nil {
		t.Fatal(err)
	}
	under, err := raw(t, dsn).BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := under.ExecContext(ctx, `UPDATE write_marks SET seq = 1 WHERE writer = 'w1'`); err != nil {
		t.Fatal(err)
	}
	answer := make(chan bool, 1)
	go func() {
		landed, err := l.Landed(ctx, "w1", 1)
		if err != nil {
			t.Error(err)
		}
		answer <- landed
	}()
	select {
	case landed := <-answer:
		t.Fatalf("landed answered %v while the write was still under way", landed)
	case <-time.After(300 * time.Millisecond):
	}
	if err := under.Commit(); err != nil {
		t.Fatal(err)
	}
	if landed := <-answer; !landed {
		t.Error("the write committed, but landed says it did not")
	}
}

// TestLeasesAnExtensionWhoseCommitWasUnacknowledged: a lease's first
// extension commits but its acknowledgement is lost. The request still
// gets its reservation (from a fresh lease), and the row the lost
// extension left is dropped at the next write, its amount back with the
// key: after Close nothing stays reserved. (Before, the row stayed,
// renewed by this replica, holding an eighth of the key until it
// restarted.)
func TestLeasesAnExtensionWhoseCommitWasUnacknowledged(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		l := open(t, dsn, "gw1")
		key, id, _ := l.CreateKey(ctx, "uusdc", 10_000)
		ls := l.Leased(ledger.LeaseConfig{Flush: time.Hour, Idle: time.Hour})
		if err := ls.Write(ctx); err != nil { // sets up the replica's mark
			t.Fatal(err)
		}
		l.LoseCommitAcks(1)
		r, err := ls.Reserve(ctx, key, 100)
		if err != nil {
			t.Fatal(err)
		}
		ls.Settle(r, 30)
		if b := books(ctx, t, raw(t, dsn))[id]; b.reserved <= 1250 {
			t.Fatalf("the lost extension left no row: %+v", b)
		}
		if err := ls.Write(ctx); err != nil {
			t.Fatal(err)
		}
		if err := ls.Close(ctx); err != nil {
			t.Fatal(err)
		}
		want(t, books(ctx, t, raw(t, dsn)), id, 9_970, 0, 30)
	})
}
