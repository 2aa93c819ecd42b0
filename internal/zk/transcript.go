package zk

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/consensys/gnark-crypto/ecc"
	curve "github.com/consensys/gnark-crypto/ecc/bn254"
	"github.com/consensys/gnark/backend/groth16/bn254/mpcsetup"
	"github.com/consensys/gnark/constraint"
	csbn254 "github.com/consensys/gnark/constraint/bn254"

	"github.com/agoranet/agora/internal/model"
)

// A Transcript is the record of a multi-party Groth16 setup for one
// model, as the parties pass it around: the phase-1 (powers of tau)
// contributions, the beacon that sealed phase 1, the phase-2 starting
// state it implies for the model's circuit, the phase-2 contributions and
// the beacon that sealed phase 2. Each contribution is the full state
// after it, in gnark's mpcsetup encoding, and is signed with its
// contributor's ed25519 key; every signature covers everything before it,
// so a contribution cannot be dropped, reordered or re-signed without
// breaking the signatures after it. The same contributors, in the same
// order, contribute to both phases: the keys are sound if one of them
// threw its randomness away.
//
// The encoding, version 1, all integers big endian:
//
//	8     magic "AGORAZKT"
//	2     version (1)
//	1+n   model id (the weights' SHA-256 in hex; n at most 128)
//	8     domain size N: the circuit's constraints rounded up to a power of 2
//	4     phase-1 contribution count k (at most MaxContributors)
//	...   k contributions
//	1+n   phase-1 beacon (n = 0: phase 1 is open, and nothing follows but
//	      a zero count and an empty beacon)
//	4+n   the phase-2 starting state (n = 0 while phase 1 is open)
//	4     phase-2 contribution count (at most k)
//	...   contributions
//	1+n   phase-2 beacon (n = 0: phase 2 is open)
//
// and each contribution is
//
//	4+n   the state after it (gnark's Phase1 or Phase2 WriteTo, compressed
//	      points; n is fixed by N, and for phase 2 by the circuit)
//	32    the contributor's ed25519 public key
//	64    its signature of SignBytes
//
// Nothing may follow. Digest, the SHA-256 of the encoding, is what a key
// proposal on chain commits to. The circuit and the number of
// contributors fix the length of every state, and so of the whole
// transcript but for its beacons (TranscriptSize): VerifyTranscript
// refuses any other length before it decodes a point.
type Transcript struct {
	ModelID string
	Domain  uint64
	Phase1  []Contribution
	Beacon1 []byte
	// Start2 is the phase-2 starting state: the model's circuit evaluated
	// on the sealed phase 1. Whoever seals phase 1 computes it; every
	// verifier recomputes it.
	Start2  []byte
	Phase2  []Contribution
	Beacon2 []byte
}

// Contribution is one party's turn in a phase.
type Contribution struct {
	State       []byte
	Contributor ed25519.PublicKey
	Signature   []byte
}

// Limits on a transcript, against hostile input.
const (
	MaxContributors = 64 // the chain's limit on a key's contributors
	MaxDomain       = 1 << 16
	MaxBeacon       = 255
	maxModelID      = 128
	// MaxTranscriptBytes bounds an encoded transcript: MaxContributors
	// contributions to both phases of a circuit of 2^16 constraints would
	// be far larger, but the digits circuit's (N = 4096) take under 1 MB
	// each. It bounds what ParseTranscript reads without the circuit; a
	// reader that knows the model and the contributors reads no more than
	// MaxTranscriptSize.
	MaxTranscriptBytes = 256 << 20
)

// Phases of a transcript, as Phase reports them.
const (
	PhaseOne = 1
	PhaseTwo = 2
	Sealed   = 3
)

const (
	transcriptMagic   = "AGORAZKT"
	transcriptVersion = 1
	// SignDomain separates ceremony signatures from all others.
	SignDomain = "agora/zk/ceremony/v1"
)

// ErrTranscript is wrapped by every error that refuses a transcript.
var ErrTranscript = errors.New("zk: bad transcript")

func terr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrTranscript, fmt.Sprintf(format, args...))
}

// Sizes of gnark's compressed encodings.
const (
	g1Size    = curve.SizeOfG1AffineCompressed
	g2Size    = curve.SizeOfG2AffineCompressed
	proofSize = g1Size + g2Size // mpcsetup.UpdateProof
)

// phase1Size is the length of a Phase1 encoding for domain n with a
// challenge of c bytes: three update proofs, N, [β]₂, [τⁱ]₁ for 1 ≤ i ≤
// 2N-2, [τⁱ]₂ for 1 ≤ i ≤ N-1, [βτⁱ]₁ and [ατⁱ]₁ for 0 ≤ i ≤ N-1, the
// challenge.
func phase1Size(n uint64, c int) int {
	return 3*proofSize + 8 + g2Size + int(2*n-2)*g1Size + int(n-1)*g2Size + int(2*n)*g1Size + 1 + c
}

