package prover

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"

	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/keyring"
	"github.com/agoranet/agora/internal/paygate"
	"github.com/agoranet/agora/internal/storage/node"
	"github.com/agoranet/agora/internal/storage/transfer"
	"github.com/agoranet/agora/sdk"
)

// PayConfig is how a node on chain takes payment for its reads and pays
// other nodes for its own: the pieces a repair rebuilds from, the
// segments of a whole object it relays.
type PayConfig struct {
	Chain   *client.Client
	ChainID string
	NodeURL string // the chain's RPC, for the payer's wallet
	Key     *keyring.Key
	Dir     string // the voucher log and the payer's journal go here
	// Denom and PerGiB are its retrieval price (PerGiB 0: free reads).
	Denom  string
	PerGiB uint64
	// Spend is the most it pays other nodes, in Denom; Deposit what each
	// of its channels to them locks.
	Spend, Deposit uint64
	Log            *slog.Logger
}

// Payments are a node's two sides of retrieval payments.
type Payments struct {
	Price *node.Price // nil: reads are free
	Payer *sdk.Payer
	HTTP  *http.Client // pays with Payer
}

// OpenPayments opens the node's paygate (with a price) and its payer.
func OpenPayments(cfg PayConfig) (*Payments, error) {
	if cfg.Denom == "" && cfg.PerGiB > 0 {
		return nil, errors.New("prover: a retrieval price needs its denom")
	}
	p := &Payments{}
	if cfg.PerGiB > 0 {
		gc := paygate.DefaultConfig()
		gc.ChainID, gc.Key, gc.Account, gc.Chain, gc.Logger = cfg.ChainID, cfg.Key.Private, cfg.Key.Account, cfg.Chain, cfg.Log
		gc.LogPath = filepath.Join(cfg.Dir, "vouchers.log")
		g, err := paygate.Open(gc)
		if err != nil {
			return nil, fmt.Errorf("prover: the node's paygate: %w", err)
		}
		p.Price = &node.Price{Gate: g, Denom: cfg.Denom, PerGiB: cfg.PerGiB}
	}
	denom := cfg.Denom
	if denom == "" {
		denom = coin.Stable
	}
	var err error
	p.Payer, err = transfer.OpenPayer(cfg.Key, cfg.NodeURL, filepath.Join(cfg.Dir, "payer.journal"), sdk.Budget{Denom: denom, Max: cfg.Spend, Deposit: cfg.Deposit})
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("prover: the node's payer: %w", err)
	}
	p.HTTP = transfer.Paying(p.Payer)
	return p, nil
}

// Close claims what the gate is owed and closes the payer's journal.
func (p *Payments) Close() error {
	var errs []error
	if p.Price != nil {
		errs = append(errs, p.Price.Gate.Close())
	}
	if p.Payer != nil {
		errs = append(errs, p.Payer.Close())
	}
	return errors.Join(errs...)
}
