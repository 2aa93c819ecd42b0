package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// Leases serves a gateway's reservations from balance it has leased from
// the ledger, in memory, so that the database sees a few writes a second
// per key instead of two per request.
//
// A lease is a reservation row like a request's (owner, key, amount), only
// larger: up to an eighth of the key's balance, and at least what the
// request that takes it needs. Requests reserve and settle within it under
// a mutex; settled debits are written in batches every Flush, and a lease
// that has been idle for Idle goes back to the balance. The database's
// books stay whole at every commit: balance + leases + debits = credits.
//
// Because a lease holds at most an eighth of what the key had, another
// replica sharing the key still finds most of it; a request is refused only
// when this replica's free lease plus the key's balance in the database is
// below its maximum (what an un-leased ledger would refuse too), or when
// other replicas' leases hold the rest, until they go idle.
//
// A killed gateway leaves its leases to be released when it opens the
// ledger again (see Open): their unflushed debits, the last Flush of
// answers, are lost, so a key is charged less, never more.
type Leases struct {
	l *Ledger

	// Flush is how often settled debits are written; Idle how long an
	// unused lease is kept before its balance is returned.
	flush, idle time.Duration
	log         *slog.Logger

	mu     sync.Mutex
	byHash map[string]*lease
	closed bool

	writing sync.Mutex // one flush at a time
	stop    chan struct{}
	done    chan struct{}
}

// lease is one key's leased balance in this process. Its row in the
// database holds free + inflight + debit.
type lease struct {
	id        string // the reservation row
	hash      string
	keyID     string
	denom     string
	extending sync.Mutex // one extension at a time (a database write)
	mu        sync.Mutex // guards what follows
	free      uint64     // leased, not held by a request
	inflight  uint64     // held by requests in flight
	debit     uint64     // settled, not yet written
	used      time.Time  // last reservation
	gone      bool       // removed from the map: take another
	flushing  bool       // a write of its debits or free balance is under way
}

// LeaseConfig tunes Leases; zero fields take the defaults.
type LeaseConfig struct {
	Flush  time.Duration // default 100 ms
	Idle   time.Duration // default 1 s
	Logger *slog.Logger
}

// Leased serves reservations on l from leases until Close.
func (l *Ledger) Leased(cfg LeaseConfig) *Leases {
	if cfg.Flush <= 0 {
		cfg.Flush = 100 * time.Millisecond
	}
	if cfg.Idle <= 0 {
		cfg.Idle = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ls := &Leases{l: l, flush: cfg.Flush, idle: cfg.Idle, log: cfg.Logger, byHash: map[string]*lease{}, stop: make(chan struct{}), done: make(chan struct{})}
	go ls.loop()
	return ls
}

func (ls *Leases) loop() {
	defer close(ls.done)
	t := time.NewTicker(ls.flush)
	defer t.Stop()
	for {
		select {
		case <-ls.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := ls.write(ctx, false); err != nil {
				ls.log.Error("ledger: write settled debits (kept for the next try)", "err", err)
			}
			cancel()
		}
	}
}

// Close writes every settled debit, returns every lease to its key and
// stops. Requests still in flight should have settled first (anything they
// hold is released when the ledger is next opened by this owner).
func (ls *Leases) Close(ctx context.Context) error {
	ls.mu.Lock()
	if ls.closed {
		ls.mu.Unlock()
		return nil
	}
	ls.closed = true
	ls.mu.Unlock()
	close(ls.stop)
	<-ls.done
	return ls.write(ctx, true)
}

// Reserve takes max from the key's balance for one request, or says why
// not: an unknown key, or a balance below max. It costs a database write
// only when the key's lease runs short.
func (ls *Leases) Reserve(ctx context.Context, key string, max uint64) (*Reservation, error) {
	if max > 1<<62 {
		return nil, fmt.Errorf("%w: a request of up to %d is more than any balance", ErrBalance, max)
	}
	hash := hashKey(key)
	for {
		s, err := ls.lease(hash)
		if err != nil {
			return nil, err
		}
		r, err := ls.reserve(ctx, s, max)
		if errors.Is(err, errGone) {
			continue // removed from the map while we waited; take the new one
		}
		return r, err
	}
}

var errGone = errors.New("ledger: lease removed")

// lease is the key's lease, a new empty one if there is none.
func (ls *Leases) lease(hash string) (*lease, error) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.closed {
		return nil, errors.New("ledger: closed")
	}
	s := ls.byHash[hash]
	if s == nil {
		s = &lease{id: newID(), hash: hash}
		ls.byHash[hash] = s
	}
	return s, nil
}

