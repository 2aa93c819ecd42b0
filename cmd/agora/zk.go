package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/audit/auditpb"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/model"
	"github.com/agoranet/agora/internal/zk"
)

func zkCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "zk", Short: "Zero-knowledge proofs of digits-mlp inference"}
	cmd.AddCommand(zkSetupCmd(g), zkVerifyCmd(g), zkProposeCmd(g))
	return cmd
}

// progress prints a ceremony's steps, one plain line each, on stderr,
// unless the output is JSON.
func (g *globals) progress(cmd *cobra.Command) func(string) {
	if g.output == "json" {
		return nil
	}
	w := cmd.ErrOrStderr()
	return func(s string) { fmt.Fprintln(w, s) }
}

func digitsModel() (*model.Model, error) { return model.Lookup(model.DigitsName) }

// modelAndTranscript is the model a ceremony is for and its transcript
// read from path.
func modelAndTranscript(path string) (*model.Model, *zk.Transcript, error) {
	m, err := digitsModel()
	if err != nil {
		return nil, nil, err
	}
	t, err := readTranscript(path)
	return m, t, err
}

func readTranscript(path string) (*zk.Transcript, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	t, err := zk.ReadTranscript(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// writeTranscript replaces path with t, through a temporary file, so a
// crash mid-write leaves the old transcript.
func writeTranscript(path string, t *zk.Transcript) error {
	b, err := t.MarshalBinary()
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// transcriptJSON is what the transcript commands print with --output json.
type transcriptJSON struct {
	Phase        int      `json:"phase"` // 1, 2, or 3 once sealed
	Digest       string   `json:"digest"`
	Contributors []string `json:"contributors"`
	Next         string   `json:"next"`
	ProvingKey   string   `json:"proving_key,omitempty"`
	VerifyingKey string   `json:"verifying_key,omitempty"`
}

func describe(t *zk.Transcript) transcriptJSON {
	out := transcriptJSON{Phase: t.Phase(), Digest: hex.EncodeToString(t.Digest()), Next: t.Next(), Contributors: []string{}}
	for _, c := range t.Contributors() {
		out.Contributors = append(out.Contributors, addr.FromPubKey(c).String())
	}
	return out
}

func zkSetupCmd(g *globals) *cobra.Command {
	var out, beacon string
	var contributors int
	setup := &cobra.Command{
		Use:   "setup [--contributors N] [--beacon TEXT] [--out DIR]",
		Short: "Run the Groth16 setup for agora/digits-mlp: in one process, or as a multi-party ceremony (init, contribute, seal)",
		Long: `Setup with no subcommand runs gnark's two-phase MPC ceremony in this
process, with N ephemeral contributors: fine for development, not for a
key a network relies on, since one process saw all the randomness. It
writes digits-mlp.pk, digits-mlp.vk and digits-mlp.transcript.

A real ceremony passes one transcript file from party to party:

  agora zk setup init --out T                   the coordinator starts it
  agora zk setup contribute --key NAME T        each contributor, in turn
  agora zk setup seal --beacon B T              closes phase 1
  agora zk setup contribute --key NAME T        the same contributors, in the same order
  agora zk setup seal --beacon B --out DIR T    closes phase 2; writes the keys
  agora zk propose --key NAME --transcript T --url URL

The beacon of each seal is public randomness nobody knew before that
phase's last contribution (say, the hash of a later block). The keys are
sound if any one contributor threw its randomness away. See
docs/verification.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := digitsModel()
			if err != nil {
				return err
			}
			keys, t, err := zk.Ceremony(cmd.Context(), m, contributors, []byte(beacon), g.progress(cmd))
			if err != nil {
				return err
			}
			return saveKeys(g, cmd, out, keys, t, true)
		},
	}
	setup.Flags().IntVar(&contributors, "contributors", 3, "contributions to each phase")
	setup.Flags().StringVar(&beacon, "beacon", "", "public randomness that seals both phases (a future block hash)")
	setup.Flags().StringVar(&out, "out", "zk", "directory for the keys")

	var initOut string
	initc := &cobra.Command{
		Use: "init --out TRANSCRIPT", Short: "Start a ceremony's transcript for agora/digits-mlp", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := digitsModel()
			if err != nil {
				return err
			}
			if _, err := os.Stat(initOut); err == nil {
				return fmt.Errorf("%s exists; a ceremony starts from a new file", initOut)
			}
			t, err := zk.NewTranscript(m)
			if err != nil {
				return err
			}
			if err := writeTranscript(initOut, t); err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), describe(t), func(w io.Writer) {
				fmt.Fprintf(w, "transcript %s started for %s (domain %d); next: agora zk setup contribute --key NAME %s\n", initOut, m.Manifest.Name, t.Domain, initOut)
			})
		},
	}
	initc.Flags().StringVar(&initOut, "out", "digits-mlp.transcript", "the transcript file to create")

	var keyName string
	contribute := &cobra.Command{
		Use: "contribute --key NAME TRANSCRIPT", Short: "Add your contribution to the open phase, signed with a keyring key (a staked verifier's)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := g.keys().Get(keyName)
			if err != nil {
				return err
			}
			t, err := readTranscript(args[0])
			if err != nil {
				return err
			}
			phase := t.Phase()
			if p := g.progress(cmd); p != nil {
				p(fmt.Sprintf("phase %d: contributing as %s (%s); this takes seconds", phase, k.Name, k.Address()))
			}
			if err := t.Contribute(k.Private); err != nil {
				return err
			}
			if err := writeTranscript(args[0], t); err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), describe(t), func(w io.Writer) {
				fmt.Fprintf(w, "contributed to phase %d as %s; %d contributors so far; next: %s\n", phase, k.Address(), len(t.Phase1), t.Next())
			})
		},
	}
	contribute.Flags().StringVar(&keyName, "key", "", "the keyring key that signs the contribution")
	contribute.MarkFlagRequired("key")

	var sealBeacon, sealOut string
	seal := &cobra.Command{
		Use: "seal --beacon B [--out DIR] TRANSCRIPT", Short: "Seal the open phase; sealing phase 2 verifies the transcript and writes the keys", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, t, err := modelAndTranscript(args[0])
			if err != nil {
				return err
			}
			phase := t.Phase()
			if p := g.progress(cmd); p != nil && phase == zk.PhaseOne {
				p("phase 1: sealing and evaluating the circuit on it; this takes tens of seconds")
			}
			if err := t.Seal(m, []byte(sealBeacon)); err != nil {
				return err
			}
			if err := writeTranscript(args[0], t); err != nil {
				return err
			}
			if phase == zk.PhaseOne {
				return g.emit(cmd.OutOrStdout(), describe(t), func(w io.Writer) {
					fmt.Fprintf(w, "phase 1 sealed; phase 2 takes the same contributors in the same order; next: %s\n", t.Next())
				})
			}
			keys, err := zk.VerifyTranscript(cmd.Context(), m, t, g.progress(cmd))
			if err != nil {
				return err
			}
			return saveKeys(g, cmd, sealOut, keys, t, false)
		},
	}
	seal.Flags().StringVar(&sealBeacon, "beacon", "", "public randomness nobody knew before the phase's last contribution (a later block hash)")
	seal.Flags().StringVar(&sealOut, "out", "zk", "directory for the keys, once phase 2 is sealed")
	seal.MarkFlagRequired("beacon")
	setup.AddCommand(initc, contribute, seal)
	return setup
}

// saveKeys writes a verified ceremony's keys (and, for the one-shot
// ceremony, its transcript) to dir and prints the transcript's digest.
func saveKeys(g *globals, cmd *cobra.Command, dir string, keys *zk.Keys, t *zk.Transcript, withTranscript bool) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	pk, vk := filepath.Join(dir, "digits-mlp.pk"), filepath.Join(dir, "digits-mlp.vk")
	if err := keys.Save(pk, vk); err != nil {
		return err
	}
	if withTranscript {
		if err := writeTranscript(filepath.Join(dir, "digits-mlp.transcript"), t); err != nil {
			return err
		}
	}
	out := describe(t)
	out.ProvingKey, out.VerifyingKey = pk, vk
	return g.emit(cmd.OutOrStdout(), out, func(w io.Writer) {
		fmt.Fprintf(w, "%d contributions to each phase verified; keys in %s and %s (%d constraints)\n", len(t.Phase1), pk, vk, keys.CS.GetNbConstraints())
		fmt.Fprintf(w, "transcript digest %x; publish the transcript and run agora zk propose\n", t.Digest())
	})
}

func zkVerifyCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "verify TRANSCRIPT", Short: "Check a sealed transcript against agora/digits-mlp, as a key review's committee does", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, t, err := modelAndTranscript(args[0])
			if err != nil {
				return err
			}
			keys, err := zk.VerifyTranscript(cmd.Context(), m, t, g.progress(cmd))
			if err != nil {
				return err
			}
			out := describe(t)
			return g.emit(cmd.OutOrStdout(), out, func(w io.Writer) {
				fmt.Fprintf(w, "the transcript verifies: digest %s, verifying key sha256 %x, contributors %v\n", out.Digest, sha256Sum(keys.VerifyingKeyBytes), out.Contributors)
			})
		},
	}
}

func zkProposeCmd(g *globals) *cobra.Command {
	var keyName, transcript, url string
	cmd := &cobra.Command{
		Use:   "propose --key NAME --transcript T --url URL",
		Short: "Propose digits-mlp's verifying key on chain, with its sealed transcript for the committee to check",
		Long: `Propose verifies the transcript here first (tens of seconds), then sends
MsgProposeModelKey with the verifying key, the transcript's digest, the
URL where the committee fetches it, and its contributors. The proposer
bonds the audit params' challenge bond; a committee of verifiers (any but the
proposer) checks the transcript and votes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, t, err := modelAndTranscript(transcript)
			if err != nil {
				return err
			}
			keys, err := zk.VerifyTranscript(cmd.Context(), m, t, g.progress(cmd))
			if err != nil {
				return fmt.Errorf("the transcript does not verify here, so a committee would reject it: %w", err)
			}
			return g.submit(cmd, keyName, func(from addr.Address) module.Msg {
				return &auditpb.MsgProposeModelKey{Proposer: from.String(), ModelId: m.Manifest.ID, VerifyingKey: keys.VerifyingKeyBytes,
					TranscriptDigest: t.Digest(), TranscriptUrl: url, Contributors: keys.ContributorBytes()}
			})
		},
	}
	cmd.Flags().StringVar(&keyName, "key", "", "the proposer's keyring key (it bonds the challenge bond)")
	cmd.Flags().StringVar(&transcript, "transcript", "", "the sealed transcript file")
	cmd.Flags().StringVar(&url, "url", "", "where the committee fetches the transcript (http or https)")
	for _, f := range []string{"key", "transcript", "url"} {
		cmd.MarkFlagRequired(f)
	}
	return cmd
}

func sha256Sum(b []byte) []byte { s := sha256.Sum256(b); return s[:] }
