// Package ledger is the gateway's book of API keys and their prepaid
// balances, in a transactional database: an embedded SQLite file by
// default, or PostgreSQL so that several gateway replicas share one ledger.
//
// A request first reserves its maximum price (the balance drops at once, so
// concurrent requests cannot overspend it), then settles the actual price:
// the rest returns to the balance and the debit is recorded. Reservations
// are taken from leases (see Leases): a replica holds part of a key's
// balance in a reservation row and serves requests from it in memory, so
// that the database sees a few writes a second, not two per request. Every
// change is a transaction, a balance can never go negative (a CHECK and a
// guarded UPDATE), and a reservation settles exactly once.
//
// Only this ledger is shared between replicas. Each replica has its own
// payer key and its own channels to providers, so two replicas never sign
// conflicting vouchers; a replica's reservations carry its owner name and
// are renewed while it runs. Those a crashed replica left are released
// (never charged) when it opens the ledger again, or by any other replica
// once they have gone unrenewed for LeaseConfig.StaleAfter.
package ledger

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver
	_ "modernc.org/sqlite"             // the "sqlite" driver (pure Go)
)

// Errors of lookups and reservations.
var (
	ErrUnknownKey = errors.New("ledger: unknown API key")
	ErrBalance    = errors.New("ledger: insufficient balance")
	ErrSettled    = errors.New("ledger: the reservation is already settled")
)

// Ledger is an open ledger.
type Ledger struct {
	db       *sql.DB
	postgres bool
	owner    string
	where    string   // for messages: the file, or the PostgreSQL host
	stmts    sync.Map // query -> *sql.Stmt: the hot path's statements, parsed once

	afterCommit func() error // tests: a commit whose acknowledgement is lost
}

// Account is an API key's book: its id (which names it without revealing
// it), denom, spendable balance and what requests in flight hold.
type Account struct {
	ID       string `json:"id"`
	Denom    string `json:"denom"`
	Balance  uint64 `json:"balance,string"`
	Reserved uint64 `json:"reserved,string"`
	Debited  uint64 `json:"debited,string"`
}

// Reservation is what one request holds of a key's balance, within its
// lease.
type Reservation struct {
	KeyID  string
	Denom  string
	Amount uint64

	lease   *lease
	settled bool // guarded by lease.mu
}

// newID is a fresh reservation id.
func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// IsPostgres tells whether dsn names a PostgreSQL database rather than a
// SQLite file.
func IsPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// Open opens (creating if need be) the ledger at dsn: a postgres:// URL,
// or the path of a SQLite file. owner names this replica (its payer
// address); reservations it left unsettled in an earlier run are released.
func Open(ctx context.Context, dsn, owner string) (*Ledger, error) {
	l := &Ledger{owner: owner, postgres: IsPostgres(dsn)}
	var err error
	if l.postgres {
		l.where = redact(dsn)
		l.db, err = sql.Open("pgx", dsn)
	} else {
		path := strings.TrimPrefix(dsn, "sqlite:")
		l.where = path
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("ledger: %w", err)
		}
		// WAL lets the CLI read and add keys while the gateway runs;
		// immediate transactions take the write lock up front, so two
		// writers wait in turn instead of failing to upgrade a read lock.
		// synchronous(NORMAL): a commit survives the process being killed
		// but is fsynced only at checkpoints (see durable).
		l.db, err = sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)&_txlock=immediate")
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: open %s: %w", l.where, err)
	}
	if err := l.migrate(ctx); err != nil {
		l.db.Close()
		return nil, err
	}
	if err := l.release(ctx); err != nil {
		l.db.Close()
		return nil, err
	}
	return l, nil
}

var password = regexp.MustCompile(`//([^:/@]+):[^@]*@`)

func redact(dsn string) string { return password.ReplaceAllString(dsn, "//$1:***@") }

// Where is the ledger's file or (password hidden) URL.
func (l *Ledger) Where() string { return l.where }

// Close closes the database.
func (l *Ledger) Close() error {
	l.stmts.Range(func(_, s any) bool { s.(*sql.Stmt).Close(); return true })
	return l.db.Close()
}

