package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/spf13/cobra"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/provider/providerpb"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/model"
	"github.com/agoranet/agora/internal/paygate"
	"github.com/agoranet/agora/internal/provider"
	"github.com/agoranet/agora/internal/storage/object"
	"github.com/agoranet/agora/internal/storage/prover"
	"github.com/agoranet/agora/internal/storage/transfer"
	"github.com/agoranet/agora/internal/worker"
)

func providerCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "provider", Short: "Run a provider: sell model inference over the OpenAI API"}
	dereg := &cobra.Command{
		Use: "deregister KEY", Short: "Remove the provider operated by KEY and its services from the registry", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.submit(cmd, args[0], func(from addr.Address) module.Msg { return &providerpb.MsgDeregister{Operator: from.String()} })
		},
	}
	var out string
	backup := &cobra.Command{
		Use:   "backup KEY --out DIR",
		Short: "Copy a provider's voucher log and receipt counter, consistently, while it runs",
		Long: `Backup writes the provider's payment state (what it may still claim, and its
receipt counter) into a new directory. To restore, stop the provider, copy
both files into <home>/providers/KEY/, and start it: it replays the log and
claims exactly what was unclaimed when the backup was taken.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			home := provider.Home(g.home, args[0])
			if _, err := os.Stat(home); err != nil {
				return fmt.Errorf("no provider home at %s: %s has not run a provider in this home", home, args[0])
			}
			if err := provider.Backup(home, out); err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), map[string]string{"provider": home, "backup": out}, func(w io.Writer) {
				fmt.Fprintf(w, "backed up %s to %s\n", home, out)
			})
		},
	}
	backup.Flags().StringVar(&out, "out", "", "the directory to write (it must not exist)")
	_ = backup.MarkFlagRequired("out")
	cmd.AddCommand(withConfig(providerStartCmd(g)), dereg, backup)
	return cmd
}

// providerStart is agora provider start: its flags, and the provider
// config they make.
type providerStart struct {
	cfg                            provider.Config
	keyName, denom, bond, jobPrice string
	jobParallel, concurrency       int
	models, upstreams              []string
	perRequest, per1K              uint64
	claimEvery, voucherSync        time.Duration
	reader                         io.Closer // the payer of jobs' data on storage
}

func providerStartCmd(g *globals) *cobra.Command {
	p := &providerStart{cfg: provider.DefaultConfig()}
	start := &cobra.Command{
		Use:   "start --key NAME [--model NAME|FILE]... [--upstream URL=ENGINE_MODEL=NAME@ID]...",
		Short: "Serve models, register on chain and send heartbeats until interrupted",
		Long: `Start serves the named models (default: both built-ins; a path loads your
own weights file) and any upstream OpenAI-compatible engine, signs a receipt
for every answer, registers the provider and its services on chain and
keeps it online with heartbeats. The key needs the minimum stake bonded;
--bond bonds what is missing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := p.config(cmd.Context(), g)
			if p.reader != nil {
				defer p.reader.Close()
			}
			if err != nil {
				return err
			}
			s, err := provider.New(cfg)
			if err != nil {
				return err
			}
			if err := s.Start(cmd.Context()); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "provider %s serving at %s\n", s.Address(), s.URL())
			<-cmd.Context().Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return s.Shutdown(ctx)
		},
	}
	cfg := &p.cfg
	f := start.Flags()
	f.StringVar(&p.keyName, "key", "", "keyring key that operates the provider (required)")
	f.StringVar(&cfg.Listen, "listen", cfg.Listen, "address to serve on")
	f.StringVar(&cfg.TLSCert, "tls-cert", "", "serve HTTPS with this PEM certificate (with --tls-key) and register its key's hash on chain: clients connect only to a server holding it (a self-signed certificate will do)")
	f.StringVar(&cfg.TLSKey, "tls-key", "", "the PEM private key of --tls-cert")
	f.StringVar(&cfg.Advertise, "advertise", "", "endpoint URL to register (default http://LISTEN)")
	f.StringArrayVar(&p.models, "model", nil, "built-in model name, weights file, or CID of a weights file on the storage network, to serve (repeatable)")
	f.StringArrayVar(&p.upstreams, "upstream", nil, "serve URL's model ENGINE_MODEL as NAME with weights id ID: URL=ENGINE_MODEL=NAME@ID (repeatable)")
	f.StringVar(&p.denom, "denom", coin.Stable, "denom prices are in")
	f.Uint64Var(&p.perRequest, "price-request", 0, "price per request")
	f.Uint64Var(&p.per1K, "price-1k-tokens", 0, "price per 1000 output tokens")
	f.IntVar(&p.concurrency, "max-concurrency", 64, "requests in flight per model")
	f.DurationVar(&p.claimEvery, "claim-interval", 5*time.Second, "claim channel payments this often (priced models only)")
	f.DurationVar(&p.voucherSync, "voucher-sync", paygate.DefaultConfig().SyncEvery, "fsync the voucher log at most this long after an answer: a machine crash can lose that interval's vouchers, a process crash none; 0 makes each answer wait for its fsync")
	f.StringVar(&p.bond, "bond", "", "bond this much stake (like 100000000uagr) if less is bonded")
	f.StringVar(&cfg.Region, "region", cfg.Region, "region to register")
	f.StringVar(&cfg.Hardware, "hardware", cfg.Hardware, "hardware to register")
	f.DurationVar(&cfg.HeartbeatEvery, "heartbeat", cfg.HeartbeatEvery, "interval between heartbeats")
	f.StringVar(&p.jobPrice, "job-price", "", "take batch jobs, bidding this much per job (like 1000uusdc); see docs/jobs.md")
	f.IntVar(&p.jobParallel, "job-parallel", 1, "batch jobs to run at once")
	_ = start.MarkFlagRequired("key")
	return start
}

