package node

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	cmtcfg "github.com/cometbft/cometbft/config"

	"github.com/agoranet/agora/internal/chain"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/keyring"
)

// DevnetChainID is the devnet's chain-id.
const DevnetChainID = "agora-devnet-1"

// DevKeys are the devnet's funded keys. Their seeds are derived from their
// names, so every devnet has the same addresses and the docs can name them.
// They are public: never send real value to them.
var DevKeys = []string{"alice", "bob", "issuer"}

// DevFunds is what each dev key holds at genesis.
var DevFunds = []*coin.Coin{coin.New(coin.Native, 1_000_000_000_000), coin.New(coin.Stable, 1_000_000_000_000)}

// DevSeed returns the seed of a well-known dev key.
func DevSeed(name string) []byte {
	s := sha256.Sum256([]byte("agora devnet key " + name))
	return s[:]
}

// DevnetConfig configures the one-process devnet.
type DevnetConfig struct {
	// Home holds the devnet's state and keyring.
	Home string
	// Reset wipes Home first.
	Reset bool
	// BasePort is the P2P port; the RPC listens on BasePort+1.
	BasePort int
	// BlockTime is the pause after each block.
	BlockTime time.Duration
	// Logger receives the devnet's logs; nil discards them.
	Logger *slog.Logger
}

// DefaultDevnetConfig returns the devnet a newcomer gets.
func DefaultDevnetConfig(home string) DevnetConfig {
	return DevnetConfig{Home: home, BasePort: DefaultPorts.P2P, BlockTime: 200 * time.Millisecond}
}

// Validate checks the config.
func (c DevnetConfig) Validate() error {
	if c.Home == "" {
		return errors.New("devnet: no home directory")
	}
	if c.BasePort <= 0 || c.BasePort > 65000 {
		return fmt.Errorf("devnet: base port %d out of range", c.BasePort)
	}
	if c.BlockTime <= 0 {
		return fmt.Errorf("devnet: block time must be positive")
	}
	return nil
}

// Devnet is a running devnet.
type Devnet struct {
	cfg     DevnetConfig
	Node    *Node
	Keyring *keyring.Keyring
}

// StartDevnet creates the devnet's home on first use (or after Reset) and
// starts it. A restart keeps the chain's state.
func StartDevnet(cfg DevnetConfig) (*Devnet, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	comet := CometConfig(cfg.Home, "devnet", Ports{P2P: cfg.BasePort, RPC: cfg.BasePort + 1}, cfg.BlockTime)
	comet.P2P.PexReactor = false // a devnet has no peers to discover
	if cfg.Reset {
		if err := wipeHome(cfg.Home); err != nil {
			return nil, err
		}
	}
	kr := keyring.Open(filepath.Join(cfg.Home, "keyring"))
	if _, err := os.Stat(comet.GenesisFile()); errors.Is(err, os.ErrNotExist) {
		if err := initDevnet(comet, kr); err != nil {
			return nil, err
		}
	}
	// Rewrite the config each start so flags (ports, block time) apply.
	if _, err := WriteHome(comet); err != nil {
		return nil, err
	}
	n, err := Start(Config{Comet: comet, App: chain.DefaultConfig(), Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	return &Devnet{cfg: cfg, Node: n, Keyring: kr}, nil
}

func initDevnet(comet *cmtcfg.Config, kr *keyring.Keyring) error {
	val, err := WriteHome(comet)
	if err != nil {
		return err
	}
	g := Genesis{ChainID: DevnetChainID, Time: time.Now().UTC().Truncate(time.Second)}
	g.Validators = append(g.Validators, val)
	for _, name := range DevKeys {
		k, err := kr.Get(name)
		if errors.Is(err, keyring.ErrNotFound) {
			k, err = kr.ImportSeed(name, DevSeed(name))
		}
		if err != nil {
			return err
		}
		g.Accounts = append(g.Accounts, Account{Address: k.Address(), Coins: DevFunds})
		if name == "issuer" {
			g.Issuer = k.Address()
		}
	}
	doc, err := g.Doc()
	if err != nil {
		return err
	}
	return doc.SaveAs(comet.GenesisFile())
}

// wipeHome deletes a devnet home, refusing a directory that does not look
// like one, so a mistyped --home cannot delete someone's files.
func wipeHome(home string) error {
	entries, err := os.ReadDir(home)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	allowed := map[string]bool{"config": true, "data": true, "keyring": true, "providers": true, "gateway": true}
	for _, e := range entries {
		if !allowed[e.Name()] {
			return fmt.Errorf("devnet: refusing to --reset %s: it holds %q, which a devnet home does not", home, e.Name())
		}
	}
	return os.RemoveAll(home)
}

// Stop stops everything the devnet started.
func (d *Devnet) Stop() error { return d.Node.Stop() }

// ChainID is the devnet's chain-id.
func (d *Devnet) ChainID() string { return DevnetChainID }

// Banner is what `agora devnet` prints once it is up.
func (d *Devnet) Banner() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Agora devnet is running.\n\n")
	fmt.Fprintf(&b, "  chain-id  %s\n", DevnetChainID)
	fmt.Fprintf(&b, "  RPC       %s\n", d.Node.RPC())
	fmt.Fprintf(&b, "  home      %s\n\n", d.cfg.Home)
	fmt.Fprintf(&b, "Funded keys (in %s):\n", d.Keyring.Dir())
	for _, name := range DevKeys {
		if k, err := d.Keyring.Get(name); err == nil {
			fmt.Fprintf(&b, "  %-8s %s\n", name, k.Address())
		}
	}
	fmt.Fprintf(&b, "\nTry:\n  agora tx send alice $(agora keys show bob --address --home %[1]s) 1000uagr --home %[1]s\n", d.cfg.Home)
	fmt.Fprintf(&b, "  agora query balance $(agora keys show bob --address --home %[1]s)\n\nCtrl-C stops the devnet; its state is kept for the next start (--reset wipes it).\n", d.cfg.Home)
	return b.String()
}
