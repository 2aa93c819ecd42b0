package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"log"
	"math/rand/v2"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	"google.golang.org/protobuf/proto"

	"github.com/agoranet/agora/internal/chain"
	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/auth/authpb"
	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/storage/storagepb"
	"github.com/agoranet/agora/internal/chain/tx"
	"github.com/agoranet/agora/internal/node"
	"github.com/agoranet/agora/internal/storage/object"
)

// epochChain is an Agora app driven block by block in this process, as
// CometBFT would drive it, so that a block's cost is the state machine's
// alone.
type epochChain struct {
	app    *chain.App
	height int64
	seq    map[addr.Address]uint64
}

const epochChainID = "agora-bench-1"

func benchKey(name string) ed25519.PrivateKey {
	s := sha256.Sum256([]byte("bench key " + name))
	return ed25519.NewKeyFromSeed(s[:])
}

func keyAddr(k ed25519.PrivateKey) addr.Address {
	return addr.FromPubKey(k.Public().(ed25519.PublicKey))
}

// block finalizes and commits txs and returns how long that took.
func (c *epochChain) block(txs [][]byte) (time.Duration, *abci.ResponseFinalizeBlock) {
	c.height++
	hash := sha256.Sum256(fmt.Appendf(nil, "bench block %d", c.height))
	start := time.Now()
	resp, err := c.app.FinalizeBlock(context.Background(), &abci.RequestFinalizeBlock{Height: c.height, Time: time.Unix(1_800_000_000+c.height, 0), Txs: txs, Hash: hash[:]})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := c.app.Commit(context.Background(), &abci.RequestCommit{}); err != nil {
		log.Fatal(err)
	}
	took := time.Since(start)
	for i, r := range resp.TxResults {
		if r.Code != 0 {
			log.Fatalf("block %d tx %d: %s", c.height, i, r.Log)
		}
	}
	return took, resp
}

func (c *epochChain) sign(k ed25519.PrivateKey, gas uint64, msgs ...module.Msg) []byte {
	a := keyAddr(k)
	raw, err := tx.Sign(k, tx.Header{ChainID: epochChainID, Sequence: c.seq[a], GasLimit: gas, Fee: coin.New(coin.Native, authpb.MinFee(authpb.DefaultParams(), gas))}, msgs...)
	if err != nil {
		log.Fatal(err)
	}
	c.seq[a]++
	return raw
}

func ask[Req, Resp proto.Message](c *epochChain, q module.Query[Req, Resp], req Req) Resp {
	var zero Resp
	data, _ := proto.Marshal(req)
	r, err := c.app.Query(context.Background(), &abci.RequestQuery{Path: q.Path, Data: data})
	if err != nil || r.Code != 0 {
		log.Fatalf("query %s: %v %s", q.Path, err, r.GetLog())
	}
	out := zero.ProtoReflect().Type().New().Interface().(Resp)
	if err := proto.Unmarshal(r.Value, out); err != nil {
		log.Fatal(err)
	}
	return out
}

