package paygate

// SetAnchorsKept lets a test keep fewer claims' leaves in memory.
func SetAnchorsKept(n int) func() {
	old := anchorsKept
	anchorsKept = n
	return func() { anchorsKept = old }
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
