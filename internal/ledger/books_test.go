package ledger_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/agoranet/agora/internal/ledger"
)

// book is one key's row and what refers to it, read in one statement (one
// snapshot, so one commit's state) straight from the database.
type book struct {
	balance, reserved, debited, credited int64
	minReservation                       int64 // 0 when there is none
}

// raw is a connection to the ledger's database behind the package's back.
func raw(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	driver, src := "sqlite", "file:"+dsn+"?_pragma=busy_timeout(10000)"
	if ledger.IsPostgres(dsn) {
		driver, src = "pgx", dsn
	}
	db, err := sql.Open(driver, src)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

const booksQuery = `SELECT a.id, a.balance,
	COALESCE((SELECT SUM(r.amount) FROM reservations r WHERE r.key_id = a.id), 0),
	COALESCE((SELECT MIN(r.amount) FROM reservations r WHERE r.key_id = a.id), 0),
	COALESCE((SELECT SUM(e.amount) FROM entries e WHERE e.key_id = a.id AND e.kind = 'debit'), 0),
	COALESCE((SELECT SUM(e.amount) FROM entries e WHERE e.key_id = a.id AND e.kind = 'credit'), 0)
	FROM api_keys a`

// books reads every key's book and reports any that is not whole: balance
// + reservations + debits = credits, nothing negative.
func books(ctx context.Context, t testing.TB, db *sql.DB) map[string]book {
	t.Helper()
	rows, err := db.QueryContext(ctx, booksQuery)
	if err != nil {
		t.Error(err)
		return nil
	}
	defer rows.Close()
	out := map[string]book{}
	var bad []string
	for rows.Next() {
		var id string
		var b book
		if err := rows.Scan(&id, &b.balance, &b.reserved, &b.minReservation, &b.debited, &b.credited); err != nil {
			t.Error(err)
			return nil
		}
		if b.balance+b.reserved+b.debited != b.credited || b.balance < 0 || b.minReservation < 0 {
			bad = append(bad, id)
			t.Errorf("key %s: balance %d + reserved %d + debited %d != credited %d (least reservation %d)", id, b.balance, b.reserved, b.debited, b.credited, b.minReservation)
		}
		out[id] = b
	}
	if err := rows.Err(); err != nil {
		t.Error(err)
	}
	if len(bad) > 0 {
		t.Errorf("the books are not whole for %s", strings.Join(bad, ", "))
	}
	return out
}
