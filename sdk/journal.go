package sdk

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// A journal is the payer's durable record of its channels: each channel it
// opened, and how far its vouchers may go. Vouchers are reserved in chunks
// (reserveChunk requests' worth), one fsync per chunk, so that recording
// them costs nothing per request; after a restart the payer knows that no
// voucher above a channel's last reservation exists, and accepts a
// provider's statement of the channel's charges up to there and no further.
//
// One JSON object per line; the first names the payer and chain.
type journal struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

// reserveChunk is how many answers' maxima one reservation covers.
const reserveChunk = 100

type jrecord struct {
	Payer   string `json:"payer,omitempty"`
	ChainID string `json:"chainId,omitempty"`

	Channel   uint64 `json:"ch,omitempty"`
	Payee     string `json:"payee,omitempty"`
	Model     string `json:"model,omitempty"`
	Denom     string `json:"denom,omitempty"`
	Deposit   uint64 `json:"deposit,omitempty"`
	ExpiresAt int64  `json:"expiresAt,omitempty"`
	UpTo      uint64 `json:"upTo,omitempty"`
	Retired   string `json:"retired,omitempty"`
	Run       bool   `json:"run,omitempty"`  // a run began: books of an earlier clean close may be out of date
	Liar      string `json:"liar,omitempty"` // a payee caught lying (Why says how): never paid again
	Why       string `json:"why,omitempty"`
	Reclaimed bool   `json:"reclaimed,omitempty"`
	// The books at a clean close: the highest voucher signed, the
	// charges accepted, the maxima of requests whose charge was not seen.
	Closed    bool   `json:"closed,omitempty"`
	Signed    uint64 `json:"signed,omitempty"`
	Charged   uint64 `json:"charged,omitempty"`
	Unsettled uint64 `json:"unsettled,omitempty"`
}

// openJournal opens (or creates) the journal at path for payer on chainID,
// locked against other processes, and returns the channels it records and
// the payees it caught lying.
func openJournal(path, payer, chainID string) (*journal, []*chanInfo, map[string]string, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, nil, nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, nil, err
	}
	// One process at a time: two payers signing on one channel from two
	// views of it would refuse each other's vouchers.
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			return nil, nil, nil, fmt.Errorf("sdk: payer journal %s is held by another process (another agora pay or gateway paying from this key?); wait for it to finish: %w", path, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	j := &journal{path: path, f: f}
	byID := map[uint64]*chanInfo{}
	clean := map[uint64]*jrecord{} // the books a clean close left, if nothing followed
	liars := map[string]string{}
	var order []*chanInfo
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	first := true
	for sc.Scan() {
		var r jrecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			continue // a torn last line: the write it belongs to never returned
		}
		if first {
			first = false
			if r.Payer != payer || r.ChainID != chainID {
				f.Close()
				return nil, nil, nil, fmt.Errorf("sdk: payer journal %s belongs to %s on %s, not %s on %s; give each key and chain its own", path, r.Payer, r.ChainID, payer, chainID)
			}
			continue
		}
		if r.Liar != "" {
			liars[r.Liar] = r.Why
			continue
		}
		if r.Run {
			clear(clean) // that run may have signed past them before it ended
			continue
		}
		c := byID[r.Channel]
		switch {
		case r.Deposit > 0 && c == nil:
			c = &chanInfo{id: r.Channel, payee: r.Payee, model: r.Model, deposit: r.Deposit, expiresAt: r.ExpiresAt}
			byID[r.Channel] = c
			order = append(order, c)
		case c == nil:
		case r.UpTo > 0:
			c.reserved = max(c.reserved, r.UpTo)
			delete(clean, c.id) // a run went on after that close
		case r.Closed:
			clean[c.id] = &r
		case r.Retired != "":
			c.retired = r.Retired
		case r.Reclaimed:
			c.reclaimed = true
		}
	}
	if err := sc.Err(); err != nil {
		f.Close()
		return nil, nil, nil, fmt.Errorf("sdk: read payer journal %s: %w", path, err)
	}
	if first {
		if err := j.write(jrecord{Payer: payer, ChainID: chainID}, true); err != nil {
			f.Close()
			return nil, nil, nil, err
		}
	}
	// This run's mark: should it crash, the next one must not trust the
	// books of the last clean close, only the reservations.
	if err := j.write(jrecord{Run: true}, true); err != nil {
		f.Close()
		return nil, nil, nil, err
	}
	// After a clean close the books are exact. After a crash, what the
	// last run signed is bounded by its reservations: a provider's account
	// of the channel is believed up to there, no further.
	for _, c := range order {
		if r := clean[c.id]; r != nil {
			c.signed, c.charged, c.restored = r.Signed, r.Charged, r.Unsettled
		} else {
			c.restored = c.reserved
		}
	}
	return j, order, liars, nil
}

func (j *journal) write(r jrecord, sync bool) error {
	b, _ := json.Marshal(r)
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, err := j.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("sdk: write payer journal %s: %w", j.path, err)
	}
	if sync {
		if err := j.f.Sync(); err != nil {
			return fmt.Errorf("sdk: sync payer journal %s: %w", j.path, err)
		}
	}
	return nil
}

// close writes the books of every channel still in use, so that the next
// run starts from them exactly, and releases the journal.
func (j *journal) close(chans []*chanInfo) error {
	var errs []error
	for _, c := range chans {
		c.mu.Lock()
		_, unsettled := c.unsettledSums(time.Now())
		r := jrecord{Channel: c.id, Closed: true, Signed: c.signed, Charged: c.charged, Unsettled: unsettled + c.restored + c.inflight}
		live := c.retired == "" && !c.reclaimed
		c.mu.Unlock()
		if live {
			errs = append(errs, j.write(r, false))
		}
	}
	errs = append(errs, j.f.Sync(), j.f.Close())
	return errors.Join(errs...)
}
