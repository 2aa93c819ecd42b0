package node

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	cmtcfg "github.com/cometbft/cometbft/config"
	"github.com/cometbft/cometbft/p2p"
	"github.com/cometbft/cometbft/privval"
	cmttypes "github.com/cometbft/cometbft/types"
	"github.com/spf13/viper"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/agoranet/agora/internal/chain"
	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/audit/auditpb"
	"github.com/agoranet/agora/internal/chain/auth/authpb"
	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/beacon/beaconpb"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/gov/govpb"
	"github.com/agoranet/agora/internal/chain/staking/stakingpb"
	"github.com/agoranet/agora/internal/chain/storage/storagepb"
)

// Ports are the loopback ports one node listens on.
type Ports struct {
	P2P, RPC int
}

// PortsFrom gives node i of a set the ports base+10*i (P2P) and +1 (RPC).
func PortsFrom(base, i int) Ports { return Ports{P2P: base + 10*i, RPC: base + 10*i + 1} }

// DefaultPorts are CometBFT's usual ports.
var DefaultPorts = Ports{P2P: 26656, RPC: 26657}

// CometConfig returns the CometBFT config of a node in home: loopback
// ports, the given block time, a kv tx index (for `agora query tx`).
func CometConfig(home, moniker string, ports Ports, blockTime time.Duration) *cmtcfg.Config {
	c := cmtcfg.DefaultConfig()
	c.SetRoot(home)
	c.Moniker = moniker
	c.P2P.ListenAddress = fmt.Sprintf("tcp://127.0.0.1:%d", ports.P2P)
	c.RPC.ListenAddress = fmt.Sprintf("tcp://127.0.0.1:%d", ports.RPC)
	c.P2P.AllowDuplicateIP = true // every testnet node is on 127.0.0.1
	c.P2P.AddrBookStrict = false
	ScaleTimeouts(c.Consensus, blockTime)
	c.Consensus.CreateEmptyBlocks = true
	c.TxIndex.Indexer = "kv"
	c.Mempool.Size = 50_000
	c.Mempool.MaxTxsBytes = 256 << 20
	c.Mempool.CacheSize = 100_000
	c.RPC.MaxOpenConnections = 2000
	c.RPC.MaxRequestBatchSize = 200 // load generators and SDKs batch broadcasts
	c.RPC.MaxSubscriptionClients = 200
	// A daemon follows several event streams over one connection (the
	// router's provider events, a payment gate's agent and session-key
	// events): CometBFT's default of 5 per client refused the sixth.
	c.RPC.MaxSubscriptionsPerClient = 32
	c.RPC.TimeoutBroadcastTxCommit = 30 * time.Second
	c.Instrumentation.Prometheus = false
	c.LogLevel = "error"
	return c
}

// ScaleTimeouts sets CometBFT's round timeouts for validators on one
// machine or one fast network, in proportion to the block time. A round
// whose proposer is down waits timeout_propose and then a prevote and a
// precommit step; CometBFT's defaults (3 s, 1 s, 1 s) suit validators
// across the internet, but on loopback a proposal arrives in milliseconds,
// and with them a dead devnet or testnet validator cost each of its turns
// 2-4 s. Here a dead proposer's turn costs about timeout_propose,
// max(block time, 200 ms) + 200 ms: 0.4 s at the devnet's 200 ms block
// time, 0.5 s at the testnet's 300 ms (the nil prevotes and precommits of
// the live validators then arrive at once). docs/chain.md gives values
// for production.
func ScaleTimeouts(c *cmtcfg.ConsensusConfig, blockTime time.Duration) {
	step := max(blockTime, 200*time.Millisecond)
	c.TimeoutPropose = step + 200*time.Millisecond
	c.TimeoutProposeDelta = 100 * time.Millisecond
	c.TimeoutPrevote = step / 2
	c.TimeoutPrevoteDelta = 100 * time.Millisecond
	c.TimeoutPrecommit = step / 2
	c.TimeoutPrecommitDelta = 100 * time.Millisecond
	c.TimeoutCommit = blockTime
}

