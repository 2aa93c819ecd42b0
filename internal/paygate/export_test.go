package paygate

// SetAnchorBudget lets a test keep fewer claims' leaves in memory.
func SetAnchorBudget(n int) func() {
	old := anchorBudget
	anchorBudget = n
	return func() { anchorBudget = old }
}

// KeptAnchors is how many claims' leaves the gate holds in memory for a channel.
func (g *Gate) KeptAnchors(id uint64) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if s := g.channels[id]; s != nil {
		return len(s.anchors)
	}
	return 0
}
