package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/job/jobpb"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/storage/storagepb"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/jobrun"
	"github.com/agoranet/agora/internal/storage/object"
)

func jobCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "job", Short: "Batch compute: order WebAssembly jobs, follow them, fetch their results"}
	cmd.AddCommand(jobSubmitCmd(g), jobStatusCmd(g), jobResultCmd(g), jobListCmd(g), jobCancelCmd(g))
	return cmd
}

func orderID(s string) (uint64, error) {
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil || id == 0 {
		return 0, fmt.Errorf("%q is not an order id (a number like 1)", s)
	}
	return id, nil
}

func getOrder(ctx context.Context, c *client.Client, id uint64) (*jobpb.Order, error) {
	r, err := client.Ask(ctx, c, jobpb.QueryOrder, &jobpb.QueryOrderRequest{Id: id})
	if err != nil {
		return nil, err
	}
	return r.Order, nil
}

// loadOrder reads the order whose id is written as arg.
func (g *globals) loadOrder(cmd *cobra.Command, arg string) (*jobpb.Order, error) {
	id, err := orderID(arg)
	if err != nil {
		return nil, err
	}
	c, err := g.dial()
	if err != nil {
		return nil, err
	}
	return getOrder(cmd.Context(), c, id)
}

// storeJob stores a job's module and input as objects, paid by from,
// and returns the URLs a lessee fetches them at: a storage node's whole
// object path, which fetches the pieces from wherever the chain placed
// them (the node named only relays; any node serves any object).
func (g *globals) storeJob(cmd *cobra.Command, c *client.Client, from string, wasm, in []byte, duration int64) (moduleURL, inputURL string, err error) {
	nodes, err := client.Ask(cmd.Context(), c, storagepb.QueryNodes, &storagepb.QueryNodesRequest{})
	if err != nil {
		return "", "", err
	}
	var base string
	for _, n := range nodes.Nodes {
		if n.Status == storagepb.NodeStatus_NODE_STATUS_ACTIVE {
			base = n.Endpoint
			break
		}
	}
	if base == "" {
		return "", "", errors.New("--storage: the chain has no active storage node (agora storage start --key)")
	}
	var urls []string
	for _, o := range []struct {
		name string
		b    []byte
	}{{"module", wasm}, {"input", in}} {
		_, id, _, err := g.storeObject(cmd, bytes.NewReader(o.b), uint64(len(o.b)), o.name, object.DefaultParams(), from, "100000uusdc", duration)
		if err != nil {
			return "", "", fmt.Errorf("--storage: the job's %s: %w", o.name, err)
		}
		urls = append(urls, strings.TrimRight(base, "/")+"/storage/"+id.String())
	}
	return urls[0], urls[1], nil
}

// blobStores picks where to upload: --store, or up to three online
// providers, so the job's data outlives any one of them.
func blobStores(ctx context.Context, c *client.Client, flag []string) ([]string, error) {
	if len(flag) > 0 {
		return flag, nil
	}
	stores, err := jobrun.Stores(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("%w; pass --store URL", err)
	}
	return stores, nil
}

