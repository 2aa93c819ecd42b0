package h1

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkHop compares a POST and its answer over loopback through
// net/http's Transport and through this one, from concurrent callers.
func BenchmarkHop(b *testing.B) {
	answer := bytes.Repeat([]byte("a"), 600)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write(answer)
	}))
	defer s.Close()
	body := bytes.Repeat([]byte("q"), 200)
	std := http.DefaultTransport.(*http.Transport).Clone()
	std.MaxIdleConnsPerHost = 256
	for _, tc := range []struct {
		name string
		rt   http.RoundTripper
	}{{"net-http", std}, {"h1", &Transport{}}} {
		b.Run(tc.name, func(b *testing.B) {
			c := &http.Client{Transport: tc.rt}
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := c.Post(s.URL, "application/json", bytes.NewReader(body))
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		})
	}
}
