package chain_test

import (
	"bytes"
	"crypto/rand"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/auth/authpb"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/provider/providerpb"
	"github.com/agoranet/agora/internal/chain/staking/stakingpb"
	"github.com/agoranet/agora/internal/chain/storage"
	"github.com/agoranet/agora/internal/chain/storage/storagepb"
	"github.com/agoranet/agora/internal/chain/store/storetest"
	"github.com/agoranet/agora/internal/node"
	"github.com/agoranet/agora/internal/storage/object"
)

// storageNet is a harness with storage nodes that keep their pieces in
// memory and answer the chain's challenges, unless a test stops them.
type storageNet struct {
	h      *harness
	t      *testing.T
	names  []string
	pieces map[string]map[[3]uint64][]byte // node -> (deal, segment, index) -> bytes
	all    map[[3]uint64][]byte            // every piece as put, to rebuild from
	dead   map[string]bool
	// corrupt names a node that flips a byte of every piece before it answers.
	corrupt map[string]bool
	// refuse names a node that proves its pieces but serves no reader;
	// liar a prober that reports every probe failed.
	refuse, liar map[string]bool
}

func newStorageNet(t *testing.T, names ...string) *storageNet {
	h := newHarness(t, "", func(g *node.Genesis) {
		for _, name := range names {
			if name == "gina" || name == "hank" {
				g.Accounts = append(g.Accounts, node.Account{Address: address(name), Coins: []*coin.Coin{coin.New("uagr", 1_000_000_000)}})
			}
		}
	})
	n := &storageNet{h: h, t: t, names: names, pieces: map[string]map[[3]uint64][]byte{}, all: map[[3]uint64][]byte{}, dead: map[string]bool{}, corrupt: map[string]bool{},
		refuse: map[string]bool{}, liar: map[string]bool{}}
	for _, name := range names {
		a := address(name).String()
		h.mustSend(name, &stakingpb.MsgBond{Staker: a, Amount: coin.New("uagr", 200_000_000)})
		h.mustSend(name, &storagepb.MsgRegisterNode{Operator: a, Endpoint: "http://127.0.0.1:1/" + name, Region: "test", Capacity: 1 << 30})
		n.pieces[name] = map[[3]uint64][]byte{}
	}
	return n
}

// put encodes size random bytes k-of-n and makes a deal for them.
func (n *storageNet) put(size, k, nn int, epochs int64) (*storagepb.Deal, []byte) {
	n.t.Helper()
	data := make([]byte, size)
	rand.Read(data)
	var ps []object.Piece
	m, _, err := object.Encode(bytes.NewReader(data), object.Params{K: k, N: nn, SegmentSize: 16 << 10, LeafSize: 1 << 10}, func(p object.Piece) error {
		ps = append(ps, p)
		return nil
	})
	if err != nil {
		n.t.Fatal(err)
	}
	b, _ := object.Marshal(m)
	r := n.h.one("alice", 5_000_000, authpb.MinFee(authpb.DefaultParams(), 5_000_000), &storagepb.MsgCreateDeal{Owner: address("alice").String(), Manifest: b, DurationEpochs: epochs, Denom: coin.Stable, PricePerGibEpoch: 1000})
	if r.Code != 0 {
		n.t.Fatal(r.Log)
	}
	info := n.deal(1)
	for _, p := range ps {
		key := [3]uint64{info.Deal.Id, uint64(p.Segment), uint64(p.Index)}
		n.all[key] = p.Data
	}
	for _, pi := range info.Pieces {
		n.give(pi.Piece)
	}
	return info.Deal, b
}

func (n *storageNet) name(op string) string {
	for _, name := range n.names {
		if address(name).String() == op {
			return name
		}
	}
	n.t.Fatalf("no node %s", op)
	return ""
}

// give hands a node a piece it was placed or repaired onto (the owner's
// upload, or the node's rebuild from k others).
func (n *storageNet) give(p *storagepb.Piece) {
	key := [3]uint64{p.Deal, uint64(p.Segment), uint64(p.Index)}
	n.pieces[n.name(p.Node)][key] = n.all[key]
}

