package providerpb

// Name is the module's name and store prefix.
const Name = "provider"

// DefaultParams are a new chain's params: with 200 ms blocks a provider is
// offline after 4 s of silence and jailed (1% slashed) after a minute.
func DefaultParams() *Params {
	return &Params{MinStake: 100_000_000, OfflineAfterBlocks: 20, JailAfterBlocks: 300, DowntimeSlashBps: 100, DowntimeJailBlocks: 100}
}

// IsRoutable reports whether p may be sent requests.
func IsRoutable(p *Provider) bool { return p != nil && p.Status == Status_STATUS_ONLINE }

// Reputation scores a provider's record in basis points: good outcomes
// (audits passed, jobs completed) over all outcomes, with one good outcome
// granted to a newcomer, so a new provider starts at 10000 and each fault
// pulls the score down.
func Reputation(p *Provider) uint32 {
	if p == nil {
		return 0
	}
	good := 1 + p.AuditsPassed + p.JobsCompleted
	bad := p.DisputesLost + p.JobsFaulted
	return uint32(good * 10000 / (good + bad))
}
