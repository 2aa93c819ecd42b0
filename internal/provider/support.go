package provider

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/agoranet/agora/internal/durable"
	"github.com/agoranet/agora/internal/paygate"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// hashWriter writes through and hashes what it wrote.
type hashWriter struct {
	w io.Writer
	h hash.Hash
}

func newHashWriter(w io.Writer) *hashWriter { return &hashWriter{w: w, h: sha256.New()} }

func (hw *hashWriter) Write(b []byte) (int, error) {
	hw.h.Write(b)
	return hw.w.Write(b)
}

// sum is the sha256 of everything written so far.
func (hw *hashWriter) sum() []byte { return hw.h.Sum(nil) }

// seqAlloc hands out receipt sequence numbers that never repeat, even
// across crashes: it reserves blocks of numbers on disk before using them.
type seqAlloc struct {
	mu             sync.Mutex // guards the fields below
	nextSeq, limit uint64
	path           string
}

const seqBlock = 1000

func openSeq(path string) (*seqAlloc, error) {
	s := &seqAlloc{path: path}
	if path == "" {
		s.limit = ^uint64(0)
		return s, nil
	}
	b, err := os.ReadFile(path)
	switch {
	case os.IsNotExist(err):
	case err != nil:
		return nil, fmt.Errorf("provider: receipt counter: %w", err)
	case len(b) != 8:
		return nil, fmt.Errorf("provider: receipt counter %s is corrupt; it must not be reset, so fix or remove it knowingly", path)
	default:
		s.nextSeq = binary.BigEndian.Uint64(b)
		s.limit = s.nextSeq
	}
	return s, nil
}

func (s *seqAlloc) nextLocked() (uint64, error) {
	if s.nextSeq == s.limit {
		if err := s.reserveLocked(s.limit + seqBlock); err != nil {
			return 0, err
		}
	}
	n := s.nextSeq
	s.nextSeq++
	return n, nil
}

func (s *seqAlloc) next() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nextLocked()
}

// reserveLocked durably records limit before any number below it is used.
func (s *seqAlloc) reserveLocked(limit uint64) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], limit)
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return err
	}
	if err := durable.Replace(s.path, b[:]); err != nil {
		return fmt.Errorf("provider: receipt counter: %w", err)
	}
	s.limit = limit
	return nil
}

func (s *seqAlloc) close() error { return nil }

type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	tokens   *prometheus.CounterVec
	receipts prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agora_provider_requests_total", Help: "Requests by model, endpoint and HTTP status."},
			[]string{"model", "endpoint", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "agora_provider_request_seconds", Help: "Time to answer.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)},
			[]string{"model", "endpoint"}),
		tokens:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agora_provider_completion_tokens_total", Help: "Tokens generated."}, []string{"model"}),
		receipts: prometheus.NewCounter(prometheus.CounterOpts{Name: "agora_provider_receipts_total", Help: "Receipts signed."}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.tokens, m.receipts, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Backup writes a consistent copy of a provider's payment state, from its
// home, into dir (created; it must not exist), while the provider runs:
// the voucher log (what it may claim) and the receipt counter (which must
// never go back). To restore, stop the provider and copy both files into
// its home; on start it replays the log and claims what is unclaimed.
func Backup(home, dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return fmt.Errorf("provider: %s exists; back up into a new directory", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	log := filepath.Join(home, "vouchers.log")
	if _, err := os.Stat(log); err == nil {
		if err := paygate.BackupLog(log, filepath.Join(dir, "vouchers.log")); err != nil {
			return err
		}
	}
	// The counter is written whole before the numbers it reserves are
	// used, so a copy is above every receipt signed so far; receipts
	// signed after the backup are not, so the copy skips 2^32 numbers
	// ahead: restored, the provider never signs a number twice.
	seq, err := os.ReadFile(filepath.Join(home, "receipt-seq"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(seq) != 8 {
		return fmt.Errorf("provider: the receipt counter in %s is corrupt", home)
	}
	seq = binary.BigEndian.AppendUint64(nil, binary.BigEndian.Uint64(seq)+1<<32)
	return durable.WriteNew(filepath.Join(dir, "receipt-seq"), seq)
}