func (n *storageNet) deal(id uint64) *storagepb.QueryDealResponse {
	r, err := ask(n.h, storagepb.QueryDeal, &storagepb.QueryDealRequest{Id: id})
	if err != nil {
		n.t.Fatal(err)
	}
	return r
}

// answers are a node's answers to the current epoch.
func (n *storageNet) answers(name string) (*storagepb.MsgProve, int) {
	r, err := ask(n.h, storagepb.QueryAssigned, &storagepb.QueryAssignedRequest{Node: address(name).String()})
	if err != nil {
		n.t.Fatal(err)
	}
	m := &storagepb.MsgProve{Node: address(name).String(), Epoch: r.Epoch.Number}
	for _, p := range r.Pieces {
		if p.DueEpoch != r.Epoch.Number || p.ProvedEpoch >= r.Epoch.Number || p.Status == storagepb.PieceStatus_PIECE_STATUS_LOST {
			continue
		}
		if p.Status == storagepb.PieceStatus_PIECE_STATUS_REPAIRING {
			n.give(p)
		}
		data := n.pieces[name][[3]uint64{p.Deal, uint64(p.Segment), uint64(p.Index)}]
		if data == nil {
			continue
		}
		if n.corrupt[name] {
			data = append([]byte(nil), data...)
			for i := range data {
				data[i] ^= 0xff
			}
		}
		leaf, path := object.Prove(data, 1<<10, int(storagepb.Challenge(r.Epoch.Seed, p.Deal, p.Segment, p.Index, p.Size/(1<<10))))
		m.Answers = append(m.Answers, &storagepb.Answer{Deal: p.Deal, Segment: p.Segment, Index: p.Index, Leaf: leaf, Path: path})
	}
	return m, len(r.Pieces)
}

// toEpoch runs blocks to the next epoch's first.
func (n *storageNet) toEpoch() {
	n.h.block()
	for n.h.height%storagepb.DefaultParams().EpochBlocks != 0 {
		n.h.block()
	}
}

// epoch runs blocks to the next epoch's start and has every live node
// answer it; it returns the codes of the nodes' proofs.
func (n *storageNet) epoch() map[string]uint32 {
	n.toEpoch()
	out := map[string]uint32{}
	for _, name := range n.names {
		if n.dead[name] {
			continue
		}
		m, _ := n.answers(name)
		if len(m.Answers) == 0 {
			continue
		}
		r := n.h.one(name, 5_000_000, authpb.MinFee(authpb.DefaultParams(), 5_000_000), m)
		if r.Code != 0 {
			n.t.Logf("%s: %s", name, r.Log)
		}
		out[name] = r.Code
	}
	n.probe()
	for n.h.height <= currentEpoch(n.h).WindowEnd {
		n.h.block()
	}
	n.rebut()
	return out
}

func currentEpoch(h *harness) *storagepb.Epoch {
	e, err := ask(h, storagepb.QueryEpoch, &storagepb.QueryEpochRequest{})
	if err != nil {
		h.t.Fatal(err)
	}
	return e
}

func (n *storageNet) probes() []*storagepb.Probe {
	r, err := ask(n.h, storagepb.QueryProbes, &storagepb.QueryProbesRequest{})
	if err != nil {
		n.t.Fatal(err)
	}
	return r.Probes
}

// probe has every live node report the open probes it is a prober of: a
// leaf is served unless its node is dead, refuses or holds it corrupt,
// and a liar reports every probe failed.
func (n *storageNet) probe() {
	for _, name := range n.names {
		if n.dead[name] {
			continue
		}
		m := &storagepb.MsgReportProbes{Prober: address(name).String()}
		for _, pr := range n.probes() {
			for j, p := range pr.Probers {
				if p == m.Prober && pr.Reports[j] == storagepb.ProbeReport_PROBE_REPORT_NONE && pr.Status == storagepb.ProbeStatus_PROBE_STATUS_OPEN {
					node := n.name(pr.Node)
					served := !n.dead[node] && !n.refuse[node] && !n.corrupt[node] && !n.liar[name]
					m.Results = append(m.Results, &storagepb.ProbeResult{Probe: pr.Id, Served: served})
				}
			}
		}
		if len(m.Results) > 0 {
			if r := n.h.send(name, m); r.Code != 0 {
				n.t.Fatalf("%s's probe report: %s", name, r.Log)
			}
		}
	}
}

