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
// ledger again (see Open), or, should it never come back, by another
// replica once they have gone unrenewed for StaleAfter: their unflushed
// debits, the last Flush of answers, are lost, so a key is charged less,
// never more.
//
// A lease whose row was released while this replica still holds it (by
// another process with the same owner name, or as stale after a long pause
// or a partition) is dropped at its next write: its free balance is
// already back with the key, and the debits settled within it are charged
// to the key's balance directly, as far as the balance goes. The other
// leases are written as usual.
type Leases struct {
	l *Ledger

	// flush is how often settled debits are written; idle how long an
	// unused lease is kept before its balance is returned; stale how long
	// another replica's lease may go unrenewed before it is released;
	// beat how often this replica renews its own and looks for stale ones.
	flush, idle, stale, beat time.Duration
	log                      *slog.Logger

	mu     sync.Mutex // guards the fields below
	byHash map[string]*lease
	lost   []*lease // released elsewhere, out of the map: debits still to charge
	closed bool

	writing sync.Mutex // one flush at a time; guards what follows
	writer  string     // names this Leases' writes in write_marks
	seq     int64      // its writes so far
	marked  bool       // its mark's row is in the database
	unsure  *unsureWrite

	stop chan struct{}
	done chan struct{}
}

// lease is one key's leased balance in this process. Its row in the
// database holds free + inflight + debit, unless it was released
// elsewhere (lost).
type lease struct {
	id    string // the reservation row
	hash  string
	keyID string
	denom string

	// extending is held by whatever writes the row: an extension, or a
	// flush of the lease, so that the row and the memory agree whenever
	// one of them looks.
	extending sync.Mutex
	row       bool // guarded by extending: the row is in the database

	mu       sync.Mutex // guards what follows
	free     uint64     // leased, not held by a request
	inflight uint64     // held by requests in flight
	debit    uint64     // settled, not yet written
	used     time.Time  // last reservation
	gone     bool       // removed from the map: take another
	lost     bool       // its row was released elsewhere: free is dropped, debit charged directly
	orphan   bool       // lost after an extension of unknown outcome: its row, if any, is to be dropped

	// Moved by a write whose commit went unacknowledged: written, or back
	// in debit and free, once the next write learns whether it landed.
	unsureDebit, unsureBack uint64
}

// unsureWrite is a write whose commit failed without saying whether it
// landed. Writing its debits again could charge them twice, so the next
// write first reads the write mark it left (or did not).
type unsureWrite struct {
	seq     int64
	changes []leaseChange
}

// LeaseConfig tunes Leases; zero fields take the defaults.
type LeaseConfig struct {
	Flush time.Duration // how often settled debits are written; default 100 ms
	Idle  time.Duration // how long an unused lease is kept; default 1 s

	// StaleAfter is how long another replica's leases may go unrenewed
	// before this replica takes that one for gone and returns them to
	// their keys (its unwritten debits are lost: the key is charged
	// less). A replica renews its own every StaleAfter/4, and at least
	// every 10 s. It should be well above the longest pause or partition
	// a live replica may suffer, and the same on every replica; a live
	// replica whose leases were released drops them and charges what it
	// settled in them directly, never more than the key's balance.
	// Default 2 minutes.
	StaleAfter time.Duration

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
	if cfg.StaleAfter <= 0 {
		cfg.StaleAfter = 2 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ls := &Leases{l: l, flush: cfg.Flush, idle: cfg.Idle, stale: cfg.StaleAfter, beat: min(cfg.StaleAfter/4, 10*time.Second), log: cfg.Logger,
		byHash: map[string]*lease{}, writer: newID(), stop: make(chan struct{}), done: make(chan struct{})}
	go ls.loop()
	return ls
}

func (ls *Leases) loop() {
	defer close(ls.done)
	flush := time.NewTicker(ls.flush)
	defer flush.Stop()
	beat := time.NewTicker(ls.beat)
	defer beat.Stop()
	for {
		select {
		case <-ls.stop:
			return
		case <-flush.C:
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := ls.write(ctx, false); err != nil {
				ls.log.Error("ledger: write settled debits (kept for the next try)", "err", err)
			}
			cancel()
		case <-beat.C:
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			ls.heartbeat(ctx)
			cancel()
		}
	}
}

// heartbeat renews this replica's leases and releases other replicas'
// that have gone unrenewed for ls.stale.
func (ls *Leases) heartbeat(ctx context.Context) {
	if err := ls.l.renew(ctx); err != nil {
		ls.log.Error("ledger: renew this replica's leases (other replicas take them for stale after StaleAfter)", "err", err, "stale_after", ls.stale)
	}
	n, amount, err := ls.l.releaseStale(ctx, ls.stale)
	if err != nil {
		ls.log.Error("ledger: release stale leases", "err", err)
		return
	}
	if n > 0 {
		ls.log.Warn("ledger: released other replicas' leases, unrenewed for longer than StaleAfter; their unwritten debits are lost",
			"leases", n, "amount", amount, "stale_after", ls.stale)
	}
	if err := ls.l.pruneMarks(ctx); err != nil {
		ls.log.Error("ledger: prune old write marks", "err", err)
	}
}

// Close stops taking reservations, waits (until ctx ends) for those in
// flight to settle, writes every settled debit and returns every lease to
// its key. What requests still in flight hold then stays reserved until
// the ledger is next opened by this owner, or another replica releases it
// as stale; whatever they settle later is not charged.
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
	tick := time.NewTicker(min(ls.flush, 20*time.Millisecond))
	defer tick.Stop()
wait:
	for ls.inflight() > 0 {
		select {
		case <-ctx.Done():
			break wait
		case <-tick.C:
		}
	}
	wctx := ctx
	if ctx.Err() != nil { // still write what has settled
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
	}
	err := ls.write(wctx, true)
	if err == nil {
		err = ls.l.dropMark(wctx, ls.writer)
	}
	if n := ls.inflight(); n > 0 {
		err = errors.Join(err, fmt.Errorf("ledger: closed with %d reserved by requests in flight; it stays reserved until the ledger is opened again as %s, or released as stale", n, ls.l.owner))
	}
	return err
}