// prepared is query (written with $1 placeholders) as a statement parsed
// once and bound to t: reservations and settlements run on every request,
// and parsing their SQL each time cost more than running it.
func (l *Ledger) prepared(ctx context.Context, t *sql.Tx, query string) (*sql.Stmt, error) {
	if s, ok := l.stmts.Load(query); ok {
		return t.StmtContext(ctx, s.(*sql.Stmt)), nil
	}
	s, err := l.db.PrepareContext(ctx, l.q(query))
	if err != nil {
		return nil, err
	}
	if prev, loaded := l.stmts.LoadOrStore(query, s); loaded {
		s.Close()
		s = prev.(*sql.Stmt)
	}
	return t.StmtContext(ctx, s), nil
}

// q rewrites a query written with PostgreSQL's $1 placeholders for SQLite,
// whose ?1 means the same.
func (l *Ledger) q(query string) string {
	if l.postgres {
		return query
	}
	return strings.ReplaceAll(query, "$", "?")
}

func (l *Ledger) migrate(ctx context.Context) error {
	seq := "INTEGER PRIMARY KEY AUTOINCREMENT"
	if l.postgres {
		seq = "BIGSERIAL PRIMARY KEY"
	}
	for _, stmt := range []string{
		`CREATE TABLE IF NOT EXISTS api_keys (
			id      TEXT PRIMARY KEY,
			hash    TEXT NOT NULL UNIQUE,
			denom   TEXT NOT NULL,
			balance BIGINT NOT NULL CHECK (balance >= 0),
			created BIGINT NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS reservations (
			id      TEXT PRIMARY KEY,
			key_id  TEXT NOT NULL REFERENCES api_keys(id),
			owner   TEXT NOT NULL,
			amount  BIGINT NOT NULL CHECK (amount >= 0),
			created BIGINT NOT NULL,
			renewed BIGINT)`,
		`CREATE INDEX IF NOT EXISTS reservations_owner ON reservations(owner)`,
		`CREATE TABLE IF NOT EXISTS entries (
			seq     ` + seq + `,
			key_id  TEXT NOT NULL REFERENCES api_keys(id),
			kind    TEXT NOT NULL CHECK (kind IN ('credit', 'debit')),
			amount  BIGINT NOT NULL CHECK (amount > 0),
			owner   TEXT NOT NULL,
			created BIGINT NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS entries_key ON entries(key_id)`,
		// The gateway's own costs: what providers charged for answers
		// no client was billed for (the losing copy of a hedge).
		`CREATE TABLE IF NOT EXISTS costs (
			seq      ` + seq + `,
			owner    TEXT NOT NULL,
			reason   TEXT NOT NULL,
			provider TEXT NOT NULL,
			denom    TEXT NOT NULL,
			amount   BIGINT NOT NULL CHECK (amount > 0),
			created  BIGINT NOT NULL)`,
		// The last write of each Leases (writer, random per process):
		// whether a write whose commit went unacknowledged landed.
		`CREATE TABLE IF NOT EXISTS write_marks (
			writer TEXT PRIMARY KEY,
			seq    BIGINT NOT NULL,
			at     BIGINT NOT NULL)`,
	} {
		if _, err := l.db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("ledger: set up %s: %w", l.where, err)
		}
	}
	if err := l.addRenewed(ctx); err != nil {
		return fmt.Errorf("ledger: set up %s: %w", l.where, err)
	}
	return nil
}

// addRenewed adds reservations.renewed to a ledger made before it: when
// the owner last renewed the row, in milliseconds since 1970 by the
// database's clock. A row an older gateway wrote has none (NULL) and is
// never released as stale: that gateway does not renew its rows.
func (l *Ledger) addRenewed(ctx context.Context) error {
	if l.postgres {
		_, err := l.db.ExecContext(ctx, `ALTER TABLE reservations ADD COLUMN IF NOT EXISTS renewed BIGINT`)
		return err
	}
	// SQLite has no ADD COLUMN IF NOT EXISTS.
	rows, err := l.db.QueryContext(ctx, `SELECT name FROM pragma_table_info('reservations')`)
	if err != nil {
		return err
	}
	has := false
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return err
		}
		has = has || name == "renewed"
	}
	rows.Close()
	if err := rows.Err(); err != nil || has {
		return err
	}
	_, err = l.db.ExecContext(ctx, `ALTER TABLE reservations ADD COLUMN renewed BIGINT`)
	if err != nil && strings.Contains(err.Error(), "duplicate column") {
		return nil // another process added it meanwhile
	}
	return err
}

