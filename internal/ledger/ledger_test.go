package ledger_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/agoranet/agora/internal/e2e"
	"github.com/agoranet/agora/internal/ledger"
)

// backends runs a test against an embedded SQLite file and a real
// PostgreSQL server.
func backends(t *testing.T, test func(t *testing.T, dsn string)) {
	t.Run("sqlite", func(t *testing.T) { test(t, filepath.Join(t.TempDir(), "ledger.db")) })
	t.Run("postgres", func(t *testing.T) { test(t, e2e.Postgres(t)) })
}

func open(t *testing.T, dsn, owner string) *ledger.Ledger {
	t.Helper()
	l, err := ledger.Open(context.Background(), dsn, owner)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestReserveSettle(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		l := open(t, dsn, "gw1")
		key, id, err := l.CreateKey(ctx, "uusdc", 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(id) != 32 {
			t.Errorf("id %q: want 128 bits, so ids do not collide", id)
		}
		r, err := l.Reserve(ctx, key, 300)
		if err != nil {
			t.Fatal(err)
		}
		if a, _ := l.Balance(ctx, key); a.Balance != 700 || a.Reserved != 300 {
			t.Errorf("while reserved: %+v", a)
		}
		if err := l.Settle(ctx, r, 120); err != nil {
			t.Fatal(err)
		}
		if err := l.Settle(ctx, r, 120); !errors.Is(err, ledger.ErrSettled) {
			t.Errorf("settling twice: %v, want ErrSettled", err)
		}
		a, _ := l.Balance(ctx, key)
		if a.Balance != 880 || a.Reserved != 0 || a.Debited != 120 {
			t.Errorf("after settling 120 of 300: %+v, want balance 880, debited 120", a)
		}
		if _, err := l.Reserve(ctx, key, 881); !errors.Is(err, ledger.ErrBalance) {
			t.Errorf("reserving more than the balance: %v", err)
		}
		if _, err := l.Reserve(ctx, "agk_nope", 1); !errors.Is(err, ledger.ErrUnknownKey) {
			t.Errorf("an unknown key: %v", err)
		}
		if a, err := l.TopUp(ctx, id, "uusdc", 20); err != nil || a.Balance != 900 {
			t.Errorf("top-up: %+v %v", a, err)
		}
		if _, err := l.TopUp(ctx, id, "uagr", 20); err == nil {
			t.Error("a top-up in another denom succeeded")
		}
		if added, err := l.AddKey(ctx, key, "uusdc", 5); err != nil || added {
			t.Errorf("adding an existing key: added %v, %v; want it left alone", added, err)
		}
		// A replica that crashed with a reservation open gets it back,
		// uncharged, when it opens the ledger again.
		if _, err := l.Reserve(ctx, key, 400); err != nil {
			t.Fatal(err)
		}
		open(t, dsn, "gw2") // another replica's start releases nothing of gw1's
		if a, _ := l.Balance(ctx, key); a.Reserved != 400 {
			t.Errorf("another replica released gw1's reservation: %+v", a)
		}
		open(t, dsn, "gw1")
		if a, _ := l.Balance(ctx, key); a.Balance != 900 || a.Reserved != 0 {
			t.Errorf("after gw1 restarts: %+v, want 900 and nothing reserved", a)
		}
	})
}

// TestReplicasShareOneBalance: two replicas (two owners, two pools of
// connections) reserve and settle concurrently on one key until it runs
// out. The balance never goes negative, no reservation is settled twice,
// and what is left is exactly the credit less the debits.
func TestReplicasShareOneBalance(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		replicas := []*ledger.Ledger{open(t, dsn, "gw1"), open(t, dsn, "gw2")}
		const credit = 50_000
		key, _, err := replicas[0].CreateKey(ctx, "uusdc", credit)
		if err != nil {
			t.Fatal(err)
		}
		var debited, refused atomic.Uint64
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				l := replicas[w%2]
				for range 60 {
					r, err := l.Reserve(ctx, key, 200)
					if errors.Is(err, ledger.ErrBalance) {
						refused.Add(1)
						continue
					}
					if err != nil {
						t.Error(err)
						return
					}
					actual := uint64(rand.IntN(201))
					if err := l.Settle(ctx, r, actual); err != nil {
						t.Error(err)
						return
					}
					debited.Add(actual)
				}
			}()
		}
		wg.Wait()
		a, err := replicas[1].Balance(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if a.Balance != credit-debited.Load() || a.Debited != debited.Load() || a.Reserved != 0 {
			t.Errorf("balance %d (debited %d, reserved %d); want %d, debited %d", a.Balance, a.Debited, a.Reserved, credit-debited.Load(), debited.Load())
		}
		if refused.Load() == 0 {
			t.Log("the key never ran out; the test still checks the arithmetic")
		}
	})
}

func TestBackup(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := open(t, filepath.Join(dir, "ledger.db"), "gw")
	key, _, _ := l.CreateKey(ctx, "uusdc", 777)
	r, _ := l.Reserve(ctx, key, 100)
	l.Settle(ctx, r, 77)
	if err := l.Backup(ctx, filepath.Join(dir, "backup.db")); err != nil {
		t.Fatal(err)
	}
	if err := l.Backup(ctx, filepath.Join(dir, "backup.db")); err == nil {
		t.Error("a backup over an existing file succeeded")
	}
	b := open(t, filepath.Join(dir, "backup.db"), "gw")
	if a, err := b.Balance(ctx, key); err != nil || a.Balance != 700 || a.Debited != 77 {
		t.Errorf("the backup's book: %+v %v", a, err)
	}
}