// config turns the flags into the provider's config: its key, chain,
// offers, home and payment and job settings.
func (p *providerStart) config(ctx context.Context, g *globals) (provider.Config, error) {
	cfg := p.cfg
	k, err := g.keys().Get(p.keyName)
	if err != nil {
		return cfg, err
	}
	c, err := g.dial()
	if err != nil {
		return cfg, err
	}
	if cfg.ChainID, err = c.ChainID(ctx); err != nil {
		return cfg, err
	}
	if p.bond != "" {
		b, err := coin.Parse(p.bond)
		if err != nil {
			return cfg, err
		}
		cfg.Bond = b.Amount
	}
	models := p.models
	if len(models) == 0 && len(p.upstreams) == 0 {
		models = []string{model.DigitsName, model.TinyLMName}
	}
	offer := func() provider.Offer {
		return provider.Offer{Denom: p.denom, PricePerRequest: p.perRequest, PricePer1KTokens: p.per1K, MaxConcurrency: p.concurrency}
	}
	for _, name := range models {
		// Weights stored by CID are paid for by the provider's key.
		m, err := loadModel(ctx, c, name, func() (*http.Client, io.Closer, error) { return g.storageReader(p.keyName, "1000000uusdc") })
		if err != nil {
			return cfg, err
		}
		o := offer()
		o.Model = m
		cfg.Offers = append(cfg.Offers, o)
	}
	for _, spec := range p.upstreams {
		u, err := parseUpstream(spec)
		if err != nil {
			return cfg, err
		}
		o := offer()
		o.Upstream = u
		cfg.Offers = append(cfg.Offers, o)
	}
	cfg.Key, cfg.Account, cfg.Chain = k.Private, k.Account, c
	cfg.Home = provider.Home(g.home, k.Name)
	if err := migrateProviderHome(g.home, k.Name, cfg.Home); err != nil {
		return cfg, err
	}
	if p.perRequest > 0 || p.per1K > 0 {
		pay := paygate.DefaultConfig()
		pay.ClaimInterval, pay.SyncEvery = p.claimEvery, p.voucherSync
		cfg.Payments = &pay
	}
	if p.jobPrice != "" {
		price, err := coin.Parse(p.jobPrice)
		if err != nil {
			return cfg, fmt.Errorf("--job-price: %w", err)
		}
		jobs := worker.DefaultConfig()
		jobs.Price, jobs.Parallel = price, p.jobParallel
		// Jobs whose data is on storage pay its nodes from the provider's key.
		if jobs.Fetch, p.reader, err = g.storageReader(p.keyName, "10000000uusdc"); err != nil {
			return cfg, fmt.Errorf("the payer for jobs' data on storage: %w", err)
		}
		cfg.Jobs = &jobs
	}
	cfg.Logger = logger()
	return cfg, nil
}