// inflight is what requests in flight hold, in all leases.
func (ls *Leases) inflight() uint64 {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	var n uint64
	for _, s := range ls.byHash {
		s.mu.Lock()
		n += s.inflight
		s.mu.Unlock()
	}
	for _, s := range ls.lost {
		s.mu.Lock()
		n += s.inflight
		s.mu.Unlock()
	}
	return n
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

var (
	errGone     = errors.New("ledger: lease removed")
	errReleased = errors.New("ledger: the lease's row was released by another process")
)

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
	keyID, denom, got, err := ls.l.extend(ctx, s.id, s.hash, s.row, need, min(max, 1<<62/4096)*4096)
	if errors.Is(err, errReleased) {
		ls.lose(s, "extend")
		return nil, errGone // take a fresh lease
	}
	if errors.Is(err, errUnknownOutcome) {
		// The row may or may not hold the extension: drop the lease, and
		// its row at the next write, which returns whatever it holds to
		// the key.
		s.mu.Lock()
		s.orphan = true
		s.mu.Unlock()
		ls.lose(s, "extend")
		return nil, errGone
	}
	if err != nil {
		ls.forget(s, 0) // an unknown key must not leave an entry behind
		return nil, err
	}
	s.row = true
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
// for idle. The caller holds s.extending, so no write of its row is under
// way.
func (ls *Leases) forget(s *lease, idle time.Duration) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.free == 0 && s.inflight == 0 && s.debit == 0 && s.unsureDebit == 0 && s.unsureBack == 0 && !s.gone && time.Since(s.used) >= idle {
		s.gone = true
		delete(ls.byHash, s.hash)
	}
}