// WriteHome creates the node's directories, config.toml, node key and
// validator key (each kept if it exists) and returns the validator's
// genesis entry.
func WriteHome(c *cmtcfg.Config) (cmttypes.GenesisValidator, error) {
	for _, d := range []string{filepath.Join(c.RootDir, "config"), c.DBDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return cmttypes.GenesisValidator{}, fmt.Errorf("node: %w", err)
		}
	}
	cmtcfg.WriteConfigFile(filepath.Join(c.RootDir, "config", "config.toml"), c)
	if _, err := p2p.LoadOrGenNodeKey(c.NodeKeyFile()); err != nil {
		return cmttypes.GenesisValidator{}, fmt.Errorf("node: node key: %w", err)
	}
	pv := privval.LoadOrGenFilePV(c.PrivValidatorKeyFile(), c.PrivValidatorStateFile())
	pub, err := pv.GetPubKey()
	if err != nil {
		return cmttypes.GenesisValidator{}, err
	}
	return cmttypes.GenesisValidator{Address: pub.Address(), PubKey: pub, Power: 10, Name: c.Moniker}, nil
}

// NodeID returns the P2P id of the node in a home, for persistent_peers.
func NodeID(c *cmtcfg.Config) (string, error) {
	k, err := p2p.LoadNodeKey(c.NodeKeyFile())
	if err != nil {
		return "", err
	}
	return string(k.ID()), nil
}

// Account is a genesis balance.
type Account struct {
	Address addr.Address
	Coins   []*coin.Coin
}

// Genesis describes a new chain.
type Genesis struct {
	ChainID string
	Time    time.Time
	// Validators are bonded at genesis out of their operators' balances;
	// the staking module chooses the set from them and later stake.
	Validators []Validator
	Accounts   []Account
	// Issuer may mint the stable denom (uusdc).
	Issuer addr.Address
	// Stakes are bonded at genesis out of the accounts' uagr.
	Stakes []Stake
	// ModelKeys are verifying keys the chain starts with.
	ModelKeys []ModelKey
	// Audit replaces the audit module's default params when set (tests
	// shorten the windows of key reviews).
	Audit *auditpb.Params
	// Staking replaces the staking module's default params when set
	// (tests shorten the signed-blocks window and the jail).
	Staking *stakingpb.Params
	// Gov replaces the gov module's default params when set (tests
	// shorten the periods).
	Gov *govpb.Params
	// Beacon replaces the beacon module's default params when set.
	Beacon *beaconpb.Params
	// Storage replaces the storage module's default params when set
	// (tests shorten the epochs).
	Storage *storagepb.Params
}

// Validator is a genesis validator: a node's consensus key (as WriteHome
// returns it) and the account that operates it and bonds its stake.
type Validator struct {
	Key      cmttypes.GenesisValidator
	Operator addr.Address
	// SelfBond is uagr out of the operator's genesis balance; the
	// validator's voting power is SelfBond / 10^6. 0 means DefaultSelfBond.
	SelfBond      uint64
	CommissionBps uint32
}

// DefaultSelfBond is a genesis validator's stake when none is given:
// voting power 10.
const DefaultSelfBond = 10_000_000

// ModelKey is a model's zk verifying key in genesis.
type ModelKey struct {
	ModelID      string
	VerifyingKey []byte
}

// Stake is uagr bonded at genesis.
type Stake struct {
	Address addr.Address
	Amount  uint64
}

