package verifier

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/agoranet/agora/internal/chain/audit/auditpb"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/model"
	"github.com/agoranet/agora/internal/zk"
)

// A verifier drawn for a key review checks the proposal's setup
// transcript itself: it fetches the transcript, checks its digest against
// the proposal's, rebuilds the circuit from the model's weights, verifies
// every contribution (zk.VerifyTranscript) and votes the verdict its own
// check yields: auditpb.KeyVerdict of the key and contributors it
// derived if they are the proposal's, or 32 zero bytes if anything fails.
//
// The proposer chooses the transcript and its URL, so the check is
// hostile-input work and is bounded before it starts. The model and the
// number of contributors the proposal names fix the transcript's size
// (zk.MaxTranscriptSize): no more is read, and the circuit's exact sizes
// are checked before a point is decoded. The URL must be a public http(s)
// host (checked on the address dialled), redirects are not followed, and
// the fetch and check of a review must end before its commit window
// closes. Fetches run a few at a time; the check itself (seconds to tens
// of seconds of both cores) runs one at a time, earliest commit deadline
// first, so reviews that stall cannot push an honest one past its window.

// CheckTranscriptFunc checks a transcript's bytes against a model and the
// contributors a proposal names, in order, and returns the verifying key
// it yields.
type CheckTranscriptFunc func(ctx context.Context, m *model.Model, transcript []byte, contributors [][]byte) (vk []byte, err error)

// CheckTranscript is the real check: zk.ParseTranscript, the contributors
// (cheap, so a transcript of others' contributions costs no curve
// arithmetic), then zk.VerifyTranscript.
func CheckTranscript(ctx context.Context, m *model.Model, transcript []byte, contributors [][]byte) ([]byte, error) {
	t, err := zk.ParseTranscript(transcript)
	if err != nil {
		return nil, err
	}
	if t.ModelID != m.Manifest.ID {
		return nil, fmt.Errorf("the transcript is for model %s, not %s", t.ModelID, m.Manifest.ID)
	}
	if !slices.EqualFunc(t.Contributors(), contributors, func(a ed25519.PublicKey, b []byte) bool { return bytes.Equal(a, b) }) {
		return nil, errors.New("the transcript's contributors, in order, are not the proposal's")
	}
	k, err := zk.VerifyTranscript(ctx, m, t, nil)
	if err != nil {
		return nil, err
	}
	if err := k.Matches(k.VerifyingKeyBytes, contributors); err != nil {
		return nil, err
	}
	return k.VerifyingKeyBytes, nil
}

// rejectVerdict is the vote of a member whose check fails.
var rejectVerdict = make([]byte, sha256.Size)

// Bounds on the fetch and check of key reviews' transcripts.
const (
	// keyFetches is how many transcripts may be fetched (and held) at
	// once; the checks themselves take turns on keyCPU.
	keyFetches = 4
	// keyFetchTimeout bounds one fetch, within the review's budget.
	keyFetchTimeout = time.Minute
	// keyCommitMargin is the blocks kept back from a review's commit
	// window for the commitment to land after the check.
	keyCommitMargin = 3
)

// initKeys sets up the key-review state of a server.
func (s *Server) initKeys() {
	s.keyVerdicts, s.keyChecking = map[uint64][]byte{}, map[uint64]bool{}
	s.keyFetches, s.nextReview = make(chan struct{}, keyFetches), 1
	s.tc = transcriptClient(s.cfg.LocalTranscripts)
}

