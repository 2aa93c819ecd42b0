package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/agoranet/agora/internal/chain"
	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/beacon/beaconpb"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/provider/providerpb"
	"github.com/agoranet/agora/internal/chain/staking/stakingpb"
	"github.com/agoranet/agora/internal/chain/tx"
	"github.com/agoranet/agora/internal/client"
)

func queryCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "query", Aliases: []string{"q"}, Short: "Read chain state"}
	cmd.AddCommand(queryBalanceCmd(g), queryAccountCmd(g), querySupplyCmd(g), queryTxCmd(g), queryStakeCmd(g), queryDelegationsCmd(g), queryProvidersCmd(g), queryProviderCmd(g), queryParamsCmd(g), queryBeaconCmd(g))
	return cmd
}

func queryBalanceCmd(g *globals) *cobra.Command {
	var prove bool
	balance := &cobra.Command{
		Use: "balance ADDR [--prove]", Short: "An address's balances", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := g.parseAddr(args[0])
			if err != nil {
				return err
			}
			c, err := g.dial()
			if err != nil {
				return err
			}
			if prove {
				return g.provenBalances(cmd, c, a)
			}
			r, err := c.Balances(cmd.Context(), a)
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), r, func(w io.Writer) {
				fmt.Fprintln(w, r.Address)
				if len(r.Balances) == 0 {
					fmt.Fprintln(w, "  (no balances)")
				}
				for _, b := range r.Balances {
					fmt.Fprintf(w, "  %s\n", coin.String(b))
				}
			})
		},
	}
	balance.Flags().BoolVar(&prove, "prove", false, "check each balance with a Merkle proof against the block header's app hash")
	return balance
}

func queryAccountCmd(g *globals) *cobra.Command {
	account := &cobra.Command{
		Use: "account ADDR", Short: "An account's sequence and public key", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := g.parseAddr(args[0])
			if err != nil {
				return err
			}
			c, err := g.dial()
			if err != nil {
				return err
			}
			acc, err := c.Account(cmd.Context(), a)
			if err != nil {
				return err
			}
			out := struct {
				Address  string `json:"address"`
				PubKey   string `json:"pubkey"`
				Sequence string `json:"sequence"`
			}{acc.Address, hex.EncodeToString(acc.PublicKey), strconv.FormatUint(acc.Sequence, 10)}
			return g.emit(cmd.OutOrStdout(), out, func(w io.Writer) {
				fmt.Fprintf(w, "address   %s\npubkey    %s\nsequence  %s\n", out.Address, out.PubKey, out.Sequence)
			})
		},
	}
	return account
}

// queryParamsCmd reads any module's params: every module with params
// answers /MODULE/params with its agora.MODULE.v1.Params.
func queryParamsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "params MODULE", Short: "A module's params (the names a gov params proposal uses)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			mod := args[0]
			var names []string
			for _, m := range chain.Modules() {
				if _, ok := m.(module.Params); ok {
					names = append(names, m.Name())
				}
			}
			if !slices.Contains(names, mod) {
				return fmt.Errorf("module %q has no params; the modules with params are %s", mod, strings.Join(names, ", "))
			}
			mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName("agora." + mod + ".v1.Params"))
			if err != nil {
				return fmt.Errorf("module %s: %w", mod, err)
			}
			c, err := g.dial()
			if err != nil {
				return err
			}
			p := mt.New().Interface()
			if _, err := c.Query(cmd.Context(), "/"+mod+"/params", nil, p); err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), p, func(w io.Writer) {
				fields := p.ProtoReflect().Descriptor().Fields()
				for i := 0; i < fields.Len(); i++ {
					f := fields.Get(i)
					fmt.Fprintf(w, "%s.%s = %v\n", mod, f.Name(), p.ProtoReflect().Get(f).Interface())
				}
			})
		},
	}
}

func querySupplyCmd(g *globals) *cobra.Command {
	supply := &cobra.Command{
		Use: "supply", Short: "Total supply of each denom", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.dial()
			if err != nil {
				return err
			}
			r, err := c.Supply(cmd.Context())
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), r, func(w io.Writer) {
				for _, s := range r.Supply {
					fmt.Fprintln(w, coin.String(s))
				}
			})
		},
	}
	return supply
}