// rebut has every node that holds its piece answer the accusations
// against it on chain.
func (n *storageNet) rebut() {
	for _, pr := range n.probes() {
		node := n.name(pr.Node)
		if pr.Status != storagepb.ProbeStatus_PROBE_STATUS_ACCUSED || n.dead[node] || n.corrupt[node] || n.refuse[node] {
			continue
		}
		data := n.pieces[node][[3]uint64{pr.Deal, uint64(pr.Segment), uint64(pr.Index)}]
		leaf, path := object.Prove(data, 1<<10, int(pr.Leaf))
		if r := n.h.send(node, &storagepb.MsgRebut{Node: pr.Node, Probe: pr.Id, Leaf: leaf, Path: path}); r.Code != 0 {
			n.t.Fatalf("%s's rebuttal: %s", node, r.Log)
		}
	}
}

func (n *storageNet) node(name string) *storagepb.StorageNode {
	r, err := ask(n.h, storagepb.QueryNode, &storagepb.QueryNodeRequest{Operator: address(name).String()})
	if err != nil {
		n.t.Fatal(err)
	}
	return r.Node
}

// TestStorageDealLifecycle: a 4-of-6 deal on eight nodes is placed on six
// distinct ones; every epoch they answer and are paid; a node that stops
// answering is slashed, suspended, and its pieces repaired onto the
// others, which is paid for the repair; a node whose pieces are corrupt
// cannot prove them and is slashed; no honest node is slashed; at the
// end the escrow is paid out to the unit: proofs, repairs and the refund.
func TestStorageDealLifecycle(t *testing.T) {
	names := []string{"dave", "erin", "frank", "gina", "v1", "v2", "v3", "v4"}
	n := newStorageNet(t, names...)
	alice := address("alice")
	before := n.h.balance(alice, coin.Stable)
	deal, _ := n.put(64<<10, 4, 6, 8)
	if got := n.h.balance(alice, coin.Stable); before-got != deal.Escrow {
		t.Fatalf("alice paid %d for a deal escrowing %d", before-got, deal.Escrow)
	}
	info := n.deal(deal.Id)
	if len(info.Pieces) != 4*6 {
		t.Fatalf("%d pieces placed, want 24", len(info.Pieces))
	}
	for s := range 4 {
		seen := map[string]bool{}
		for _, p := range info.Pieces[s*6 : s*6+6] {
			if seen[p.Piece.Node] {
				t.Fatalf("segment %d has two pieces on %s", s, p.Piece.Node)
			}
			seen[p.Piece.Node] = true
		}
	}
	earned := map[string]uint64{}
	for _, name := range names {
		earned[name] = n.h.balance(address(name), coin.Stable)
	}

	// Two honest epochs.
	for range 2 {
		for name, code := range n.epoch() {
			if code != 0 {
				t.Fatalf("%s's proof failed: code %d", name, code)
			}
		}
	}
	if d := n.deal(deal.Id).Deal; d.PaidProofs == 0 {
		t.Fatal("no proof was paid")
	}

	// The node with the most pieces dies; another corrupts its pieces.
	counts := map[string]int{}
	for _, p := range n.deal(deal.Id).Pieces {
		counts[n.name(p.Piece.Node)]++
	}
	var dead, bad string
	for _, name := range names {
		if counts[name] > 0 && (dead == "" || counts[name] > counts[dead]) {
			dead = name
		}
	}
	for _, name := range names {
		if counts[name] > 0 && name != dead {
			bad = name
			break
		}
	}
	n.dead[dead] = true
	n.corrupt[bad] = true
	stakeBefore := map[string]uint64{}
	for _, name := range names {
		stakeBefore[name] = n.node(name).Slashed
	}
	codes1 := n.epoch()
	if codes1[bad] != codes.ErrInvalidRequest.Code {
		t.Errorf("a proof of corrupt pieces got code %d, want %d", codes1[bad], codes.ErrInvalidRequest.Code)
	}
	// The corrupt node now keeps quiet, as its daemon would after a failed
	// local check: it answers nothing.
	n.dead[bad] = true
	for range 2 {
		n.epoch()
	}
	for _, name := range []string{dead, bad} {
		nd := n.node(name)
		if nd.Slashed == 0 || nd.Status != storagepb.NodeStatus_NODE_STATUS_SUSPENDED {
			t.Errorf("%s missed its proofs but is %s, slashed %d", name, nd.Status, nd.Slashed)
		}
	}
	for _, name := range names {
		if name != dead && name != bad && n.node(name).Slashed != 0 {
			t.Errorf("honest %s was slashed", name)
		}
	}
	// Every segment is back to six live pieces, none on the two.
	for range 2 {
		n.epoch()
	}
	info = n.deal(deal.Id)
	for _, p := range info.Pieces {
		if p.Piece.Status != storagepb.PieceStatus_PIECE_STATUS_LIVE || p.Piece.Node == address(dead).String() || p.Piece.Node == address(bad).String() {
			t.Errorf("piece %d/%d is %s on %s after repair", p.Piece.Segment, p.Piece.Index, p.Piece.Status, p.Piece.Node)
		}
	}
	if info.Deal.Repairs == 0 || info.Deal.PaidRepairs == 0 {
		t.Errorf("repairs %d paid %d", info.Deal.Repairs, info.Deal.PaidRepairs)
	}

	// Run out the deal.
	for range 5 {
		n.epoch()
	}
	for range 25 {
		n.h.block()
	}
	if _, err := ask(n.h, storagepb.QueryDeal, &storagepb.QueryDealRequest{Id: deal.Id}); err == nil || !strings.Contains(err.Error(), "no open deal") {
		t.Fatalf("the deal is still open after its last epoch: %v", err)
	}
	refund := n.h.balance(alice, coin.Stable) - (before - deal.Escrow)
	var paid uint64
	for _, name := range names {
		paid += n.h.balance(address(name), coin.Stable) - earned[name]
	}
	if paid+refund != deal.Escrow {
		t.Errorf("nodes were paid %d and alice refunded %d of an escrow of %d", paid, refund, deal.Escrow)
	}
	if refund == 0 {
		t.Error("the missed proofs' share was not refunded")
	}
	if b := n.h.balance(storagepb.Escrow, coin.Stable); b != 0 {
		t.Errorf("the escrow holds %d after the only deal ended", b)
	}
	for _, name := range names {
		if n.node(name).Used != 0 {
			t.Errorf("%s still has %d bytes placed", name, n.node(name).Used)
		}
	}
	_ = addr.Address{}
}

