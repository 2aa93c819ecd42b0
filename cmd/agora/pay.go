package main

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/receipt"
	"github.com/agoranet/agora/sdk"
)

func payCmd(g *globals) *cobra.Command {
	var method, data, keyName, maxAmount, audit string
	var headers []string
	var include, verbose bool
	var deposit uint64
	cmd := &cobra.Command{
		Use:   "pay --key NAME --max AMOUNT [-X METHOD] [-H 'Name: value']... [-d DATA] URL",
		Short: "Make an HTTP request like curl, and pay any x402 402 from a key within --max",
		Long: `Pay sends the request; if the server answers 402 with x402 payment
requirements it opens (or reuses) a payment channel from --key, signs a
voucher and sends the request again. It never commits more than --max, and
refuses before sending anything the key's agent policy would not allow, or
a price above the one the provider registered on chain. Its channels are
kept in <home>/payer/, so the next run pays over the same one, and reclaims
those that have expired.
The answer goes to stdout; the payment and receipt to stderr.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := g.keys().Get(keyName)
			if err != nil {
				return err
			}
			budget, err := coin.Parse(maxAmount)
			if err != nil {
				return fmt.Errorf("--max: %w", err)
			}
			w, err := sdk.NewWallet(k.Private, g.node)
			if err == nil && k.Rotated() {
				err = w.ForAccount(k.Address().String())
			}
			if err != nil {
				return err
			}
			// The payer's journal, one per key and chain, lets the next
			// run pay over this run's channel instead of opening another.
			payer, err := sdk.OpenPayer(w, sdk.Budget{Denom: budget.Denom, Max: budget.Amount, Deposit: deposit}, filepath.Join(g.home, "payer", w.ChainID(), w.Address()+".journal"))
			if err != nil {
				return err
			}
			defer payer.Close() // posts the audit sample, if any, before the command ends
			if audit != "" {
				payer.SetAuditFeed(audit, 1)
			}
			if n, err := payer.Reclaim(cmd.Context()); err == nil && n > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "reclaimed %d%s from expired channels\n", n, budget.Denom)
			}
			if verbose {
				payer.SetTransport(traceTransport{w: cmd.ErrOrStderr(), base: http.DefaultTransport})
			}
			if method == "" {
				method = http.MethodGet
				if data != "" {
					method = http.MethodPost
				}
			}
			req, err := http.NewRequestWithContext(cmd.Context(), method, args[0], strings.NewReader(data))
			if err != nil {
				return err
			}
			if data != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			for _, h := range headers {
				name, value, ok := strings.Cut(h, ":")
				if !ok {
					return fmt.Errorf("-H %q: want 'Name: value'", h)
				}
				req.Header.Set(strings.TrimSpace(name), strings.TrimSpace(value))
			}
			resp, err := (&http.Client{Transport: payer}).Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if perr := sdk.Refused(resp, nil); perr != nil {
				return fmt.Errorf("the server asked for payment and nothing was paid: %w", perr)
			}
			if include {
				writeHead(cmd.OutOrStdout(), "", resp)
				fmt.Fprintln(cmd.OutOrStdout())
			}
			if _, err := io.Copy(cmd.OutOrStdout(), resp.Body); err != nil {
				return err
			}
			errw := cmd.ErrOrStderr()
			lie := resp.Header.Get(sdk.LiedHeader)
			if lie == "" && resp.Trailer != nil {
				lie = resp.Trailer.Get(sdk.LiedHeader)
			}
			if lie != "" {
				fmt.Fprintf(errw, "\nthe server lied about its charge (%s): it is booked at the most the voucher allowed, and this key will not pay it again", lie)
			}
			fmt.Fprintf(errw, "\n%s; paid %d%s", resp.Status, payer.Spent(), budget.Denom)
			if ids := payer.Channels(); len(ids) > 0 {
				fmt.Fprintf(errw, " over channel %d", ids[len(ids)-1])
			}
			fmt.Fprintln(errw)
			if rc := resp.Header.Get(receipt.Header); rc != "" {
				if r, err := g.decodeReceipt(cmd.Context(), errw, rc); err == nil {
					fmt.Fprintf(errw, "receipt: provider %s, model %s, seq %d, payment %s (signature valid)\n", r.Provider, r.ModelId, r.Seq, r.PaymentRef)
				} else {
					fmt.Fprintf(errw, "receipt does not verify: %v\n", err)
				}
			}
			if resp.StatusCode >= 400 {
				return fmt.Errorf("the server answered %s", resp.Status)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&keyName, "key", "", "keyring key that pays (required)")
	f.StringVar(&maxAmount, "max", "", "the most to commit, like 10000uusdc (required)")
	f.StringVarP(&method, "request", "X", "", "HTTP method (default GET, or POST with -d)")
	f.StringVarP(&data, "data", "d", "", "request body (sent as JSON)")
	f.StringArrayVarP(&headers, "header", "H", nil, "extra header 'Name: value' (repeatable)")
	f.BoolVarP(&include, "include", "i", false, "print the response's status line and headers (PAYMENT-RESPONSE, the receipt) before its body, like curl -i")
	f.BoolVarP(&verbose, "verbose", "v", false, "trace every request and response to stderr (> sent, < received), the 402 and the paid retry included")
	f.StringVar(&audit, "audit", "", "a verifier's URL: show it the answer and its receipt, signed by --key, so it can check it and challenge a lie")
	f.Uint64Var(&deposit, "deposit", 0, "deposit for a new channel (default 100 times the first price, within --max)")
	_ = cmd.MarkFlagRequired("key")
	_ = cmd.MarkFlagRequired("max")
	return cmd
}

// writeHead prints a response's status line and headers, sorted, each line
// behind prefix.
func writeHead(w io.Writer, prefix string, resp *http.Response) {
	fmt.Fprintf(w, "%s%s %s\n", prefix, resp.Proto, resp.Status)
	writeHeaders(w, prefix, resp.Header)
}

func writeHeaders(w io.Writer, prefix string, h http.Header) {
	names := make([]string, 0, len(h))
	for name := range h {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		for _, v := range h[name] {
			fmt.Fprintf(w, "%s%s: %s\n", prefix, name, v)
		}
	}
}

// traceTransport prints each request it sends and each response's head,
// as curl -v does.
type traceTransport struct {
	w    io.Writer
	base http.RoundTripper
}

func (t traceTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	fmt.Fprintf(t.w, "> %s %s %s\n> Host: %s\n", req.Method, req.URL.RequestURI(), req.Proto, req.URL.Host)
	writeHeaders(t.w, "> ", req.Header)
	fmt.Fprintln(t.w, ">")
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		fmt.Fprintf(t.w, "* %v\n", err)
		return nil, err
	}
	writeHead(t.w, "< ", resp)
	fmt.Fprintln(t.w, "<")
	return resp, nil
}