// lose drops s, whose row was released by another process: its free
// balance is already back with the key, so it leaves memory; s leaves the
// map, so that the next request takes a fresh lease; and s joins ls.lost
// until the debits settled in it (now, and by requests still in flight)
// are charged to the key directly. The caller holds s.extending.
func (ls *Leases) lose(s *lease, during string) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lost {
		return
	}
	s.lost, s.gone, s.row = true, true, false
	dropped := s.free
	s.free = 0
	if ls.byHash[s.hash] == s {
		delete(ls.byHash, s.hash)
	}
	ls.lost = append(ls.lost, s)
	msg := "ledger: a lease's row was released by another process (one with this owner name, or one that took this replica for gone: see LeaseConfig.StaleAfter); its debits are charged to the key directly and the key takes a new lease"
	if s.orphan {
		msg = "ledger: a lease's extension went unacknowledged; the lease is dropped (its row, if it was made, goes back to the key at the next write), its debits are charged to the key directly and the key takes a new lease"
	}
	ls.log.Warn(msg, "lease", s.id, "key", s.keyID, "owner", ls.l.owner, "found_by", during, "free_dropped", dropped, "debit", s.debit, "in_flight", s.inflight)
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
	if !s.lost { // a lost lease's row is gone: nothing to return to
		s.free += r.Amount - actual
	}
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
// of them, and all free balance, when all is set). A lease being extended
// is left for the next write, unless all is set.
func (ls *Leases) write(ctx context.Context, all bool) error {
	ls.writing.Lock()
	defer ls.writing.Unlock()
	if err := ls.resolve(ctx); err != nil {
		return err
	}
	if !ls.marked {
		if err := ls.l.makeMark(ctx, ls.writer); err != nil {
			return fmt.Errorf("ledger: set up this replica's write mark: %w", err)
		}
		ls.marked = true
	}
	ls.mu.Lock()
	leases := make([]*lease, 0, len(ls.byHash)+len(ls.lost))
	for _, s := range ls.byHash {
		leases = append(leases, s)
	}
	leases = append(leases, ls.lost...)
	ls.mu.Unlock()

	var changes []leaseChange
	now := time.Now()
	for _, s := range leases {
		if all {
			s.extending.Lock()
		} else if !s.extending.TryLock() {
			continue
		}
		s.mu.Lock()
		c := leaseChange{lease: s, id: s.id, keyID: s.keyID, debit: s.debit, lost: s.lost, orphan: s.orphan}
		switch {
		case s.lost:
			s.free = 0 // returned by whoever released the row
		case all || (s.inflight == 0 && now.Sub(s.used) >= ls.idle):
			c.back = s.free
		}
		s.debit -= c.debit
		s.free -= c.back
		c.drop = !s.lost && s.free == 0 && s.inflight == 0 && s.debit == 0
		s.mu.Unlock()
		if c.debit > 0 || c.back > 0 || c.orphan {
			changes = append(changes, c) // s.extending stays held until it is written
		} else {
			s.extending.Unlock()
		}
	}
	// One order for every replica's writes, so that two never wait on
	// each other's rows (a PostgreSQL deadlock).
	slices.SortFunc(changes, func(a, b leaseChange) int { return strings.Compare(a.keyID+a.id, b.keyID+b.id) })
	var err error
	if len(changes) > 0 {
		ls.seq++
		err = ls.l.writeLeases(ctx, ls.writer, ls.seq, changes)
	}
	if errors.Is(err, errUnknownOutcome) {
		// Neither written nor not: set apart until the next write knows.
		for _, c := range changes {
			s := c.lease
			s.mu.Lock()
			s.unsureDebit += c.debit
			s.unsureBack += c.back
			s.mu.Unlock()
			s.extending.Unlock()
		}
		ls.unsure = &unsureWrite{seq: ls.seq, changes: changes}
		return err
	}
	ls.written(changes, err == nil)
	if err != nil {
		return err
	}
	ls.mu.Lock()
	ls.lost = slices.DeleteFunc(ls.lost, func(s *lease) bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.inflight == 0 && s.debit == 0 && s.unsureDebit == 0 && !s.orphan
	})
	ls.mu.Unlock()
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

// written books the outcome of a write of changes, whose leases' extending
// the caller holds (and which it releases): written (landed) or not, when
// they go back to the leases for the next write.
func (ls *Leases) written(changes []leaseChange, landed bool) {
	for _, c := range changes {
		s := c.lease
		switch {
		case !landed: // nothing was written: keep it for the next try
			s.mu.Lock()
			s.debit += c.debit
			if !s.lost {
				s.free += c.back
			}
			s.mu.Unlock()
		case c.orphan:
			s.mu.Lock()
			s.orphan = false // its row is gone now
			s.mu.Unlock()
		case c.released:
			ls.lose(s, "flush")
		case c.drop:
			s.row = false // the lease held nothing: its row was deleted
		}
		if landed && (c.lost || c.released) && c.charged < c.debit {
			ls.log.Warn("ledger: a dropped lease's debits were more than the key's balance; the key is charged what it had",
				"lease", c.id, "key", c.keyID, "debit", c.debit, "charged", c.charged)
		}
		s.extending.Unlock()
	}
}

// resolve learns whether the last write, whose commit went
// unacknowledged, landed (its write mark is in the database) and books it
// accordingly, before anything else is written.
func (ls *Leases) resolve(ctx context.Context) error {
	u := ls.unsure
	if u == nil {
		return nil
	}
	landed, err := ls.l.landed(ctx, ls.writer, u.seq)
	if err != nil {
		return fmt.Errorf("ledger: learn whether the last write landed (its debits are held until then): %w", err)
	}
	ls.unsure = nil
	for _, c := range u.changes {
		s := c.lease
		s.extending.Lock()
		s.mu.Lock()
		s.unsureDebit -= c.debit
		s.unsureBack -= c.back
		s.mu.Unlock()
	}
	ls.written(u.changes, landed)
	ls.log.Info("ledger: a write whose commit went unacknowledged", "landed", landed, "leases", len(u.changes))
	return nil
}

