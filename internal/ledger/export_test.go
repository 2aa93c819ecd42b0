package ledger

import "context"

// Write runs one flush now, as the loop does every LeaseConfig.Flush.
func (ls *Leases) Write(ctx context.Context) error { return ls.write(ctx, false) }