// keyVote serves on a key review's committee: it starts the check of the
// transcript once, commits to the verdict while commitments are open and
// reveals it after. A member that has committed (before a restart, say)
// reveals the verdict its commitment is to, with no check: a verdict is
// one of two values, the proposal's KeyVerdict or the rejection, and the
// salt is derived from the key, so the commitment says which.
func (s *Server) keyVote(ctx context.Context, r *auditpb.KeyReview, mine *auditpb.Vote, height int64) {
	me := s.Address()
	salt, err := s.salt(ctx, "agora/audit/key-salt/v2", r.Id)
	if err != nil {
		return
	}
	if len(mine.Commitment) != 0 {
		if len(mine.ResponseHash) != 0 || height < r.CommitUntil {
			return
		}
		verdict := committedVerdict(r, mine.Commitment, salt, me)
		if verdict == nil {
			s.log.Warn("verifier: this verifier's commitment to a key review is to neither verdict; it cannot be revealed", "review", r.Id)
			return
		}
		if _, err := s.cfg.Chain.Submit(ctx, s.key, "", &auditpb.MsgRevealKeyVote{Verifier: me, ReviewId: r.Id, Verdict: verdict, Salt: salt}); err != nil {
			s.log.Warn("verifier: key vote reveal failed", "review", r.Id, "err", err)
		}
		return
	}
	if height >= r.CommitUntil {
		return // too late to commit; nothing to reveal
	}
	s.mu.Lock()
	verdict, checking := s.keyVerdicts[r.Id], s.keyChecking[r.Id]
	if verdict == nil && !checking {
		if budget := s.checkBudget(r, height); budget <= 0 {
			s.log.Warn("verifier: too few blocks are left in a key review's commit window to check its transcript", "review", r.Id, "commit_until", r.CommitUntil, "height", height)
			s.keyVerdicts[r.Id] = rejectVerdict
			verdict = rejectVerdict
		} else {
			select {
			case s.keyFetches <- struct{}{}:
				s.keyChecking[r.Id] = true
				s.wg.Add(1)
				go func() {
					defer s.wg.Done()
					defer func() { <-s.keyFetches }()
					cctx, cancel := context.WithTimeout(ctx, budget)
					v := s.checkKey(cctx, r)
					cancel()
					s.mu.Lock()
					defer s.mu.Unlock()
					delete(s.keyChecking, r.Id)
					if ctx.Err() == nil {
						s.keyVerdicts[r.Id] = v
					}
				}()
			default: // as many fetches as may run are running; this one waits its turn
			}
		}
	}
	s.mu.Unlock()
	if verdict == nil {
		return
	}
	c := auditpb.KeyCommitment(verdict, salt, me)
	if _, err := s.cfg.Chain.Submit(ctx, s.key, "", &auditpb.MsgCommitKeyVote{Verifier: me, ReviewId: r.Id, Commitment: c}); err != nil {
		s.log.Warn("verifier: key vote commit failed", "review", r.Id, "err", err)
	}
}

// committedVerdict is the verdict, of the two a member can vote on r,
// that commitment is to, or nil if neither.
func committedVerdict(r *auditpb.KeyReview, commitment, salt []byte, member string) []byte {
	for _, v := range [][]byte{auditpb.KeyVerdict(r.ModelId, r.VerifyingKey, r.Contributors), rejectVerdict} {
		if bytes.Equal(auditpb.KeyCommitment(v, salt, member), commitment) {
			return v
		}
	}
	return nil
}

// checkBudget is how long the fetch and check of review r may take:
// KeyCheckTimeout, but no longer than the blocks left before its commit
// window closes, less keyCommitMargin, take at the pace the chain has
// kept since this verifier started watching it.
func (s *Server) checkBudget(r *auditpb.KeyReview, height int64) time.Duration {
	budget := s.cfg.KeyCheckTimeout
	if interval, ok := s.blocks.interval(); ok {
		budget = min(budget, time.Duration(r.CommitUntil-height-keyCommitMargin)*interval)
	}
	return budget
}

// A blockClock estimates the chain's block interval from the heights and
// block times the committee loop sees.
type blockClock struct {
	mu           sync.Mutex // guards the fields below
	first, last  int64
	since, until time.Time
}

func (c *blockClock) observe(height int64, t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.first == 0 {
		c.first, c.since = height, t
	}
	if height > c.last {
		c.last, c.until = height, t
	}
}

// interval is the mean block interval seen, once two heights have been.
func (c *blockClock) interval() (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last <= c.first || !c.until.After(c.since) {
		return 0, false
	}
	return c.until.Sub(c.since) / time.Duration(c.last-c.first), true
}

// A deadlineSlot is a slot that one holder at a time takes, in order of
// deadline: when it frees, the waiter with the earliest deadline (then
// the lowest id) takes it.
type deadlineSlot struct {
	mu      sync.Mutex // guards the fields below
	busy    bool
	waiting []*slotWaiter
}

type slotWaiter struct {
	deadline int64
	id       uint64
	ready    chan struct{}
}

// acquire waits for the slot until ctx is done.
func (d *deadlineSlot) acquire(ctx context.Context, deadline int64, id uint64) error {
	d.mu.Lock()
	if !d.busy {
		d.busy = true
		d.mu.Unlock()
		return nil
	}
	w := &slotWaiter{deadline: deadline, id: id, ready: make(chan struct{})}
	d.waiting = append(d.waiting, w)
	d.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		d.mu.Lock()
		if i := slices.Index(d.waiting, w); i >= 0 {
			d.waiting = slices.Delete(d.waiting, i, i+1)
			d.mu.Unlock()
		} else { // handed the slot as ctx ended: pass it on
			d.mu.Unlock()
			d.release()
		}
		return ctx.Err()
	}
}