// clock is SQL for the database's time in milliseconds since 1970: the
// one clock every replica's renewals are measured by, so that replicas
// whose own clocks disagree do not take each other for dead.
func (l *Ledger) clock() string {
	if l.postgres {
		return `CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)`
	}
	return `CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)`
}

// Durability. Reservations and debits are many and small: they are
// committed without waiting for the disk (SQLite's synchronous NORMAL,
// PostgreSQL's synchronous_commit off for them), so that billing costs a
// request microseconds, not an fsync. They survive the gateway being
// killed; should the machine itself fail, the last moment's debits may be
// lost, and a key is charged less, never more. Credits (new keys and
// top-ups) are money paid in, and are on disk before they return.

// durable makes every commit so far reach the disk.
func (l *Ledger) durable(ctx context.Context) error {
	if l.postgres {
		return nil // credits are committed with the server's default, synchronous
	}
	if _, err := l.db.ExecContext(ctx, `PRAGMA wal_checkpoint(FULL)`); err != nil {
		return fmt.Errorf("ledger: sync %s: %w", l.where, err)
	}
	return nil
}

// fast marks a transaction as one that need not wait for the disk.
func (l *Ledger) fast(ctx context.Context, t *sql.Tx) error {
	if !l.postgres {
		return nil
	}
	_, err := t.ExecContext(ctx, `SET LOCAL synchronous_commit TO OFF`)
	return err
}

// tx runs fn in one transaction, retrying PostgreSQL's serialization
// failures (a concurrent replica's write), which are safe to run again.
func (l *Ledger) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	for attempt := 0; ; attempt++ {
		t, err := l.db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("ledger: %w", err)
		}
		err = fn(t)
		committing := err == nil
		if committing {
			err = t.Commit()
			if err == nil && l.afterCommit != nil {
				err = l.afterCommit()
			}
		} else {
			t.Rollback()
		}
		if err != nil && attempt < 5 && retryable(err) {
			time.Sleep(time.Duration(attempt+1) * 5 * time.Millisecond)
			continue
		}
		if err != nil && committing && !retryable(err) {
			err = fmt.Errorf("%w: %w", errUnknownOutcome, err)
		}
		return err
	}
}

// errUnknownOutcome is a commit that failed without saying whether the
// server had applied it (a connection lost while the COMMIT was under
// way): the transaction may have landed. A serialization failure is a
// refusal, not this.
var errUnknownOutcome = errors.New("ledger: the commit's outcome is unknown")

func retryable(err error) bool {
	s := err.Error()
	return strings.Contains(s, "SQLSTATE 40001") || strings.Contains(s, "SQLSTATE 40P01")
}

func hashKey(key string) string {
	s := sha256.Sum256([]byte(key))
	return hex.EncodeToString(s[:])
}

// keyID names a key in the ledger without revealing it: 128 bits of its
// hash, so ids do not collide.
func keyID(key string) string { return hashKey(key)[:32] }

func now() int64 { return time.Now().Unix() }

// CreateKey makes a new API key with a prepaid credit. Only its hash is
// stored; the key is returned once.
func (l *Ledger) CreateKey(ctx context.Context, denom string, credit uint64) (key, id string, err error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	key = "agk_" + hex.EncodeToString(b)
	if _, err := l.AddKey(ctx, key, denom, credit); err != nil {
		return "", "", err
	}
	return key, keyID(key), nil
}

// AddKey registers a given key with a credit (the devnet's well-known
// key); a key already there is left as it is (added reports which).
func (l *Ledger) AddKey(ctx context.Context, key, denom string, credit uint64) (added bool, err error) {
	if credit > 1<<62 {
		return false, fmt.Errorf("ledger: a credit of %d is too large", credit)
	}
	id := keyID(key)
	err = l.tx(ctx, func(t *sql.Tx) error {
		res, err := t.ExecContext(ctx, l.q(`INSERT INTO api_keys (id, hash, denom, balance, created) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING`),
			id, hashKey(key), denom, int64(credit), now())
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		if added = n == 1; added && credit > 0 {
			_, err = t.ExecContext(ctx, l.q(`INSERT INTO entries (key_id, kind, amount, owner, created) VALUES ($1, 'credit', $2, $3, $4)`), id, int64(credit), l.owner, now())
		}
		return err
	})
	if err != nil {
		return false, fmt.Errorf("ledger: add a key: %w", err)
	}
	return added, l.durable(ctx)
}