func (ls *Leases) reserve(ctx context.Context, s *lease, max uint64) (*Reservation, error) {
	if r, err := s.take(max); r != nil || err != nil {
		return r, err
	}
	s.extending.Lock()
	defer s.extending.Unlock()
	r, need, err := s.takeOrNeed(max) // another request may have extended it meanwhile
	if r != nil || err != nil {
		return r, err
	}
	// At least what this request lacks; up to an eighth of the key's
	// balance, so that other replicas are left most of it; and no more
	// than a few thousand requests' worth, as that is plenty.
	keyID, denom, got, err := ls.l.extend(ctx, s.id, s.hash, need, max*4096)
	if err != nil {
		ls.forget(s, 0) // an unknown key must not leave an entry behind
		return nil, err
	}
	s.mu.Lock()
	s.keyID, s.denom = keyID, denom
	s.free += got
	s.mu.Unlock()
	if r, err := s.take(max); r != nil || err != nil {
		return r, err
	}
	// Only a concurrent request that did not need the extension could have
	// taken it, and it will settle; the key is short for this one.
	return nil, fmt.Errorf("%w: the key's balance is held by requests in flight; retry shortly", ErrBalance)
}

// forget removes s from the map if it holds nothing and has not been used
// for idle. The caller holds s.extending, so no extension is under way.
func (ls *Leases) forget(s *lease, idle time.Duration) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.free == 0 && s.inflight == 0 && s.debit == 0 && !s.gone && !s.flushing && time.Since(s.used) >= idle {
		s.gone = true
		delete(ls.byHash, s.hash)
	}
}

// take reserves max from the free lease, if it holds that much.
func (s *lease) take(max uint64) (*Reservation, error) {
	r, _, err := s.takeOrNeed(max)
	return r, err
}

// takeOrNeed is take, and if the lease is short, by how much.
func (s *lease) takeOrNeed(max uint64) (*Reservation, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone {
		return nil, 0, errGone
	}
	if s.keyID == "" || s.free < max {
		return nil, max - min(s.free, max), nil
	}
	s.free -= max
	s.inflight += max
	s.used = time.Now()
	return &Reservation{KeyID: s.keyID, Denom: s.denom, Amount: max, lease: s}, 0, nil
}

// Settle ends a reservation: actual (at most the reserved amount) is
// debited, the rest returns to the lease. A reservation settles once.
func (ls *Leases) Settle(r *Reservation, actual uint64) error {
	s := r.lease
	actual = min(actual, r.Amount)
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.settled {
		return ErrSettled
	}
	r.settled = true
	s.inflight -= r.Amount
	s.free += r.Amount - actual
	s.debit += actual
	return nil
}

