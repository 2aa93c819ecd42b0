// Package devnet builds the world: a one-process network (a chain node,
// providers, a facilitator and a gateway, with funded dev keys, a dev agent
// and zero-knowledge keys) and the homes of multi-process testnets. It is
// the one place that starts everything; daemons never import it, and only
// cmd/agora, tests and benchmarks do.
package devnet

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/agoranet/agora/internal/chain"
	"github.com/agoranet/agora/internal/chain/agent/agentpb"
	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/durable"
	"github.com/agoranet/agora/internal/facilitator"
	"github.com/agoranet/agora/internal/gateway"
	"github.com/agoranet/agora/internal/httpserve"
	"github.com/agoranet/agora/internal/keyring"
	"github.com/agoranet/agora/internal/model"
	"github.com/agoranet/agora/internal/node"
	"github.com/agoranet/agora/internal/paygate"
	"github.com/agoranet/agora/internal/provider"
	"github.com/agoranet/agora/internal/route"
	"github.com/agoranet/agora/internal/sandbox"
	storagenode "github.com/agoranet/agora/internal/storage/node"
	"github.com/agoranet/agora/internal/storage/piecestore"
	"github.com/agoranet/agora/internal/storage/prover"
	"github.com/agoranet/agora/internal/storage/transfer"
	"github.com/agoranet/agora/internal/tlspin"
	"github.com/agoranet/agora/internal/worker"
	"github.com/agoranet/agora/internal/zk"
	"github.com/agoranet/agora/sdk"
	cmtcfg "github.com/cometbft/cometbft/config"
	"golang.org/x/sync/errgroup"
)

// ChainID is the devnet's chain-id.
const ChainID = "agora-devnet-1"

// Keys are the devnet's funded keys. Their seeds are derived from their
// names, so every devnet has the same addresses and the docs can name them.
// They are public: never send real value to them.
var Keys = []string{"alice", "bob", "issuer", "provider1", "provider2", "provider3", "modelowner", "agent", "facilitator", "gateway", "validator",
	"storage1", "storage2", "storage3", "storage4", "storage5", "storage6", "storage7", "storage8"}

// APIKey is the devnet gateway's API key, credited with APICredit
// uusdc. It is public: the devnet is for trying things.
const (
	APIKey    = "agk_devnet"
	APICredit = 1_000_000_000
)

// The dev agent: alice's agent account, funded by her, with this policy
// (uusdc): at most AgentPerTx per transaction (a channel deposit is
// one), AgentPerPeriod per 300 blocks (a minute), AgentLifetime in all.
const (
	AgentPerTx     = 100_000
	AgentPerPeriod = 200_000
	AgentLifetime  = 5_000_000
	// AgentFees is the uagr the dev agent may pay in tx fees in its life.
	AgentFees = 100_000_000
)

// Devnet prices, in uusdc: per request and per 1000 output tokens. The
// built-in models' owner (the modelowner key) gets RoyaltyBps of every
// payment for tiny-lm.
const (
	PricePerRequest = 100
	PricePer1K      = 1000
	RoyaltyBps      = 500
)

// JobPrice is what devnet provider i (0-based) bids per batch job, in
// uusdc: provider1 is the cheapest, provider3 the standby that takes over
// a job another provider drops.
func JobPrice(i int) uint64 { return 1000 + 100*uint64(i) }

// ProviderStake is what each devnet provider has bonded at genesis.
const ProviderStake = 1_000_000_000

// RetrievalPrice is what the devnet's storage nodes charge readers, in
// uusdc per GiB: 0.1 USDC, about what a cloud charges for egress.
const RetrievalPrice = 100_000

// Funds is what each dev key holds at genesis.
var Funds = []*coin.Coin{coin.New(coin.Native, 1_000_000_000_000), coin.New(coin.Stable, 1_000_000_000_000)}