func queryTxCmd(g *globals) *cobra.Command {
	txq := &cobra.Command{
		Use: "tx HASH", Short: "A committed tx: result, signer, messages, events", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			hash, err := hex.DecodeString(strings.TrimPrefix(args[0], "0x"))
			if err != nil || len(hash) != 32 {
				return fmt.Errorf("%q is not a tx hash (64 hex digits)", args[0])
			}
			c, err := g.dial()
			if err != nil {
				return err
			}
			r, err := c.Tx(cmd.Context(), hash)
			if err != nil {
				return err
			}
			out, err := describeTx(r.Raw)
			if err != nil {
				return err
			}
			out.Hash, out.Height, out.Code, out.Log = fmt.Sprintf("%X", hash), r.Height, r.Result.Code, r.Result.Log
			for _, ev := range r.Result.Events {
				e := eventJSON{Type: ev.Type, Attributes: map[string]string{}}
				for _, a := range ev.Attributes {
					e.Attributes[a.Key] = a.Value
				}
				out.Events = append(out.Events, e)
			}
			return g.emit(cmd.OutOrStdout(), out, func(w io.Writer) {
				b, _ := json.MarshalIndent(out, "", "  ")
				fmt.Fprintln(w, string(b))
			})
		},
	}
	return txq
}

func queryStakeCmd(g *globals) *cobra.Command {
	stake := &cobra.Command{
		Use: "stake ADDR", Short: "Bonded and unbonding stake, slashes and jail", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := queryAddr(g, cmd, stakingpb.QueryStake, args[0])
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), r, func(w io.Writer) {
				s := r.Stake
				fmt.Fprintf(w, "%s\n  bonded     %duagr\n  unbonding  %duagr\n  slashed    %duagr\n", s.Staker, s.Bonded, s.Unbonding, s.Slashed)
				if s.JailedUntil > 0 {
					fmt.Fprintf(w, "  jailed until height %d\n", s.JailedUntil)
				}
				for _, u := range r.Unbondings {
					fmt.Fprintf(w, "  %duagr returns at height %d\n", u.Amount, u.CompletesAt)
				}
			})
		},
	}
	return stake
}

func queryProvidersCmd(g *globals) *cobra.Command {
	var model string
	var online bool
	providers := &cobra.Command{
		Use: "providers [--model NAME|ID] [--online]", Short: "Registered providers, their services, stake and status", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.dial()
			if err != nil {
				return err
			}
			r, err := client.Ask(cmd.Context(), c, providerpb.QueryProviders, &providerpb.QueryProvidersRequest{Model: model, OnlineOnly: online})
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), r, func(w io.Writer) {
				if len(r.Providers) == 0 {
					fmt.Fprintln(w, "no providers")
				}
				for _, p := range r.Providers {
					printProvider(w, p)
				}
			})
		},
	}
	providers.Flags().StringVar(&model, "model", "", "only providers of this model (name or id)")
	providers.Flags().BoolVar(&online, "online", false, "only providers that are online")
	return providers
}

func queryProviderCmd(g *globals) *cobra.Command {
	prov := &cobra.Command{
		Use: "provider ADDR", Short: "One provider", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := queryAddr(g, cmd, providerpb.QueryProvider, args[0])
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), r, func(w io.Writer) { printProvider(w, r) })
		},
	}
	return prov
}

type eventJSON struct {
	Type       string            `json:"type"`
	Attributes map[string]string `json:"attributes"`
}

type txDetail struct {
	Hash     string            `json:"hash"`
	Height   int64             `json:"height,string"`
	Code     uint32            `json:"code"`
	Log      string            `json:"log,omitempty"`
	Signer   string            `json:"signer"`
	Sequence string            `json:"sequence"`
	Fee      string            `json:"fee"`
	Memo     string            `json:"memo,omitempty"`
	Msgs     []json.RawMessage `json:"msgs"`
	Events   []eventJSON       `json:"events"`
}

// describeTx decodes a tx for display, without checking its signature.
func describeTx(raw []byte) (*txDetail, error) {
	app, err := chain.New(chain.Config{})
	if err != nil {
		return nil, err
	}
	defer app.Close()
	d, err := tx.Decode(raw, app.Resolve)
	if err != nil {
		return nil, err
	}
	out := &txDetail{Signer: d.Signer.String(), Sequence: strconv.FormatUint(d.Body.Sequence, 10), Fee: coin.String(d.Body.Fee), Memo: d.Body.Memo}
	for _, m := range d.Msgs {
		b, err := protojson.Marshal(m)
		if err != nil {
			return nil, err
		}
		wrapped, _ := json.Marshal(map[string]json.RawMessage{"@type": json.RawMessage(strconv.Quote(string(proto.MessageName(m)))), "value": b})
		out.Msgs = append(out.Msgs, wrapped)
	}
	return out, nil
}

