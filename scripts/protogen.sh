#!/usr/bin/env bash
# Regenerates the Go code for proto/. Needs protoc (Debian: protobuf-compiler)
# and protoc-gen-go at the version go.mod pins.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v protoc >/dev/null || { echo "protoc missing: apt-get install protobuf-compiler" >&2; exit 1; }
ver=$(go list -m -f '{{.Version}}' google.golang.org/protobuf)
GOBIN="$PWD/.bin" go install "google.golang.org/protobuf/cmd/protoc-gen-go@$ver"
mod=$(go list -m)
find proto -name '*.proto' -print0 | xargs -0 protoc -I proto \
  --plugin=protoc-gen-go="$PWD/.bin/protoc-gen-go" \
  --go_out=. --go_opt=module="$mod"
