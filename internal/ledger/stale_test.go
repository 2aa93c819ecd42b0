package ledger_test

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agoranet/agora/internal/ledger"
)

// logged is a slog.Handler that keeps the messages.
type logged struct {
	mu   sync.Mutex
	msgs []string
}

func (h *logged) Enabled(context.Context, slog.Level) bool { return true }
func (h *logged) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logged) WithGroup(string) slog.Handler            { return h }
func (h *logged) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs = append(h.msgs, r.Message)
	return nil
}

// count is how many messages contain s.
func (h *logged) count(s string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, m := range h.msgs {
		if strings.Contains(m, s) {
			n++
		}
	}
	return n
}

// TestLeasesOfAVanishedReplicaAreReleasedAsStale: a replica that dies and
// never comes back (autoscaling gives its successor another name) has its
// lease released by a live replica once it has gone unrenewed for
// StaleAfter; a live replica's leases, renewed, are not.
func TestLeasesOfAVanishedReplicaAreReleasedAsStale(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		db := raw(t, dsn)
		dead := open(t, dsn, "gw-dead")
		key, id, _ := dead.CreateKey(ctx, "uusdc", 10_000)
		key2, id2, _ := dead.CreateKey(ctx, "uusdc", 10_000)
		gone := dead.Leased(ledger.LeaseConfig{Flush: time.Hour, Idle: time.Hour, StaleAfter: time.Hour, Logger: slog.New(slog.DiscardHandler)})
		r, err := gone.Reserve(ctx, key, 100)
		if err != nil {
			t.Fatal(err)
		}
		gone.Settle(r, 60)
		dead.Close() // the process vanishes: nothing renews its lease
		t.Cleanup(func() { gone.Close(ctx) })

		const stale = 300 * time.Millisecond
		other := open(t, dsn, "gw3").Leased(ledger.LeaseConfig{Flush: 10 * time.Millisecond, Idle: time.Hour, StaleAfter: stale})
		defer other.Close(ctx)
		r2, err := other.Reserve(ctx, key2, 100)
		if err != nil {
			t.Fatal(err)
		}
		live := open(t, dsn, "gw2").Leased(ledger.LeaseConfig{Flush: 10 * time.Millisecond, StaleAfter: stale})
		defer live.Close(ctx)
		start := time.Now()
		for books(ctx, t, db)[id].reserved != 0 {
			if time.Since(start) > 10*time.Second {
				t.Fatalf("the vanished replica's lease is still held after %v (StaleAfter %v)", time.Since(start), stale)
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("released after %v", time.Since(start))
		want(t, books(ctx, t, db), id, 10_000, 0, 0) // its unwritten debit of 60 is lost
		time.Sleep(3 * stale)
		if b := books(ctx, t, db)[id2]; b.reserved == 0 {
			t.Errorf("a live replica's lease was released as stale: %+v", b)
		}
		other.Settle(r2, 10)
		if err := other.Close(ctx); err != nil {
			t.Fatal(err)
		}
		want(t, books(ctx, t, db), id2, 10_000-10, 0, 10)
	})
}