func jobSubmitCmd(g *globals) *cobra.Command {
	var input, maxPrice, from, out string
	var stores []string
	var redundancy, memory uint32
	var fuel uint64
	var window, deadline int64
	var wait, storage bool
	var storageDuration int64
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "submit MODULE.wasm --input FILE --max-price COIN [--redundancy 2]",
		Short: "Order a WebAssembly job (GOOS=wasip1): upload it and its input, escrow max-price × redundancy",
		Long: `Uploads the module and its input (read by the job on stdin) to a provider's
blob store (--store, or the first online provider), and orders the job. The
chain holds max-price × redundancy in escrow, leases the job to the cheapest
bids when the bidding window ends, and pays the lessees whose results agree.
With --wait it follows the order to its end and writes the result to --out.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if input == "" {
				return errors.New("--input FILE is required (use /dev/null for a job without input)")
			}
			price, err := coin.Parse(maxPrice)
			if err != nil {
				return fmt.Errorf("--max-price: %w", err)
			}
			wasm, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			in, err := os.ReadFile(input)
			if err != nil {
				return err
			}
			k, err := g.keys().Get(from)
			if err != nil {
				return err
			}
			c, err := g.dial()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var moduleURL, inputURL string
			if storage {
				if moduleURL, inputURL, err = g.storeJob(cmd, c, from, wasm, in, storageDuration); err != nil {
					return err
				}
			} else {
				bases, err := blobStores(ctx, c, stores)
				if err != nil {
					return err
				}
				if moduleURL, inputURL, err = jobrun.Upload(ctx, bases, wasm, in); err != nil {
					return err
				}
			}
			mh, ih := sha256.Sum256(wasm), sha256.Sum256(in)
			res, err := submitTx(ctx, c, k, "job", &jobpb.MsgCreateOrder{Tenant: k.Address().String(), ModuleHash: mh[:], ModuleUrl: moduleURL,
				InputHash: ih[:], InputUrl: inputURL, Fuel: fuel, MemoryMib: memory, MaxPrice: price, Redundancy: redundancy,
				BidWindow: window, DeadlineBlocks: deadline})
			if err != nil {
				return err
			}
			var created jobpb.MsgCreateOrderResponse
			if err := res.Response(0, &created); err != nil {
				return fmt.Errorf("the order was committed at height %d but: %w", res.Height, err)
			}
			id := created.OrderId
			w := cmd.OutOrStdout()
			if !wait {
				return g.emit(w, map[string]any{"order_id": strconv.FormatUint(id, 10), "height": strconv.FormatInt(res.Height, 10)}, func(w io.Writer) {
					fmt.Fprintf(w, "order %d placed at height %d; follow it with: agora job status %d\n", id, res.Height, id)
				})
			}
			wctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			if err := g.waitOrder(wctx, w, c, id, res.Height, out); err != nil {
				return err
			}
			if !storage || out == "" || out == "-" {
				return nil
			}
			// The result is stored as an object too, under a deal of its own.
			f, err := os.Open(out)
			if err != nil {
				return err
			}
			defer f.Close()
			info, err := f.Stat()
			if err != nil {
				return err
			}
			_, rid, d, err := g.storeObject(cmd, f, uint64(info.Size()), "result", object.DefaultParams(), from, "100000uusdc", storageDuration)
			if err != nil {
				return fmt.Errorf("order %d completed, but storing its result: %w", id, err)
			}
			return g.emit(w, map[string]any{"result_cid": rid.String(), "result_deal_id": strconv.FormatUint(d.id, 10)}, func(w io.Writer) {
				fmt.Fprintf(w, "result stored as %s (deal %d): agora storage get %s\n", rid, d.id, rid)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&input, "input", "", "the job's input file, fed to it on stdin")
	f.StringVar(&maxPrice, "max-price", "2000uusdc", "the most one lessee may be paid")
	f.Uint32Var(&redundancy, "redundancy", 2, "how many providers run the job; their results must agree")
	f.Uint64Var(&fuel, "fuel", 100_000_000_000, "fuel: about the number of WebAssembly instructions the job may run")
	f.Uint32Var(&memory, "memory", 256, "memory cap in MiB")
	f.Int64Var(&window, "bid-window", 0, "blocks of bidding (0: the chain's default)")
	f.Int64Var(&deadline, "deadline", 0, "blocks a lessee has to commit its result (0: the chain's default)")
	f.StringVar(&from, "from", "alice", "the key that pays (the tenant)")
	f.StringSliceVar(&stores, "store", nil, "blob stores to upload to, by base URL (default: up to three online providers)")
	f.BoolVar(&wait, "wait", false, "follow the order to its end")
	f.BoolVar(&storage, "storage", false, "store the module and input as objects on the storage network (deals paid by --from) instead of a provider's blob store; with --wait and --out, the result too")
	f.Int64Var(&storageDuration, "storage-duration", 100, "with --storage: epochs the module, input and result are stored for")
	f.StringVar(&out, "out", "", "with --wait: write the result here (- for stdout)")
	f.DurationVar(&timeout, "timeout", 5*time.Minute, "with --wait: how long to follow the order")
	return cmd
}

// waitOrder follows order id to its end, printing each status in text
// output, writes a completed order's result to out ("" for nowhere), and
// fails unless the order completed.
func (g *globals) waitOrder(ctx context.Context, w io.Writer, c *client.Client, id uint64, height int64, out string) error {
	if g.output == "text" {
		fmt.Fprintf(w, "order %d placed at height %d\n", id, height)
	}
	o, err := follow(ctx, c, id, func(o *jobpb.Order) {
		if g.output == "text" {
			fmt.Fprintf(w, "  %s\n", strings.ToLower(strings.TrimPrefix(o.Status.String(), "ORDER_STATUS_")))
		}
	})
	if err != nil {
		return err
	}
	if o.Status == jobpb.OrderStatus_ORDER_STATUS_COMPLETED && out != "" {
		if err := fetchResult(ctx, o, out); err != nil {
			return err
		}
	}
	if err := g.printOrder(w, o); err != nil {
		return err
	}
	if o.Status != jobpb.OrderStatus_ORDER_STATUS_COMPLETED {
		return fmt.Errorf("order %d %s: %s", o.Id, strings.ToLower(strings.TrimPrefix(o.Status.String(), "ORDER_STATUS_")), o.Reason)
	}
	return nil
}

// follow polls an order until it ends, calling progress on each new status.
func follow(ctx context.Context, c *client.Client, id uint64, progress func(*jobpb.Order)) (*jobpb.Order, error) {
	last := jobpb.OrderStatus_ORDER_STATUS_UNSPECIFIED
	for {
		o, err := getOrder(ctx, c, id)
		if err != nil {
			return nil, err
		}
		if o.Status != last {
			progress(o)
			last = o.Status
		}
		if o.FinishedAt != 0 {
			return o, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("order %d is still %s: %w", id, o.Status, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// fetchResult downloads the agreed output from a paid lessee, checking its
// hash, and writes it to out ("-": stdout).
func fetchResult(ctx context.Context, o *jobpb.Order, out string) error {
	data, err := jobrun.Output(ctx, o)
	if err != nil {
		return err
	}
	if out == "-" {
		_, err = os.Stdout.Write(data)
		return err
	}
	return os.WriteFile(out, data, 0o644)
}

func (g *globals) printOrder(w io.Writer, o *jobpb.Order) error {
	return g.emit(w, o, func(w io.Writer) {
		name := func(s fmt.Stringer, prefix string) string {
			return strings.ToLower(strings.TrimPrefix(s.String(), prefix))
		}
		fmt.Fprintf(w, "order %d: %s\n", o.Id, name(o.Status, "ORDER_STATUS_"))
		fmt.Fprintf(w, "  tenant      %s\n", o.Tenant)
		fmt.Fprintf(w, "  module      sha256:%x (%s)\n", o.ModuleHash, o.ModuleUrl)
		fmt.Fprintf(w, "  input       sha256:%x\n", o.InputHash)
		fmt.Fprintf(w, "  limits      %d fuel, %d MiB; redundancy %d\n", o.Fuel, o.MemoryMib, o.Redundancy)
		d := o.MaxPrice.Denom
		fmt.Fprintf(w, "  escrow      %d%s × %d: paid %d, refunded %d, held %d\n", o.MaxPrice.Amount, d, o.Redundancy, o.Paid, o.Refunded, o.Escrow)
		fmt.Fprintf(w, "  bids        %d; created at %d, bidding until %d\n", len(o.Bids), o.CreatedAt, o.BiddingUntil)
		for _, l := range o.Leases {
			fmt.Fprintf(w, "  lease       %s %d%s %s (leased at %d, deadline %d)", l.Provider, l.Price, d, name(l.Status, "LEASE_STATUS_"), l.LeasedAt, l.Deadline)
			if l.Reason != "" {
				fmt.Fprintf(w, ": %s", l.Reason)
			}
			fmt.Fprintln(w)
		}
		for _, v := range o.Votes {
			vote := "not revealed"
			if v.Result != nil {
				vote = fmt.Sprintf("%s sha256:%x", name(v.Result.Code, "RESULT_CODE_"), v.Result.OutputHash[:8])
			}
			fmt.Fprintf(w, "  vote        %s %s\n", v.Verifier, vote)
		}
		if r := o.Result; r != nil {
			fmt.Fprintf(w, "  result      %s, %d bytes, sha256:%x\n", name(r.Code, "RESULT_CODE_"), r.OutputSize, r.OutputHash)
		}
		if o.Reason != "" {
			fmt.Fprintf(w, "  reason      %s\n", o.Reason)
		}
		if o.FinishedAt != 0 {
			fmt.Fprintf(w, "  finished at %d\n", o.FinishedAt)
		}
	})
}

func jobStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "status ID", Short: "An order's state: bids, leases, votes, result and escrow", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := g.loadOrder(cmd, args[0])
			if err != nil {
				return err
			}
			return g.printOrder(cmd.OutOrStdout(), o)
		},
	}
}

func jobResultCmd(g *globals) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use: "result ID --out FILE", Short: "Download a completed order's result, checked against its agreed hash", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := g.loadOrder(cmd, args[0])
			if err != nil {
				return err
			}
			if o.Status != jobpb.OrderStatus_ORDER_STATUS_COMPLETED && (o.Result == nil || o.Result.OutputSize == 0) {
				return fmt.Errorf("order %d is %s with no output to fetch; agora job status %d says why", o.Id, o.Status, o.Id)
			}
			return fetchResult(cmd.Context(), o, out)
		},
	}
	cmd.Flags().StringVar(&out, "out", "-", "where to write the result (- for stdout)")
	return cmd
}

func jobListCmd(g *globals) *cobra.Command {
	var tenant string
	var open bool
	cmd := &cobra.Command{
		Use: "list [--tenant ADDR] [--open]", Short: "Orders, oldest first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &jobpb.QueryOrdersRequest{OpenOnly: open}
			if tenant != "" {
				a, err := g.parseAddr(tenant)
				if err != nil {
					return err
				}
				req.Tenant = a.String()
			}
			c, err := g.dial()
			if err != nil {
				return err
			}
			r, err := client.Ask(cmd.Context(), c, jobpb.QueryOrders, req)
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), r, func(w io.Writer) {
				if len(r.Orders) == 0 {
					fmt.Fprintln(w, "no orders")
					return
				}
				table(w, "ID\tSTATUS\tTENANT\tPAID\tREFUNDED\tREASON", func(tw io.Writer) {
					for _, o := range r.Orders {
						fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%s\n", o.Id, strings.ToLower(strings.TrimPrefix(o.Status.String(), "ORDER_STATUS_")), o.Tenant, o.Paid, o.Refunded, o.Reason)
					}
				})
			})
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "only this tenant's orders (an address or key name)")
	cmd.Flags().BoolVar(&open, "open", false, "only orders that have not ended")
	return cmd
}

func jobCancelCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "cancel TENANT_KEY ID", Short: "Withdraw an order still in its first bidding; the escrow comes back", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := orderID(args[1])
			if err != nil {
				return err
			}
			return g.submit(cmd, args[0], func(from addr.Address) module.Msg {
				return &jobpb.MsgCancelOrder{Tenant: from.String(), OrderId: id}
			})
		},
	}
}