// checkPhase1 checks the shape of a Phase1 encoding before gnark's
// decoder sees it: gnark allocates as many points as the N in front
// says, before reading one.
func checkPhase1(b []byte, n uint64, challenge int) error {
	if len(b) < 3*proofSize+8 {
		return errors.New("truncated")
	}
	if got := binary.BigEndian.Uint64(b[3*proofSize:]); got != n {
		return fmt.Errorf("domain %d, the transcript's is %d", got, n)
	}
	if want := phase1Size(n, challenge); len(b) != want {
		return fmt.Errorf("%d bytes, want %d", len(b), want)
	}
	return nil
}

// phase2Size is the length of a Phase2 encoding (no commitments) for
// domain n, pkk private-wire points and a challenge of c bytes: the
// commitment count, [δ]₁, the private-wire points, the N-1 Z points,
// [δ]₂, δ's update proof, the challenge.
func phase2Size(n uint64, pkk, c int) int {
	return 2 + g1Size + 4 + pkk*g1Size + 4 + int(n-1)*g1Size + g2Size + proofSize + 1 + c
}

// checkPhase2 checks the shape of a Phase2 encoding (no commitments: the
// digits circuit has none) likewise: the private-wire and Z point counts
// must fit the bytes there are, Z must have N-1 points, and the challenge
// must be challenge bytes. Only the circuit fixes the private-wire count
// (checkCircuit).
func checkPhase2(b []byte, n uint64, challenge int) error {
	off := 0
	need := func(k int) error {
		if len(b)-off < k {
			return errors.New("truncated")
		}
		return nil
	}
	if err := need(2 + g1Size + 4); err != nil {
		return err
	}
	if c := binary.BigEndian.Uint16(b); c != 0 {
		return fmt.Errorf("%d commitments; the circuit has none", c)
	}
	off = 2 + g1Size
	pkk := uint64(binary.BigEndian.Uint32(b[off:]))
	off += 4
	if pkk*g1Size > uint64(len(b)-off) {
		return fmt.Errorf("%d private-wire points in %d bytes", pkk, len(b)-off)
	}
	off += int(pkk) * g1Size
	if err := need(4); err != nil {
		return err
	}
	if z := uint64(binary.BigEndian.Uint32(b[off:])); z != n-1 {
		return fmt.Errorf("%d Z points, want %d for domain %d", z, n-1, n)
	}
	off += 4 + int(n-1)*g1Size
	if want := off + g2Size + proofSize + 1 + challenge; len(b) != want {
		return fmt.Errorf("%d bytes, want %d", len(b), want)
	}
	if b[len(b)-1-challenge] != byte(challenge) {
		return fmt.Errorf("a challenge of %d bytes, want %d", b[len(b)-1-challenge], challenge)
	}
	return nil
}

// A shape is what a circuit fixes of its transcripts: the domain, and the
// number of private-wire points in a phase-2 state.
type shape struct {
	domain uint64
	pkk    int
}

func shapeOf(cs *csbn254.R1CS) (shape, error) {
	if c, ok := cs.CommitmentInfo.(constraint.Groth16Commitments); !ok || len(c) != 0 {
		return shape{}, errors.New("zk: the circuit has commitments; transcripts are for circuits without")
	}
	// Phase2.Initialize puts every wire but the public ones (and the
	// committed ones, of which there are none) in PKK.
	internal, secret, _ := cs.GetNbVariables()
	return shape{domain: domainOf(cs), pkk: internal + secret}, nil
}

// size is the length of a sealed transcript of this shape with k
// contributors, a model id of id bytes and beacons of b1 and b2 bytes.
func (s shape) size(id, k, b1, b2 int) int {
	contribution := ed25519.PublicKeySize + ed25519.SignatureSize + 4
	return len(transcriptMagic) + 2 + 1 + id + 8 +
		4 + k*(contribution+phase1Size(s.domain, sha256.Size)) + 1 + b1 +
		4 + phase2Size(s.domain, s.pkk, 0) +
		4 + k*(contribution+phase2Size(s.domain, s.pkk, sha256.Size)) + 1 + b2
}

// TranscriptSize is the exact length of a sealed transcript for model m
// with k contributors and beacons of beacon1 and beacon2 bytes: the
// circuit fixes every state's. It compiles m's circuit (a fraction of a
// second).
func TranscriptSize(m *model.Model, k, beacon1, beacon2 int) (int, error) {
	switch {
	case k < 1 || k > MaxContributors:
		return 0, fmt.Errorf("zk: a transcript has 1 to %d contributors, not %d", MaxContributors, k)
	case beacon1 < 1 || beacon1 > MaxBeacon || beacon2 < 1 || beacon2 > MaxBeacon:
		return 0, fmt.Errorf("zk: a beacon has 1 to %d bytes", MaxBeacon)
	}
	r1cs, err := compileR1CS(m)
	if err != nil {
		return 0, err
	}
	s, err := shapeOf(r1cs)
	if err != nil {
		return 0, err
	}
	n := s.size(len(m.Manifest.ID), k, beacon1, beacon2)
	if n > MaxTranscriptBytes {
		return 0, fmt.Errorf("zk: a transcript of %d contributors for model %s would take %d bytes, over the limit of %d", k, m.Manifest.ID, n, MaxTranscriptBytes)
	}
	return n, nil
}

