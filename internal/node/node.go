// Package node wires an Agora chain node: CometBFT consensus embedded
// in-process with the Agora ABCI application, its home directory and
// genesis. What starts a whole network on top of it lives in
// internal/devnet.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	cmtcfg "github.com/cometbft/cometbft/config"
	cmtnode "github.com/cometbft/cometbft/node"
	"github.com/cometbft/cometbft/p2p"
	"github.com/cometbft/cometbft/privval"
	"github.com/cometbft/cometbft/proxy"

	"github.com/agoranet/agora/internal/chain"
	"github.com/agoranet/agora/internal/keyring"
)

// Config is what a node needs to run.
type Config struct {
	// Comet is the CometBFT configuration; its RootDir is the node home.
	Comet *cmtcfg.Config
	// App configures the state machine; an empty Dir means
	// <home>/data/state.
	App chain.Config
	// Logger receives node and consensus logs; nil discards them.
	Logger *slog.Logger
	// Operator, when set, is the key of the account that operates this
	// node's validator: the node takes its part in the randomness beacon
	// with it (commits and reveals), as a validator must or be slashed.
	Operator *keyring.Key
	// Application replaces the Agora app with another ABCI application.
	// Only benchmarks set it, to run CometBFT's kvstore example under the
	// very same node setup as Agora.
	Application abci.Application
}

// Validate checks that the home holds what a node needs.
func (c Config) Validate() error {
	if c.Comet == nil {
		return errors.New("node: no CometBFT config")
	}
	if err := c.Comet.ValidateBasic(); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	if _, err := os.Stat(c.Comet.GenesisFile()); err != nil {
		return fmt.Errorf("node: no genesis at %s: run `agora init --home %s` first", c.Comet.GenesisFile(), c.Comet.RootDir)
	}
	return c.App.Validate()
}

// Node is a running validator or full node.
type Node struct {
	cmt *cmtnode.Node
	app *chain.App // nil when Config.Application replaced it
	cfg Config
	// The node's own duties as a validator (the beacon), stopped first.
	stop context.CancelFunc
	wg   sync.WaitGroup
}

// Start opens the state, starts CometBFT and returns once the node runs.
// It replays any blocks the state has not applied, so a node killed at any
// moment restarts to the same app hash.
func Start(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.App.Dir == "" {
		cfg.App.Dir = filepath.Join(cfg.Comet.DBDir(), "state")
	}
	cfg.App.Logger = cfg.Logger.With("module", "app")
	var app *chain.App
	var creator proxy.ClientCreator
	if cfg.Application != nil {
		creator = proxy.NewLocalClientCreator(cfg.Application)
	} else {
		var err error
		if app, err = chain.New(cfg.App); err != nil {
			return nil, err
		}
		creator = newClientCreator(app)
	}
	closeApp := func() {
		if app != nil {
			app.Close()
		}
	}
	c := cfg.Comet
	nodeKey, err := p2p.LoadOrGenNodeKey(c.NodeKeyFile())
	if err != nil {
		closeApp()
		return nil, fmt.Errorf("node: node key: %w", err)
	}
	pv := privval.LoadOrGenFilePV(c.PrivValidatorKeyFile(), c.PrivValidatorStateFile())
	n, err := cmtnode.NewNode(c, pv, nodeKey,
		creator,
		cmtnode.DefaultGenesisDocProviderFunc(c),
		cmtcfg.DefaultDBProvider,
		cmtnode.DefaultMetricsProvider(c.Instrumentation),
		cmtLogger{cfg.Logger.With("module", "comet")},
	)
	if err != nil {
		closeApp()
		return nil, fmt.Errorf("node: %w", err)
	}
	if err := n.Start(); err != nil {
		closeApp()
		return nil, fmt.Errorf("node: start: %w", err)
	}
	node := &Node{cmt: n, app: app, cfg: cfg, stop: func() {}}
	if cfg.Operator != nil && app != nil {
		ctx, cancel := context.WithCancel(context.Background())
		node.stop = cancel
		if err := runBeacon(ctx, &node.wg, node.RPC(), cfg.Operator, c.RootDir, cfg.Logger.With("module", "beacon")); err != nil {
			cancel()
			return nil, errors.Join(err, node.Stop())
		}
	}
	return node, nil
}

// RPC is the node's CometBFT RPC URL.
func (n *Node) RPC() string { return httpURL(n.cfg.Comet.RPC.ListenAddress) }

// Height is the latest committed block height.
func (n *Node) Height() int64 { return n.cmt.BlockStore().Height() }

// Stop stops consensus and closes the state.
func (n *Node) Stop() error {
	n.stop()
	n.wg.Wait()
	err := n.cmt.Stop()
	n.cmt.Wait()
	if n.app != nil {
		err = errors.Join(err, n.app.Close())
	}
	return err
}

// Halted is closed when the node's app could not execute a block (an
// upgrade this binary lacks, or a fault): consensus has stopped, and
// HaltErr says why. It is never closed for a replaced Application.
func (n *Node) Halted() <-chan struct{} {
	if n.app == nil {
		return nil
	}
	return n.app.Halted()
}

// HaltErr is why the node halted, once Halted is closed.
func (n *Node) HaltErr() error {
	if n.app == nil {
		return nil
	}
	return n.app.HaltErr()
}

// WaitForHeight blocks until the node has committed height h: stored the
// block and applied it to the app's state, so queries see it (the block
// store counts a block before the app has executed it).
func (n *Node) WaitForHeight(h int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for n.Height() < h || n.appHeight() < h {
		if time.Now().After(deadline) {
			return fmt.Errorf("node: height %d not reached in %s (at %d)", h, timeout, n.Height())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// appHeight is the last height the app committed, asked through the ABCI
// query connection (and so behind CometBFT's mutex, like every ABCI call).
func (n *Node) appHeight() int64 {
	info, err := n.cmt.ProxyApp().Query().Info(context.Background(), proxy.RequestInfo)
	if err != nil {
		return 0
	}
	return info.LastBlockHeight
}
