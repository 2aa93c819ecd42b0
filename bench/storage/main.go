// Command storage measures what storing an object costs: Reed-Solomon
// encode and decode on one core at 4-of-6 (Agora's default) and 29-of-80
// (Storj's), against a plain copy of the same bytes; the whole of
// object.Encode (coding, the pieces' Merkle roots, the segment hashes);
// a put and a get over loopback on eight storage nodes, against a plain
// HTTP PUT and GET of the same bytes to one server, and the get again
// paid per byte on a devnet's nodes (paid.go); and what one epoch of
// proofs costs the chain at 1,000 stored pieces (epoch.go).
//
//	go run ./bench/storage
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/klauspost/reedsolomon"

	"github.com/agoranet/agora/internal/chain/storage/storagepb"
	"github.com/agoranet/agora/internal/devnet"
	"github.com/agoranet/agora/internal/storage/node"
	"github.com/agoranet/agora/internal/storage/object"
	"github.com/agoranet/agora/internal/storage/piecestore"
	"github.com/agoranet/agora/internal/storage/transfer"
)

func main() {
	rounds := flag.Int("rounds", 5, "runs of each measurement; the best is kept")
	size := flag.Int("size", 256, "MiB put and got over loopback")
	pieces := flag.Int("pieces", 1000, "stored pieces whose epoch of proofs is measured")
	flag.Parse()
	log.SetFlags(0)
	fmt.Println("Reed-Solomon on one core, GB/s of the object's bytes (best of", *rounds, "runs)")
	fmt.Printf("%-8s %10s %10s %10s %12s %12s\n", "coding", "segment", "copy", "encode", "decode (-2)", "encode/copy")
	for _, c := range []struct {
		k, n    int
		segment int
	}{{4, 6, 4 << 20}, {29, 80, 64 << 20}} {
		data := make([]byte, c.segment)
		rng := rand.New(rand.NewPCG(1, 1))
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		enc, err := reedsolomon.New(c.k, c.n-c.k, reedsolomon.WithMaxGoroutines(1))
		if err != nil {
			log.Fatal(err)
		}
		shards, err := enc.Split(bytes.Clone(data))
		if err != nil {
			log.Fatal(err)
		}
		dst := make([]byte, len(data))
		cp := best(*rounds, len(data), func() { copy(dst, data) })
		en := best(*rounds, len(data), func() {
			if err := enc.Encode(shards); err != nil {
				log.Fatal(err)
			}
		})
		de := best(*rounds, len(data), func() {
			// Two data pieces lost, as after two dead nodes.
			lost := [][]byte{shards[0], shards[1]}
			shards[0], shards[1] = nil, nil
			if err := enc.ReconstructData(shards); err != nil {
				log.Fatal(err)
			}
			if !bytes.Equal(shards[0], lost[0]) {
				log.Fatal("decoded piece differs")
			}
		})
		fmt.Printf("%-8s %9dM %10.2f %10.2f %12.2f %12.2f\n", fmt.Sprintf("%d-of-%d", c.k, c.n), c.segment>>20, cp, en, de, en/cp)
	}
	fmt.Println("target: 4-of-6 encode >= 1 GB/s per core")

	// The whole of object.Encode, 64 MiB at the defaults (all cores).
	data := make([]byte, 64<<20)
	rng := rand.New(rand.NewPCG(2, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	p := object.DefaultParams()
	whole := best(*rounds, len(data), func() {
		if _, _, err := object.Encode(bytes.NewReader(data), p, func(object.Piece) error { return nil }); err != nil {
			log.Fatal(err)
		}
	})
	fmt.Printf("object.Encode, 64 MiB, %d-of-%d, %d MiB segments, %d-byte leaves (coding, piece roots, segment hashes): %.2f GB/s\n",
		p.K, p.N, p.SegmentSize>>20, p.LeafSize, whole)

	transfers(*size<<20, *rounds)
	epochCost(*pieces)
}

// transfers puts and gets size bytes on eight storage nodes over loopback,
// against a plain HTTP PUT and GET of the same bytes to one server that
// writes them to a file and syncs it.
func transfers(size, rounds int) {
	data := make([]byte, size)
	rng := rand.New(rand.NewPCG(3, 3))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	dir, err := os.MkdirTemp("", "agora-bench-storage")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	var urls []string
	for i := range 8 {
		store, err := piecestore.Open(filepath.Join(dir, fmt.Sprint(i)), 1<<40)
		if err != nil {
			log.Fatal(err)
		}
		s := httptest.NewServer(node.Handler(store, node.Options{}))
		defer s.Close()
		urls = append(urls, s.URL)
	}
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := filepath.Join(dir, "plain")
		if r.Method == http.MethodPut {
			f, err := os.Create(path)
			if err == nil {
				_, err = io.Copy(f, r.Body)
			}
			if err == nil {
				err = f.Sync()
			}
			f.Close()
			if err != nil {
				http.Error(w, err.Error(), 500)
			}
			return
		}
		http.ServeFile(w, r, path)
	}))
	defer plain.Close()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	c := &transfer.Client{HTTP: hc}
	place, locate := transfer.Spread(urls)
	ctx := context.Background()
	var putPlain, getPlain, putOurs, getOurs float64
	for range rounds {
		putPlain = max(putPlain, rate(size, func() {
			req, _ := http.NewRequest(http.MethodPut, plain.URL+"/x", bytes.NewReader(data))
			resp, err := hc.Do(req)
			if err != nil || resp.StatusCode != 200 {
				log.Fatalf("plain put: %v", err)
			}
			resp.Body.Close()
		}))
		getPlain = max(getPlain, rate(size, func() {
			resp, err := hc.Get(plain.URL + "/x")
			if err != nil {
				log.Fatal(err)
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if n != int64(size) {
				log.Fatalf("plain get: %d bytes", n)
			}
		}))
		var m *storagepb.Manifest
		putOurs = max(putOurs, rate(size, func() {
			var err error
			if m, _, err = c.Put(ctx, bytes.NewReader(data), object.DefaultParams(), place); err != nil {
				log.Fatal(err)
			}
		}))
		getOurs = max(getOurs, rate(size, func() {
			var n countWriter
			if err := c.Get(ctx, m, &n, locate); err != nil || int(n) != size {
				log.Fatalf("get: %v, %d bytes", err, n)
			}
		}))
	}
	fmt.Printf("\n%d MiB over loopback, best of %d: MB/s of the object's bytes\n", size>>20, rounds)
	fmt.Printf("%-34s %10s %10s\n", "", "put", "get")
	fmt.Printf("%-34s %10.0f %10.0f\n", "plain HTTP, one server (synced)", putPlain, getPlain)
	fmt.Printf("%-34s %10.0f %10.0f\n", "4-of-6 on eight storage nodes", putOurs, getOurs)
	fmt.Printf("ratio: put %.2f (target >= 0.5), get %.2f (target >= 0.7)\n", putOurs/putPlain, getOurs/getPlain)
	// Reads paid per byte cost what they cost on a devnet (its chain and
	// provers running on the same cores), measured against free reads
	// on another devnet like it.
	free, _ := devnetGets(data, rounds, 0)
	paid, spent := devnetGets(data, rounds, devnet.RetrievalPrice)
	fmt.Printf("\nget on a devnet's eight storage nodes, best of %d: MB/s\n", rounds)
	fmt.Printf("%-34s %10.0f\n", "free reads", free)
	fmt.Printf("%-34s %10.0f   (paid %duusdc for %d gets at %duusdc a GiB)\n", "paid per byte over x402", paid, spent, rounds+1, devnet.RetrievalPrice)
	fmt.Printf("ratio: paid/free %.2f, paid/plain HTTP %.2f\n", paid/free, paid/getPlain)
}

type countWriter int

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

// rate runs f once and returns MB/s of n bytes.
func rate(n int, f func()) float64 {
	t := time.Now()
	f()
	return float64(n) / time.Since(t).Seconds() / 1e6
}

// best runs f rounds times and returns the best rate, GB/s of n bytes.
func best(rounds, n int, f func()) float64 {
	var top float64
	for range rounds {
		t := time.Now()
		f()
		top = max(top, float64(n)/time.Since(t).Seconds()/1e9)
	}
	return top
}
