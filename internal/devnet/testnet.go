package devnet

import (
	"errors"
	"fmt"
	"github.com/agoranet/agora/internal/chain/beacon/beaconpb"
	"github.com/agoranet/agora/internal/chain/gov/govpb"
	"github.com/agoranet/agora/internal/chain/staking/stakingpb"
	"github.com/agoranet/agora/internal/keyring"
	"github.com/agoranet/agora/internal/node"
	cmtcfg "github.com/cometbft/cometbft/config"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// TestnetConfig describes a multi-validator testnet on loopback.
type TestnetConfig struct {
	Validators int
	Out        string
	ChainID    string
	// BasePort: node i listens on BasePort+10i (P2P) and +1 (RPC).
	BasePort  int
	BlockTime time.Duration
	// Accounts are funded at genesis besides the dev keys.
	Accounts []node.Account
	// FullNodes are extra nodes (node<Validators> …) that are not
	// validators at genesis; their operator keys are funded, so each can
	// declare a validator later.
	FullNodes int
	// Staking replaces the staking params when set.
	Staking *stakingpb.Params
	// Gov replaces the gov params when set.
	Gov *govpb.Params
	// Beacon replaces the beacon params when set.
	Beacon *beaconpb.Params
}

// Validate checks the config.
func (c TestnetConfig) Validate() error {
	if c.Validators < 1 || c.Validators > 100 {
		return fmt.Errorf("testnet: %d validators; want 1 to 100", c.Validators)
	}
	if c.FullNodes < 0 || c.FullNodes > 100 {
		return fmt.Errorf("testnet: %d full nodes; want 0 to 100", c.FullNodes)
	}
	if c.BasePort <= 0 || c.BasePort+10*(c.Validators+c.FullNodes) > 65535 {
		return fmt.Errorf("testnet: base port %d out of range", c.BasePort)
	}
	return node.ValidChainID(c.ChainID)
}

// InitTestnet writes one node home per validator under Out (node0 …),
// with a shared genesis, each node peered with all others, and the dev
// keys funded and present in every node's keyring. Node i's validator is
// operated by the key "operator" in its keyring. Start each node with
// `agora start --home OUT/nodeI`. It returns each node's config.
func InitTestnet(c TestnetConfig) ([]*cmtcfg.Config, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(c.Out); err == nil {
		if entries, _ := os.ReadDir(c.Out); len(entries) > 0 {
			return nil, fmt.Errorf("testnet: %s is not empty; pick a new --out", c.Out)
		}
	}
	g := node.Genesis{ChainID: c.ChainID, Time: time.Now().UTC().Truncate(time.Second), Staking: c.Staking, Gov: c.Gov, Beacon: c.Beacon}
	var peers []string
	var configs []*cmtcfg.Config
	for i := 0; i < c.Validators+c.FullNodes; i++ {
		home := filepath.Join(c.Out, fmt.Sprintf("node%d", i))
		cfg := node.CometConfig(home, fmt.Sprintf("node%d", i), node.PortsFrom(c.BasePort, i), c.BlockTime)
		cfg.P2P.PexReactor = false // every peer is listed in persistent_peers
		val, err := node.WriteHome(cfg)
		if err != nil {
			return nil, err
		}
		id, err := node.NodeID(cfg)
		if err != nil {
			return nil, err
		}
		// Each node's validator is operated by a key of its own, in its
		// keyring as "operator".
		kr := keyring.Open(filepath.Join(cfg.RootDir, "keyring"))
		op, err := kr.Get("operator")
		if errors.Is(err, keyring.ErrNotFound) {
			op, err = kr.ImportSeed("operator", Seed(fmt.Sprintf("node%d", i)))
		}
		if err != nil {
			return nil, err
		}
		if i < c.Validators {
			g.Validators = append(g.Validators, node.Validator{Key: val, Operator: op.Address()})
		}
		g.Accounts = append(g.Accounts, node.Account{Address: op.Address(), Coins: Funds})
		peers = append(peers, fmt.Sprintf("%s@127.0.0.1:%d", id, node.PortsFrom(c.BasePort, i).P2P))
		configs = append(configs, cfg)
	}
	for i, cfg := range configs {
		var others []string
		for j, p := range peers {
			if j != i {
				others = append(others, p)
			}
		}
		cfg.P2P.PersistentPeers = strings.Join(others, ",")
		if _, err := node.WriteHome(cfg); err != nil {
			return nil, err
		}
		kr := keyring.Open(filepath.Join(cfg.RootDir, "keyring"))
		for _, name := range Keys {
			k, err := kr.ImportSeed(name, Seed(name))
			if err != nil && !errors.Is(err, keyring.ErrExists) {
				return nil, err
			}
			if i == 0 {
				g.Accounts = append(g.Accounts, node.Account{Address: k.Address(), Coins: Funds})
				if name == "issuer" {
					g.Issuer = k.Address()
				}
			}
		}
	}
	g.Accounts = append(g.Accounts, c.Accounts...)
	doc, err := g.Doc()
	if err != nil {
		return nil, err
	}
	for _, cfg := range configs {
		if err := doc.SaveAs(cfg.GenesisFile()); err != nil {
			return nil, err
		}
	}
	return configs, nil
}
