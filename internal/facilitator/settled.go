package facilitator

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sync"

	"github.com/agoranet/agora/internal/chain/channel/channelpb"
	"github.com/agoranet/agora/x402"
)

// settled is the facilitator's durable record of what it has settled: the
// result of each payment (so that settling it again returns the same), and
// the highest voucher committed on each channel (so that no voucher's room
// is sold twice).
type settled struct {
	path string

	mu      sync.Mutex
	f       *os.File
	results map[string]x402.SettlementResponse
	highest map[uint64]uint64
	busy    map[string]chan struct{}
}

type settledRecord struct {
	ID         string                  `json:"id"`
	Channel    uint64                  `json:"channel,omitempty"`
	Cumulative uint64                  `json:"cumulative,omitempty"`
	Result     x402.SettlementResponse `json:"result"`
}

func openSettled(path string) (*settled, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("facilitator: state file: %w", err)
	}
	s := &settled{path: path, f: f, results: map[string]x402.SettlementResponse{}, highest: map[uint64]uint64{}, busy: map[string]chan struct{}{}}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var r settledRecord
		if json.Unmarshal(sc.Bytes(), &r) != nil {
			continue // a torn last line: its settlement never returned
		}
		s.apply(r)
	}
	if err := sc.Err(); err != nil {
		f.Close()
		return nil, fmt.Errorf("facilitator: read %s: %w", path, err)
	}
	return s, nil
}

func (s *settled) apply(r settledRecord) {
	s.results[r.ID] = r.Result
	if r.Channel != 0 {
		s.highest[r.Channel] = max(s.highest[r.Channel], r.Cumulative)
	}
}

// lock holds key until the returned func is called.
func (s *settled) lock(key string) func() {
	for {
		s.mu.Lock()
		ch, held := s.busy[key]
		if !held {
			ch = make(chan struct{})
			s.busy[key] = ch
			s.mu.Unlock()
			return func() {
				s.mu.Lock()
				delete(s.busy, key)
				s.mu.Unlock()
				close(ch)
			}
		}
		s.mu.Unlock()
		<-ch
	}
}

func (s *settled) result(id string) (x402.SettlementResponse, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.results[id]
	return r, ok
}

// committed is the highest voucher settled on v's channel.
func (s *settled) committed(channel uint64) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.highest[channel]
}

// record writes a settlement to disk (synced) before it counts.
func (s *settled) record(id string, v *channelpb.Voucher, res x402.SettlementResponse) error {
	r := settledRecord{ID: id, Result: res}
	if v != nil {
		r.Channel, r.Cumulative = v.ChannelId, v.Cumulative
	}
	b, _ := json.Marshal(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("facilitator: record a settlement in %s: %w", s.path, err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("facilitator: record a settlement in %s: %w", s.path, err)
	}
	s.apply(r)
	return nil
}

func (s *settled) close() error { return s.f.Close() }