// Seed returns the seed of a well-known dev key.
func Seed(name string) []byte {
	s := sha256.Sum256([]byte("agora devnet key " + name))
	return s[:]
}

// Config configures the one-process devnet.
type Config struct {
	// Home holds the devnet's state and keyring.
	Home string
	// Reset wipes Home first.
	Reset bool
	// BasePort is the P2P port; the RPC listens on BasePort+1.
	BasePort int
	// BlockTime is the pause after each block.
	BlockTime time.Duration
	// Providers is how many providers to run (keys provider1…; at most 3),
	// on ports BasePort+10, +11, ….
	Providers int
	// Paid makes the providers charge the devnet prices over x402 payment
	// channels; otherwise they answer for free.
	Paid bool
	// ClaimInterval is how often providers claim their payments (0: 2 s).
	ClaimInterval time.Duration
	// InterimEvery is how many tokens the providers' streams send between
	// interim receipts (0: the providers' default).
	InterimEvery int
	// TLS serves the providers and the gateway over HTTPS with a
	// self-signed certificate made on first use (Devnet.TLSCert); each
	// provider registers its key on chain, and the gateway reaches them
	// by it.
	TLS bool
	// StorageNodes is how many storage nodes to run (1 GiB each under
	// <home>/storage), on ports BasePort+70, +71, …; their URLs are listed
	// in <home>/storage/nodes.txt for agora storage.
	StorageNodes int
	// RetrievalPrice is what the storage nodes charge readers, in uusdc
	// per GiB (0: reads are free); DefaultConfig sets RetrievalPrice.
	RetrievalPrice uint64
	// Logger receives the devnet's logs; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns the devnet a newcomer gets.
func DefaultConfig(home string) Config {
	return Config{Home: home, BasePort: node.DefaultPorts.P2P, BlockTime: 200 * time.Millisecond, Providers: 3, Paid: true, StorageNodes: 8, RetrievalPrice: RetrievalPrice}
}

// Validate checks the config.
func (c Config) Validate() error {
	if c.Home == "" {
		return errors.New("devnet: no home directory")
	}
	if c.BasePort <= 0 || c.BasePort > 65000 {
		return fmt.Errorf("devnet: base port %d out of range", c.BasePort)
	}
	if c.BlockTime <= 0 {
		return fmt.Errorf("devnet: block time must be positive")
	}
	if c.Providers < 0 || c.Providers > 3 {
		return fmt.Errorf("devnet: %d providers; the devnet has keys for 0 to 3", c.Providers)
	}
	if c.StorageNodes < 0 || c.StorageNodes > 10 {
		return fmt.Errorf("devnet: %d storage nodes; want 0 to 10 (ports BasePort+70 to +79)", c.StorageNodes)
	}
	return nil
}

// Devnet is a running devnet.
type Devnet struct {
	cfg         Config
	Node        *node.Node
	Keyring     *keyring.Keyring
	Providers   []*provider.Server
	Facilitator *facilitator.Server
	Gateway     *gateway.Server
	// Storage are the storage nodes (docs/storage.md).
	Storage []*httpserve.Server
	stores  []*piecestore.Store
	// provers answer the chain for the storage nodes; stopProvers ends them.
	provers     sync.WaitGroup
	stopProvers func()
	payments    []*prover.Payments // the storage nodes' paygates and payers
	readers     []*sdk.Payer       // the providers' payers for jobs' data on storage
	// Prover proves digits-mlp answers; its verifying key is on chain.
	Prover *zk.System
	// sandbox runs every provider's batch jobs, sharing compiled code.
	sandbox *sandbox.Sandbox
	// TLSCert and TLSKey are the PEM files the devnet serves HTTPS with
	// (Config.TLS): a client that trusts TLSCert reaches the gateway.
	TLSCert, TLSKey string
}

// Start creates the devnet's home on first use (or after Reset) and
// starts it. A restart keeps the chain's state.
func Start(cfg Config) (*Devnet, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	comet := node.CometConfig(cfg.Home, "devnet", node.Ports{P2P: cfg.BasePort, RPC: cfg.BasePort + 1}, cfg.BlockTime)
	comet.P2P.PexReactor = false // a devnet has no peers to discover
	if cfg.Reset {
		if err := Wipe(cfg.Home); err != nil {
			return nil, err
		}
	}
	kr := keyring.Open(filepath.Join(cfg.Home, "keyring"))
	prover, zkKey, err := loadZK(cfg.Home)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(comet.GenesisFile()); errors.Is(err, os.ErrNotExist) {
		if err := initHome(comet, kr, zkKey); err != nil {
			return nil, err
		}
	}
	// Rewrite the config each start so flags (ports, block time) apply.
	if _, err := node.WriteHome(comet); err != nil {
		return nil, err
	}
	// The devnet's validator takes its part in the beacon, as any does.
	op, err := kr.Get("validator")
	if err != nil {
		return nil, err
	}
	n, err := node.Start(node.Config{Comet: comet, App: chain.DefaultConfig(), Logger: cfg.Logger, Operator: op})
	if err != nil {
		return nil, err
	}
	d := &Devnet{cfg: cfg, Node: n, Keyring: kr, sandbox: sandbox.New(), Prover: prover}
	// Gas is estimated against committed state: wait for the first block.
	if err := n.WaitForHeight(1, 30*time.Second); err != nil {
		d.Stop()
		return nil, err
	}
	if err := d.ensureAgent(); err != nil {
		d.Stop()
		return nil, err
	}
	if err := d.ensureTLS(); err != nil {
		d.Stop()
		return nil, err
	}
	if err := d.startProviders(); err != nil {
		d.Stop()
		return nil, err
	}
	if err := d.startFacilitator(); err != nil {
		d.Stop()
		return nil, err
	}
	if err := d.startGateway(); err != nil {
		d.Stop()
		return nil, err
	}
	if err := d.startStorage(); err != nil {
		d.Stop()
		return nil, err
	}
	return d, nil
}

// startStorage runs the storage nodes, each with a piece store of its own
// and its operator key (storage1…), registered on chain and proving its
// pieces every epoch; their URLs are listed in <home>/storage/nodes.txt.
func (d *Devnet) startStorage() error {
	if d.cfg.StorageNodes == 0 {
		return nil
	}
	dir := filepath.Join(d.cfg.Home, "storage")
	var urls []string
	var provers []*prover.Prover
	var clients []*client.Client // one a node, closed with the devnet
	for i := range d.cfg.StorageNodes {
		store, err := piecestore.Open(filepath.Join(dir, fmt.Sprintf("node%d", i+1)), 1<<30)
		if err != nil {
			return err
		}
		d.stores = append(d.stores, store)
		c, err := client.New(d.Node.RPC())
		if err != nil {
			return err
		}
		clients = append(clients, c)
		k, kerr := d.Keyring.Get(fmt.Sprintf("storage%d", i+1))
		opts := storagenode.Options{Objects: prover.Objects(c, nil)}
		var pay *prover.Payments
		if kerr == nil {
			// Readers pay the node per GiB, and it pays the others for
			// what it reads (repairs, whole objects it relays).
			pay, err = prover.OpenPayments(prover.PayConfig{Chain: c, ChainID: ChainID, NodeURL: d.Node.RPC(), Key: k, Dir: filepath.Join(dir, fmt.Sprintf("node%d", i+1)),
				Denom: coin.Stable, PerGiB: d.cfg.RetrievalPrice, Spend: 10_000_000, Deposit: 1_000_000, Log: d.cfg.Logger.With("storage", i+1)})
			if err != nil {
				return fmt.Errorf("devnet: storage node %d: %w", i+1, err)
			}
			d.payments = append(d.payments, pay)
			opts = storagenode.Options{Objects: prover.Objects(c, pay.HTTP), Price: pay.Price}
		}
		s, err := httpserve.ListenWith(fmt.Sprintf("127.0.0.1:%d", d.cfg.BasePort+70+i), storagenode.Handler(store, opts), d.cfg.Logger, storagenode.ServeOptions())
		if err != nil {
			return fmt.Errorf("devnet: storage node %d: %w", i+1, err)
		}
		d.Storage = append(d.Storage, s)
		urls = append(urls, s.URL())
		if kerr != nil {
			// A home made before the storage module has no storage keys.
			d.cfg.Logger.Warn("devnet: storage node without a key: it serves pieces but is not on chain; agora devnet --reset makes the keys", "node", i+1)
			continue
		}
		pr := &prover.Prover{Chain: c, Key: k, Store: store, Endpoint: s.URL(), Region: "devnet", Capacity: 1 << 30,
			RetrievalPerGiB: d.cfg.RetrievalPrice, HTTP: pay.HTTP, Log: d.cfg.Logger.With("storage", i+1), Poll: d.cfg.BlockTime}
		if pr.RetrievalPerGiB > 0 {
			pr.RetrievalDenom = coin.Stable
		}
		provers = append(provers, pr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.stopProvers = func() {
		cancel()
		d.provers.Wait()
		for _, c := range clients {
			c.Close()
		}
	}
	// Registered at once, each with its own key, so no one waits for the
	// others' blocks.
	var wg sync.WaitGroup
	errs := make([]error, len(provers))
	for i, p := range provers {
		wg.Go(func() { errs[i] = p.Register(context.Background()) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("devnet: %w", err)
	}
	for _, p := range provers {
		d.provers.Go(func() { p.Run(ctx) })
	}
	return durable.Replace(filepath.Join(dir, "nodes.txt"), []byte(strings.Join(urls, "\n")+"\n"))
}

// loadZK gives the devnet zero-knowledge keys for digits-mlp: made once
// by a single-party setup (fine for a devnet, not for real value: see
// `agora zk setup` for a ceremony and docs/verification.md for how a real
// network accepts a key) and kept in <home>/zk. The verifying key goes
// into the devnet's genesis.
func loadZK(home string) (*zk.System, node.ModelKey, error) {
	m, err := model.Lookup(model.DigitsName)
	if err != nil {
		return nil, node.ModelKey{}, err
	}
	dir := filepath.Join(home, "zk")
	pk, vkPath := filepath.Join(dir, "digits-mlp.pk"), filepath.Join(dir, "digits-mlp.vk")
	var sys *zk.System
	if _, err := os.Stat(vkPath); err != nil {
		if sys, err = zk.Setup(m.MLP); err != nil {
			return nil, node.ModelKey{}, err
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, node.ModelKey{}, err
		}
		if err := sys.Save(pk, vkPath); err != nil {
			return nil, node.ModelKey{}, err
		}
	} else if sys, err = zk.Load(m.MLP, pk, vkPath); errors.Is(err, zk.ErrNotThisCircuit) {
		// The genesis holds the verifying key too, so new keys need a new
		// chain.
		return nil, node.ModelKey{}, fmt.Errorf("%w; this devnet's genesis holds its verifying key, so start it afresh: agora devnet --reset", err)
	} else if err != nil {
		return nil, node.ModelKey{}, err
	}
	vk, err := sys.VerifyingKey()
	if err != nil {
		return nil, node.ModelKey{}, err
	}
	return sys, node.ModelKey{ModelID: m.Manifest.ID, VerifyingKey: vk}, nil
}

// startGateway runs the gateway on BasePort+24 with the dev API key.
// ensureTLS makes the devnet's certificate on first use, with TLS.
func (d *Devnet) ensureTLS() error {
	if !d.cfg.TLS {
		return nil
	}
	dir := filepath.Join(d.cfg.Home, "tls")
	d.TLSCert, d.TLSKey = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if _, err := os.Stat(d.TLSCert); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	cert, err := tlspin.SelfSigned("127.0.0.1", "localhost")
	if err != nil {
		return err
	}
	return tlspin.WritePEM(cert, d.TLSCert, d.TLSKey)
}

func (d *Devnet) startGateway() error {
	k, err := d.Keyring.Get("gateway")
	if err != nil {
		return err
	}
	c, err := client.New(d.Node.RPC())
	if err != nil {
		return err
	}
	rc := route.DefaultConfig()
	rc.Refresh = time.Second
	cfg := gateway.Config{
		A2AModel: "agora/tiny-lm", Listen: fmt.Sprintf("127.0.0.1:%d", d.cfg.BasePort+24), Key: k.Private, Account: k.Account, ChainID: ChainID, Chain: c, NodeURL: d.Node.RPC(),
		Home: gateway.Home(d.cfg.Home), Denom: coin.Stable, Spend: 100_000_000_000, Deposit: 1_000_000, Route: rc, Logger: d.cfg.Logger.With("service", "gateway"),
		TLSCert: d.TLSCert, TLSKey: d.TLSKey,
	}
	ctx := context.Background()
	l, err := gateway.OpenLedger(ctx, cfg)
	if err != nil {
		return err
	}
	_, err = l.AddKey(ctx, APIKey, coin.Stable, APICredit)
	l.Close()
	if err != nil {
		return err
	}
	d.Gateway, err = gateway.Start(ctx, cfg)
	return err
}

// startFacilitator runs an x402 facilitator on BasePort+20.
func (d *Devnet) startFacilitator() error {
	k, err := d.Keyring.Get("facilitator")
	if err != nil {
		return err
	}
	c, err := client.New(d.Node.RPC())
	if err != nil {
		return err
	}
	// bob is the devnet's demo merchant: the facilitator settles for him
	// as well as for the registered providers.
	bob, err := d.Keyring.Get("bob")
	if err != nil {
		return err
	}
	d.Facilitator, err = facilitator.Start(facilitator.Config{Listen: fmt.Sprintf("127.0.0.1:%d", d.cfg.BasePort+20), Key: k.Private, Account: k.Account, Chain: c, ChainID: ChainID,
		StatePath: filepath.Join(d.cfg.Home, "facilitator.log"), Payees: []string{bob.Address().String()}, Logger: d.cfg.Logger})
	return err
}

// ensureAgent makes the agent key alice's agent on a new devnet, funded
// with uagr for fees and uusdc to spend.
func (d *Devnet) ensureAgent() error {
	if err := d.Node.WaitForHeight(1, 30*time.Second); err != nil {
		return err
	}
	c, err := client.New(d.Node.RPC())
	if err != nil {
		return err
	}
	ak, err := d.Keyring.Get("agent")
	if err != nil {
		return err
	}
	alice, err := d.Keyring.Get("alice")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = client.Ask(ctx, c, agentpb.QueryAgent, &agentpb.QueryAgentRequest{Address: ak.Address().String()})
	if err == nil {
		return nil
	}
	owner := alice.Address().String()
	_, err = c.Submit(ctx, alice, "devnet agent",
		&agentpb.MsgCreateAgent{Owner: owner, AgentKey: ak.Public(), Consent: ed25519.Sign(ak.Private, agentpb.ConsentBytes(ChainID, owner)),
			Policy: &agentpb.Policy{Denom: coin.Stable, MaxPerTx: AgentPerTx, MaxPerPeriod: AgentPerPeriod, PeriodBlocks: 300, MaxLifetime: AgentLifetime, FeeAllowance: AgentFees}},
		&bankpb.MsgSend{From: owner, To: ak.Address().String(), Amount: []*coin.Coin{coin.New(coin.Native, 1_000_000_000), coin.New(coin.Stable, 10_000_000)}})
	if err != nil {
		return fmt.Errorf("devnet: create the dev agent: %w", err)
	}
	return nil
}

// startProviders runs the devnet's providers in this process, serving the
// built-in models for free (payments come later), and registers them.
func (d *Devnet) startProviders() error {
	if d.cfg.Providers == 0 {
		return nil
	}
	chainClient, err := client.New(d.Node.RPC())
	if err != nil {
		return err
	}
	owner, err := d.Keyring.Get("modelowner")
	if err != nil {
		return err
	}
	var offers []provider.Offer
	for _, m := range model.Builtin() {
		o := provider.Offer{Model: m, Denom: coin.Stable}
		if m.MLP != nil {
			o.Prover = d.Prover
		}
		if d.cfg.Paid {
			o.PricePerRequest, o.PricePer1KTokens = PricePerRequest, PricePer1K
		}
		if m.LM != nil {
			o.Royalties = []provider.Royalty{{Recipient: owner.Address(), Bps: RoyaltyBps}}
		}
		offers = append(offers, o)
	}
	servers := make([]*provider.Server, d.cfg.Providers)
	var g errgroup.Group
	for i := range servers {
		k, err := d.Keyring.Get(fmt.Sprintf("provider%d", i+1))
		if err != nil {
			return err
		}
		cfg := provider.DefaultConfig()
		cfg.Listen = fmt.Sprintf("127.0.0.1:%d", d.cfg.BasePort+10+i)
		cfg.Key, cfg.Account = k.Private, k.Account
		cfg.ChainID = ChainID
		cfg.Offers = offers
		cfg.Home = provider.Home(d.cfg.Home, k.Name)
		cfg.Chain = chainClient
		cfg.Region = "devnet"
		cfg.TLSCert, cfg.TLSKey = d.TLSCert, d.TLSKey
		cfg.InterimEvery = d.cfg.InterimEvery
		pay := paygate.DefaultConfig()
		pay.ClaimInterval = 2 * time.Second
		if d.cfg.ClaimInterval > 0 {
			pay.ClaimInterval = d.cfg.ClaimInterval
		}
		cfg.Payments = &pay
		jobs := worker.DefaultConfig()
		jobs.Price, jobs.Sandbox = coin.New(coin.Stable, JobPrice(i)), d.sandbox
		jobs.Logger = d.cfg.Logger.With("provider", k.Name, "service", "jobs")
		// Jobs whose data is on storage pay its nodes from the provider's key.
		reader, err := transfer.OpenPayer(k, d.Node.RPC(), filepath.Join(cfg.Home, "storage-payer.journal"), sdk.Budget{Denom: coin.Stable, Max: 10_000_000, Deposit: 1_000_000})
		if err != nil {
			return err
		}
		d.readers = append(d.readers, reader)
		jobs.Fetch = transfer.Paying(reader)
		cfg.Jobs = &jobs
		cfg.Logger = d.cfg.Logger.With("provider", k.Name)
		s, err := provider.New(cfg)
		if err != nil {
			return err
		}
		g.Go(func() error {
			if err := s.Start(context.Background()); err != nil {
				return err
			}
			servers[i] = s
			return nil
		})
	}
	err = g.Wait()
	for _, s := range servers {
		if s != nil {
			d.Providers = append(d.Providers, s)
		}
	}
	return err
}

func initHome(comet *cmtcfg.Config, kr *keyring.Keyring, zkKey node.ModelKey) error {
	val, err := node.WriteHome(comet)
	if err != nil {
		return err
	}
	g := node.Genesis{ChainID: ChainID, Time: time.Now().UTC().Truncate(time.Second), ModelKeys: []node.ModelKey{zkKey}}
	for _, name := range Keys {
		k, err := kr.Get(name)
		if errors.Is(err, keyring.ErrNotFound) {
			k, err = kr.ImportSeed(name, Seed(name))
		}
		if err != nil {
			return err
		}
		g.Accounts = append(g.Accounts, node.Account{Address: k.Address(), Coins: Funds})
		if name == "issuer" {
			g.Issuer = k.Address()
		}
		if name == "agent" { // funded by alice when it becomes her agent
			g.Accounts = g.Accounts[:len(g.Accounts)-1]
		}
		if strings.HasPrefix(name, "provider") || strings.HasPrefix(name, "storage") {
			g.Stakes = append(g.Stakes, node.Stake{Address: k.Address(), Amount: ProviderStake})
		}
		if name == "validator" {
			g.Validators = append(g.Validators, node.Validator{Key: val, Operator: k.Address()})
		}
	}
	doc, err := g.Doc()
	if err != nil {
		return err
	}
	return doc.SaveAs(comet.GenesisFile())
}

// Wipe deletes a devnet home, refusing a directory that does not look
// like one, so a mistyped --home cannot delete someone's files.
func Wipe(home string) error {
	entries, err := os.ReadDir(home)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	allowed := map[string]bool{"config": true, "data": true, "keyring": true, "providers": true, "gateway": true, "zk": true, "storage": true, "tls": true, "devnet.log": true}
	for _, e := range entries {
		if !allowed[e.Name()] {
			return fmt.Errorf("devnet: refusing to --reset %s: it holds %q, which a devnet home does not", home, e.Name())
		}
	}
	return os.RemoveAll(home)
}

// Stop stops everything the devnet started.
func (d *Devnet) Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var errs []error
	for _, p := range d.Providers {
		errs = append(errs, p.Shutdown(ctx))
	}
	if d.Gateway != nil {
		errs = append(errs, d.Gateway.Shutdown(ctx))
	}
	if d.Facilitator != nil {
		errs = append(errs, d.Facilitator.Shutdown(ctx))
	}
	if d.stopProvers != nil {
		d.stopProvers()
	}
	for _, s := range d.Storage {
		errs = append(errs, s.Shutdown(ctx))
	}
	for _, p := range d.payments { // claims what the nodes' readers owe
		errs = append(errs, p.Close())
	}
	for _, p := range d.readers {
		errs = append(errs, p.Close())
	}
	for _, s := range d.stores {
		errs = append(errs, s.Close())
	}
	errs = append(errs, d.sandbox.Close(ctx))
	return errors.Join(append(errs, d.Node.Stop())...)
}

// ChainID is the devnet's chain-id.
func (d *Devnet) ChainID() string { return ChainID }

// Sandbox is the sandbox the devnet's providers run batch jobs in; tests
// share it with verifiers, or run a module once to have it compiled.
func (d *Devnet) Sandbox() *sandbox.Sandbox { return d.sandbox }

// Banner is what `agora devnet` prints once it is up.
func (d *Devnet) Banner() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Agora devnet is running.\n\n")
	if d.Gateway != nil {
		fmt.Fprintf(&b, "  gateway   %s/v1   (OpenAI API; API key %s)\n", d.Gateway.URL(), APIKey)
	}
	if d.TLSCert != "" {
		fmt.Fprintf(&b, "  tls cert  %s   (self-signed: curl --cacert it; NODE_EXTRA_CA_CERTS for Node)\n", d.TLSCert)
	}
	fmt.Fprintf(&b, "  chain-id  %s\n", ChainID)
	fmt.Fprintf(&b, "  RPC       %s\n", d.Node.RPC())
	if d.Facilitator != nil {
		fmt.Fprintf(&b, "  x402      %s (facilitator: /verify /settle /supported)\n", d.Facilitator.URL())
	}
	fmt.Fprintf(&b, "  home      %s\n\n", d.cfg.Home)
	if len(d.Providers) > 0 {
		if d.cfg.Paid {
			fmt.Fprintf(&b, "Providers (built-in models; %duusdc per request + %d per 1000 tokens, paid with x402):\n", PricePerRequest, PricePer1K)
		} else {
			fmt.Fprintf(&b, "Providers (built-in models, free; --paid makes them charge over x402):\n")
		}
		for _, p := range d.Providers {
			fmt.Fprintf(&b, "  %s  %s\n", p.URL(), p.Address())
		}
		fmt.Fprintln(&b)
	}
	if len(d.Storage) > 0 {
		fmt.Fprintf(&b, "Storage nodes (4-of-6 coding; pieces are not yet placed or proven by the chain):\n  %s … %s\n\n", d.Storage[0].URL(), d.Storage[len(d.Storage)-1].URL())
	}
	fmt.Fprintf(&b, "Funded keys (in %s):\n", d.Keyring.Dir())
	for _, name := range Keys {
		if k, err := d.Keyring.Get(name); err == nil {
			fmt.Fprintf(&b, "  %-10s %s\n", name, k.Address())
		}
	}
	nodeFlag := ""
	if d.cfg.BasePort != node.DefaultPorts.P2P {
		nodeFlag = " --node " + d.Node.RPC()
	}
	fmt.Fprintf(&b, "\nTry (with AGORA_HOME=%s):\n", d.cfg.Home)
	fmt.Fprintf(&b, "  agora tx send alice $(agora keys show bob --address) 1000uagr%s\n", nodeFlag)
	fmt.Fprintf(&b, "  agora query balance $(agora keys show bob --address)%s\n", nodeFlag)
	if d.Gateway != nil {
		fmt.Fprintf(&b, "  curl %s/v1/chat/completions -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' \\\n", d.Gateway.URL(), APIKey)
		fmt.Fprintf(&b, "    -d '{\"model\":\"agora/tiny-lm\",\"messages\":[{\"role\":\"user\",\"content\":\"ROMEO:\"}],\"max_tokens\":80}'\n")
	}
	if len(d.Providers) > 0 {
		fmt.Fprintf(&b, "  agora query providers%s\n", nodeFlag)
		if !d.cfg.Paid {
			fmt.Fprintf(&b, "  curl -si %s/v1/chat/completions -H 'Content-Type: application/json' \\\n", d.Providers[0].URL())
			fmt.Fprintf(&b, "    -d '{\"model\":\"agora/tiny-lm\",\"messages\":[{\"role\":\"user\",\"content\":\"ROMEO:\"}],\"max_tokens\":80,\"seed\":1}'\n")
		}
		if d.cfg.Paid {
			fmt.Fprintf(&b, "  agora pay --key agent --max 10000uusdc%s %s/v1/chat/completions \\\n", nodeFlag, d.Providers[0].URL())
			fmt.Fprintf(&b, "    -d '{\"model\":\"agora/tiny-lm\",\"messages\":[{\"role\":\"user\",\"content\":\"ROMEO:\"}],\"max_tokens\":80,\"seed\":1}'\n")
			fmt.Fprintf(&b, "  agora agent show $(agora keys show agent --address)%s\n", nodeFlag)
		}
		fmt.Fprintf(&b, "\nBatch jobs (the providers bid %d-%duusdc a job; see docs/jobs.md):\n", JobPrice(0), JobPrice(len(d.Providers)-1))
		fmt.Fprintf(&b, "  GOOS=wasip1 GOARCH=wasm go build -o digits.wasm ./examples/jobs/digits && go run ./examples/jobs/digits -gen 1000 > digits.in\n")
		fmt.Fprintf(&b, "  agora job submit digits.wasm --input digits.in --max-price 2000uusdc --wait --out digits.out%s\n", nodeFlag)
	}
	if len(d.Storage) > 0 {
		fmt.Fprintf(&b, "\nStorage (see docs/storage.md):\n")
		fmt.Fprintf(&b, "  CID=$(agora storage put FILE) && agora storage get $CID --out FILE.back\n")
	}
	fmt.Fprintf(&b, "\nCtrl-C stops the devnet; its state is kept for the next start (--reset wipes it).\n")
	return b.String()
}