// provenBalances prints each denom's balance checked by Merkle proof.
func (g *globals) provenBalances(cmd *cobra.Command, c *client.Client, a addr.Address) error {
	supply, err := c.Supply(cmd.Context())
	if err != nil {
		return err
	}
	type proven struct {
		Denom  string `json:"denom"`
		Amount string `json:"amount"`
		Height int64  `json:"height,string"`
	}
	out := struct {
		Address  string   `json:"address"`
		Balances []proven `json:"balances"`
		Proven   bool     `json:"proven"`
	}{Address: a.String(), Proven: true}
	for _, s := range supply.Supply {
		n, h, err := c.ProvenBalance(cmd.Context(), a, s.Denom)
		if err != nil {
			return err
		}
		out.Balances = append(out.Balances, proven{s.Denom, strconv.FormatUint(n, 10), h})
	}
	return g.emit(cmd.OutOrStdout(), out, func(w io.Writer) {
		fmt.Fprintln(w, a)
		for _, b := range out.Balances {
			fmt.Fprintf(w, "  %s%s  (proven against the app hash of height %d)\n", b.Amount, b.Denom, b.Height)
		}
	})
}

// emitProto prints a protobuf answer as JSON (protojson, field names as in
// the .proto files) or as text.
func printProvider(w io.Writer, p *providerpb.ProviderInfo) {
	pr := p.Provider
	status := strings.ToLower(strings.TrimPrefix(pr.Status.String(), "STATUS_"))
	fmt.Fprintf(w, "%s  %s  %s  stake %duagr  last heartbeat %d\n", pr.Operator, status, pr.Endpoint, p.Stake, pr.LastHeartbeat)
	for _, s := range p.Services {
		fmt.Fprintf(w, "  %-18s %s…  %s/request + %s/1k tokens\n", s.ModelName, s.ModelId[:12], coin.String(s.PricePerRequest), coin.String(s.PricePer_1KTokens))
	}
}

func queryBeaconCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "beacon [EPOCH]", Short: "The randomness beacon: the epoch under way and the newest beacon, or one epoch's beacon and commitments", Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.dial()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if len(args) == 0 {
				r, err := client.Ask(ctx, c, beaconpb.QueryStatus, &beaconpb.QueryStatusRequest{})
				if err != nil {
					return err
				}
				return g.emit(cmd.OutOrStdout(), r, func(w io.Writer) {
					e := r.Epoch
					fmt.Fprintf(w, "epoch %d under way: heights %d to %d\n", e.Number, e.StartHeight, e.StartHeight+e.Blocks-1)
					if r.Latest == nil {
						fmt.Fprintln(w, "no final beacon yet")
						return
					}
					printBeacon(w, r.Latest)
				})
			}
			epoch, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil || epoch < 0 {
				return fmt.Errorf("epoch %q is not a number of 0 or more; agora query beacon shows the epoch under way", args[0])
			}
			// A final beacon keeps its counts; the commitments are kept
			// only while they are made and revealed.
			b, err := client.Ask(ctx, c, beaconpb.QueryBeacon, &beaconpb.QueryBeaconRequest{Epoch: epoch})
			if err != nil && !errors.Is(err, codes.ErrNotFound) {
				return err
			}
			cs, err := client.Ask(ctx, c, beaconpb.QueryCommitments, &beaconpb.QueryCommitmentsRequest{Epoch: epoch})
			if err != nil {
				return err
			}
			if b.GetBeacon() == nil && len(cs.Commitments) == 0 {
				return fmt.Errorf("epoch %d has no final beacon and no commitments (a future epoch, or one older than the beacons kept); agora query beacon shows the epoch under way", epoch)
			}
			// One JSON object, each part in the proto JSON every query prints.
			out := map[string]any{}
			if b.GetBeacon() != nil {
				bj, err := protoJSON(b.Beacon)
				if err != nil {
					return err
				}
				out["beacon"] = json.RawMessage(bj)
			}
			cj := []json.RawMessage{}
			for _, c := range cs.Commitments {
				j, err := protoJSON(c)
				if err != nil {
					return err
				}
				cj = append(cj, j)
			}
			out["commitments"] = cj
			return g.emit(cmd.OutOrStdout(), out, func(w io.Writer) {
				if b.GetBeacon() != nil {
					printBeacon(w, b.Beacon)
				} else {
					fmt.Fprintf(w, "epoch %d: no final beacon yet\n", epoch)
				}
				for _, c := range cs.Commitments {
					state := "committed"
					if c.Value != nil {
						state = "revealed"
					}
					fmt.Fprintf(w, "  %s %s (committed at height %d)\n", c.Validator, state, c.Height)
				}
			})
		},
	}
}

func printBeacon(w io.Writer, b *beaconpb.Beacon) {
	fmt.Fprintf(w, "beacon of epoch %d: %x\n  final at height %d; %d commitments, %d reveals\n", b.Epoch, b.Value, b.FinalHeight, b.Commitments, b.Reveals)
}
