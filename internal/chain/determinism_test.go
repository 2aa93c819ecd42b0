package chain_test

import (
	"go/ast"
	"go/types"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/tools/go/packages"
)

// forbidden are imports a chain module may not use: clocks, randomness,
// I/O, concurrency and anything that could make two nodes disagree.
var forbidden = map[string]string{
	"time":                   "reads the clock; use ctx.TimeUnixNano",
	"math/rand":              "randomness; derive it from block data",
	"math/rand/v2":           "randomness; derive it from block data",
	"crypto/rand":            "randomness; derive it from block data",
	"os":                     "I/O",
	"os/exec":                "I/O",
	"io/ioutil":              "I/O",
	"net":                    "network",
	"net/http":               "network",
	"syscall":                "I/O",
	"unsafe":                 "memory layout",
	"runtime":                "scheduler state",
	"sync":                   "concurrency; modules run on one goroutine",
	"sync/atomic":            "concurrency; modules run on one goroutine",
	"log":                    "modules emit events, not logs",
	"log/slog":               "modules emit events, not logs",
	"math":                   "floating point; use integers",
	"github.com/cosmos/iavl": "storage; use store.KV",
}

// TestModulesAreDeterministic fails the build when a package under
// internal/chain/ (the modules, not the app that hosts them) imports a
// forbidden package, uses floats, starts a goroutine, or ranges over a map
// without marking the loop "//agora:sorted" (its output is sorted after).
func TestModulesAreDeterministic(t *testing.T) {
	if testing.Short() {
		t.Skip("loads every chain package; skipped with -short")
	}
	cfg := &packages.Config{Mode: packages.NeedName | packages.NeedImports | packages.NeedSyntax | packages.NeedTypes | packages.NeedTypesInfo | packages.NeedFiles | packages.NeedCompiledGoFiles, Dir: "."}
	pkgs, err := packages.Load(cfg, "./...")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, p := range pkgs {
		if !strings.Contains(p.PkgPath, "/internal/chain/") {
			continue // the app package itself does the I/O
		}
		checked++
		for _, e := range p.Errors {
			t.Errorf("%s: %v", p.PkgPath, e)
		}
		for i, f := range p.Syntax {
			src := p.CompiledGoFiles[i]
			if ast.IsGenerated(f) {
				continue // protoc's output uses sync and unsafe for its own tables
			}
			for _, imp := range f.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				if why, ok := forbidden[path]; ok {
					t.Errorf("%s imports %s: %s", src, path, why)
				}
			}
			sorted := map[int]bool{}
			for _, cg := range f.Comments {
				for _, c := range cg.List {
					if strings.Contains(c.Text, "agora:sorted") {
						sorted[p.Fset.Position(c.Pos()).Line] = true
					}
				}
			}
			ast.Inspect(f, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.GoStmt:
					t.Errorf("%s:%d: go statement in a chain module", src, p.Fset.Position(n.Pos()).Line)
				case *ast.BasicLit:
					if n.Kind.String() == "FLOAT" {
						t.Errorf("%s:%d: float literal %s", src, p.Fset.Position(n.Pos()).Line, n.Value)
					}
				case *ast.Ident:
					if obj, ok := p.TypesInfo.Uses[n]; ok {
						if b, ok := obj.Type().Underlying().(*types.Basic); ok && b.Info()&types.IsFloat != 0 {
							t.Errorf("%s:%d: float value %s", src, p.Fset.Position(n.Pos()).Line, n.Name)
						}
					}
				case *ast.RangeStmt:
					if _, ok := p.TypesInfo.TypeOf(n.X).Underlying().(*types.Map); ok {
						line := p.Fset.Position(n.Pos()).Line
						if !sorted[line] && !sorted[line-1] {
							t.Errorf("%s:%d: range over a map; iterate sorted keys or mark the loop //agora:sorted", src, line)
						}
					}
				}
				return true
			})
		}
	}
	if checked < 5 {
		t.Fatalf("checked %d chain packages; the loader found too few (%v)", checked, strconv.Itoa(len(pkgs)))
	}
}
