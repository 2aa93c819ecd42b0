package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/agoranet/agora/internal/chain/auth/authpb"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/openai"
	"github.com/agoranet/agora/internal/receipt"
)

// decodeReceipt checks a receipt's signature and that its key is its
// provider's, as the chain says: the key it signs with now. Without a
// chain to ask, the key its address derives from (a provider that never
// rotated), with a warning on errw.
func (g *globals) decodeReceipt(ctx context.Context, errw io.Writer, enc string) (*receipt.Receipt, error) {
	r, err := receipt.DecodeUnbound(enc)
	if err != nil {
		return nil, err
	}
	var k *authpb.QueryKeyResponse
	c, err := g.dial()
	if err == nil {
		k, err = client.Ask(ctx, c, authpb.QueryKey, &authpb.QueryKeyRequest{Account: r.Provider, PublicKey: r.PublicKey})
	}
	if err != nil {
		if _, derr := receipt.Decode(enc); derr != nil {
			return nil, fmt.Errorf("the receipt's key is not the one %s derives from, and the chain, which knows its current key, cannot be asked: %w", r.Provider, err)
		}
		fmt.Fprintf(errw, "warning: the chain cannot be asked whether %s still signs with this key (%v); it is the key its address derives from\n", r.Provider, err)
		return r, nil
	}
	switch {
	case k.Current:
		return r, nil
	case k.RetiredAt > 0:
		return nil, fmt.Errorf("%w: signed by a key provider %s retired at height %d (the receipt names height %d); it is evidence only with its anchor on chain", receipt.ErrSignature, r.Provider, k.RetiredAt, r.Height)
	}
	return nil, fmt.Errorf("%w: signed by a key that is not provider %s's", receipt.ErrSignature, r.Provider)
}

func receiptCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "receipt", Short: "Check the receipts providers sign for their answers"}
	var reqFile, respFile, endpoint, rc string
	verify := &cobra.Command{
		Use:   "verify --request FILE --response FILE [--receipt R]",
		Short: "Check that a receipt is the provider's and covers this request and response",
		Long: `Verify checks a receipt's signature and that its hashes match a saved
request body and response body. For a streamed answer, save the whole
event stream: the receipt is read from its final event. Otherwise pass the
Agora-Receipt header's value with --receipt (or @FILE).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req, err := os.ReadFile(reqFile)
			if err != nil {
				return err
			}
			resp, err := os.ReadFile(respFile)
			if err != nil {
				return err
			}
			covered, fromStream := openai.SplitStream(resp)
			if strings.HasPrefix(rc, "@") {
				b, err := os.ReadFile(rc[1:])
				if err != nil {
					return err
				}
				rc = string(b)
			}
			rc = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(rc), receipt.Header+":"))
			if rc == "" {
				rc = fromStream
			}
			if rc == "" {
				return fmt.Errorf("no receipt: pass --receipt with the Agora-Receipt header's value")
			}
			r, err := g.decodeReceipt(cmd.Context(), cmd.ErrOrStderr(), rc)
			if err != nil {
				return err
			}
			canonical, err := openai.CanonicalRequest(endpoint, req)
			if err != nil {
				return fmt.Errorf("the request does not parse as %s: %w", endpoint, err)
			}
			if err := receipt.Check(r, canonical, covered); err != nil {
				return err
			}
			out := map[string]any{"valid": true, "provider": r.Provider, "model_id": r.ModelId, "chain_id": r.ChainId, "height": strconv.FormatInt(r.Height, 10), "seq": strconv.FormatUint(r.Seq, 10),
				"price": coin.String(r.Price), "prompt_tokens": r.Usage.GetPromptTokens(), "completion_tokens": r.Usage.GetCompletionTokens()}
			return g.emit(cmd.OutOrStdout(), out, func(w io.Writer) {
				fmt.Fprintf(w, "valid receipt: provider %s, model %s, chain %s at height %d, seq %d, price %s\n", r.Provider, r.ModelId, r.ChainId, r.Height, r.Seq, coin.String(r.Price))
			})
		},
	}
	f := verify.Flags()
	f.StringVar(&reqFile, "request", "", "file with the request body (required)")
	f.StringVar(&respFile, "response", "", "file with the response body or event stream (required)")
	f.StringVar(&endpoint, "endpoint", "chat.completions", "chat.completions, completions, responses or infer")
	f.StringVar(&rc, "receipt", "", "the Agora-Receipt header value, or @FILE")
	_ = verify.MarkFlagRequired("request")
	_ = verify.MarkFlagRequired("response")
	cmd.AddCommand(verify)
	return cmd
}