// TestStorageRefusals: a deal or an answer that is wrong is refused with
// a clear error and changes nothing but the fee.
func TestStorageRefusals(t *testing.T) {
	n := newStorageNet(t, "dave", "erin", "frank")
	deal, manifest := n.put(8<<10, 2, 3, 4)
	alice := address("alice").String()
	big := func(m *storagepb.MsgCreateDeal) *storagepb.MsgCreateDeal { return m }
	for what, c := range map[string]struct {
		m    *storagepb.MsgCreateDeal
		want string
	}{
		"more pieces than nodes": {big(&storagepb.MsgCreateDeal{Owner: alice, Manifest: encodeFor(t, 4, 6), DurationEpochs: 2, Denom: coin.Stable, PricePerGibEpoch: 10}), "distinct operators"},
		"underfunded":            {&storagepb.MsgCreateDeal{Owner: alice, Manifest: manifest, DurationEpochs: 100, Denom: coin.Stable, PricePerGibEpoch: 1 << 40}, "escrow of"},
		"too long":               {&storagepb.MsgCreateDeal{Owner: alice, Manifest: manifest, DurationEpochs: 1 << 40, Denom: coin.Stable, PricePerGibEpoch: 1}, "the most a deal may last"},
		"not a manifest":         {&storagepb.MsgCreateDeal{Owner: alice, Manifest: manifest[:10], DurationEpochs: 2, Denom: coin.Stable, PricePerGibEpoch: 1}, "not a valid manifest"},
	} {
		before := n.h.balance(address("alice"), coin.Stable)
		r := n.h.one("alice", 5_000_000, authpb.MinFee(authpb.DefaultParams(), 5_000_000), c.m)
		if r.Code == 0 || !strings.Contains(r.Log, c.want) {
			t.Errorf("%s: code %d %q, want an error saying %q", what, r.Code, r.Log, c.want)
		}
		if after := n.h.balance(address("alice"), coin.Stable); after != before {
			t.Errorf("%s: alice's uusdc went from %d to %d", what, before, after)
		}
	}
	n.toEpoch() // the first challenged epoch is out
	info := n.deal(deal.Id)
	good, _ := n.answers(n.name(info.Pieces[0].Piece.Node))
	other := n.name(info.Pieces[1].Piece.Node)
	wrongPath := proto.Clone(good).(*storagepb.MsgProve)
	if len(wrongPath.Answers[0].Path) > 0 {
		wrongPath.Answers[0].Path[0] = make([]byte, 32)
	} else {
		wrongPath.Answers[0].Leaf[0] ^= 1
	}
	stolen := proto.Clone(good).(*storagepb.MsgProve)
	stolen.Node = address(other).String()
	for what, c := range map[string]struct {
		from string
		m    *storagepb.MsgProve
		want string
	}{
		"a wrong path":         {n.name(good.Node), wrongPath, "with its path"},
		"another node's piece": {other, stolen, "is not placed on"},
		"an unknown deal":      {other, &storagepb.MsgProve{Node: address(other).String(), Epoch: good.Epoch, Answers: []*storagepb.Answer{{Deal: 99, Leaf: []byte{1}}}}, "no deal 99"},
	} {
		if r := n.h.one(c.from, 5_000_000, authpb.MinFee(authpb.DefaultParams(), 5_000_000), c.m); r.Code == 0 || !strings.Contains(r.Log, c.want) {
			t.Errorf("%s: code %d %q, want an error saying %q", what, r.Code, r.Log, c.want)
		}
	}

	// A retrieval price comes with its denom, and readers see it with
	// every piece the node holds.
	dave := address("dave").String()
	reg := func(denom string, price uint64) *storagepb.MsgRegisterNode {
		return &storagepb.MsgRegisterNode{Operator: dave, Endpoint: "http://127.0.0.1:1/dave", Region: "test", Capacity: 1 << 30, RetrievalDenom: denom, RetrievalPricePerGib: price}
	}
	for what, m := range map[string]*storagepb.MsgRegisterNode{
		"a price without its denom": reg("", 5),
		"a denom without a price":   reg(coin.Stable, 0),
		"not a denom":               reg("X!", 5),
	} {
		if r := n.h.one("dave", 5_000_000, authpb.MinFee(authpb.DefaultParams(), 5_000_000), m); r.Code == 0 || !strings.Contains(r.Log, "retrieval price") {
			t.Errorf("%s: code %d %q, want an error about the retrieval price", what, r.Code, r.Log)
		}
	}
	n.h.mustSend("dave", reg(coin.Stable, 7))
	for _, pi := range n.deal(deal.Id).Pieces {
		if want := map[bool]uint64{true: 7}[pi.Piece.Node == dave]; pi.RetrievalPricePerGib != want {
			t.Errorf("piece %d/%d on %s is listed at %d a GiB, want %d", pi.Piece.Segment, pi.Piece.Index, n.name(pi.Piece.Node), pi.RetrievalPricePerGib, want)
		}
	}
}

