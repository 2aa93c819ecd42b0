package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/keyring"
)

// globals are the flags every subcommand shares.
type globals struct {
	home   string
	node   string
	output string
	memo   string // agora tx --memo
	gas    string // "auto" or a gas limit
	gasAdj float64
	// keyringBackend is --keyring-backend: test or file.
	keyringBackend string
	kr             *keyring.Keyring // opened once, so a passphrase is asked once
	sealing        bool             // the command seals keys: the passphrase is asked twice
}

func defaultHome() string {
	if h := os.Getenv("AGORA_HOME"); h != "" {
		return h
	}
	dir, err := os.UserHomeDir()
	if err != nil {
		return ".agora"
	}
	return filepath.Join(dir, ".agora")
}

func defaultNode() string {
	if n := os.Getenv("AGORA_NODE"); n != "" {
		return n
	}
	return "http://127.0.0.1:26657"
}

func rootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "agora",
		Short:         "Agora: an open network where AI work is bought and sold",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if g.output != "text" && g.output != "json" {
				return fmt.Errorf("--output must be text or json, not %q", g.output)
			}
			if _, err := g.gasConfig(); err != nil {
				return err
			}
			if _, err := keyring.ParseBackend(g.keyringBackend); err != nil {
				return fmt.Errorf("--keyring-backend: %w", err)
			}
			return nil
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.home, "home", defaultHome(), "node and keyring directory ($AGORA_HOME)")
	pf.StringVar(&g.node, "node", defaultNode(), "CometBFT RPC URL of the node to talk to ($AGORA_NODE)")
	pf.StringVarP(&g.output, "output", "o", "text", "output format: text or json")
	pf.StringVar(&g.gas, "gas", "auto", "gas limit of the txs this command sends: auto (estimated by simulation) or a number")
	pf.Float64Var(&g.gasAdj, "gas-adjustment", client.DefaultGasAdjustment, "with --gas auto, the estimate is multiplied by this")
	pf.StringVar(&g.keyringBackend, "keyring-backend", envOr("AGORA_KEYRING_BACKEND", string(keyring.Test)),
		"how new keys are kept: test (plain files, for devnets) or file (encrypted with a passphrase, asked on the terminal or read from $AGORA_KEYRING_PASSPHRASE) ($AGORA_KEYRING_BACKEND)")
	root.AddCommand(initCmd(g), withConfig(startCmd(g)), keysCmd(g), txCmd(g), queryCmd(g), statusCmd(g), withConfig(devnetCmd(g)), testnetCmd(g), validatorCmd(g), govCmd(g), exportCmd(g), providerCmd(g), receiptCmd(g), modelCmd(g), agentCmd(g), channelCmd(g), jobCmd(g), payCmd(g), facilitatorCmd(g), gatewayCmd(g), zkCmd(g), verifierCmd(g), mcpCmd(g), storageCmd(g))
	return root
}

func (g *globals) keys() *keyring.Keyring {
	if g.kr == nil {
		b, err := keyring.ParseBackend(g.keyringBackend)
		if err != nil {
			b = keyring.Test // refused before any command runs
		}
		g.kr = keyring.OpenWith(filepath.Join(g.home, "keyring"), b, askPassphrase(b == keyring.File && g.sealing))
	}
	return g.kr
}

// tlsFlags are a daemon's --tls-cert and --tls-key.
type tlsFlags struct{ cert, key string }