// epochCost measures one epoch of proofs of about pieces stored pieces
// (1 MiB each, 1 KiB leaves: the defaults) on eight nodes: the txs and
// bytes the answers take, and the time of the block that carries them,
// against a block of as many plain transfers; and the block that settles
// the epoch against an empty one.
func epochCost(pieces int) {
	nodes := make([]ed25519.PrivateKey, 8)
	owner := benchKey("owner")
	g := node.Genesis{ChainID: epochChainID, Time: time.Unix(1_800_000_000, 0), Issuer: keyAddr(owner)}
	g.Accounts = append(g.Accounts, node.Account{Address: keyAddr(owner), Coins: []*coin.Coin{coin.New(coin.Native, 1e12), coin.New(coin.Stable, 1e12)}})
	for i := range nodes {
		nodes[i] = benchKey(fmt.Sprintf("node%d", i))
		g.Accounts = append(g.Accounts, node.Account{Address: keyAddr(nodes[i]), Coins: []*coin.Coin{coin.New(coin.Native, 1e12)}})
		g.Stakes = append(g.Stakes, node.Stake{Address: keyAddr(nodes[i]), Amount: 1e9})
	}
	doc, err := g.Doc()
	if err != nil {
		log.Fatal(err)
	}
	app, err := chain.New(chain.Config{CacheNodes: 200_000})
	if err != nil {
		log.Fatal(err)
	}
	defer app.Close()
	c := &epochChain{app: app, seq: map[addr.Address]uint64{}}
	if _, err := app.InitChain(context.Background(), &abci.RequestInitChain{ChainId: epochChainID, Time: g.Time, InitialHeight: 1, AppStateBytes: doc.AppState}); err != nil {
		log.Fatal(err)
	}
	var txs [][]byte
	for i, k := range nodes {
		txs = append(txs, c.sign(k, 200_000, &storagepb.MsgRegisterNode{Operator: keyAddr(k).String(), Endpoint: fmt.Sprintf("http://127.0.0.1:%d", 20000+i), Capacity: 1 << 40}))
	}
	c.block(txs)

	// One 4 MiB segment coded 4-of-6, its manifest entry repeated: the
	// chain sees as many distinct piece slots, and this process holds
	// six pieces, not a thousand.
	seg := make([]byte, object.DefaultSegmentSize)
	rng := rand.New(rand.NewPCG(3, 3))
	for i := range seg {
		seg[i] = byte(rng.Uint32())
	}
	data := make([][]byte, object.DefaultN)
	m, _, err := object.Encode(bytes.NewReader(seg), object.DefaultParams(), func(p object.Piece) error {
		data[p.Index] = p.Data
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	segments := (pieces + object.DefaultN - 1) / object.DefaultN
	for len(m.Segments) < segments {
		m.Segments = append(m.Segments, m.Segments[0])
	}
	m.Size = uint64(segments) * uint64(len(seg))
	raw, err := object.Marshal(m)
	if err != nil {
		log.Fatal(err)
	}
	c.block([][]byte{c.sign(owner, 90_000_000, &storagepb.MsgCreateDeal{Owner: keyAddr(owner).String(), Manifest: raw, DurationEpochs: 10, Denom: coin.Stable, PricePerGibEpoch: 1000})})

	// To the first challenged epoch.
	p := storagepb.DefaultParams()
	for (c.height+1)%p.EpochBlocks != 0 {
		c.block(nil)
	}
	c.block(nil) // opens the epoch: its hash is the seed
	e := ask(c, storagepb.QueryEpoch, &storagepb.QueryEpochRequest{})

	// Every node's answers, in proofs of at most 40 KiB, as the prover
	// sends them.
	var proofs [][]byte
	var answers, bytesOut int
	for _, k := range nodes {
		r := ask(c, storagepb.QueryAssigned, &storagepb.QueryAssignedRequest{Node: keyAddr(k).String()})
		var batch []*storagepb.Answer
		size := 0
		flush := func() {
			if len(batch) > 0 {
				raw := c.sign(k, 3_000_000, &storagepb.MsgProve{Node: keyAddr(k).String(), Epoch: e.Number, Answers: batch})
				proofs = append(proofs, raw)
				bytesOut += len(raw)
				batch, size = nil, 0
			}
		}
		for _, pc := range r.Pieces {
			leaf, path := object.Prove(data[pc.Index], int(m.LeafSize), int(storagepb.Challenge(e.Seed, pc.Deal, pc.Segment, pc.Index, pc.Size/uint64(m.LeafSize))))
			a := &storagepb.Answer{Deal: pc.Deal, Segment: pc.Segment, Index: pc.Index, Leaf: leaf, Path: path}
			n := len(leaf) + 33*len(path) + 32
			if size+n > 40<<10 || len(batch) == int(p.MaxAnswers) {
				flush()
			}
			batch, size = append(batch, a), size+n
			answers++
		}
		flush()
	}
	withProofs, resp := c.block(proofs)
	var gasUsed int64
	for _, r := range resp.TxResults {
		gasUsed += r.GasUsed
	}

	// As many plain transfers, from as many accounts, in one block.
	var sends [][]byte
	for i := range proofs {
		k := nodes[i%len(nodes)]
		sends = append(sends, c.sign(k, 100_000, &bankpb.MsgSend{From: keyAddr(k).String(), To: keyAddr(owner).String(), Amount: []*coin.Coin{coin.New(coin.Native, 1)}}))
	}
	withSends, _ := c.block(sends)

	// The window's end: every piece answered, so the settling block has
	// nothing to do but find that out.
	for c.height < e.WindowEnd-1 {
		c.block(nil)
	}
	empty, _ := c.block(nil)
	settle, _ := c.block(nil)
	info := ask(c, storagepb.QueryDeal, &storagepb.QueryDealRequest{Id: 1})
	var live int
	for _, pi := range info.Pieces {
		if pi.Piece.ProvedEpoch == e.Number {
			live++
		}
	}
	fmt.Printf("\nOne epoch of proofs: %d pieces (1 MiB, 1 KiB leaves) on 8 nodes, %d proven\n", answers, live)
	fmt.Printf("  %d txs, %d bytes (%d a piece), %d gas\n", len(proofs), bytesOut, bytesOut/answers, gasUsed)
	fmt.Printf("  block with the proofs      %8.2f ms\n", ms(withProofs))
	fmt.Printf("  block with %3d transfers   %8.2f ms   ratio %.2f\n", len(sends), ms(withSends), ms(withProofs)/ms(withSends))
	fmt.Printf("  block settling the window  %8.2f ms\n", ms(settle))
	fmt.Printf("  empty block                %8.2f ms   ratio %.2f\n", ms(empty), ms(settle)/ms(empty))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
