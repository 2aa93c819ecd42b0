package jobrun_test

import (
	"context"
	"crypto/sha256"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/agoranet/agora/internal/blob"
	"github.com/agoranet/agora/internal/chain/job/jobpb"
	"github.com/agoranet/agora/internal/e2e"
	"github.com/agoranet/agora/internal/jobrun"
	"github.com/agoranet/agora/internal/sandbox"
)

// TestExecuteBadInput: each kind of bad job ends in its defined result
// code, never an error, so lessees can agree on it and the chain can end
// the order with a clear reason.
func TestExecuteBadInput(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a WebAssembly job; skipped with -short")
	}
	kernel := read(t, e2e.Wasm(t, "./examples/jobs/kernel"))
	store, err := blob.Open(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(store.Handler())
	defer srv.Close()
	put := func(b []byte) (string, []byte) {
		name, err := store.Put(b)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256(b)
		return srv.URL + blob.Path + name, h[:]
	}
	ku, kh := put(kernel)
	iu, ih := put([]byte("16 1"))
	gu, gh := put([]byte("#!/bin/sh\n"))
	bu, bh := put([]byte("banana"))
	other := sha256.Sum256([]byte("not the input"))
	tests := []struct {
		name string
		o    *jobpb.Order
		want jobpb.ResultCode
	}{
		{"runs", &jobpb.Order{ModuleUrl: ku, ModuleHash: kh, InputUrl: iu, InputHash: ih, Fuel: 1 << 34, MemoryMib: 64}, jobpb.ResultCode_RESULT_CODE_OK},
		{"input does not match its hash", &jobpb.Order{ModuleUrl: ku, ModuleHash: kh, InputUrl: iu, InputHash: other[:], Fuel: 1 << 34, MemoryMib: 64}, jobpb.ResultCode_RESULT_CODE_BAD_INPUT},
		{"not WebAssembly", &jobpb.Order{ModuleUrl: gu, ModuleHash: gh, InputUrl: iu, InputHash: ih, Fuel: 1 << 34, MemoryMib: 64}, jobpb.ResultCode_RESULT_CODE_INVALID_MODULE},
		{"bad input to the program", &jobpb.Order{ModuleUrl: ku, ModuleHash: kh, InputUrl: bu, InputHash: bh, Fuel: 1 << 34, MemoryMib: 64}, jobpb.ResultCode_RESULT_CODE_EXIT},
		{"too little fuel", &jobpb.Order{ModuleUrl: ku, ModuleHash: kh, InputUrl: iu, InputHash: ih, Fuel: 1000, MemoryMib: 64}, jobpb.ResultCode_RESULT_CODE_OUT_OF_FUEL},
		{"too little memory", &jobpb.Order{ModuleUrl: ku, ModuleHash: kh, InputUrl: iu, InputHash: ih, Fuel: 1 << 34, MemoryMib: 1}, jobpb.ResultCode_RESULT_CODE_OUT_OF_MEMORY},
		{"input unreachable", &jobpb.Order{ModuleUrl: ku, ModuleHash: kh, InputUrl: "http://127.0.0.1:1/v1/blobs/x", InputHash: other[:], Fuel: 1 << 34, MemoryMib: 64}, jobpb.ResultCode_RESULT_CODE_UNAVAILABLE},
	}
	sb := sandbox.New()
	defer sb.Close(context.Background())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, _, err := jobrun.Execute(context.Background(), sb, srv.Client(), nil, nil, tt.o)
			if err != nil {
				t.Fatal(err)
			}
			if res.Code != tt.want || len(res.OutputHash) != 32 {
				t.Fatalf("code %s, want %s", res.Code, tt.want)
			}
		})
	}
}

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
