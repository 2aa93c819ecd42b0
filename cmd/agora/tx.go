package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/chain/staking/stakingpb"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/keyring"
)

func txCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "tx", Short: "Sign and broadcast a transaction, and wait for its block"}
	cmd.PersistentFlags().StringVar(&g.memo, "memo", "", "a note stored with the tx")
	send := &cobra.Command{
		Use: "send FROM_KEY TO_ADDR AMOUNT", Short: "Send coins (AMOUNT like 5000uagr or 5uagr,3uusdc)", Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			to, err := g.parseAddr(args[1])
			if err != nil {
				return err
			}
			amt, err := coin.ParseList(args[2])
			if err != nil {
				return err
			}
			return g.submit(cmd, args[0], func(from addr.Address) module.Msg {
				return &bankpb.MsgSend{From: from.String(), To: to.String(), Amount: amt}
			})
		},
	}
	multi := &cobra.Command{
		Use: "multisend FROM_KEY TO_ADDR=AMOUNT...", Short: "Send coins to many recipients in one tx", Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var outs []*bankpb.Output
			for _, a := range args[1:] {
				to, amount, ok := strings.Cut(a, "=")
				if !ok {
					return fmt.Errorf("%q: want TO_ADDR=AMOUNT", a)
				}
				t, err := g.parseAddr(to)
				if err != nil {
					return err
				}
				amt, err := coin.ParseList(amount)
				if err != nil {
					return err
				}
				outs = append(outs, &bankpb.Output{To: t.String(), Amount: amt})
			}
			return g.submit(cmd, args[0], func(from addr.Address) module.Msg {
				return &bankpb.MsgMultiSend{From: from.String(), Outputs: outs}
			})
		},
	}
	mint := &cobra.Command{
		Use: "mint ISSUER_KEY TO_ADDR AMOUNT", Short: "Mint a stable denom (issuer only)", Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			to, err := g.parseAddr(args[1])
			if err != nil {
				return err
			}
			c, err := coin.Parse(args[2])
			if err != nil {
				return err
			}
			return g.submit(cmd, args[0], func(from addr.Address) module.Msg {
				return &bankpb.MsgMint{Issuer: from.String(), To: to.String(), Amount: c}
			})
		},
	}
	burn := &cobra.Command{
		Use: "burn KEY AMOUNT", Short: "Destroy your own coins", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := coin.Parse(args[1])
			if err != nil {
				return err
			}
			return g.submit(cmd, args[0], func(from addr.Address) module.Msg {
				return &bankpb.MsgBurn{From: from.String(), Amount: c}
			})
		},
	}
	stake := func(use, short string, build func(from addr.Address, c *coin.Coin) module.Msg) *cobra.Command {
		return &cobra.Command{
			Use: use + " KEY AMOUNT", Short: short, Args: cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := coin.Parse(args[1])
				if err != nil {
					return err
				}
				return g.submit(cmd, args[0], func(from addr.Address) module.Msg { return build(from, c) })
			},
		}
	}
	bond := stake("bond", "Bond uagr as stake (providers need the minimum stake)", func(from addr.Address, c *coin.Coin) module.Msg {
		return &stakingpb.MsgBond{Staker: from.String(), Amount: c}
	})
	unbond := stake("unbond", "Start returning stake; it arrives after the unbonding period", func(from addr.Address, c *coin.Coin) module.Msg {
		return &stakingpb.MsgUnbond{Staker: from.String(), Amount: c}
	})
	cmd.AddCommand(send, multi, mint, burn, bond, unbond)
	cmd.AddCommand(delegationCmds(g)...)
	return cmd
}

// parseAddr reads an address, or the name of a key in the keyring.
func (g *globals) parseAddr(s string) (addr.Address, error) {
	if !strings.HasPrefix(s, "agora1") {
		if k, err := g.keys().Get(s); err == nil {
			return k.Address(), nil
		}
	}
	a, err := addr.Parse(s)
	if err != nil {
		return a, fmt.Errorf("%v (addresses look like agora1…; `agora keys show NAME --address` prints one)", err)
	}
	return a, nil
}

type txJSON struct {
	Hash      string `json:"hash"`
	Height    int64  `json:"height,string"`
	GasWanted uint64 `json:"gas_wanted,string"`
	GasUsed   uint64 `json:"gas_used,string"`
	Fee       string `json:"fee"`
	// Responses are the messages' typed responses, in protojson: the ids
	// a message created ({"channel_id":"7"}), or {} for none.
	Responses []json.RawMessage `json:"responses"`
}

// commitWait is how long a command waits for its tx to commit: a chain
// that makes no blocks (halted for an upgrade, lost its quorum) must not
// hang the command.
const commitWait = 2 * time.Minute

// submitTx submits msgs and waits at most commitWait for them to commit.
func submitTx(ctx context.Context, c *client.Client, k *keyring.Key, memo string, msgs ...module.Msg) (*client.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, commitWait)
	defer cancel()
	res, err := c.Submit(ctx, k, memo, msgs...)
	if err != nil && errors.Is(err, context.DeadlineExceeded) {
		return nil, fmt.Errorf("%w; the chain made no block with it within %v: it may still commit, so look it up with `agora query tx HASH` before sending it again", err, commitWait)
	}
	return res, err
}

// submit signs the message built for the key's address, waits for it and
// prints what the chain answered, the ids it created among it.
func (g *globals) submit(cmd *cobra.Command, keyName string, build func(from addr.Address) module.Msg) error {
	k, err := g.keys().Get(keyName)
	if err != nil {
		return err
	}
	c, err := g.dial()
	if err != nil {
		return err
	}
	res, err := submitTx(cmd.Context(), c, k, g.memo, build(k.Address()))
	if err != nil {
		return err
	}
	out := txJSON{Hash: res.Hash, Height: res.Height, GasWanted: res.GasWanted, GasUsed: res.GasUsed, Fee: coin.String(res.Fee), Responses: []json.RawMessage{}}
	var lines []string
	for _, a := range res.Responses {
		if a.GetTypeUrl() == "" {
			out.Responses = append(out.Responses, json.RawMessage("{}"))
			continue
		}
		m, err := a.UnmarshalNew()
		if err != nil {
			return fmt.Errorf("tx %s committed at height %d, but its response %s does not decode: %w", res.Hash, res.Height, a.TypeUrl, err)
		}
		b, err := protoJSON(m)
		if err != nil {
			return err
		}
		out.Responses = append(out.Responses, b)
		m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			lines = append(lines, fmt.Sprintf("  %s %v", fd.Name(), v.Interface()))
			return true
		})
	}
	return g.emit(cmd.OutOrStdout(), out, func(w io.Writer) {
		fmt.Fprintf(w, "tx %s committed at height %d (gas %d of %d, fee %s)\n", res.Hash, res.Height, res.GasUsed, res.GasWanted, coin.String(res.Fee))
		for _, l := range lines {
			fmt.Fprintln(w, l)
		}
	})
}