// migrateProviderHome moves a provider's files from the layout of earlier
// releases (<home>/provider/<key>-receipt-seq, -vouchers.log, -blobs) into
// its home, so an upgrade keeps its receipt counter and unclaimed payments.
func migrateProviderHome(agoraHome, key, home string) error {
	for old, now := range map[string]string{"-receipt-seq": "receipt-seq", "-vouchers.log": "vouchers.log", "-blobs": "blobs"} { // order does not matter
		from := filepath.Join(agoraHome, "provider", key+old)
		to := filepath.Join(home, now)
		if _, err := os.Stat(from); err != nil {
			continue
		}
		if _, err := os.Stat(to); err == nil {
			return fmt.Errorf("provider: both %s (old layout) and %s exist; keep one and start again", from, to)
		}
		if err := os.MkdirAll(home, 0o700); err != nil {
			return err
		}
		if err := os.Rename(from, to); err != nil {
			return fmt.Errorf("provider: move %s to %s: %w", from, to, err)
		}
	}
	return nil
}

// loadModel reads a model by built-in name, weights file, or the CID of
// a weights file stored on the storage network (fetched from the nodes
// its deal placed it on, every segment checked, paid for with the client
// reader opens).
func loadModel(ctx context.Context, c *client.Client, nameOrPath string, reader func() (*http.Client, io.Closer, error)) (*model.Model, error) {
	if _, err := os.Stat(nameOrPath); err == nil {
		return model.Load(nameOrPath)
	}
	if id, err := cid.Decode(nameOrPath); err == nil && id.Prefix().Codec == object.Codec {
		o, err := prover.Find(ctx, c, id)
		if err != nil {
			return nil, fmt.Errorf("--model %s: %w", id, err)
		}
		if o.Manifest.Size > model.MaxFileSize {
			return nil, fmt.Errorf("--model %s: %d bytes, more than a weights file's %d", id, o.Manifest.Size, model.MaxFileSize)
		}
		hc, closer, err := reader()
		if err != nil {
			return nil, fmt.Errorf("--model %s: %w", id, err)
		}
		defer closer.Close()
		var buf bytes.Buffer
		if err := o.Get(ctx, &transfer.Client{HTTP: hc}, &buf); err != nil {
			return nil, fmt.Errorf("--model %s: %w", id, err)
		}
		mod, err := model.Parse(buf.Bytes())
		if err != nil {
			return nil, fmt.Errorf("--model %s: %w", id, err)
		}
		return mod, nil
	}
	return model.Lookup(nameOrPath)
}

// parseUpstream reads URL=ENGINE_MODEL=NAME@ID.
func parseUpstream(spec string) (*provider.Upstream, error) {
	parts := strings.SplitN(spec, "=", 3)
	if len(parts) != 3 {
		return nil, fmt.Errorf("--upstream %q: want URL=ENGINE_MODEL=NAME@ID", spec)
	}
	name, id, ok := strings.Cut(parts[2], "@")
	if !ok || name == "" {
		return nil, fmt.Errorf("--upstream %q: want NAME@ID after the engine's model name", spec)
	}
	if err := providerpb.ValidModelID(id); err != nil {
		return nil, fmt.Errorf("--upstream %q: %w (the id is the sha256 of the weights the engine serves: sha256sum FILE)", spec, err)
	}
	return &provider.Upstream{URL: parts[0], Engine: parts[1], Name: name, ID: id}, nil
}
