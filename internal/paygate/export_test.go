package paygate

// SetAnchorsKept lets a test keep fewer claims' leaves in memory, and
// fewer leaves in all.
func SetAnchorsKept(claims, leaves int) func() {
	oldClaims, oldLeaves := anchorsKept, anchorLeavesKept
	anchorsKept, anchorLeavesKept = claims, leaves
	return func() { anchorsKept, anchorLeavesKept = oldClaims, oldLeaves }
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