// MaxTranscriptSize is the longest a sealed transcript for model m with
// k contributors can be (both beacons MaxBeacon bytes): what a verifier
// of a proposal naming k contributors need read at most.
func MaxTranscriptSize(m *model.Model, k int) (int, error) {
	return TranscriptSize(m, k, MaxBeacon, MaxBeacon)
}

// checkCircuit requires the transcript's states to be exactly the sizes
// the circuit fixes: the domain, and the private-wire count of every
// phase-2 state (checkFields has checked the rest of each state's
// shape). It reads a few header bytes; it decodes nothing.
func (t *Transcript) checkCircuit(s shape) error {
	if t.Domain != s.domain {
		return terr("domain %d, but this model's circuit needs %d: the transcript is for another circuit", t.Domain, s.domain)
	}
	check := func(b []byte, challenge int) error {
		if got := int(binary.BigEndian.Uint32(b[2+g1Size:])); got != s.pkk {
			return fmt.Errorf("%d private-wire points, the circuit has %d", got, s.pkk)
		}
		if want := phase2Size(s.domain, s.pkk, challenge); len(b) != want {
			return fmt.Errorf("%d bytes, want %d", len(b), want)
		}
		return nil
	}
	if err := check(t.Start2, 0); err != nil {
		return terr("the phase-2 starting state: %v", err)
	}
	for i, c := range t.Phase2 {
		if err := check(c.State, sha256.Size); err != nil {
			return terr("phase 2 contribution %d: %v", i, err)
		}
	}
	return nil
}

func decodePhase1(b []byte, n uint64) (*mpcsetup.Phase1, error) {
	if err := checkPhase1(b, n, sha256.Size); err != nil {
		return nil, err
	}
	p := new(mpcsetup.Phase1)
	if err := decodeCanonical(b, p); err != nil {
		return nil, err
	}
	return p, nil
}

func decodePhase2(b []byte, n uint64, challenge int) (*mpcsetup.Phase2, error) {
	if err := checkPhase2(b, n, challenge); err != nil {
		return nil, err
	}
	p := new(mpcsetup.Phase2)
	if err := decodeCanonical(b, p); err != nil {
		return nil, err
	}
	return p, nil
}

type codec interface {
	io.ReaderFrom
	io.WriterTo
}

// decodeCanonical decodes b into p and requires that p encodes back to b,
// so a state has one encoding and the hashes of the transcript are the
// hashes gnark's challenges chain.
func decodeCanonical(b []byte, p codec) error {
	n, err := p.ReadFrom(bytes.NewReader(b))
	if err != nil {
		return err
	}
	if n != int64(len(b)) {
		return fmt.Errorf("%d bytes after the state", int64(len(b))-n)
	}
	if !bytes.Equal(encode(p), b) {
		return errors.New("not in canonical encoding")
	}
	return nil
}

func encode(p io.WriterTo) []byte {
	var buf bytes.Buffer
	if _, err := p.WriteTo(&buf); err != nil {
		panic(err) // writing to a buffer fails only for a malformed state
	}
	return buf.Bytes()
}

// domainOf is the domain size of a circuit.
func domainOf(cs *csbn254.R1CS) uint64 { return ecc.NextPowerOfTwo(uint64(cs.GetNbConstraints())) }

func compileR1CS(m *model.Model) (*csbn254.R1CS, error) {
	if m == nil || m.MLP == nil {
		return nil, errors.New("zk: the circuit is for digits-mlp-style models (an MLP)")
	}
	ccs, err := Compile(m.MLP)
	if err != nil {
		return nil, err
	}
	r1cs, ok := ccs.(*csbn254.R1CS)
	if !ok {
		return nil, errors.New("zk: the circuit is not a BN254 R1CS")
	}
	return r1cs, nil
}

// NewTranscript starts the transcript of a setup for model m, in phase 1
// with no contributions.
func NewTranscript(m *model.Model) (*Transcript, error) {
	r1cs, err := compileR1CS(m)
	if err != nil {
		return nil, err
	}
	return &Transcript{ModelID: m.Manifest.ID, Domain: domainOf(r1cs)}, nil
}

