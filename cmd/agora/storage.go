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

	"github.com/agoranet/agora/internal/chain/storage/storagepb"
	"github.com/agoranet/agora/internal/httpserve"
	"github.com/agoranet/agora/internal/progress"
	"github.com/agoranet/agora/internal/storage/node"
	"github.com/agoranet/agora/internal/storage/object"
	"github.com/agoranet/agora/internal/storage/piecestore"
	"github.com/agoranet/agora/internal/storage/transfer"
)

func storageCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "storage", Short: "Store files on storage nodes, erasure-coded, and fetch them back by CID",
		Long: `Storage cuts a file into segments, codes each k-of-n (any k of its n
pieces rebuild it) and puts the pieces on distinct storage nodes; the
file's CID names it. Until the chain's storage module places pieces and
proves them, name the nodes with --nodes (docs/storage.md).`}
	cmd.AddCommand(storageStartCmd(g), storagePutCmd(g), storageGetCmd(g))
	return cmd
}

func storageStartCmd(g *globals) *cobra.Command {
	var dir, quota, listen string
	cmd := &cobra.Command{
		Use:   "start [--dir DIR] [--quota SIZE] [--listen ADDR]",
		Short: "Run a storage node: keep pieces on disk and serve them",
		Args:  cobra.NoArgs,
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
			s, err := httpserve.ListenWith(listen, node.Handler(store), logger(), node.ServeOptions())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "storage node at %s: %s of %s used, in %s\n", s.URL(), progress.Bytes(uint64(store.Used())), progress.Bytes(uint64(q)), dir)
			<-cmd.Context().Done()
			return s.Shutdown(context.Background())
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "where pieces are kept (default $AGORA_HOME/storage/node)")
	f.StringVar(&quota, "quota", "10GiB", "the most this node stores, like 500MiB or 2TB")
	f.StringVar(&listen, "listen", "127.0.0.1:8090", "address to serve on")
	return cmd
}

// storageNodes is --nodes: the storage nodes' URLs; without it, those a
// devnet in this home runs (<home>/storage/nodes.txt).
func (g *globals) storageNodes(list string, n int) ([]string, error) {
	if strings.TrimSpace(list) == "" {
		if b, err := os.ReadFile(filepath.Join(g.home, "storage", "nodes.txt")); err == nil {
			list = strings.Join(strings.Fields(string(b)), ",")
		}
	}
	var nodes []string
	for u := range strings.SplitSeq(list, ",") {
		if u = strings.TrimRight(strings.TrimSpace(u), "/"); u != "" {
			nodes = append(nodes, u)
		}
	}
	if len(nodes) == 0 {
		return nil, errors.New("name the storage nodes with --nodes URL,URL,... (agora storage start runs one; agora devnet runs eight, which AGORA_HOME=<the devnet's home> finds)")
	}
	if len(nodes) < n {
		return nil, fmt.Errorf("--nodes names %d storage nodes; each segment's %d pieces go on distinct nodes, so name at least %d (or lower --n)", len(nodes), n, n)
	}
	return nodes, nil
}

func storagePutCmd(g *globals) *cobra.Command {
	var nodes string
	p := object.DefaultParams()
	cmd := &cobra.Command{
		Use:   "put FILE --nodes URL,... [--k 4 --n 6]",
		Short: "Store a file; prints its CID",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := p.Validate(); err != nil {
				return err
			}
			urls, err := g.storageNodes(nodes, p.N)
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
			bar := progress.New(cmd.ErrOrStderr(), "put "+filepath.Base(args[0]), uint64(info.Size()), g.output == "json", nil)
			c := &transfer.Client{Progress: bar.Set}
			place, _ := transfer.Spread(urls)
			m, id, err := c.Put(cmd.Context(), f, p, place)
			if err != nil {
				return err
			}
			bar.Done()
			return g.emit(cmd.OutOrStdout(), map[string]any{"cid": id.String(), "size": m.Size, "segments": len(m.Segments), "k": m.K, "n": m.N},
				func(w io.Writer) { fmt.Fprintln(w, id) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&nodes, "nodes", os.Getenv("AGORA_STORAGE_NODES"), "storage nodes' URLs, comma separated ($AGORA_STORAGE_NODES)")
	f.IntVar(&p.K, "k", p.K, "pieces any segment can be rebuilt from")
	f.IntVar(&p.N, "n", p.N, "pieces stored for each segment (n-k may be lost)")
	f.IntVar(&p.SegmentSize, "segment-size", p.SegmentSize, "bytes of each segment")
	return cmd
}

func storageGetCmd(g *globals) *cobra.Command {
	var nodes, out string
	cmd := &cobra.Command{
		Use:   "get CID --nodes URL,... [--out FILE]",
		Short: "Fetch a stored file by its CID, checking every segment",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			id, err := cid.Decode(args[0])
			if err != nil {
				return fmt.Errorf("%q is not a CID (agora storage put prints one): %w", args[0], err)
			}
			urls, err := g.storageNodes(nodes, 1)
			if err != nil {
				return err
			}
			c := &transfer.Client{}
			m, err := fetchManifest(cmd.Context(), urls, id)
			if err != nil {
				return err
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
			c.Progress = bar.Set
			place, _ := transfer.Spread(urls)
			// A piece is looked for where put placed it, then on the others.
			locate := func(s, i int) []string {
				first := place(s, i)
				list := []string{first}
				for _, u := range urls {
					if u != first {
						list = append(list, u)
					}
				}
				return list
			}
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
	f.StringVar(&nodes, "nodes", os.Getenv("AGORA_STORAGE_NODES"), "storage nodes' URLs, comma separated ($AGORA_STORAGE_NODES)")
	f.StringVar(&out, "out", "-", "file to write (as FILE.part, renamed once whole and checked); - for stdout")
	return cmd
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