// release hands the slot to the waiter with the earliest deadline.
func (d *deadlineSlot) release() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.waiting) == 0 {
		d.busy = false
		return
	}
	next := slices.MinFunc(d.waiting, func(a, b *slotWaiter) int {
		return cmp.Or(cmp.Compare(a.deadline, b.deadline), cmp.Compare(a.id, b.id))
	})
	d.waiting = slices.DeleteFunc(d.waiting, func(w *slotWaiter) bool { return w == next })
	close(next.ready)
}

// checkKey runs the member's check of a key review and returns its
// verdict. Everything is bounded before the transcript is read: its size
// by the model and the proposal's contributors, the fetch by
// keyFetchTimeout within ctx; the transcript is parsed and its
// contributors compared with the proposal's before the check takes its
// turn on keyCPU.
func (s *Server) checkKey(ctx context.Context, r *auditpb.KeyReview) []byte {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.KeyCheckTimeout)
	defer cancel()
	start := time.Now()
	log := s.log.With("review", r.Id, "model", r.ModelId)
	err := func() error {
		m, err := model.Lookup(r.ModelId)
		if err != nil {
			return fmt.Errorf("the model's weights are not known here: %w", err)
		}
		max, err := zk.MaxTranscriptSize(m, len(r.Contributors))
		if err != nil {
			return err
		}
		fctx, cancel := context.WithTimeout(ctx, keyFetchTimeout)
		b, err := s.fetchTranscript(fctx, r.TranscriptUrl, max)
		cancel()
		if err != nil {
			return err
		}
		if d := sha256.Sum256(b); !bytes.Equal(d[:], r.TranscriptDigest) {
			return fmt.Errorf("the transcript at %s has sha256 %x, the proposal says %x", r.TranscriptUrl, d, r.TranscriptDigest)
		}
		if err := s.keyCPU.acquire(ctx, r.CommitUntil, r.Id); err != nil {
			return fmt.Errorf("waiting for another review's check: %w", err)
		}
		defer s.keyCPU.release()
		vk, err := s.cfg.CheckTranscript(ctx, m, b, r.Contributors)
		if err != nil {
			return err
		}
		if !bytes.Equal(vk, r.VerifyingKey) {
			return errors.New("the transcript yields another verifying key than the proposal's")
		}
		return nil
	}()
	if err != nil {
		log.Warn("verifier: a proposed key does not check; voting to reject it", "err", err, "took", time.Since(start))
		return rejectVerdict
	}
	log.Info("verifier: a proposed key checks against its transcript", "took", time.Since(start))
	return auditpb.KeyVerdict(r.ModelId, r.VerifyingKey, r.Contributors)
}

// errRedirect refuses a transcript URL that redirects: each hop would be
// another request the proposer chooses.
var errRedirect = errors.New("the transcript URL redirects; a transcript URL must serve the transcript itself")

// transcriptClient is the HTTP client transcripts are fetched with: no
// proxy, no redirects, and unless allowLocal (Config.LocalTranscripts) no
// connection to an address that is not public. The address is checked as
// it is dialled, after DNS, so a name that resolves (or rebinds) to a
// private address is refused too.
func transcriptClient(allowLocal bool) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second}
	if !allowLocal {
		d.Control = dialPublic
	}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 nil, // a proxy would dial for us, unchecked
			DialContext:           d.DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
			MaxIdleConns:          keyFetches,
			IdleConnTimeout:       30 * time.Second,
			ForceAttemptHTTP2:     true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return errRedirect },
	}
}

// dialPublic is a net.Dialer Control that refuses addresses that are not
// public.
func dialPublic(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("dial %s %s: %w", network, address, err)
	}
	if !publicAddr(ap.Addr()) {
		return fmt.Errorf("%s is not a public address; transcripts are fetched from public hosts only (LocalTranscripts lifts this)", ap.Addr())
	}
	return nil
}

// nonPublic are ranges beside netip's loopback, private, link-local,
// multicast and unspecified ones that reach no public host.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),     // this network (Linux dials 0.x as loopback)
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),  // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"), // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),   // reserved, and broadcast
}