// TestLeasesOfALiveReplicaReleasedAsStale: two replicas serve two keys
// under load while one of them keeps having its leases released as stale
// by the other (as after a long pause or a partition; here its renewals
// are simply rarer than the other's StaleAfter). At every commit every
// key's books are whole and nothing is negative; the released replica
// charges what it settled in released leases directly and carries on; after
// both close nothing is reserved, each key's balance is its credit less
// what was charged, and a key that never ran short was charged exactly
// what was settled (one that did, never more).
func TestLeasesOfALiveReplicaReleasedAsStale(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		db := raw(t, dsn)
		dbs := []*ledger.Ledger{open(t, dsn, "gw1"), open(t, dsn, "gw2")}
		const rich, poor = 1_000_000_000, 30_000
		keyRich, idRich, _ := dbs[0].CreateKey(ctx, "uusdc", rich)
		keyPoor, idPoor, _ := dbs[0].CreateKey(ctx, "uusdc", poor)
		log1, log2 := &logged{}, &logged{}
		replicas := []*ledger.Leases{
			dbs[0].Leased(ledger.LeaseConfig{Flush: 5 * time.Millisecond, Idle: 20 * time.Millisecond, StaleAfter: time.Hour, Logger: slog.New(log1)}),
			dbs[1].Leased(ledger.LeaseConfig{Flush: 5 * time.Millisecond, Idle: 20 * time.Millisecond, StaleAfter: 40 * time.Millisecond, Logger: slog.New(log2)}),
		}
		keys := []string{keyRich, keyPoor}
		var settled [2]atomic.Uint64
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ls := replicas[w%2]
				for i := range 300 {
					k := (w/2 + i) % 2
					r, err := ls.Reserve(ctx, keys[k], 200)
					if errors.Is(err, ledger.ErrBalance) {
						continue
					}
					if err != nil {
						t.Error(err)
						return
					}
					if i%7 == 0 {
						time.Sleep(time.Millisecond) // a request in flight across a flush
					}
					actual := uint64(rand.IntN(201))
					if err := ls.Settle(r, actual); err != nil {
						t.Error(err)
						return
					}
					settled[k].Add(actual)
					if i%50 == 0 {
						time.Sleep(30 * time.Millisecond)
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
				case <-time.After(2 * time.Millisecond):
				}
				books(ctx, t, db) // reports books that are not whole
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
		got := books(ctx, t, db)
		want(t, got, idRich, rich-int64(settled[0].Load()), 0, int64(settled[0].Load()))
		if b := got[idPoor]; b.reserved != 0 || b.balance != poor-b.debited || b.debited > int64(settled[1].Load()) {
			t.Errorf("the poor key: %+v; want nothing reserved, its credit %d less its debits, and debits at most the %d settled", b, poor, settled[1].Load())
		}
		released, lost := log2.count("released other replicas' leases"), log1.count("a lease's row was released")
		t.Logf("gw2 released gw1's leases %d times; gw1 found %d leases released; poor key: %d settled, %d debited", released, lost, settled[1].Load(), got[idPoor].debited)
		if released == 0 || lost == 0 {
			t.Error("no lease was released as stale: the test did not test it")
		}
	})
}

// TestLeasesOnALedgerMadeBeforeRenewals: opening a ledger whose
// reservations table has no renewed column adds it; a row written before
// (by a gateway that does not renew) is never taken for stale, and is
// still released when its owner opens the ledger again.
func TestLeasesOnALedgerMadeBeforeRenewals(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		db := raw(t, dsn)
		for _, stmt := range []string{
			`CREATE TABLE api_keys (id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, denom TEXT NOT NULL, balance BIGINT NOT NULL CHECK (balance >= 0), created BIGINT NOT NULL)`,
			`CREATE TABLE reservations (id TEXT PRIMARY KEY, key_id TEXT NOT NULL REFERENCES api_keys(id), owner TEXT NOT NULL, amount BIGINT NOT NULL CHECK (amount >= 0), created BIGINT NOT NULL)`,
			`INSERT INTO api_keys VALUES ('k1', 'h1', 'uusdc', 900, 0)`,
			`INSERT INTO reservations VALUES ('r1', 'k1', 'gw-old', 100, 0)`,
		} {
			if _, err := db.ExecContext(ctx, stmt); err != nil {
				t.Fatalf("%s: %v", stmt, err)
			}
		}
		for range 2 { // a second open finds the column there
			open(t, dsn, "gw1")
		}
		ls := open(t, dsn, "gw2").Leased(ledger.LeaseConfig{Flush: 10 * time.Millisecond, StaleAfter: 40 * time.Millisecond})
		time.Sleep(200 * time.Millisecond)
		if err := ls.Close(ctx); err != nil {
			t.Fatal(err)
		}
		var amount int64
		if err := db.QueryRowContext(ctx, `SELECT amount FROM reservations WHERE id = 'r1'`).Scan(&amount); err != nil || amount != 100 {
			t.Fatalf("the old gateway's reservation: %d, %v; want it kept", amount, err)
		}
		open(t, dsn, "gw-old")
		var n, balance int64
		db.QueryRowContext(ctx, `SELECT COUNT(*) FROM reservations`).Scan(&n)
		db.QueryRowContext(ctx, `SELECT balance FROM api_keys WHERE id = 'k1'`).Scan(&balance)
		if n != 0 || balance != 1000 {
			t.Errorf("after its owner opens the ledger: %d reservations, balance %d; want 0 and 1000", n, balance)
		}
	})
}