// Doc builds the CometBFT genesis document with the Agora app state.
func (g Genesis) Doc() (*cmttypes.GenesisDoc, error) {
	if g.Issuer.IsZero() {
		return nil, fmt.Errorf("node: genesis needs a %s issuer", coin.Stable)
	}
	state := map[string]json.RawMessage{}
	for _, m := range chain.Modules() {
		state[m.Name()] = m.DefaultGenesis()
	}
	bg := &bankpb.Genesis{Params: &bankpb.Params{Denoms: []*bankpb.Denom{{Name: coin.Native}, {Name: coin.Stable, Issuer: g.Issuer.String()}}}}
	for _, a := range g.Accounts {
		bg.Balances = append(bg.Balances, &bankpb.GenesisBalance{Address: a.Address.String(), Coins: a.Coins})
	}
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(bg)
	if err != nil {
		return nil, err
	}
	state[bankpb.Name] = b
	sg := &stakingpb.Genesis{Params: stakingpb.DefaultParams()}
	if g.Staking != nil {
		sg.Params = g.Staking
	}
	var vals []cmttypes.GenesisValidator
	for _, v := range g.Validators {
		if v.Operator.IsZero() {
			return nil, fmt.Errorf("node: genesis validator %s needs an operator account to bond its stake", v.Key.Name)
		}
		bond := v.SelfBond
		if bond == 0 {
			bond = DefaultSelfBond
		}
		sg.Validators = append(sg.Validators, &stakingpb.GenesisValidator{Operator: v.Operator.String(), ConsensusPubkey: v.Key.PubKey.Bytes(),
			SelfBond: bond, CommissionBps: v.CommissionBps, Moniker: v.Key.Name})
		k := v.Key
		k.Power = int64(bond / stakingpb.PowerReduction)
		vals = append(vals, k)
	}
	for _, st := range g.Stakes {
		sg.Bonds = append(sg.Bonds, &stakingpb.GenesisBond{Staker: st.Address.String(), Amount: st.Amount})
	}
	state[stakingpb.Name], err = protojson.MarshalOptions{UseProtoNames: true}.Marshal(sg)
	if err != nil {
		return nil, err
	}
	ap := authpb.DefaultParams()
	state[authpb.Name], err = protojson.MarshalOptions{UseProtoNames: true}.Marshal(&authpb.Genesis{Params: ap})
	if err != nil {
		return nil, err
	}
	if g.Beacon != nil {
		state[beaconpb.Name], err = protojson.MarshalOptions{UseProtoNames: true}.Marshal(&beaconpb.Genesis{Params: g.Beacon})
		if err != nil {
			return nil, err
		}
	}
	if g.Storage != nil {
		state[storagepb.Name], err = protojson.MarshalOptions{UseProtoNames: true}.Marshal(&storagepb.Genesis{Params: g.Storage})
		if err != nil {
			return nil, err
		}
	}
	if g.Gov != nil {
		state[govpb.Name], err = protojson.MarshalOptions{UseProtoNames: true}.Marshal(&govpb.Genesis{Params: g.Gov})
		if err != nil {
			return nil, err
		}
	}
	ag := &auditpb.Genesis{Params: g.Audit}
	for _, k := range g.ModelKeys {
		ag.ModelKeys = append(ag.ModelKeys, &auditpb.GenesisKey{ModelId: k.ModelID, VerifyingKey: k.VerifyingKey})
	}
	state[auditpb.Name], err = protojson.MarshalOptions{UseProtoNames: true}.Marshal(ag)
	if err != nil {
		return nil, err
	}
	// CometBFT fills blocks up to the same gas limit the app enforces.
	cp := cmttypes.DefaultConsensusParams()
	cp.Block.MaxGas = int64(ap.BlockGasLimit)
	appState, err := json.MarshalIndent(state, "", "  ")
	if err != nil {
		return nil, err
	}
	doc := &cmttypes.GenesisDoc{
		ChainID:         g.ChainID,
		GenesisTime:     g.Time,
		InitialHeight:   1,
		ConsensusParams: cp,
		Validators:      vals,
		AppState:        appState,
	}
	return doc, doc.ValidateAndComplete()
}

// ValidChainID checks a chain-id a user typed.
func ValidChainID(id string) error {
	if id == "" || len(id) > 50 || strings.ContainsAny(id, " \t\n/") {
		return fmt.Errorf("node: chain-id %q must be 1 to 50 characters with no spaces or '/'", id)
	}
	return nil
}

func httpURL(listen string) string {
	return "http://" + strings.TrimPrefix(listen, "tcp://")
}

// LoadCometConfig reads <home>/config/config.toml, as WriteHome and
// agora init wrote it.
func LoadCometConfig(home string) (*cmtcfg.Config, error) {
	path := filepath.Join(home, "config", "config.toml")
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no node config at %s: run `agora init --home %s --chain-id ID` first", path, home)
	}
	v := viper.New()
	v.SetConfigFile(path)
	if err := v.ReadInConfig(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	c := cmtcfg.DefaultConfig()
	if err := v.Unmarshal(c); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	c.SetRoot(home)
	return c, c.ValidateBasic()
}
