package ledger

import (
	"context"
	"errors"
)

// Write runs one flush now, as the loop does every LeaseConfig.Flush.
func (ls *Leases) Write(ctx context.Context) error { return ls.write(ctx, false) }

// LoseCommitAcks makes the next n commits that succeed report an error
// instead, as when the connection drops while the COMMIT is under way.
// Call it before the ledger is in use by other goroutines.
func (l *Ledger) LoseCommitAcks(n int) {
	l.afterCommit = func() error {
		if n == 0 {
			return nil
		}
		n--
		return errors.New("connection reset by peer (injected after the commit landed)")
	}
}

// MakeMark and Landed expose a writer's mark to tests.
func (l *Ledger) MakeMark(ctx context.Context, writer string) error { return l.makeMark(ctx, writer) }

func (l *Ledger) Landed(ctx context.Context, writer string, seq int64) (bool, error) {
	return l.landed(ctx, writer, seq)
}