type leaseChange struct {
	lease       *lease
	id, keyID   string
	debit, back uint64
	lost        bool // the lease's row was released before: charge debit directly
	orphan      bool // and its row, if it is there, is to be dropped
	drop        bool // the lease holds nothing once written: delete its row

	// Results of the write.
	released bool   // the row was found released (or short): the lease is lost
	charged  uint64 // of debit, when charged directly
}

// extend moves from the key with hash to the lease row id at least need
// and at most cap: an eighth of the balance, within those bounds. row tells
// whether the lease already has its row: then the row must still be there
// (errReleased if not), for a row released elsewhere and made again would
// hold only the new amount while the lease holds the old too. Unlike
// debits it commits synchronously on PostgreSQL: it is rare, and a lease
// the server lost in a crash while the gateway holds it in memory could be
// spent twice. (A SQLite ledger lives and dies with the gateway's process.)
func (l *Ledger) extend(ctx context.Context, id, hash string, row bool, need, cap uint64) (keyID, denom string, got uint64, err error) {
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
			if row {
				grow, err := l.prepared(ctx, t, `UPDATE reservations SET amount = amount + $1, renewed = `+l.clock()+` WHERE id = $2 AND owner = $3`)
				if err != nil {
					return err
				}
				res, err := grow.ExecContext(ctx, int64(got), id, l.owner)
				if err != nil {
					return err
				}
				if n, _ := res.RowsAffected(); n != 1 {
					return errReleased // rolls the balance back
				}
				return nil
			}
			hold, err := l.prepared(ctx, t, `INSERT INTO reservations (id, key_id, owner, amount, created, renewed) VALUES ($1, $2, $3, $4, $5, `+l.clock()+`)`)
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
// its lease row and becomes a debit entry or balance again. A lease whose
// row is gone, or holds less than it should, does not fail the others: it
// is marked released, whatever its row still holds returns to the key, and
// its debits are charged to the key's balance directly (as are those of
// leases released before), never below zero.
//
// The write leaves its mark, seq for writer, so that a write whose commit
// goes unacknowledged can be found to have landed or not (see landed).
func (l *Ledger) writeLeases(ctx context.Context, writer string, seq int64, changes []leaseChange) error {
	return l.tx(ctx, func(t *sql.Tx) error {
		if err := l.fast(ctx, t); err != nil {
			return err
		}
		shrink, err := l.prepared(ctx, t, `UPDATE reservations SET amount = amount - $1 WHERE id = $2 AND owner = $3 AND amount >= $1`)
		if err != nil {
			return err
		}
		for i := range changes {
			c := &changes[i]
			c.released, c.charged = false, 0 // this may be a retry
			if !c.lost {
				res, err := shrink.ExecContext(ctx, int64(c.debit+c.back), c.id, l.owner)
				if err != nil {
					return err
				}
				if n, _ := res.RowsAffected(); n == 1 {
					if err := l.book(ctx, t, c); err != nil {
						return err
					}
					continue
				}
				c.released = true
				if err := l.dropRow(ctx, t, c.id); err != nil {
					return err
				}
			}
			if c.orphan {
				if err := l.dropRow(ctx, t, c.id); err != nil {
					return err
				}
			}
			if c.charged, err = l.chargeDirect(ctx, t, c.keyID, c.debit); err != nil {
				return err
			}
		}
		mark, err := l.prepared(ctx, t, `INSERT INTO write_marks (writer, seq, at) VALUES ($1, $2, $3)
			ON CONFLICT (writer) DO UPDATE SET seq = excluded.seq, at = excluded.at`)
		if err != nil {
			return err
		}
		_, err = mark.ExecContext(ctx, writer, seq, now())
		return err
	})
}

// makeMark puts writer's mark in the database before its first write, so
// that every write updates (and locks) a row that exists: see landed.
func (l *Ledger) makeMark(ctx context.Context, writer string) error {
	return l.tx(ctx, func(t *sql.Tx) error {
		_, err := t.ExecContext(ctx, l.q(`INSERT INTO write_marks (writer, seq, at) VALUES ($1, 0, $2) ON CONFLICT (writer) DO NOTHING`), writer, now())
		return err
	})
}

// landed tells whether writer's write seq committed: its mark is there.
// Writes of one writer run one at a time, and none runs until the last
// one's outcome is known, so the mark holds either seq or the one before.
// On PostgreSQL the write may still be under way (a COMMIT whose
// connection was cut carries on in the server): the mark's row is read
// FOR UPDATE, which waits for that transaction's end. (A SQLite commit
// has ended when it returns.)
func (l *Ledger) landed(ctx context.Context, writer string, seq int64) (bool, error) {
	var got int64
	err := l.tx(ctx, func(t *sql.Tx) error {
		query := `SELECT seq FROM write_marks WHERE writer = $1`
		if l.postgres {
			query += ` FOR UPDATE`
		}
		return t.QueryRowContext(ctx, l.q(query), writer).Scan(&got)
	})
	if errors.Is(err, errUnknownOutcome) {
		err = nil // a read: what it read stands
	}
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil && got == seq, err
}

// dropMark deletes writer's mark: it has closed with nothing unknown.
func (l *Ledger) dropMark(ctx context.Context, writer string) error {
	_, err := l.db.ExecContext(ctx, l.q(`DELETE FROM write_marks WHERE writer = $1`), writer)
	return err
}

// pruneMarks deletes the marks of writers that have not written for a
// week: processes that ended without closing. (A live writer's next write
// leaves its mark again, so pruning it would do no harm either.)
func (l *Ledger) pruneMarks(ctx context.Context) error {
	_, err := l.db.ExecContext(ctx, l.q(`DELETE FROM write_marks WHERE at < $1`), now()-7*24*3600)
	return err
}

// book books c's debit and return once its row has shrunk by them,
// within t, and deletes the row if the lease now holds nothing.
func (l *Ledger) book(ctx context.Context, t *sql.Tx, c *leaseChange) error {
	if c.back > 0 {
		if _, err := t.ExecContext(ctx, l.q(`UPDATE api_keys SET balance = balance + $1 WHERE id = $2`), int64(c.back), c.keyID); err != nil {
			return err
		}
	}
	if c.debit > 0 {
		if err := l.debitEntry(ctx, t, c.keyID, c.debit); err != nil {
			return err
		}
	}
	if c.drop {
		return l.dropRow(ctx, t, c.id)
	}
	return nil
}

// dropRow deletes the reservation row id, within t, and returns
// what it held to its key: the lease that owned it no longer counts on it.
// (The row names the key: a lease whose first extension went
// unacknowledged never learnt it.)
func (l *Ledger) dropRow(ctx context.Context, t *sql.Tx, id string) error {
	var left int64
	var keyID string
	err := t.QueryRowContext(ctx, l.q(`DELETE FROM reservations WHERE id = $1 AND owner = $2 RETURNING amount, key_id`), id, l.owner).Scan(&left, &keyID)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && left == 0) {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = t.ExecContext(ctx, l.q(`UPDATE api_keys SET balance = balance + $1 WHERE id = $2`), left, keyID)
	return err
}

// chargeDirect debits the key with id by amount straight from its
// balance, within t, as far as the balance goes, and says how much that
// was: for debits settled in a lease whose row was released, so that
// their reservation is already back in the balance.
func (l *Ledger) chargeDirect(ctx context.Context, t *sql.Tx, id string, amount uint64) (uint64, error) {
	if amount == 0 {
		return 0, nil
	}
	query := `SELECT balance FROM api_keys WHERE id = $1`
	if l.postgres {
		query += ` FOR UPDATE` // the balance must not drop between the read and the write
	}
	var bal int64
	if err := t.QueryRowContext(ctx, l.q(query), id).Scan(&bal); err != nil {
		return 0, err
	}
	got := min(uint64(bal), amount)
	if got == 0 {
		return 0, nil
	}
	res, err := t.ExecContext(ctx, l.q(`UPDATE api_keys SET balance = balance - $1 WHERE id = $2 AND balance >= $1`), int64(got), id)
	if err != nil {
		return 0, err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return 0, fmt.Errorf("ledger: the balance of key %s changed while it was charged %d", id, got)
	}
	return got, l.debitEntry(ctx, t, id, got)
}

// debitEntry records a debit entry within t.
func (l *Ledger) debitEntry(ctx context.Context, t *sql.Tx, id string, amount uint64) error {
	debit, err := l.prepared(ctx, t, `INSERT INTO entries (key_id, kind, amount, owner, created) VALUES ($1, 'debit', $2, $3, $4)`)
	if err != nil {
		return err
	}
	_, err = debit.ExecContext(ctx, id, int64(amount), l.owner, now())
	return err
}
