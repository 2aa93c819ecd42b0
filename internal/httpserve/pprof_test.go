package httpserve

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestProfilesOnlyWhenAskedOnLoopback: /debug/pprof/ is served only with
// AGORA_PPROF=1 and only on a loopback listener; otherwise the path is the
// daemon's own (here a 404).
func TestProfilesOnlyWhenAskedOnLoopback(t *testing.T) {
	h := http.NotFoundHandler()
	loop := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}
	public := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1)}
	status := func(h http.Handler) int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/pprof/", nil))
		return rec.Code
	}
	if got := status(withProfiles(h, loop)); got != http.StatusNotFound {
		t.Errorf("without AGORA_PPROF: %d, want 404", got)
	}
	t.Setenv("AGORA_PPROF", "1")
	if got := status(withProfiles(h, public)); got != http.StatusNotFound {
		t.Errorf("on a public address: %d, want 404", got)
	}
	if got := status(withProfiles(h, loop)); got != http.StatusOK {
		t.Errorf("asked for, on loopback: %d, want 200", got)
	}
}