// Phase is PhaseOne or PhaseTwo while that phase takes contributions,
// and Sealed once both beacons are in.
func (t *Transcript) Phase() int {
	switch {
	case len(t.Beacon1) == 0:
		return PhaseOne
	case len(t.Beacon2) == 0:
		return PhaseTwo
	}
	return Sealed
}

// SignBytes is what contributor number index (from 0) of phase signs:
// the domain, the model, the phase and index, the hash of the transcript
// before this contribution (which covers every earlier contribution and
// signature) and the hash of the state after it.
func SignBytes(modelID string, phase, index int, prev, state [sha256.Size]byte) []byte {
	b := append([]byte(SignDomain), byte(len(modelID)))
	b = append(b, modelID...)
	b = append(b, byte(phase))
	b = binary.BigEndian.AppendUint32(b, uint32(index))
	b = append(b, prev[:]...)
	return append(b, state[:]...)
}

// chain computes the running hash of a transcript and checks every
// signature in it: before the first contribution the hash covers the
// domain, the model and N; each contribution adds its state's hash, key
// and signature; each seal adds its beacon (and phase 1's, the phase-2
// starting state). It returns the hash after the last entry. It checks
// the order rules too: distinct contributors in a phase, and the phase-1
// contributors in phase 2, in the same order. It is cheap: no curve
// arithmetic.
func (t *Transcript) chain() ([sha256.Size]byte, error) {
	h := sha256.New()
	h.Write([]byte(SignDomain))
	h.Write([]byte{byte(len(t.ModelID))})
	h.Write([]byte(t.ModelID))
	h.Write(binary.BigEndian.AppendUint64(nil, t.Domain))
	var run [sha256.Size]byte
	h.Sum(run[:0])
	step := func(phase int, cs []Contribution) error {
		seen := map[string]bool{}
		for i, c := range cs {
			if len(c.Contributor) != ed25519.PublicKeySize || len(c.Signature) != ed25519.SignatureSize {
				return terr("phase %d contribution %d: a contributor is a 32-byte ed25519 key with a 64-byte signature", phase, i)
			}
			if seen[string(c.Contributor)] {
				return terr("phase %d contribution %d: %x contributed twice; contributors must be distinct", phase, i, c.Contributor[:4])
			}
			seen[string(c.Contributor)] = true
			if phase == PhaseTwo && (i >= len(t.Phase1) || !bytes.Equal(c.Contributor, t.Phase1[i].Contributor)) {
				return terr("phase 2 contribution %d is by %x, not by phase 1's contributor %d; both phases take the same contributors in the same order", i, c.Contributor[:4], i)
			}
			sh := sha256.Sum256(c.State)
			if !ed25519.Verify(c.Contributor, SignBytes(t.ModelID, phase, i, run, sh), c.Signature) {
				return terr("phase %d contribution %d: the signature of %x does not cover this transcript up to this contribution (forged, re-signed, reordered, or an earlier entry changed)", phase, i, c.Contributor[:4])
			}
			h := sha256.New()
			h.Write(run[:])
			h.Write(sh[:])
			h.Write(c.Contributor)
			h.Write(c.Signature)
			h.Sum(run[:0])
		}
		return nil
	}
	seal := func(phase int, beacon, start []byte) {
		h := sha256.New()
		h.Write(run[:])
		h.Write([]byte{'s', byte(phase), byte(len(beacon))})
		h.Write(beacon)
		s := sha256.Sum256(start)
		h.Write(s[:])
		h.Sum(run[:0])
	}
	if err := step(PhaseOne, t.Phase1); err != nil {
		return run, err
	}
	if len(t.Beacon1) == 0 {
		return run, nil
	}
	seal(PhaseOne, t.Beacon1, t.Start2)
	if err := step(PhaseTwo, t.Phase2); err != nil {
		return run, err
	}
	if len(t.Beacon2) != 0 {
		seal(PhaseTwo, t.Beacon2, nil)
	}
	return run, nil
}