func (t *tlsFlags) add(f *pflag.FlagSet) {
	f.StringVar(&t.cert, "tls-cert", "", "serve HTTPS with this PEM certificate (with --tls-key); a provider registers its key's hash on chain, and clients connect only to a server holding it")
	f.StringVar(&t.key, "tls-key", "", "the PEM private key of --tls-cert")
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// askPassphrase reads the keyring's passphrase from
// $AGORA_KEYRING_PASSPHRASE (for daemons), or from the terminal, without
// echo; twice when keys are being sealed with it, so a typo does not seal
// them with a passphrase nobody knows.
func askPassphrase(confirm bool) func() ([]byte, error) {
	return func() ([]byte, error) {
		if p := os.Getenv("AGORA_KEYRING_PASSPHRASE"); p != "" {
			return []byte(p), nil
		}
		fd := int(os.Stdin.Fd())
		if !term.IsTerminal(fd) {
			return nil, errors.New("the keyring's keys are encrypted and there is no terminal to ask the passphrase on: set AGORA_KEYRING_PASSPHRASE")
		}
		fmt.Fprint(os.Stderr, "keyring passphrase: ")
		p, err := term.ReadPassword(fd)
		fmt.Fprintln(os.Stderr)
		if err != nil {
			return nil, fmt.Errorf("read the passphrase: %w", err)
		}
		if confirm {
			fmt.Fprint(os.Stderr, "again, to confirm: ")
			again, err := term.ReadPassword(fd)
			fmt.Fprintln(os.Stderr)
			if err != nil {
				return nil, fmt.Errorf("read the passphrase: %w", err)
			}
			if string(again) != string(p) {
				return nil, errors.New("the two passphrases differ; nothing was written")
			}
		}
		return p, nil
	}
}

func (g *globals) dial() (*client.Client, error) {
	gc, err := g.gasConfig()
	if err != nil {
		return nil, err
	}
	c, err := client.New(g.node)
	if err != nil {
		return nil, err
	}
	c.SetGas(gc)
	return c, nil
}

// gasConfig reads --gas and --gas-adjustment.
func (g *globals) gasConfig() (client.Gas, error) {
	if g.gasAdj < 1 {
		return client.Gas{}, fmt.Errorf("--gas-adjustment must be at least 1 (the estimate is a lower bound), not %v", g.gasAdj)
	}
	if g.gas == "" || g.gas == "auto" {
		return client.Gas{Adjustment: g.gasAdj}, nil
	}
	n, err := strconv.ParseUint(g.gas, 10, 64)
	if err != nil || n == 0 {
		return client.Gas{}, fmt.Errorf("--gas must be auto or a positive number of gas units, not %q", g.gas)
	}
	return client.Gas{Limit: n}, nil
}

// queryAddr runs a chain query whose request is an address (a message with
// one string field "address") for the address written as arg.
func queryAddr[Req, Resp proto.Message](g *globals, cmd *cobra.Command, q module.Query[Req, Resp], arg string) (Resp, error) {
	var zero Resp
	a, err := g.parseAddr(arg)
	if err != nil {
		return zero, err
	}
	c, err := g.dial()
	if err != nil {
		return zero, err
	}
	var z Req
	req := z.ProtoReflect().Type().New()
	req.Set(req.Descriptor().Fields().ByName("address"), protoreflect.ValueOfString(a.String()))
	return client.Ask(cmd.Context(), c, q, req.Interface().(Req))
}

// jsonOptions is the one JSON convention of every --output json: protojson
// with proto field names (snake_case), every field present, enums by name
// and 64-bit integers as strings. Outputs that are not messages follow the
// same rules (their structs tag 64-bit fields ",string").
var jsonOptions = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}

// protoJSON encodes m in the CLI's convention, on one line: protojson
// varies its spacing on purpose, so it is compacted.
func protoJSON(m proto.Message) ([]byte, error) {
	b, err := jsonOptions.Marshal(m)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// emit prints v, a proto message or a struct, as one line of JSON with
// --output json, else runs text.
func (g *globals) emit(w io.Writer, v any, text func(w io.Writer)) error {
	if g.output != "json" {
		text(w)
		return nil
	}
	var b []byte
	var err error
	if m, ok := v.(proto.Message); ok {
		if b, err = protoJSON(m); err != nil {
			return err
		}
	} else if b, err = json.Marshal(v); err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// logger returns the daemon logger at the level named by $AGORA_LOG
// (debug, info, warn, error; default info).
func logger() *slog.Logger {
	lvl := slog.LevelInfo
	switch strings.ToLower(os.Getenv("AGORA_LOG")) {
	case "debug":
		lvl = slog.LevelDebug
	case "warn":
		lvl = slog.LevelWarn
	case "error":
		lvl = slog.LevelError
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
}

// table writes rows as aligned columns under a header, with
// text/tabwriter.
func table(w io.Writer, header string, rows func(tw io.Writer)) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	rows(tw)
	tw.Flush()
}
