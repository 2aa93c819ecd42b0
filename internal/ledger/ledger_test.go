package ledger_test

import (
	"context"
	"errors"
	"path/filepath"
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

func TestKeys(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		l := open(t, dsn, "gw1")
		key, id, err := l.CreateKey(ctx, "uusdc", 880)
		if err != nil {
			t.Fatal(err)
		}
		if a, err := l.Balance(ctx, key); err != nil || a.ID != id || a.Balance != 880 {
			t.Fatalf("a new key's book: %+v %v", a, err)
		}
		if _, err := l.Balance(ctx, "agk_nope"); !errors.Is(err, ledger.ErrUnknownKey) {
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
	})
}

func TestBackup(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := open(t, filepath.Join(dir, "ledger.db"), "gw")
	key, _, _ := l.CreateKey(ctx, "uusdc", 777)
	ls := l.Leased(ledger.LeaseConfig{})
	r, _ := ls.Reserve(ctx, key, 100)
	ls.Settle(r, 77)
	ls.Close(ctx)
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
