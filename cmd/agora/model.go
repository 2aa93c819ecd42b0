package main

import (
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/spf13/cobra"

	"github.com/agoranet/agora/internal/model"
)

func modelCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "model", Short: "Built-in models: list, inspect, train"}
	cmd.AddCommand(modelListCmd(g), modelShowCmd(g), modelTrainCmd(g))
	return cmd
}

func modelListCmd(g *globals) *cobra.Command {
	list := &cobra.Command{
		Use: "list", Short: "The built-in models and their ids", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out []model.Manifest
			for _, m := range model.Builtin() {
				out = append(out, m.Manifest)
			}
			return g.emit(cmd.OutOrStdout(), out, func(w io.Writer) {
				table(w, "NAME\tID\tARCHITECTURE\tPARAMETERS\tLICENSE", func(tw io.Writer) {
					for _, m := range out {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", m.Name, m.ID, m.Architecture, m.Parameters, m.License)
					}
				})
			})
		},
	}
	return list
}

func modelShowCmd(g *globals) *cobra.Command {
	var from, most string
	show := &cobra.Command{
		Use: "show NAME|FILE|CID", Short: "A model's manifest (works on your own weights files, and on those stored by CID)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			m, err := loadModel(cmd.Context(), c, args[0], func() (*http.Client, io.Closer, error) { return g.storageReader(from, most) })
			if err != nil {
				return err
			}
			g.output = "json"
			return g.emit(cmd.OutOrStdout(), m.Manifest, nil)
		},
	}
	show.Flags().StringVar(&from, "from", "alice", "for a CID: the key that pays the storage nodes for the weights")
	show.Flags().StringVar(&most, "max", "1000000uusdc", "for a CID: the most it pays them")
	return show
}

func modelTrainCmd(g *globals) *cobra.Command {
	var out, corpus string
	var steps int
	train := &cobra.Command{
		Use:   "train digits-mlp|tiny-lm --out FILE [--corpus TEXT_FILE]",
		Short: "Train a model with the project's own code and write its weights file",
		Long: `Train reproduces the built-in weights (with the default settings, on
linux/amd64) or trains tiny-lm on any text file you bring. Inference on the
result is bit-exact everywhere; the training itself is single-threaded
float64. tiny-lm takes several minutes on one core.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var weights []byte
			switch args[0] {
			case "digits-mlp", model.DigitsName:
				m, err := model.TrainDigits(cmd.Context(), model.DefaultDigitsTrainConfig(), cmd.ErrOrStderr())
				if err != nil {
					return err
				}
				weights = m.Encode()
			case "tiny-lm", model.TinyLMName:
				text, err := os.ReadFile(corpus)
				if err != nil {
					return fmt.Errorf("--corpus: %w (train tiny-lm on any text file)", err)
				}
				cfg := model.DefaultLMTrainConfig()
				if steps > 0 {
					cfg.Steps = steps
				}
				m, err := model.TrainLM(cmd.Context(), text, cfg, cmd.ErrOrStderr())
				if err != nil {
					return err
				}
				weights = m.Encode()
			default:
				return fmt.Errorf("no model %q to train: digits-mlp or tiny-lm", args[0])
			}
			if err := os.WriteFile(out, weights, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (%d bytes), model id %s\n", out, len(weights), model.ID(weights))
			return nil
		},
	}
	train.Flags().StringVar(&out, "out", "model.agw", "weights file to write")
	train.Flags().StringVar(&corpus, "corpus", "", "training text for tiny-lm")
	train.Flags().IntVar(&steps, "steps", 0, "training steps for tiny-lm (0: the default)")
	return train
}
