package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/spf13/cobra"

	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/storage/storagepb"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/httpserve"
	"github.com/agoranet/agora/internal/keyring"
	"github.com/agoranet/agora/internal/progress"
	"github.com/agoranet/agora/internal/storage/node"
	"github.com/agoranet/agora/internal/storage/object"
	"github.com/agoranet/agora/internal/storage/piecestore"
	"github.com/agoranet/agora/internal/storage/prover"
	"github.com/agoranet/agora/internal/storage/transfer"
	"github.com/agoranet/agora/sdk"
)

func storageCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "storage", Short: "Store files on storage nodes, erasure-coded, proven on chain, and fetch them back by CID",
		Long: `Storage cuts a file into segments, codes each k-of-n (any k of its n
pieces rebuild it), and makes a deal on chain that escrows its price; the
chain places the pieces on distinct staked storage nodes, challenges every
piece every epoch, slashes a node that cannot prove its piece and has the
piece rebuilt elsewhere. The file's CID names it. With --nodes, put and get
skip the chain and use the nodes named (docs/storage.md).`}
	cmd.AddCommand(storageStartCmd(g), storagePutCmd(g), storageGetCmd(g), storageStatusCmd(g), storageLsCmd(g))
	return cmd
}

func storageStartCmd(g *globals) *cobra.Command {
	var dir, quota, listen, keyName, endpoint, region, retrievalPrice, spend string
	cmd := &cobra.Command{
		Use:   "start [--key NAME] [--dir DIR] [--quota SIZE] [--listen ADDR] [--retrieval-price COIN]",
		Short: "Run a storage node: keep pieces on disk, serve them, and prove them to the chain",
		Long: `Runs a storage node. With --key it registers on chain as that key's
storage node (the key needs the module's minimum stake bonded: agora tx
bond), answers the chain's challenges for its pieces every epoch, and
rebuilds the pieces the chain hands it for repair. Readers pay it
--retrieval-price per GiB over x402 channels, and it pays other nodes for
the pieces it reads, up to --spend. Without --key it only keeps and serves
pieces, for free, for agora storage put --nodes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q, err := parseSize(quota)
			if err != nil {
				return fmt.Errorf("--quota %q: %w", quota, err)
			}
			if dir == "" {
				dir = filepath.Join(g.home, "storage", "node")
			}
			store, err := piecestore.Open(dir, q)
			if err != nil {
				return err
			}
			defer store.Close()
			// GET /storage/{cid} finds objects from their deals on chain.
			c, err := g.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			opts := node.Options{Objects: prover.Objects(c, nil)}
			var k *keyring.Key
			var hc *http.Client // pays other nodes for the reads this one makes
			price, err := coin.Parse(retrievalPrice)
			if err != nil {
				return fmt.Errorf("--retrieval-price: %w", err)
			}
			if keyName != "" {
				if k, err = g.keys().Get(keyName); err != nil {
					return err
				}
				budget, err := coin.Parse(spend)
				if err != nil {
					return fmt.Errorf("--spend: %w", err)
				}
				if price.Amount > 0 && budget.Denom != price.Denom {
					return fmt.Errorf("--spend is in %s and --retrieval-price in %s: use one denom", budget.Denom, price.Denom)
				}
				chainID, err := c.ChainID(cmd.Context())
				if err != nil {
					return err
				}
				pay, err := prover.OpenPayments(prover.PayConfig{Chain: c, ChainID: chainID, NodeURL: g.node, Key: k, Dir: dir,
					Denom: budget.Denom, PerGiB: price.Amount, Spend: budget.Amount, Deposit: budget.Amount / 10, Log: logger()})
				if err != nil {
					return err
				}
				defer pay.Close()
				opts, hc = node.Options{Objects: prover.Objects(c, pay.HTTP), Price: pay.Price}, pay.HTTP
			}
			s, err := httpserve.ListenWith(listen, node.Handler(store, opts), logger(), node.ServeOptions())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "storage node at %s: %s of %s used, in %s\n", s.URL(), progress.Bytes(uint64(store.Used())), progress.Bytes(uint64(q)), dir)
			defer s.Shutdown(context.Background())
			if k == nil {
				<-cmd.Context().Done()
				return nil
			}
			if endpoint == "" {
				endpoint = s.URL()
			}
			pr := &prover.Prover{Chain: c, Key: k, Store: store, Endpoint: endpoint, Region: region, Capacity: uint64(q), Log: logger(), HTTP: hc}
			if price.Amount > 0 {
				pr.RetrievalDenom, pr.RetrievalPerGiB = price.Denom, price.Amount
			}
			if err := pr.Register(cmd.Context()); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "registered on chain as %s's storage node, serving reads at %s a GiB; proving every epoch\n", k.Address(), coin.String(price))
			return pr.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&keyName, "key", "", "the operator key to register and prove with (none: serve pieces only)")
	f.StringVar(&endpoint, "endpoint", "", "the URL the chain lists for this node (default: the listen address)")
	f.StringVar(&region, "region", "", "where the node is, for clients that prefer near nodes")
	f.StringVar(&dir, "dir", "", "where pieces are kept (default $AGORA_HOME/storage/node)")
	f.StringVar(&quota, "quota", "10GiB", "the most this node stores, like 500MiB or 2TB")
	f.StringVar(&listen, "listen", "127.0.0.1:8090", "address to serve on")
	f.StringVar(&retrievalPrice, "retrieval-price", "100000uusdc", "with --key: what readers pay per GiB served, over x402 channels (0uusdc: free)")
	f.StringVar(&spend, "spend", "10000000uusdc", "with --key: the most this node pays other nodes for the pieces it reads (repairs, whole objects)")
	return cmd
}

// storageNodes is --nodes: the storage nodes' URLs, for a put or get
// that skips the chain; nil when none are named.
func storageNodes(list string, n int) ([]string, error) {
	var nodes []string
	for u := range strings.SplitSeq(list, ",") {
		if u = strings.TrimRight(strings.TrimSpace(u), "/"); u != "" {
			nodes = append(nodes, u)
		}
	}
	if len(nodes) > 0 && len(nodes) < n {
		return nil, fmt.Errorf("--nodes names %d storage nodes; each segment's %d pieces go on distinct nodes, so name at least %d (or lower --n)", len(nodes), n, n)
	}
	return nodes, nil
}

func storagePutCmd(g *globals) *cobra.Command {
	var nodes, from, price string
	var duration int64
	p := object.DefaultParams()
	cmd := &cobra.Command{
		Use:   "put FILE [--k 4 --n 6] [--duration EPOCHS] [--price COIN] [--from KEY]",
		Short: "Store a file: a deal on chain, its pieces on the nodes the chain places them on; prints its CID",
		Long: `Codes the file (a first pass, for its manifest), makes a deal on chain that
escrows price per GiB of pieces per epoch for --duration epochs plus a
repair reserve, and uploads each piece to the node the chain placed it on.
What is left of the escrow at the end comes back. With --nodes it skips the
chain: the pieces go to the nodes named, and nothing proves or repairs them.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := p.Validate(); err != nil {
				return err
			}
			urls, err := storageNodes(nodes, p.N)
			if err != nil {
				return err
			}
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			info, err := f.Stat()
			if err != nil {
				return err
			}
			out := map[string]any{}
			var m *storagepb.Manifest
			var id cid.Cid
			if len(urls) > 0 {
				place, _ := transfer.Spread(urls)
				bar := progress.New(cmd.ErrOrStderr(), "put "+filepath.Base(args[0]), uint64(info.Size()), g.output == "json", nil)
				c := &transfer.Client{Progress: bar.Set}
				if m, id, err = c.Put(cmd.Context(), f, p, place); err != nil {
					return err
				}
				bar.Done()
			} else {
				var d *deal
				if m, id, d, err = g.storeObject(cmd, f, uint64(info.Size()), filepath.Base(args[0]), p, from, price, duration); err != nil {
					return err
				}
				out["deal_id"], out["escrow"] = strconv.FormatUint(d.id, 10), d.escrow
			}
			out["cid"], out["size"], out["segments"], out["k"], out["n"] = id.String(), m.Size, len(m.Segments), m.K, m.N
			return g.emit(cmd.OutOrStdout(), out, func(w io.Writer) { fmt.Fprintln(w, id) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&nodes, "nodes", os.Getenv("AGORA_STORAGE_NODES"), "skip the chain: storage nodes' URLs, comma separated ($AGORA_STORAGE_NODES)")
	f.IntVar(&p.K, "k", p.K, "pieces any segment can be rebuilt from")
	f.IntVar(&p.N, "n", p.N, "pieces stored for each segment (n-k may be lost)")
	f.IntVar(&p.SegmentSize, "segment-size", p.SegmentSize, "bytes of each segment")
	f.Int64Var(&duration, "duration", 1000, "epochs to store it for (an epoch is the chain's epoch_blocks, 20 blocks on a devnet)")
	f.StringVar(&price, "price", "100000uusdc", "paid per GiB of pieces per epoch, from escrow, to the nodes that prove them")
	f.StringVar(&from, "from", "alice", "the key that pays for the deal and owns it")
	return cmd
}

// storeObject stores f as an object under a deal on chain: it codes f
// once for the manifest, makes the deal, and uploads each piece to the
// node the deal placed it on.
func (g *globals) storeObject(cmd *cobra.Command, f io.ReadSeeker, size uint64, name string, p object.Params, from, price string, duration int64) (*storagepb.Manifest, cid.Cid, *deal, error) {
	d, err := g.makeDeal(cmd, f, size, p, from, price, duration)
	if err != nil {
		return nil, cid.Undef, nil, err
	}
	where := map[[2]uint32]string{}
	for _, pi := range d.pieces {
		where[[2]uint32{pi.Piece.Segment, pi.Piece.Index}] = pi.Endpoint
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, cid.Undef, nil, err
	}
	bar := progress.New(cmd.ErrOrStderr(), "put "+name, size, g.output == "json", nil)
	c := &transfer.Client{Progress: bar.Set}
	m, id, err := c.Put(cmd.Context(), f, p, func(s, i int) string { return where[[2]uint32{uint32(s), uint32(i)}] })
	if err != nil {
		return nil, cid.Undef, nil, fmt.Errorf("deal %d: %w", d.id, err)
	}
	bar.Done()
	if id.String() != d.cid {
		return nil, cid.Undef, nil, fmt.Errorf("%s changed while it was stored: deal %d is for %s, the pieces sent make %s; put it again", name, d.id, d.cid, id)
	}
	return m, id, d, nil
}

// deal is a deal made for a put: its id, escrow and where its pieces go.
type deal struct {
	id     uint64
	cid    string
	escrow string
	pieces []*storagepb.PieceInfo
}

// makeDeal codes f once for its manifest and makes a deal for it.
func (g *globals) makeDeal(cmd *cobra.Command, f io.Reader, size uint64, p object.Params, from, price string, duration int64) (*deal, error) {
	pr, err := coin.Parse(price)
	if err != nil {
		return nil, fmt.Errorf("--price: %w", err)
	}
	k, err := g.keys().Get(from)
	if err != nil {
		return nil, err
	}
	c, err := g.dial()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	bar := progress.New(cmd.ErrOrStderr(), "code", size, g.output == "json", nil)
	m, id, err := object.Encode(&countingReader{r: f, bar: bar}, p, func(object.Piece) error { return nil })
	if err != nil {
		return nil, err
	}
	bar.Done()
	raw, err := object.Marshal(m)
	if err != nil {
		return nil, err
	}
	res, err := submitTx(cmd.Context(), c, k, "", &storagepb.MsgCreateDeal{Owner: k.Address().String(), Manifest: raw, DurationEpochs: duration, Denom: pr.Denom, PricePerGibEpoch: pr.Amount})
	if err != nil {
		return nil, fmt.Errorf("the deal for %s: %w", id, err)
	}
	var created storagepb.MsgCreateDealResponse
	if err := res.Response(0, &created); err != nil {
		return nil, fmt.Errorf("the deal was committed at height %d but: %w", res.Height, err)
	}
	info, err := client.Ask(cmd.Context(), c, storagepb.QueryDeal, &storagepb.QueryDealRequest{Id: created.DealId})
	if err != nil {
		return nil, err
	}
	return &deal{id: created.DealId, cid: id.String(), escrow: coin.String(coin.New(pr.Denom, created.Escrow)), pieces: info.Pieces}, nil
}

// countingReader tells a bar how much of a stream has been read.
type countingReader struct {
	r   io.Reader
	n   uint64
	bar *progress.Bar
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += uint64(n)
	c.bar.Set(c.n)
	return n, err
}

func storageGetCmd(g *globals) *cobra.Command {
	var nodes, out, from, most string
	cmd := &cobra.Command{
		Use:   "get CID [--out FILE] [--from KEY --max COIN]",
		Short: "Fetch a stored file by its CID from the nodes the chain placed it on, checking every segment",
		Long: `Fetches the file's pieces from the nodes its deal placed them on, the
fastest k of each segment, and checks every segment against its hash. The
nodes are paid per byte over x402 channels from --from, each read capped
at the price its node registered on chain, and never more than --max in
all; the channels are kept with agora pay's for the same key.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			id, err := cid.Decode(args[0])
			if err != nil {
				return fmt.Errorf("%q is not a CID (agora storage put prints one): %w", args[0], err)
			}
			urls, err := storageNodes(nodes, 1)
			if err != nil {
				return err
			}
			var m *storagepb.Manifest
			var locate transfer.Locate
			var price func(string, uint64) (uint64, bool)
			var reader *http.Client // nil: the nodes named serve for free
			if len(urls) > 0 {
				if m, err = fetchManifest(cmd.Context(), urls, id); err != nil {
					return err
				}
				place, _ := transfer.Spread(urls)
				// A piece is looked for where put placed it, then on the others.
				locate = func(s, i int) []string {
					first := place(s, i)
					list := []string{first}
					for _, u := range urls {
						if u != first {
							list = append(list, u)
						}
					}
					return list
				}
			} else {
				o, err := g.locateDeal(cmd.Context(), id)
				if err != nil {
					return err
				}
				m, locate, price = o.Manifest, o.Locate, o.Price
				hc, closer, err := g.storageReader(from, most)
				if err != nil {
					return err
				}
				defer closer.Close()
				reader = hc
			}
			w := cmd.OutOrStdout()
			if out != "-" {
				f, cerr := os.Create(out + ".part")
				if cerr != nil {
					return cerr
				}
				defer func() {
					f.Close()
					if err != nil { // nothing half-written is left under either name
						os.Remove(out + ".part")
					}
				}()
				w = f
			}
			bar := progress.New(cmd.ErrOrStderr(), "get "+id.String()[:12]+"…", m.Size, g.output == "json" || out == "-", nil)
			c := &transfer.Client{HTTP: reader, Progress: bar.Set, Price: price}
			if err := c.Get(cmd.Context(), m, w, locate); err != nil {
				return err
			}
			bar.Done()
			if f, ok := w.(*os.File); ok && out != "-" {
				if err := f.Sync(); err != nil {
					return err
				}
				if err := os.Rename(out+".part", out); err != nil {
					return err
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&nodes, "nodes", os.Getenv("AGORA_STORAGE_NODES"), "skip the chain: storage nodes' URLs, comma separated ($AGORA_STORAGE_NODES)")
	f.StringVar(&out, "out", "-", "file to write (as FILE.part, renamed once whole and checked); - for stdout")
	f.StringVar(&from, "from", "alice", "the key that pays the nodes for the bytes they serve (x402 channels)")
	f.StringVar(&most, "max", "1000000uusdc", "the most this get pays the nodes, in all")
	return cmd
}

// locateDeal reads object id's manifest, its pieces' nodes and their
// prices from its deal on chain.
func (g *globals) locateDeal(ctx context.Context, id cid.Cid) (*prover.Stored, error) {
	c, err := g.dial()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return prover.Find(ctx, c, id)
}

// storageReader is an HTTP client that pays storage nodes for reads,
// from key from and up to most, over the channels agora pay keeps for
// that key (its journal in <home>/payer/): the next read goes on paying
// over them. Close it when done.
func (g *globals) storageReader(from, most string) (*http.Client, io.Closer, error) {
	budget, err := coin.Parse(most)
	if err != nil {
		return nil, nil, fmt.Errorf("--max: %w", err)
	}
	k, err := g.keys().Get(from)
	if err != nil {
		return nil, nil, err
	}
	c, err := g.dial()
	if err != nil {
		return nil, nil, err
	}
	chainID, err := c.ChainID(context.Background())
	c.Close()
	if err != nil {
		return nil, nil, err
	}
	payer, err := transfer.OpenPayer(k, g.node, filepath.Join(g.home, "payer", chainID, k.Address().String()+".journal"), sdk.Budget{Denom: budget.Denom, Max: budget.Amount, Deposit: budget.Amount / 10})
	if err != nil {
		return nil, nil, err
	}
	return transfer.Paying(payer), payer, nil
}

// fetchManifest asks each node in turn for object id's manifest and
// returns the first that hashes to id.
func fetchManifest(ctx context.Context, urls []string, id cid.Cid) (*storagepb.Manifest, error) {
	var errs []error
	for _, u := range urls {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second) // a hung node is passed over
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u+"/storage/v1/manifests/"+id.String(), nil)
		if err != nil {
			return nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", u, err))
			continue
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, node.MaxManifestBytes+1))
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("%d", resp.StatusCode)
		}
		if err == nil {
			m, perr := object.Parse(b, id)
			if perr == nil {
				return m, nil
			}
			err = perr
		}
		errs = append(errs, fmt.Errorf("%s: %w", u, err))
	}
	return nil, fmt.Errorf("no storage node named has the manifest of %s: %w", id, errors.Join(errs...))
}

// parseSize reads a size like 500MiB, 2TB or 1048576.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	mult := int64(1)
	num := strings.TrimSpace(s)
	for _, u := range units {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || n <= 0 || n*float64(mult) > 1<<62 {
		return 0, errors.New("want a positive size like 500MiB, 2TB or 1048576")
	}
	return int64(n * float64(mult)), nil
}