// Contribute adds the contribution of key's holder to the open phase:
// fresh randomness applied to the last state, with gnark's proof of it,
// signed. The randomness is gone when Contribute returns. It checks the
// transcript's signatures first (not its contributions: that is
// VerifyTranscript's slow work).
func (t *Transcript) Contribute(key ed25519.PrivateKey) error {
	if len(key) != ed25519.PrivateKeySize {
		return errors.New("zk: contribute: not an ed25519 private key")
	}
	pub := key.Public().(ed25519.PublicKey)
	phase := t.Phase()
	if phase == Sealed {
		return errors.New("zk: contribute: the transcript is sealed; it takes no more contributions")
	}
	if err := t.checkFields(); err != nil {
		return err
	}
	prev, err := t.chain()
	if err != nil {
		return err
	}
	var state []byte
	var index int
	if phase == PhaseOne {
		if len(t.Phase1) == MaxContributors {
			return fmt.Errorf("zk: contribute: phase 1 has %d contributions, the most a key may have", MaxContributors)
		}
		for _, c := range t.Phase1 {
			if bytes.Equal(c.Contributor, pub) {
				return fmt.Errorf("zk: contribute: %x has contributed to phase 1 already", pub[:4])
			}
		}
		var p *mpcsetup.Phase1
		if n := len(t.Phase1); n == 0 {
			p = mpcsetup.NewPhase1(t.Domain)
		} else if p, err = decodePhase1(t.Phase1[n-1].State, t.Domain); err != nil {
			return terr("phase 1 contribution %d: %v", n-1, err)
		}
		p.Contribute()
		state, index = encode(p), len(t.Phase1)
	} else {
		index = len(t.Phase2)
		if index >= len(t.Phase1) || !bytes.Equal(t.Phase1[index].Contributor, pub) {
			return fmt.Errorf("zk: contribute: phase 2 takes phase 1's contributors in their order, and the next is %s", t.nextPhase2())
		}
		var p *mpcsetup.Phase2
		if index == 0 {
			if p, err = decodePhase2(t.Start2, t.Domain, 0); err != nil {
				return terr("the phase-2 starting state: %v", err)
			}
		} else if p, err = decodePhase2(t.Phase2[index-1].State, t.Domain, sha256.Size); err != nil {
			return terr("phase 2 contribution %d: %v", index-1, err)
		}
		p.Contribute()
		state = encode(p)
	}
	c := Contribution{State: state, Contributor: pub}
	c.Signature = ed25519.Sign(key, SignBytes(t.ModelID, phase, index, prev, sha256.Sum256(state)))
	if phase == PhaseOne {
		t.Phase1 = append(t.Phase1, c)
	} else {
		t.Phase2 = append(t.Phase2, c)
	}
	return nil
}

func (t *Transcript) nextPhase2() string {
	if i := len(t.Phase2); i < len(t.Phase1) {
		return fmt.Sprintf("%x (contribution %d)", t.Phase1[i].Contributor, i)
	}
	return "nobody: every phase-1 contributor has contributed to phase 2; seal it"
}

// Next says who may contribute now.
func (t *Transcript) Next() string {
	switch t.Phase() {
	case PhaseOne:
		return "anyone who has not contributed to phase 1"
	case PhaseTwo:
		return t.nextPhase2()
	}
	return "nobody: the transcript is sealed"
}

// Seal closes the open phase with beacon, public randomness nobody knew
// before the phase's last contribution (a block hash at a height after
// it). Sealing phase 1 evaluates m's circuit on it, which takes seconds:
// the result is the phase-2 starting state.
func (t *Transcript) Seal(m *model.Model, beacon []byte) error {
	if len(beacon) == 0 || len(beacon) > MaxBeacon {
		return fmt.Errorf("zk: seal: a beacon of 1 to %d bytes, got %d", MaxBeacon, len(beacon))
	}
	if err := t.checkFields(); err != nil {
		return err
	}
	if _, err := t.chain(); err != nil {
		return err
	}
	switch t.Phase() {
	case PhaseOne:
		if len(t.Phase1) == 0 {
			return errors.New("zk: seal: phase 1 has no contributions")
		}
		if m == nil || m.Manifest.ID != t.ModelID {
			return fmt.Errorf("zk: seal: the transcript is for model %s", t.ModelID)
		}
		r1cs, err := compileR1CS(m)
		if err != nil {
			return err
		}
		if domainOf(r1cs) != t.Domain {
			return terr("domain %d, but model %s's circuit needs %d", t.Domain, t.ModelID, domainOf(r1cs))
		}
		last, err := decodePhase1(t.Phase1[len(t.Phase1)-1].State, t.Domain)
		if err != nil {
			return terr("phase 1 contribution %d: %v", len(t.Phase1)-1, err)
		}
		commons := last.Seal(beacon)
		var p2 mpcsetup.Phase2
		p2.Initialize(r1cs, &commons)
		t.Start2, t.Beacon1 = encode(&p2), bytes.Clone(beacon)
	case PhaseTwo:
		if len(t.Phase2) != len(t.Phase1) {
			return fmt.Errorf("zk: seal: %d of phase 1's %d contributors have contributed to phase 2; the next is %s", len(t.Phase2), len(t.Phase1), t.nextPhase2())
		}
		t.Beacon2 = bytes.Clone(beacon)
	default:
		return errors.New("zk: seal: the transcript is sealed already")
	}
	return nil
}

