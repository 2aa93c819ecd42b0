package paygate

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/agoranet/agora/internal/chain/agent/agentpb"
	"github.com/agoranet/agora/internal/client"
)

// agents is the gate's view of the agent accounts that pay it, so that a
// frozen or revoked agent's vouchers are refused at once, also on the
// channels it opened before (the chain holds an agent to its policy only
// when its money moves: a claim of an old voucher is the payee's). It is
// read when a payer is first seen, kept current by the chain's freeze and
// revoke events, and read again every agentRecheck in case an event was
// missed: never a query per request.
type agents struct {
	chain *client.Client

	mu      sync.Mutex
	stopped map[string]bool // payer -> frozen or revoked; absent: not read yet
	isAgent map[string]bool // payers that are agent accounts
}

const agentRecheck = 30 * time.Second

func newAgents(c *client.Client) *agents {
	return &agents{chain: c, stopped: map[string]bool{}, isAgent: map[string]bool{}}
}

// Stopped tells whether payer is an agent its owner has frozen or revoked.
func (a *agents) Stopped(ctx context.Context, payer string) bool {
	a.mu.Lock()
	stopped, known := a.stopped[payer]
	a.mu.Unlock()
	if known {
		return stopped
	}
	return a.read(ctx, payer)
}

// read asks the chain about payer. A chain that does not answer leaves it
// unread (and allowed): the next request asks again.
func (a *agents) read(ctx context.Context, payer string) bool {
	r, err := client.Ask(ctx, a.chain, agentpb.QueryAgent, &agentpb.QueryAgentRequest{Address: payer})
	var ce *client.ChainError
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case errors.As(err, &ce) && ce.Code == 14: // not an agent
		a.stopped[payer] = false
		return false
	case err != nil:
		return false
	}
	stopped := r.Agent.Frozen || r.Agent.Revoked
	a.stopped[payer], a.isAgent[payer] = stopped, true
	return stopped
}

// follow keeps the view current until ctx ends.
func (a *agents) follow(ctx context.Context) {
	events := make(chan []string, 16)
	for _, q := range []string{"tm.event='Tx' AND freeze_agent.agent EXISTS", "tm.event='Tx' AND revoke_agent.agent EXISTS"} {
		go subscribe(ctx, a.chain, q, func(ev client.Event) {
			select {
			case events <- append(ev.Events["freeze_agent.agent"], ev.Events["revoke_agent.agent"]...):
			default:
			}
		})
	}
	t := time.NewTicker(agentRecheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case who := <-events:
			for _, p := range who {
				a.read(ctx, p)
			}
		case <-t.C:
			a.mu.Lock()
			var known []string
			for p := range a.isAgent {
				known = append(known, p)
			}
			a.mu.Unlock()
			for _, p := range known {
				a.read(ctx, p)
			}
		}
	}
}

// subscribe calls fn with every event matching q until ctx ends,
// subscribing again whenever the node drops the subscription.
func subscribe(ctx context.Context, c *client.Client, q string, fn func(client.Event)) {
	for ctx.Err() == nil {
		if ch, err := c.Subscribe(ctx, q, 16); err == nil {
			for ev := range ch {
				fn(ev)
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}
