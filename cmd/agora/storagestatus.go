package main

import (
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"github.com/ipfs/go-cid"
	"github.com/spf13/cobra"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/storage/storagepb"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/progress"
)

// segmentStatus is one segment's pieces as the chain sees them this epoch.
type segmentStatus struct {
	Segment uint32 `json:"segment"`
	// Proven is how many of its pieces answered this epoch's challenge
	// (or, while the epoch's window is open, the last epoch's).
	Proven    int `json:"proven"`
	Live      int `json:"live"`
	Pending   int `json:"pending"`
	Repairing int `json:"repairing"`
	Lost      int `json:"lost"`
}

type storageStatus struct {
	Deal     string          `json:"deal_id"`
	CID      string          `json:"cid"`
	Size     uint64          `json:"size,string"`
	K        uint32          `json:"k"`
	N        uint32          `json:"n"`
	Epoch    int64           `json:"epoch,string"`
	Last     int64           `json:"last_epoch,string"`
	Escrow   uint64          `json:"escrow,string"`
	Paid     uint64          `json:"paid_proofs,string"`
	Repaired uint64          `json:"paid_repairs,string"`
	Repairs  uint32          `json:"repairs"`
	Denom    string          `json:"denom"`
	Safe     bool            `json:"safe"` // every segment has k pieces proven
	Segments []segmentStatus `json:"segments"`
}

func statusOf(r *storagepb.QueryDealResponse, id cid.Cid, height int64) storageStatus {
	d := r.Deal
	st := storageStatus{Deal: strconv.FormatUint(d.Id, 10), CID: id.String(), Size: d.Size, K: d.K, N: d.N, Epoch: r.Epoch.Number, Last: d.LastEpoch,
		Escrow: d.Escrow, Paid: d.PaidProofs, Repaired: d.PaidRepairs, Repairs: d.Repairs, Denom: d.Denom, Safe: true}
	// While this epoch's window is open, pieces may not have answered yet:
	// the last epoch's proofs are what is known.
	since := r.Epoch.Number
	if height <= r.Epoch.WindowEnd {
		since--
	}
	st.Segments = make([]segmentStatus, d.Segments)
	for i := range st.Segments {
		st.Segments[i].Segment = uint32(i)
	}
	for _, pi := range r.Pieces {
		s := &st.Segments[pi.Piece.Segment]
		switch pi.Piece.Status {
		case storagepb.PieceStatus_PIECE_STATUS_LIVE:
			s.Live++
		case storagepb.PieceStatus_PIECE_STATUS_PENDING:
			s.Pending++
		case storagepb.PieceStatus_PIECE_STATUS_REPAIRING:
			s.Repairing++
		case storagepb.PieceStatus_PIECE_STATUS_LOST:
			s.Lost++
		}
		if pi.Piece.Status == storagepb.PieceStatus_PIECE_STATUS_LIVE && pi.Piece.ProvedEpoch >= since {
			s.Proven++
		}
	}
	for _, s := range st.Segments {
		st.Safe = st.Safe && s.Proven >= int(d.K)
	}
	return st
}

func storageStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status CID",
		Short: "Say, per segment, how many of a stored file's pieces the chain saw proven this epoch",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := cid.Decode(args[0])
			if err != nil {
				return fmt.Errorf("%q is not a CID (agora storage put prints one): %w", args[0], err)
			}
			c, err := g.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			r, err := client.Ask(cmd.Context(), c, storagepb.QueryDeal, &storagepb.QueryDealRequest{Cid: id.Bytes()})
			if err != nil {
				return fmt.Errorf("%s: %w", id, err)
			}
			chain, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			st := statusOf(r, id, chain.Height)
			return g.emit(cmd.OutOrStdout(), st, func(w io.Writer) {
				safe := "every segment has k pieces proven"
				if !st.Safe {
					safe = "NOT every segment has k pieces proven"
				}
				fmt.Fprintf(w, "deal %s: %s, %s, %d-of-%d, epoch %d of %d; %s\n", st.Deal, st.CID, progress.Bytes(st.Size), st.K, st.N, st.Epoch, st.Last, safe)
				fmt.Fprintf(w, "escrow %d%s: %d paid for proofs, %d for %d repairs\n", st.Escrow, st.Denom, st.Paid, st.Repaired, st.Repairs)
				tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "SEGMENT\tPROVEN\tLIVE\tPENDING\tREPAIRING\tLOST")
				for _, s := range st.Segments {
					fmt.Fprintf(tw, "%d\t%d/%d\t%d\t%d\t%d\t%d\n", s.Segment, s.Proven, st.N, s.Live, s.Pending, s.Repairing, s.Lost)
				}
				tw.Flush()
			})
		},
	}
}

func storageLsCmd(g *globals) *cobra.Command {
	var from, owner string
	cmd := &cobra.Command{
		Use:   "ls [--from KEY | --owner ADDRESS]",
		Short: "List the files a key stores under open deals",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var a addr.Address
			var err error
			if owner != "" {
				a, err = g.parseAddr(owner)
			} else {
				k, kerr := g.keys().Get(from)
				if kerr != nil {
					return kerr
				}
				a = k.Address()
			}
			if err != nil {
				return err
			}
			c, err := g.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			r, err := client.Ask(cmd.Context(), c, storagepb.QueryDeals, &storagepb.QueryDealsRequest{Owner: a.String()})
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), r, func(w io.Writer) {
				if len(r.Deals) == 0 {
					fmt.Fprintf(w, "%s stores nothing under an open deal (agora storage put FILE)\n", a)
					return
				}
				tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "DEAL\tCID\tSIZE\tCODING\tEPOCHS\tPAID")
				for _, d := range r.Deals {
					id, _ := cid.Cast(d.Cid)
					fmt.Fprintf(tw, "%d\t%s\t%s\t%d-of-%d\t%d..%d\t%d%s\n", d.Id, id, progress.Bytes(d.Size), d.K, d.N, d.FirstEpoch, d.LastEpoch, d.PaidProofs+d.PaidRepairs, d.Denom)
				}
				tw.Flush()
			})
		},
	}
	cmd.Flags().StringVar(&from, "from", "alice", "the key whose deals to list")
	cmd.Flags().StringVar(&owner, "owner", "", "list this address's deals instead")
	return cmd
}
