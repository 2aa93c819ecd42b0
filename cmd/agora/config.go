package main

import (
	"fmt"
	"os"
	"sort"
	"strings"

	toml "github.com/pelletier/go-toml/v2"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// withConfig gives a daemon command --config FILE: a TOML file whose keys
// are the command's flag names, so there is one set of names to learn and
// one place (the flag's help) that documents each setting:
//
//	key = "provider1"
//	listen = "127.0.0.1:8081"
//	model = ["agora/tiny-lm"]
//	price-request = 100
//	claim-interval = "2s"
//
// A flag given on the command line wins over the file. Flags the command
// requires may come from either.
func withConfig(cmd *cobra.Command) *cobra.Command {
	var path string
	cmd.Flags().StringVar(&path, "config", "", "TOML file of settings keyed by flag name; flags on the command line win")
	// Cobra checks required flags before any hook runs, so this wrapper
	// checks them itself once the file has been read.
	var required []string
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if _, ok := f.Annotations[cobra.BashCompOneRequiredFlag]; ok {
			required = append(required, f.Name)
			delete(f.Annotations, cobra.BashCompOneRequiredFlag)
		}
	})
	prev := cmd.PreRunE
	cmd.PreRunE = func(c *cobra.Command, args []string) error {
		if path != "" {
			if err := applyConfig(c.Flags(), path); err != nil {
				return err
			}
		}
		var missing []string
		for _, name := range required {
			if !c.Flags().Changed(name) {
				missing = append(missing, "--"+name)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%s required: give it as a flag or in --config", strings.Join(missing, ", "))
		}
		if prev != nil {
			return prev(c, args)
		}
		return nil
	}
	return cmd
}

// applyConfig sets every flag named in the TOML file at path that the
// command line did not set.
func applyConfig(flags *pflag.FlagSet, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	var settings map[string]any
	if err := toml.Unmarshal(b, &settings); err != nil {
		return fmt.Errorf("--config %s: not valid TOML: %w", path, err)
	}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys) // errors name the first bad key, the same every run
	for _, name := range keys {
		f := flags.Lookup(name)
		if f == nil || name == "config" || name == "help" {
			return fmt.Errorf("--config %s: %q is not a setting of this command (settings are its flag names: %s)", path, name, flagNames(flags))
		}
		if f.Changed {
			continue // the command line wins
		}
		values := []any{settings[name]}
		if list, ok := settings[name].([]any); ok {
			values = list
		}
		for _, v := range values {
			if _, nested := v.(map[string]any); nested {
				return fmt.Errorf("--config %s: %s must be a value or a list, not a table", path, name)
			}
			if err := flags.Set(name, fmt.Sprint(v)); err != nil {
				return fmt.Errorf("--config %s: %s = %v: %w", path, name, v, err)
			}
		}
	}
	return nil
}

func flagNames(flags *pflag.FlagSet) string {
	var names []string
	flags.VisitAll(func(f *pflag.Flag) {
		if f.Name != "config" && f.Name != "help" {
			names = append(names, f.Name)
		}
	})
	return strings.Join(names, ", ")
}
