package sdk

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// A 429 from the hub is retried after its Retry-After; other refusals are not.
func TestPostRetriesRateLimitedRequests(t *testing.T) {
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		switch {
		case r.URL.Path == "/busy" && calls < 3:
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			w.Write([]byte(`{"error":{"code":"rate_limited","message":"slow down"}}`))
		case r.URL.Path == "/busy":
			w.Write([]byte(`{"ok":true}`))
		default:
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":{"code":"unauthenticated","message":"no"}}`))
		}
	}))
	defer srv.Close()
	var out struct{ OK bool }
	start := time.Now()
	if err := post(context.Background(), srv.Client(), srv.URL, "/busy", map[string]int{}, &out); err != nil || !out.OK || calls != 3 {
		t.Fatalf("post: %v ok=%v calls=%d", err, out.OK, calls)
	}
	if waited := time.Since(start); waited < 2*time.Second {
		t.Fatalf("retried after %v; the hub asked for 1 s each time", waited)
	}
	calls = 0
	if err := post(context.Background(), srv.Client(), srv.URL, "/denied", map[string]int{}, nil); err == nil || calls != 1 {
		t.Fatalf("a 401 was retried (%d calls) or accepted: %v", calls, err)
	}
}