// AddHashed registers a key known only by its sha256 (hex), with balance:
// keys imported from an earlier ledger. A key already there is left alone.
func (l *Ledger) AddHashed(ctx context.Context, hash, denom string, balance uint64) error {
	if len(hash) != 64 || balance > 1<<62 {
		return fmt.Errorf("ledger: key hash %q or balance %d out of range", hash, balance)
	}
	err := l.tx(ctx, func(t *sql.Tx) error {
		res, err := t.ExecContext(ctx, l.q(`INSERT INTO api_keys (id, hash, denom, balance, created) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING`),
			hash[:32], hash, denom, int64(balance), now())
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 1 && balance > 0 {
			_, err = t.ExecContext(ctx, l.q(`INSERT INTO entries (key_id, kind, amount, owner, created) VALUES ($1, 'credit', $2, $3, $4)`), hash[:32], int64(balance), l.owner, now())
		}
		return err
	})
	if err != nil {
		return err
	}
	return l.durable(ctx)
}

// TopUp credits the key with id with amount of denom, the key's own.
func (l *Ledger) TopUp(ctx context.Context, id, denom string, amount uint64) (Account, error) {
	if amount == 0 || amount > 1<<62 {
		return Account{}, fmt.Errorf("ledger: a top-up of %d; give a positive amount", amount)
	}
	err := l.tx(ctx, func(t *sql.Tx) error {
		res, err := t.ExecContext(ctx, l.q(`UPDATE api_keys SET balance = balance + $1 WHERE id = $2 AND denom = $3`), int64(amount), id, denom)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			var has string
			if t.QueryRowContext(ctx, l.q(`SELECT denom FROM api_keys WHERE id = $1`), id).Scan(&has) == nil {
				return fmt.Errorf("ledger: key %s holds %s, not %s; top it up in %s", id, has, denom, has)
			}
			return fmt.Errorf("%w: no key with id %s; agora gateway key list shows them", ErrUnknownKey, id)
		}
		_, err = t.ExecContext(ctx, l.q(`INSERT INTO entries (key_id, kind, amount, owner, created) VALUES ($1, 'credit', $2, $3, $4)`), id, int64(amount), l.owner, now())
		return err
	})
	if err != nil {
		return Account{}, err
	}
	if err := l.durable(ctx); err != nil {
		return Account{}, err
	}
	return l.account(ctx, l.db, `a.id = $1`, id)
}

// release returns to their keys the reservations this owner left behind
// (a crash): their answers were never settled, so nothing is charged.
func (l *Ledger) release(ctx context.Context) error {
	_, _, err := l.releaseWhere(ctx, `owner = $1`, l.owner)
	return err
}

// releaseStale is release for other owners' reservations that have not
// been renewed for after: their replica is gone, or cut off for so long
// that it must be taken for gone. (If it is alive, the next write of those
// leases finds their rows gone and charges their debits directly; see
// writeLeases.) It reports how many rows it released, holding how much.
func (l *Ledger) releaseStale(ctx context.Context, after time.Duration) (rows int, amount uint64, err error) {
	return l.releaseWhere(ctx, `owner <> $1 AND renewed IS NOT NULL AND renewed < `+l.clock()+` - $2`, l.owner, after.Milliseconds())
}

// renew marks this owner's reservations as held by a live replica.
func (l *Ledger) renew(ctx context.Context) error {
	return l.tx(ctx, func(t *sql.Tx) error {
		if err := l.fast(ctx, t); err != nil {
			return err
		}
		_, err := t.ExecContext(ctx, l.q(`UPDATE reservations SET renewed = `+l.clock()+` WHERE owner = $1`), l.owner)
		return err
	})
}

