package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"
)

// daemonCmd is a stand-in daemon with the kinds of flags daemons have.
func daemonCmd(got *map[string]any) *cobra.Command {
	var key, listen string
	var models []string
	var price uint64
	var every time.Duration
	cmd := &cobra.Command{Use: "d", RunE: func(*cobra.Command, []string) error {
		*got = map[string]any{"key": key, "listen": listen, "model": models, "price": price, "every": every}
		return nil
	}}
	cmd.Flags().StringVar(&key, "key", "", "")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:1", "")
	cmd.Flags().StringArrayVar(&models, "model", nil, "")
	cmd.Flags().Uint64Var(&price, "price", 0, "")
	cmd.Flags().DurationVar(&every, "every", time.Second, "")
	_ = cmd.MarkFlagRequired("key")
	return withConfig(cmd)
}

func TestConfigFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.toml", "key = \"alice\"\nlisten = \"127.0.0.1:9\"\nmodel = [\"a\", \"b\"]\nprice = 100\nevery = \"5s\"\n")
	tests := []struct {
		name    string
		args    []string
		want    map[string]any
		wantErr string
	}{
		{"file", []string{"--config", good},
			map[string]any{"key": "alice", "listen": "127.0.0.1:9", "model": []string{"a", "b"}, "price": uint64(100), "every": 5 * time.Second}, ""},
		{"flags win", []string{"--config", good, "--listen", "127.0.0.1:7", "--model", "c"},
			map[string]any{"key": "alice", "listen": "127.0.0.1:7", "model": []string{"c"}, "price": uint64(100), "every": 5 * time.Second}, ""},
		{"no file", []string{"--key", "bob"},
			map[string]any{"key": "bob", "listen": "127.0.0.1:1", "model": []string(nil), "price": uint64(0), "every": time.Second}, ""},
		{"required", []string{"--config", write("nokey.toml", "price = 1\n")}, nil, "--key required"},
		{"unknown key", []string{"--config", write("typo.toml", "key = \"a\"\nlisten-addr = \"x\"\n")}, nil, `"listen-addr" is not a setting`},
		{"bad value", []string{"--config", write("bad.toml", "key = \"a\"\nprice = \"lots\"\n")}, nil, "price = lots"},
		{"not toml", []string{"--config", write("broken.toml", "key = \n")}, nil, "not valid TOML"},
		{"missing file", []string{"--config", filepath.Join(dir, "none.toml")}, nil, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got map[string]any
			cmd := daemonCmd(&got)
			cmd.SetArgs(tt.args)
			cmd.SilenceUsage, cmd.SilenceErrors = true, true
			err := cmd.Execute()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("settings (-want +got):\n%s", diff)
			}
		})
	}
}