func encodeFor(t *testing.T, k, nn int) []byte {
	m, _, err := object.Encode(bytes.NewReader(make([]byte, 20<<10)), object.Params{K: k, N: nn, SegmentSize: 16 << 10, LeafSize: 1 << 10}, func(object.Piece) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	b, _ := object.Marshal(m)
	return b
}

// TestStorageProbes: retrieval is proven too. A node that proves its
// pieces but serves no reader fails its probes and is slashed; two lying
// probers accuse honest nodes, which rebut on chain and are not slashed,
// and the liars' false reports are on record; one liar alone accuses no
// one.
func TestStorageProbes(t *testing.T) {
	names := []string{"dave", "erin", "frank", "gina", "v1", "v2", "v3", "v4"}
	n := newStorageNet(t, names...)
	n.put(64<<10, 4, 6, 30)
	counts := map[string]int{}
	for _, p := range n.deal(1).Pieces {
		counts[n.name(p.Piece.Node)]++
	}
	var refuser string
	for _, name := range names {
		if counts[name] > 0 && (refuser == "" || counts[name] > counts[refuser]) {
			refuser = name
		}
	}
	n.refuse[refuser] = true
	var liars []string
	for _, name := range names {
		if name != refuser && len(liars) < 2 {
			liars = append(liars, name)
		}
	}
	n.liar[liars[0]] = true
	for range 4 {
		n.epoch()
	}
	for _, name := range names {
		if name != refuser && n.node(name).Slashed != 0 {
			t.Errorf("with one liar, %s was slashed", name)
		}
	}
	n.liar[liars[1]] = true
	for range 12 {
		n.epoch()
		if r := n.node(refuser); r.Status != storagepb.NodeStatus_NODE_STATUS_ACTIVE {
			break
		}
	}
	r := n.node(refuser)
	if r.ProbesFailed == 0 || r.Slashed == 0 || r.Status == storagepb.NodeStatus_NODE_STATUS_ACTIVE {
		t.Errorf("the node that serves no one failed %d probes, was slashed %d, is %s", r.ProbesFailed, r.Slashed, r.Status)
	}
	// Two liars accuse honest nodes now and then; each rebuts.
	falseReports := func() (sum uint64) {
		for _, name := range liars {
			sum += n.node(name).FalseReports
		}
		return sum
	}
	for i := 0; i < 20 && falseReports() == 0; i++ {
		n.epoch()
	}
	if falseReports() == 0 {
		t.Error("in 20 epochs the two liars never accused a node together")
	}
	var served, falses uint64
	for _, name := range names {
		nd := n.node(name)
		served += nd.ProbesServed
		falses += nd.FalseReports
		if name != refuser && nd.Slashed != 0 {
			t.Errorf("honest %s was slashed (%d probes failed)", name, nd.ProbesFailed)
		}
	}
	if served == 0 {
		t.Error("no probe was served")
	}
	t.Logf("probes served %d, false reports %d, refuser failed %d", served, falses, r.ProbesFailed)
}

// A governance change of the epoch's length or window is refused: every
// scheduled proof is due by them, and moving them slashed honest nodes
// and left deals open for ever (found by review).
func TestStorageEpochParamsAreFixed(t *testing.T) {
	kv := storetest.NewMem()
	m := storage.Module{}
	if err := m.SetParams(kv, storagepb.DefaultParams()); err != nil {
		t.Fatal(err)
	}
	p := storagepb.DefaultParams()
	p.WindowBlocks = 15
	if err := m.SetParams(kv, p); err == nil || !strings.Contains(err.Error(), "fixed at genesis") {
		t.Fatalf("window_blocks changed: %v", err)
	}
	p = storagepb.DefaultParams()
	p.EpochBlocks = 40
	if err := m.SetParams(kv, p); err == nil {
		t.Fatal("epoch_blocks changed")
	}
	p = storagepb.DefaultParams()
	p.ProbesPerEpoch = 9
	if err := m.SetParams(kv, p); err != nil {
		t.Fatalf("probes_per_epoch did not change: %v", err)
	}
}

// Each registration's bond is its own: deregistering as a provider does
// not release the stake behind a storage node's pieces (found by review:
// both shared one required amount, and the provider's release freed it).
func TestStorageStakeIsItsOwn(t *testing.T) {
	n := newStorageNet(t, "dave", "erin", "frank")
	dave := address("dave").String()
	n.h.mustSend("dave", &providerpb.MsgRegisterProvider{Operator: dave, Endpoint: "http://127.0.0.1:2"})
	if r := n.h.send("dave", &stakingpb.MsgUnbond{Staker: dave, Amount: coin.New("uagr", 150_000_000)}); r.Code == 0 {
		t.Fatal("dave unbonded below what his two registrations need")
	}
	n.h.mustSend("dave", &providerpb.MsgDeregister{Operator: dave})
	if r := n.h.send("dave", &stakingpb.MsgUnbond{Staker: dave, Amount: coin.New("uagr", 200_000_000)}); r.Code == 0 {
		t.Fatal("a provider's deregistration released the storage node's stake")
	}
	n.h.mustSend("dave", &stakingpb.MsgUnbond{Staker: dave, Amount: coin.New("uagr", 100_000_000)})
}