// releaseWhere deletes the reservations where holds and returns their
// amounts to their keys, in one transaction.
func (l *Ledger) releaseWhere(ctx context.Context, where string, args ...any) (n int, amount uint64, err error) {
	err = l.tx(ctx, func(t *sql.Tx) error {
		n, amount = 0, 0
		rows, err := t.QueryContext(ctx, l.q(`DELETE FROM reservations WHERE `+where+` RETURNING key_id, amount`), args...)
		if err != nil {
			return err
		}
		back := map[string]int64{}
		for rows.Next() {
			var id string
			var a int64
			if err := rows.Scan(&id, &a); err != nil {
				rows.Close()
				return err
			}
			back[id] += a
			n++
			amount += uint64(a)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		// In key order, as every writer of balances goes (no deadlock).
		for _, id := range slices.Sorted(maps.Keys(back)) {
			if _, err := t.ExecContext(ctx, l.q(`UPDATE api_keys SET balance = balance + $1 WHERE id = $2`), back[id], id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("ledger: release reservations: %w", err)
	}
	return n, amount, nil
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

const accountQuery = `SELECT a.id, a.denom, a.balance,
	COALESCE((SELECT SUM(r.amount) FROM reservations r WHERE r.key_id = a.id), 0),
	COALESCE((SELECT SUM(e.amount) FROM entries e WHERE e.key_id = a.id AND e.kind = 'debit'), 0)
	FROM api_keys a WHERE `

func (l *Ledger) account(ctx context.Context, q querier, where string, arg any) (Account, error) {
	var a Account
	var bal, res, deb int64
	err := q.QueryRowContext(ctx, l.q(accountQuery+where), arg).Scan(&a.ID, &a.Denom, &bal, &res, &deb)
	if errors.Is(err, sql.ErrNoRows) {
		return a, ErrUnknownKey
	}
	if err != nil {
		return a, fmt.Errorf("ledger: %w", err)
	}
	a.Balance, a.Reserved, a.Debited = uint64(bal), uint64(res), uint64(deb)
	return a, nil
}

// Balance returns the book of key.
func (l *Ledger) Balance(ctx context.Context, key string) (Account, error) {
	return l.account(ctx, l.db, `a.hash = $1`, hashKey(key))
}

// Accounts lists every key's book, by id.
func (l *Ledger) Accounts(ctx context.Context) ([]Account, error) {
	rows, err := l.db.QueryContext(ctx, l.q(accountQuery+`1 = 1 ORDER BY a.id`))
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	defer rows.Close()
	var out []Account
	for rows.Next() {
		var a Account
		var bal, res, deb int64
		if err := rows.Scan(&a.ID, &a.Denom, &bal, &res, &deb); err != nil {
			return nil, err
		}
		a.Balance, a.Reserved, a.Debited = uint64(bal), uint64(res), uint64(deb)
		out = append(out, a)
	}
	return out, rows.Err()
}

// Cost books one of the gateway's own costs (reason, like "hedge"), paid
// to provider.
func (l *Ledger) Cost(ctx context.Context, reason, provider, denom string, amount uint64) error {
	if amount == 0 || amount > 1<<62 {
		return nil
	}
	_, err := l.db.ExecContext(ctx, l.q(`INSERT INTO costs (owner, reason, provider, denom, amount, created) VALUES ($1, $2, $3, $4, $5, $6)`),
		l.owner, reason, provider, denom, int64(amount), now())
	if err != nil {
		return fmt.Errorf("ledger: book a cost: %w", err)
	}
	return nil
}

// CostsByProvider sums this gateway's costs (its owner's, in denom) by
// provider and reason.
func (l *Ledger) CostsByProvider(ctx context.Context, denom string) (map[string]map[string]uint64, error) {
	rows, err := l.db.QueryContext(ctx, l.q(`SELECT provider, reason, SUM(amount) FROM costs WHERE owner = $1 AND denom = $2 GROUP BY provider, reason`), l.owner, denom)
	if err != nil {
		return nil, fmt.Errorf("ledger: read costs: %w", err)
	}
	defer rows.Close()
	out := map[string]map[string]uint64{}
	for rows.Next() {
		var provider, reason string
		var n int64
		if err := rows.Scan(&provider, &reason, &n); err != nil {
			return nil, err
		}
		if out[provider] == nil {
			out[provider] = map[string]uint64{}
		}
		out[provider][reason] = uint64(n)
	}
	return out, rows.Err()
}

// Backup writes a consistent copy of a SQLite ledger to path while it is in
// use (VACUUM INTO: one read transaction). A PostgreSQL ledger is backed up
// with the database's own tools (pg_dump), which do the same.
func (l *Ledger) Backup(ctx context.Context, path string) error {
	if l.postgres {
		return fmt.Errorf("ledger: %s is PostgreSQL; back it up with pg_dump (see docs/gateway.md)", l.where)
	}
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("ledger: %s exists; back up to a new file", path)
	}
	if _, err := l.db.ExecContext(ctx, `VACUUM INTO ?`, path); err != nil {
		return fmt.Errorf("ledger: back up to %s: %w", path, err)
	}
	return nil
}
