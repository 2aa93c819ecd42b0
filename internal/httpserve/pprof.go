package httpserve

import (
	"net"
	"net/http"
	"net/http/pprof"
	"os"
)

// withProfiles serves Go's profiles under /debug/pprof/ beside h when the
// environment has AGORA_PPROF=1 and the server listens on loopback only,
// so that a daemon under load (bench/soak) can be profiled where it runs.
// Off by default: profiles show what the process holds.
func withProfiles(h http.Handler, addr net.Addr) http.Handler {
	tcp, ok := addr.(*net.TCPAddr)
	if os.Getenv("AGORA_PPROF") != "1" || !ok || !tcp.IP.IsLoopback() {
		return h
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/", h)
	return mux
}
