package receipt

import (
	"fmt"
	"sync"
)

// A receipt names the chain height it was served at and the provider's
// sequence number. Buyers take a receipt only if its height is within
// MaxLag blocks behind the chain's (the provider's view lags a little)
// and MaxLead ahead (the buyer's may too), so that it stays challengeable
// for the chain's whole window after it (audit.ChallengeWindow); and only
// once per sequence number.
const (
	MaxLag  = 1000
	MaxLead = 100
)

// Fresh checks r's chain id and its height against the chain's.
func Fresh(r *Receipt, chainID string, height int64) error {
	if r.ChainId != chainID {
		return fmt.Errorf("%w: the receipt is for chain %q, not %q", ErrMismatch, r.ChainId, chainID)
	}
	if height > 0 && (r.Height+MaxLag < height || r.Height > height+MaxLead) {
		return fmt.Errorf("%w: the receipt names height %d; the chain is at %d", ErrMismatch, r.Height, height)
	}
	return nil
}

// Seqs remembers the sequence numbers of the receipts a buyer took, per
// provider, to refuse one used twice. It keeps a window of SeqWindow
// numbers up to each provider's highest, as bits (8 KiB a provider): an
// older number is refused too.
type Seqs struct {
	mu sync.Mutex
	by map[string]*seqWindow
}

// SeqWindow is how far below a provider's highest sequence number a
// receipt may be (answers overtake one another) and still be taken.
const SeqWindow = 1 << 16

// seqWindow holds, for n in (top-SeqWindow, top], whether n was taken, in
// bit n % SeqWindow.
type seqWindow struct {
	top  uint64
	bits [SeqWindow / 64]uint64
}

func (w *seqWindow) bit(n uint64) (word *uint64, mask uint64) {
	i := n % SeqWindow
	return &w.bits[i/64], 1 << (i % 64)
}

// Take records provider's seq, or returns an error if it was taken before
// or is older than the window.
func (s *Seqs) Take(provider string, seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.by == nil {
		s.by = map[string]*seqWindow{}
	}
	w := s.by[provider]
	if w == nil {
		w = &seqWindow{top: seq}
		s.by[provider] = w
	}
	switch {
	case seq > w.top:
		// The window moves up: the numbers it leaves free their bits.
		if seq-w.top >= SeqWindow {
			w.bits = [SeqWindow / 64]uint64{}
		} else {
			for n := w.top + 1; n <= seq; n++ {
				word, mask := w.bit(n)
				*word &^= mask
			}
		}
		w.top = seq
	case seq+SeqWindow <= w.top:
		return fmt.Errorf("%w: receipt number %d of %s is older than the last %d taken", ErrMismatch, seq, provider, SeqWindow)
	}
	word, mask := w.bit(seq)
	if *word&mask != 0 {
		return fmt.Errorf("%w: receipt number %d of %s was used before", ErrMismatch, seq, provider)
	}
	*word |= mask
	return nil
}