// checkFields checks the shape of a transcript, parsed or built in
// memory, without the circuit: every length within bounds and consistent
// with N and with the phase, so that no method hands gnark an oversized
// or misshapen state. It copies nothing.
func (t *Transcript) checkFields() error {
	switch {
	case len(t.ModelID) == 0 || len(t.ModelID) > maxModelID || !printable(t.ModelID):
		return terr("model id %q: want 1 to %d printable bytes", t.ModelID, maxModelID)
	case t.Domain < 2 || t.Domain > MaxDomain || t.Domain&(t.Domain-1) != 0:
		return terr("domain %d: want a power of 2 from 2 to %d", t.Domain, MaxDomain)
	case len(t.Phase1) > MaxContributors:
		return terr("%d phase-1 contributions; at most %d", len(t.Phase1), MaxContributors)
	case len(t.Phase2) > len(t.Phase1):
		return terr("%d phase-2 contributions; at most %d, phase 1's", len(t.Phase2), len(t.Phase1))
	case len(t.Beacon1) > MaxBeacon || len(t.Beacon2) > MaxBeacon:
		return terr("a beacon of over %d bytes", MaxBeacon)
	}
	contributions := func(phase int, cs []Contribution, check func([]byte) error) error {
		for i, c := range cs {
			if err := check(c.State); err != nil {
				return terr("phase-%d contribution %d: %v", phase, i, err)
			}
			if len(c.Contributor) != ed25519.PublicKeySize || len(c.Signature) != ed25519.SignatureSize {
				return terr("phase-%d contribution %d: a contributor is a 32-byte ed25519 key with a 64-byte signature", phase, i)
			}
		}
		return nil
	}
	if err := contributions(1, t.Phase1, func(s []byte) error { return checkPhase1(s, t.Domain, sha256.Size) }); err != nil {
		return err
	}
	switch {
	case len(t.Beacon1) == 0 && len(t.Start2) != 0:
		return terr("a phase-2 starting state while phase 1 is open")
	case len(t.Beacon1) == 0 && (len(t.Phase2) != 0 || len(t.Beacon2) != 0):
		return terr("phase 2 has begun while phase 1 is open")
	case len(t.Beacon1) != 0 && len(t.Phase1) == 0:
		return terr("phase 1 sealed without contributions")
	case len(t.Beacon1) != 0:
		if err := checkPhase2(t.Start2, t.Domain, 0); err != nil {
			return terr("the phase-2 starting state: %v", err)
		}
	}
	if err := contributions(2, t.Phase2, func(s []byte) error { return checkPhase2(s, t.Domain, sha256.Size) }); err != nil {
		return err
	}
	if len(t.Beacon2) != 0 && len(t.Phase2) != len(t.Phase1) {
		return terr("phase 2 sealed with %d contributions; phase 1 has %d", len(t.Phase2), len(t.Phase1))
	}
	return nil
}

// Contributors are the transcript's contributors in order.
func (t *Transcript) Contributors() []ed25519.PublicKey {
	var out []ed25519.PublicKey
	for _, c := range t.Phase1 {
		out = append(out, c.Contributor)
	}
	return out
}

// MarshalBinary encodes the transcript.
func (t *Transcript) MarshalBinary() ([]byte, error) {
	b := t.encode()
	if len(b) > MaxTranscriptBytes {
		return nil, fmt.Errorf("zk: a transcript of %d bytes is over the limit of %d", len(b), MaxTranscriptBytes)
	}
	return b, nil
}

func (t *Transcript) encode() []byte {
	b := append([]byte(transcriptMagic), 0, transcriptVersion)
	b = append(b, byte(len(t.ModelID)))
	b = append(b, t.ModelID...)
	b = binary.BigEndian.AppendUint64(b, t.Domain)
	contributions := func(cs []Contribution) {
		b = binary.BigEndian.AppendUint32(b, uint32(len(cs)))
		for _, c := range cs {
			b = binary.BigEndian.AppendUint32(b, uint32(len(c.State)))
			b = append(b, c.State...)
			b = append(b, c.Contributor...)
			b = append(b, c.Signature...)
		}
	}
	contributions(t.Phase1)
	b = append(b, byte(len(t.Beacon1)))
	b = append(b, t.Beacon1...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(t.Start2)))
	b = append(b, t.Start2...)
	contributions(t.Phase2)
	b = append(b, byte(len(t.Beacon2)))
	return append(b, t.Beacon2...)
}

// Digest is the SHA-256 of the transcript's encoding: the
// TranscriptDigest of a key proposal.
func (t *Transcript) Digest() []byte {
	d := sha256.Sum256(t.encode())
	return d[:]
}

// WriteTo writes the encoding.
func (t *Transcript) WriteTo(w io.Writer) (int64, error) {
	b, err := t.MarshalBinary()
	if err != nil {
		return 0, err
	}
	n, err := w.Write(b)
	return int64(n), err
}

// ReadTranscript reads and parses a transcript of at most
// MaxTranscriptBytes; it reads one byte past the limit to tell.
func ReadTranscript(r io.Reader) (*Transcript, error) {
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(bufio.NewReader(r), MaxTranscriptBytes+1)); err != nil {
		return nil, fmt.Errorf("zk: read transcript: %w", err)
	}
	return ParseTranscript(buf.Bytes())
}