// nat64 embeds an IPv4 address in its last 32 bits.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// publicAddr reports whether a is an address a transcript may come from.
func publicAddr(a netip.Addr) bool {
	a = a.Unmap()
	if nat64.Contains(a) {
		b := a.As16()
		a = netip.AddrFrom4([4]byte(b[12:]))
	}
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// fetchTranscript reads a transcript of at most max bytes from an
// http(s) URL (a public host, unless the config allows local ones), or,
// if the config allows it, a local file (a path or a file: URL).
func (s *Server) fetchTranscript(ctx context.Context, where string, max int) ([]byte, error) {
	u, err := url.Parse(where)
	if err != nil {
		return nil, fmt.Errorf("transcript URL %q: %w", where, err)
	}
	var body io.ReadCloser
	switch {
	case u.Scheme == "http" || u.Scheme == "https":
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, where, nil)
		if err != nil {
			return nil, err
		}
		resp, err := s.tc.Do(req)
		if err != nil {
			return nil, fmt.Errorf("fetch the transcript: %w", err)
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, fmt.Errorf("fetch the transcript: %s from %s", resp.Status, where)
		}
		if resp.ContentLength > int64(max) {
			resp.Body.Close()
			return nil, fmt.Errorf("the transcript is %d bytes; one with the proposal's contributors has at most %d", resp.ContentLength, max)
		}
		body = resp.Body
	case (u.Scheme == "file" || u.Scheme == "") && s.cfg.LocalTranscripts:
		path := where
		if u.Scheme == "file" {
			path = u.Path
		}
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("open the transcript: %w", err)
		}
		if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
			f.Close()
			return nil, fmt.Errorf("the transcript %s is not a regular file", path)
		}
		body = f
	default:
		return nil, fmt.Errorf("transcript URL %q: this verifier fetches http and https URLs%s", where, map[bool]string{false: "", true: " and local files"}[s.cfg.LocalTranscripts])
	}
	defer body.Close()
	// The body is read under ctx; a stalled server is cut off by it.
	stop := context.AfterFunc(ctx, func() { body.Close() })
	defer stop()
	b, err := io.ReadAll(io.LimitReader(body, int64(max)+1))
	if err != nil {
		return nil, fmt.Errorf("read the transcript: %w", err)
	}
	if len(b) > max {
		return nil, fmt.Errorf("the transcript is over %d bytes, the most one with the proposal's contributors can be", max)
	}
	return b, nil
}

// keyReviews discovers key reviews and votes on those whose committee
// includes this verifier; open holds the reviews still worth reading.
func (s *Server) keyReviews(ctx context.Context, open map[uint64]bool, height int64) {
	for { // discover new reviews
		if _, err := client.Ask(ctx, s.cfg.Chain, auditpb.QueryReview, &auditpb.QueryKeyReviewRequest{Id: s.nextReview}); err != nil {
			break
		}
		open[s.nextReview] = true
		s.nextReview++
	}
	me := s.Address()
	type pending struct {
		r    *auditpb.KeyReview
		mine *auditpb.Vote
	}
	var due []pending
	for id := range open {
		r, err := client.Ask(ctx, s.cfg.Chain, auditpb.QueryReview, &auditpb.QueryKeyReviewRequest{Id: id})
		if err != nil && !strings.Contains(err.Error(), "not found") {
			continue
		}
		var mine *auditpb.Vote
		if r != nil {
			for _, v := range r.Votes {
				if v.Verifier == me {
					mine = v
				}
			}
		}
		if r != nil && r.Status == auditpb.ReviewStatus_REVIEW_STATUS_OPEN && r.DrawAt != 0 {
			continue // its committee waits for the beacon
		}
		if mine == nil || r.Status != auditpb.ReviewStatus_REVIEW_STATUS_OPEN || height > r.RevealUntil || len(mine.ResponseHash) != 0 {
			delete(open, id)
			s.mu.Lock()
			delete(s.keyVerdicts, id)
			s.mu.Unlock()
			continue
		}
		due = append(due, pending{r, mine})
	}
	// Earliest commit deadline first: that is the order in which the
	// checks start and take the fetch slots.
	slices.SortFunc(due, func(a, b pending) int { return reviewOrder(a.r, b.r) })
	for _, p := range due {
		s.keyVote(ctx, p.r, p.mine, height)
	}
}

// reviewOrder orders key reviews by commit deadline, then id.
func reviewOrder(a, b *auditpb.KeyReview) int {
	return cmp.Or(cmp.Compare(a.CommitUntil, b.CommitUntil), cmp.Compare(a.Id, b.Id))
}
