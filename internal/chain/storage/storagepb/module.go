package storagepb

import (
	"fmt"
	"math/bits"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/provider/providerpb"
)

// Name is the module's name and store prefix.
const Name = "storage"

// Escrow holds the deals' escrowed payments.
var Escrow = addr.Module("storage/escrow")

// GiB is the unit prices are quoted in: a price per byte would round to
// zero for any piece a node would store for a fraction of a unit.
const GiB = 1 << 30

// DefaultParams are a new chain's params. With 200 ms blocks an epoch is
// 4 s and its answers are due within 2 s; a real network would choose
// epochs of an hour, which governance can set.
func DefaultParams() *Params {
	return &Params{EpochBlocks: 20, WindowBlocks: 10, MinStake: 100_000_000, MissSlashBps: 100, SuspendEpochs: 5, ExcludeAfter: 10,
		RepairMarginBps: 10_000, RepairPricePerGib: 1_000_000, RepairReserveBps: 2_000, MaxManifestBytes: 60 << 10,
		MaxDurationEpochs: 1_000_000, MaxAnswers: 64, MaxNodes: 1_000, AcceptEpochs: 3,
		ProbesPerEpoch: 4, RebutBlocks: 10}
}

// Per returns ceil(size × price / GiB): what size bytes cost at a price
// per GiB, never zero for a non-zero price, so every stored piece earns
// something. ok is false on overflow.
func Per(size, price uint64) (uint64, bool) {
	hi, lo := bits.Mul64(size, price)
	lo, carry := bits.Add64(lo, GiB-1, 0)
	hi += carry
	if hi >= GiB {
		return 0, false
	}
	return hi<<34 | lo>>30, true
}

// PieceID packs a piece's (deal, segment, index) into the id its agenda
// entries carry: 8 bits of index (n <= 256), 20 of segment (at most 2^20
// segments), the rest the deal.
func PieceID(deal uint64, segment, index uint32) uint64 {
	return deal<<28 | uint64(segment)<<8 | uint64(index)
}

// SplitPieceID is PieceID's inverse.
func SplitPieceID(id uint64) (deal uint64, segment, index uint32) {
	return id >> 28, uint32(id>>8) & (1<<20 - 1), uint32(id & 0xff)
}

// MaxDealID is the largest deal id PieceID can pack.
const MaxDealID = 1<<36 - 1

func (m *MsgRegisterNode) Signer() string { return m.Operator }

func (m *MsgRegisterNode) ValidateBasic() error {
	if _, err := bankpb.ParseAddr("operator", m.Operator); err != nil {
		return err
	}
	if err := providerpb.ValidEndpoint(m.Endpoint); err != nil {
		return fmt.Errorf("storage: endpoint %q must be an http(s) URL of at most 256 bytes: %w", m.Endpoint, codes.ErrInvalidRequest)
	}
	if len(m.Region) > 64 {
		return fmt.Errorf("storage: region is at most 64 bytes: %w", codes.ErrInvalidRequest)
	}
	if m.Capacity == 0 {
		return fmt.Errorf("storage: capacity must be positive (--quota): %w", codes.ErrInvalidRequest)
	}
	if m.RetrievalPricePerGib > 0 && !coin.ValidDenom(m.RetrievalDenom) || m.RetrievalPricePerGib == 0 && m.RetrievalDenom != "" {
		return fmt.Errorf("storage: retrieval price %d%s: give a price and its denom (--price 100000uusdc), or neither to serve for free: %w", m.RetrievalPricePerGib, m.RetrievalDenom, codes.ErrInvalidRequest)
	}
	return nil
}

func (m *MsgCreateDeal) Signer() string { return m.Owner }

func (m *MsgCreateDeal) ValidateBasic() error {
	if _, err := bankpb.ParseAddr("owner", m.Owner); err != nil {
		return err
	}
	if !coin.ValidDenom(m.Denom) {
		return fmt.Errorf("storage: %q is not a denom: %w", m.Denom, codes.ErrInvalidRequest)
	}
	switch {
	case m.DurationEpochs < 1:
		return fmt.Errorf("storage: a deal lasts at least one epoch (--duration): %w", codes.ErrInvalidRequest)
	case m.PricePerGibEpoch == 0:
		return fmt.Errorf("storage: price_per_gib_epoch must be positive: nodes are paid per proof: %w", codes.ErrInvalidAmount)
	case len(m.Manifest) > MaxManifestBytes:
		return fmt.Errorf("storage: a %d-byte manifest is over %d: %w", len(m.Manifest), MaxManifestBytes, codes.ErrInvalidRequest)
	}
	if _, err := ParseManifest(m.Manifest); err != nil {
		return fmt.Errorf("storage: %v: %w", err, codes.ErrInvalidRequest)
	}
	return nil
}

func (m *MsgProve) Signer() string { return m.Node }

func (m *MsgProve) ValidateBasic() error {
	if _, err := bankpb.ParseAddr("node", m.Node); err != nil {
		return err
	}
	if len(m.Answers) == 0 {
		return fmt.Errorf("storage: a proof carries at least one answer: %w", codes.ErrInvalidRequest)
	}
	for i, a := range m.Answers {
		if len(a.Leaf) == 0 || len(a.Leaf) > MaxLeafSize || len(a.Path) > 64 {
			return fmt.Errorf("storage: answer %d: a leaf of 1 to %d bytes and a path of at most 64 hashes: %w", i, MaxLeafSize, codes.ErrInvalidRequest)
		}
		for _, h := range a.Path {
			if len(h) != 32 {
				return fmt.Errorf("storage: answer %d: every path hash is 32 bytes: %w", i, codes.ErrInvalidRequest)
			}
		}
	}
	return nil
}

func (m *MsgReportProbes) Signer() string { return m.Prober }

func (m *MsgReportProbes) ValidateBasic() error {
	if _, err := bankpb.ParseAddr("prober", m.Prober); err != nil {
		return err
	}
	if len(m.Results) == 0 || len(m.Results) > 256 {
		return fmt.Errorf("storage: a report carries 1 to 256 results: %w", codes.ErrInvalidRequest)
	}
	return nil
}

func (m *MsgRebut) Signer() string { return m.Node }

func (m *MsgRebut) ValidateBasic() error {
	if _, err := bankpb.ParseAddr("node", m.Node); err != nil {
		return err
	}
	return (&MsgProve{Node: m.Node, Answers: []*Answer{{Leaf: m.Leaf, Path: m.Path}}}).ValidateBasic()
}

// ProbeDomain separates probe draws from every other hash.
const ProbeDomain = "agora/storage/probe/v1"

// The storage module's queries. QueryDeals and QueryAssigned answer at
// most 1,000 entries.
var (
	QueryNode     = module.Query[*QueryNodeRequest, *QueryNodeResponse]{Path: "/storage/node"}
	QueryNodes    = module.Query[*QueryNodesRequest, *QueryNodesResponse]{Path: "/storage/nodes"}
	QueryDeal     = module.Query[*QueryDealRequest, *QueryDealResponse]{Path: "/storage/deal"}
	QueryDeals    = module.Query[*QueryDealsRequest, *QueryDealsResponse]{Path: "/storage/deals"}
	QueryAssigned = module.Query[*QueryAssignedRequest, *QueryAssignedResponse]{Path: "/storage/assigned"}
	QueryEpoch    = module.Query[*QueryEpochRequest, *Epoch]{Path: "/storage/epoch"}
	QueryProbes   = module.Query[*QueryProbesRequest, *QueryProbesResponse]{Path: "/storage/probes"}
	QueryParams   = module.Query[*QueryParamsRequest, *Params]{Path: "/storage/params"}
)