// ParseTranscript decodes a transcript and checks its shape: every length
// within bounds and consistent with N, nothing after the end. It decodes
// no curve points and checks no signature: VerifyTranscript does, and
// only it, knowing the circuit, knows the exact size of a phase-2 state.
// The transcript's states, keys and signatures are slices of b, not
// copies: b must not change while the transcript is in use.
func ParseTranscript(b []byte) (*Transcript, error) {
	if len(b) > MaxTranscriptBytes {
		return nil, terr("%d bytes is over the limit of %d", len(b), MaxTranscriptBytes)
	}
	r := &reader{b: b}
	if m := r.bytes(len(transcriptMagic), "magic"); r.err != nil {
		return nil, r.err
	} else if string(m) != transcriptMagic {
		return nil, terr("not a transcript (magic %q)", transcriptMagic)
	}
	if v := r.u16("version"); r.err == nil && v != transcriptVersion {
		return nil, terr("version %d; this build reads version %d", v, transcriptVersion)
	}
	t := &Transcript{ModelID: string(r.short("model id"))}
	t.Domain = r.u64("domain")
	t.Phase1 = r.contributions(1)
	t.Beacon1 = r.short("phase-1 beacon")
	t.Start2 = r.long("phase-2 starting state")
	t.Phase2 = r.contributions(2)
	t.Beacon2 = r.short("phase-2 beacon")
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, terr("%d bytes after the end", len(r.b))
	}
	if err := t.checkFields(); err != nil {
		return nil, err
	}
	return t, nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// reader consumes a transcript; after the first error every read returns