// Balance returns the book of key as this replica sees it: its own free
// lease counts as balance and its unwritten debits as debited; leases other
// replicas hold count as reserved.
func (ls *Leases) Balance(ctx context.Context, key string) (Account, error) {
	a, err := ls.l.Balance(ctx, key)
	if err != nil {
		return a, err
	}
	ls.mu.Lock()
	s := ls.byHash[hashKey(key)]
	ls.mu.Unlock()
	if s == nil {
		return a, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// The row can trail the lease by an extension or a flush in progress;
	// never report more reserved than the row holds.
	moved := min(s.free+s.debit, a.Reserved)
	freeShare := min(s.free, moved)
	a.Balance += freeShare
	a.Reserved -= moved
	a.Debited += moved - freeShare
	return a, nil
}

// write puts every lease's settled debits in the database, in one
// transaction, and returns to their keys the leases idle for ls.idle (all
// of them when all is set).
func (ls *Leases) write(ctx context.Context, all bool) error {
	ls.writing.Lock()
	defer ls.writing.Unlock()
	ls.mu.Lock()
	leases := make([]*lease, 0, len(ls.byHash))
	for _, s := range ls.byHash {
		leases = append(leases, s)
	}
	ls.mu.Unlock()

	var changes []leaseChange
	now := time.Now()
	for _, s := range leases {
		s.mu.Lock()
		c := leaseChange{lease: s, id: s.id, keyID: s.keyID, debit: s.debit}
		if s.inflight == 0 && (all || now.Sub(s.used) >= ls.idle) {
			c.back = s.free
		}
		s.debit -= c.debit
		s.free -= c.back
		if c.debit > 0 || c.back > 0 {
			s.flushing = true
			changes = append(changes, c)
		}
		s.mu.Unlock()
	}
	// One order for every replica's writes, so that two never wait on
	// each other's rows (a PostgreSQL deadlock).
	slices.SortFunc(changes, func(a, b leaseChange) int { return strings.Compare(a.keyID+a.id, b.keyID+b.id) })
	defer func() {
		for _, c := range changes {
			c.lease.mu.Lock()
			c.lease.flushing = false
			c.lease.mu.Unlock()
		}
	}()
	if len(changes) > 0 {
		if err := ls.l.writeLeases(ctx, changes); err != nil {
			for _, c := range changes { // nothing was written: keep it for the next try
				c.lease.mu.Lock()
				c.lease.debit += c.debit
				c.lease.free += c.back
				c.lease.mu.Unlock()
			}
			return err
		}
	}
	// Keys not used for a minute leave the map, so that it holds the keys
	// in use, not every key ever seen.
	for _, s := range leases {
		if s.extending.TryLock() {
			ls.forget(s, time.Minute)
			s.extending.Unlock()
		}
	}
	return nil
}

type leaseChange struct {
	lease       *lease
	id, keyID   string
	debit, back uint64
}

// extend moves from the key with hash to the lease row id at least need
// and at most cap: an eighth of the balance, within those bounds. Unlike
// debits it commits synchronously on PostgreSQL: it is rare, and a lease
// the server lost in a crash while the gateway holds it in memory could be
// spent twice. (A SQLite ledger lives and dies with the gateway's process.)
func (l *Ledger) extend(ctx context.Context, id, hash string, need, cap uint64) (keyID, denom string, got uint64, err error) {
	err = l.tx(ctx, func(t *sql.Tx) error {
		for range 8 { // PostgreSQL: another replica may change the balance between the read and the guarded write
			var bal int64
			err := t.QueryRowContext(ctx, l.q(`SELECT id, denom, balance FROM api_keys WHERE hash = $1`), hash).Scan(&keyID, &denom, &bal)
			if errors.Is(err, sql.ErrNoRows) {
				return ErrUnknownKey
			}
			if err != nil {
				return err
			}
			if uint64(bal) < need {
				return fmt.Errorf("%w: the key holds %d%s, this request may cost up to %d more", ErrBalance, bal, denom, need)
			}
			got = max(need, min(uint64(bal)/8, cap))
			take, err := l.prepared(ctx, t, `UPDATE api_keys SET balance = balance - $1 WHERE id = $2 AND balance >= $1`)
			if err != nil {
				return err
			}
			res, err := take.ExecContext(ctx, int64(got), keyID)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				continue
			}
			hold, err := l.prepared(ctx, t, `INSERT INTO reservations (id, key_id, owner, amount, created) VALUES ($1, $2, $3, $4, $5)
				ON CONFLICT (id) DO UPDATE SET amount = reservations.amount + excluded.amount`)
			if err != nil {
				return err
			}
			_, err = hold.ExecContext(ctx, id, keyID, l.owner, int64(got), now())
			return err
		}
		return fmt.Errorf("%w: the key's balance is changing too fast to lease; retry", ErrBalance)
	})
	return keyID, denom, got, err
}

// writeLeases books debits and returns in one transaction: each leaves
// its lease row and becomes a debit entry or balance again.
func (l *Ledger) writeLeases(ctx context.Context, changes []leaseChange) error {
	return l.tx(ctx, func(t *sql.Tx) error {
		if err := l.fast(ctx, t); err != nil {
			return err
		}
		shrink, err := l.prepared(ctx, t, `UPDATE reservations SET amount = amount - $1 WHERE id = $2 AND amount >= $1`)
		if err != nil {
			return err
		}
		for _, c := range changes {
			res, err := shrink.ExecContext(ctx, int64(c.debit+c.back), c.id)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n != 1 {
				return fmt.Errorf("ledger: lease %s holds less than its debits and free balance (%d): was it released by another process with this owner name?", c.id, c.debit+c.back)
			}
			if c.back > 0 {
				if _, err := t.ExecContext(ctx, l.q(`UPDATE api_keys SET balance = balance + $1 WHERE id = $2`), int64(c.back), c.keyID); err != nil {
					return err
				}
			}
			if c.debit > 0 {
				debit, err := l.prepared(ctx, t, `INSERT INTO entries (key_id, kind, amount, owner, created) VALUES ($1, 'debit', $2, $3, $4)`)
				if err != nil {
					return err
				}
				if _, err := debit.ExecContext(ctx, c.keyID, int64(c.debit), l.owner, now()); err != nil {
					return err
				}
			}
		}
		_, err = t.ExecContext(ctx, l.q(`DELETE FROM reservations WHERE owner = $1 AND amount = 0`), l.owner)
		return err
	})
}
