package verifier

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
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
// A check takes seconds to tens of seconds, so it runs once per review,
// one review at a time, off the committee loop.

// CheckTranscriptFunc checks a transcript's bytes against a model and
// returns the verifying key and the contributors (in order) it yields.
type CheckTranscriptFunc func(ctx context.Context, m *model.Model, transcript []byte) (vk []byte, contributors [][]byte, err error)

// CheckTranscript is the real check: zk.ParseTranscript and
// zk.VerifyTranscript.
func CheckTranscript(ctx context.Context, m *model.Model, transcript []byte) ([]byte, [][]byte, error) {
	t, err := zk.ParseTranscript(transcript)
	if err != nil {
		return nil, nil, err
	}
	k, err := zk.VerifyTranscript(ctx, m, t, nil)
	if err != nil {
		return nil, nil, err
	}
	return k.VerifyingKeyBytes, k.ContributorBytes(), nil
}

// rejectVerdict is the vote of a member whose check fails.
var rejectVerdict = make([]byte, sha256.Size)

// keyVote serves on a key review's committee: it starts the check of the
// transcript once, commits to the verdict while commitments are open and
// reveals it after.
func (s *Server) keyVote(ctx context.Context, r *auditpb.KeyReview, mine *auditpb.Vote, height int64) {
	s.mu.Lock()
	verdict, checking := s.keyVerdicts[r.Id], s.keyChecking[r.Id]
	// A check is worth starting while its verdict can still be committed,
	// or, after a restart, revealed (the salt is derived again).
	if verdict == nil && !checking && (height < r.CommitUntil || len(mine.Commitment) != 0) {
		select {
		case s.keyChecks <- struct{}{}:
			s.keyChecking[r.Id] = true
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer func() { <-s.keyChecks }()
				v := s.checkKey(ctx, r)
				if st, err := s.cfg.Chain.Status(ctx); err == nil && st.Height >= r.CommitUntil && len(mine.Commitment) == 0 {
					s.log.Warn("verifier: a key review's commit window closed before its transcript was checked; audit params' key_review_commit_blocks are too few for a setup check on this machine", "review", r.Id, "commit_until", r.CommitUntil)
				}
				s.mu.Lock()
				defer s.mu.Unlock()
				delete(s.keyChecking, r.Id)
				if ctx.Err() == nil {
					s.keyVerdicts[r.Id] = v
				}
			}()
		default: // another review's check is running; this one waits its turn
		}
	}
	s.mu.Unlock()
	me := s.Address()
	salt := keySalt(s.cfg.Key, r.Id)
	switch {
	case verdict == nil:
	case len(mine.Commitment) == 0 && height < r.CommitUntil:
		c := auditpb.KeyCommitment(verdict, salt, me)
		if _, err := s.cfg.Chain.Submit(ctx, s.key, "", &auditpb.MsgCommitKeyVote{Verifier: me, ReviewId: r.Id, Commitment: c}); err != nil {
			s.log.Warn("verifier: key vote commit failed", "review", r.Id, "err", err)
		}
	case len(mine.Commitment) != 0 && len(mine.ResponseHash) == 0 && height >= r.CommitUntil:
		if _, err := s.cfg.Chain.Submit(ctx, s.key, "", &auditpb.MsgRevealKeyVote{Verifier: me, ReviewId: r.Id, Verdict: verdict, Salt: salt}); err != nil {
			s.log.Warn("verifier: key vote reveal failed", "review", r.Id, "err", err)
		}
	}
}

// keySalt is the salt of a key vote: secret, and the same after a
// restart, so a committed vote can still be revealed.
func keySalt(key ed25519.PrivateKey, reviewID uint64) []byte {
	h := sha256.New()
	h.Write([]byte("agora/audit/key-salt/v1"))
	h.Write(key.Seed())
	fmt.Fprintf(h, "%d", reviewID)
	return h.Sum(nil)
}

// checkKey runs the member's check of a key review and returns its
// verdict.
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
		b, err := s.fetchTranscript(ctx, r.TranscriptUrl)
		if err != nil {
			return err
		}
		if d := sha256.Sum256(b); !bytes.Equal(d[:], r.TranscriptDigest) {
			return fmt.Errorf("the transcript at %s has sha256 %x, the proposal says %x", r.TranscriptUrl, d, r.TranscriptDigest)
		}
		vk, contributors, err := s.cfg.CheckTranscript(ctx, m, b)
		if err != nil {
			return err
		}
		if !bytes.Equal(vk, r.VerifyingKey) {
			return errors.New("the transcript yields another verifying key than the proposal's")
		}
		if !slices.EqualFunc(contributors, r.Contributors, bytes.Equal) {
			return errors.New("the transcript's contributors, in order, are not the proposal's")
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

// fetchTranscript reads a transcript from an http(s) URL, or, if the
// config allows it, a local file (a path or a file: URL), up to
// zk.MaxTranscriptBytes.
func (s *Server) fetchTranscript(ctx context.Context, where string) ([]byte, error) {
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
		resp, err := s.hc.Do(req)
		if err != nil {
			return nil, fmt.Errorf("fetch the transcript: %w", err)
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, fmt.Errorf("fetch the transcript: %s from %s", resp.Status, where)
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
	b, err := io.ReadAll(io.LimitReader(body, zk.MaxTranscriptBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read the transcript: %w", err)
	}
	if len(b) > zk.MaxTranscriptBytes {
		return nil, fmt.Errorf("the transcript is over %d bytes", zk.MaxTranscriptBytes)
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
		if mine == nil || r.Status != auditpb.ReviewStatus_REVIEW_STATUS_OPEN || height > r.RevealUntil || len(mine.ResponseHash) != 0 {
			delete(open, id)
			s.mu.Lock()
			delete(s.keyVerdicts, id)
			s.mu.Unlock()
			continue
		}
		s.keyVote(ctx, r, mine, height)
	}
}