// zero values and err keeps that error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) bytes(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.err = terr("truncated in the %s (%d bytes wanted, %d left)", what, n, len(r.b))
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) u16(what string) uint16 {
	if b := r.bytes(2, what); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (r *reader) u32(what string) uint32 {
	if b := r.bytes(4, what); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (r *reader) u64(what string) uint64 {
	if b := r.bytes(8, what); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

func (r *reader) short(what string) []byte {
	n := r.bytes(1, what)
	if n == nil || n[0] == 0 {
		return nil
	}
	return r.bytes(int(n[0]), what)
}

func (r *reader) long(what string) []byte {
	n := r.u32(what)
	if r.err != nil || n == 0 {
		return nil
	}
	if uint64(n) > uint64(len(r.b)) {
		r.err = terr("the %s claims %d bytes; %d are left", what, n, len(r.b))
		return nil
	}
	return r.bytes(int(n), what)
}

// contributions reads a count and that many contributions; the count is
// checked against MaxContributors before anything is read for it.
func (r *reader) contributions(phase int) []Contribution {
	n := r.u32(fmt.Sprintf("phase-%d contribution count", phase))
	if r.err != nil || n == 0 {
		return nil
	}
	if n > MaxContributors {
		r.err = terr("%d phase-%d contributions; at most %d", n, phase, MaxContributors)
		return nil
	}
	out := make([]Contribution, 0, n)
	for i := 0; i < int(n) && r.err == nil; i++ {
		what := fmt.Sprintf("phase-%d contribution %d", phase, i)
		c := Contribution{State: r.long(what)}
		c.Contributor = r.bytes(ed25519.PublicKeySize, what+"'s contributor")
		c.Signature = r.bytes(ed25519.SignatureSize, what+"'s signature")
		out = append(out, c)
	}
	return out
}

// Keys are what a verified transcript yields: the model's proving and
// verifying keys, and who contributed.
type Keys struct {
	*System
	// VerifyingKeyBytes is the verifying key a proposal must carry.
	VerifyingKeyBytes []byte
	Contributors      []ed25519.PublicKey
}

// ContributorBytes are the contributors as a key proposal lists them.
func (k *Keys) ContributorBytes() [][]byte {
	out := make([][]byte, len(k.Contributors))
	for i, c := range k.Contributors {
		out[i] = c
	}
	return out
}

// Matches reports whether a key proposal (a verifying key and its
// contributors in order) is what these keys are.
func (k *Keys) Matches(vk []byte, contributors [][]byte) error {
	if !bytes.Equal(vk, k.VerifyingKeyBytes) {
		return fmt.Errorf("zk: the proposed verifying key is not the one the transcript yields (sha256 %x, not %x)", sha256Of(vk)[:8], sha256Of(k.VerifyingKeyBytes)[:8])
	}
	if !slices.EqualFunc(contributors, k.Contributors, func(a []byte, b ed25519.PublicKey) bool { return bytes.Equal(a, b) }) {
		return fmt.Errorf("zk: the proposal lists %d contributors; the transcript's %d, in its order, are not those", len(contributors), len(k.Contributors))
	}
	return nil
}

func sha256Of(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

// VerifyTranscript checks a sealed transcript against model m from
// scratch and returns the keys it yields. It compiles the circuit from
// m's weights, checks every signature, checks each phase-1 contribution
// against the one before with gnark's mpcsetup proofs, seals phase 1 with
// its beacon, evaluates the circuit on it and requires the transcript's
// phase-2 starting state to be that, checks each phase-2 contribution,
// and seals phase 2 into the keys. Right after compiling the circuit, before
// it hashes or decodes a state, it requires every state to be the size
// the circuit fixes, so a transcript inflated with extra points costs it
// nothing. It stops between steps once ctx is done. It takes seconds to
// tens of seconds; progress, if not nil, hears of each step.
func VerifyTranscript(ctx context.Context, m *model.Model, t *Transcript, progress func(string)) (keys *Keys, err error) {
	// Each step checks ctx before it starts; none takes more than seconds.
	say := func(format string, args ...any) {
		if ctx.Err() != nil {
			panic(ctx.Err())
		}
		if progress != nil {
			progress(fmt.Sprintf(format, args...))
		}
	}
	// gnark's verifiers assume well-formed input; a panic on a hostile
	// state is a refusal, not a crash.
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(error); ok && ctx.Err() != nil && errors.Is(e, ctx.Err()) {
				keys, err = nil, fmt.Errorf("zk: verify transcript: %w", e)
				return
			}
			keys, err = nil, terr("the verification panicked: %v", r)
		}
	}()
	if m == nil || t.ModelID != m.Manifest.ID {
		return nil, terr("the transcript is for model %s, not %s", t.ModelID, idOf(m))
	}
	if t.Phase() != Sealed {
		return nil, terr("the transcript is not sealed (it is in phase %d)", t.Phase())
	}
	if err := t.checkFields(); err != nil {
		return nil, err
	}
	if len(t.Phase1) == 0 {
		return nil, terr("no contributions")
	}
	say("compiling the circuit of %s", t.ModelID)
	r1cs, err := compileR1CS(m)
	if err != nil {
		return nil, err
	}
	s, err := shapeOf(r1cs)
	if err != nil {
		return nil, err
	}
	if err := t.checkCircuit(s); err != nil {
		return nil, err
	}
	if _, err := t.chain(); err != nil {
		return nil, err
	}
	prev := mpcsetup.NewPhase1(t.Domain)
	for i, c := range t.Phase1 {
		say("phase 1: checking contribution %d of %d (%x)", i+1, len(t.Phase1), c.Contributor[:4])
		next, err := decodePhase1(c.State, t.Domain)
		if err != nil {
			return nil, terr("phase 1 contribution %d: %v", i, err)
		}
		if err := prev.Verify(next); err != nil {
			return nil, terr("phase 1 contribution %d (by %x) does not follow from the one before: %v", i, c.Contributor[:4], err)
		}
		prev = next
	}
	commons := prev.Seal(t.Beacon1)
	// The phase-2 contributions are checked against the transcript's
	// starting state first, which is quick, and the starting state against
	// the circuit after, which takes seconds.
	p2, err := decodePhase2(t.Start2, t.Domain, 0)
	if err != nil {
		return nil, terr("the phase-2 starting state: %v", err)
	}
	for i, c := range t.Phase2 {
		say("phase 2: checking contribution %d of %d (%x)", i+1, len(t.Phase2), c.Contributor[:4])
		next, err := decodePhase2(c.State, t.Domain, sha256.Size)
		if err != nil {
			return nil, terr("phase 2 contribution %d: %v", i, err)
		}
		if err := p2.Verify(next); err != nil {
			return nil, terr("phase 2 contribution %d (by %x) does not follow from the one before: %v", i, c.Contributor[:4], err)
		}
		p2 = next
	}
	say("phase 2: evaluating the circuit on the sealed phase 1 (the slow step)")
	start := new(mpcsetup.Phase2)
	evals := start.Initialize(r1cs, &commons)
	if !bytes.Equal(encode(start), t.Start2) {
		return nil, terr("the phase-2 starting state is not this circuit's on the sealed phase 1: the transcript is for another circuit, or its phase-1 seal is wrong")
	}
	say("phase 2: sealing with the beacon")
	pk, vk := p2.Seal(&commons, &evals, t.Beacon2)
	sys := &System{mlp: m.MLP, CS: r1cs, PK: pk, VK: vk}
	vkb, err := sys.VerifyingKey()
	if err != nil {
		return nil, err
	}
	if err := checkVerifyingKey(vkb, m.MLP.Inputs()+m.MLP.Classes()); err != nil {
		return nil, terr("the sealed verifying key: %v", err)
	}
	return &Keys{System: sys, VerifyingKeyBytes: vkb, Contributors: t.Contributors()}, nil
}

func idOf(m *model.Model) string {
	if m == nil {
		return "(none)"
	}
	return m.Manifest.ID
}
