package app

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/accounts"
	"github.com/rampart-iot/rampart/internal/tlsconf"
)

// benchHub runs a hub at the default argon2id parameters (m=64 MiB, t=3,
// p=4) with an owner set up, and returns a login function.
func benchHub(b *testing.B) (login func(email, pw string) int, stop func()) {
	b.Helper()
	cfg := testConfig(b, filepath.Join(b.TempDir(), "data"))
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		err := Serve(ctx, cfg, IO{Stdout: pw, Stderr: io.Discard}, WithHashParams(accounts.DefaultHashParams))
		pw.Close()
		done <- err
	}()
	sc := bufio.NewScanner(pr)
	var addr, code string
	for sc.Scan() {
		if c, ok := strings.CutPrefix(sc.Text(), "setup code: "); ok {
			code = c
		}
		if a, ok := strings.CutPrefix(sc.Text(), "rampart ready https="); ok {
			addr = strings.Fields(a)[0]
			break
		}
	}
	go io.Copy(io.Discard, pr)
	pemBytes, _ := os.ReadFile(filepath.Join(cfg.DataDir, "ca.pem"))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	tc, err := tlsconf.Client(tlsconf.ClientOptions{RootCAs: pool})
	if err != nil {
		b.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tc, MaxIdleConnsPerHost: 64}, Timeout: 5 * time.Minute}
	post := func(path string, body any) int {
		j, _ := json.Marshal(body)
		resp, err := client.Post("https://"+addr+path, "application/json", bytes.NewReader(j))
		if err != nil {
			return 0
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := post("/api/v1/setup", api.SetupRequest{SetupCode: code, Email: ownerEmail, Password: ownerPassword}); s != 201 {
		b.Fatalf("setup: %d", s)
	}
	login = func(email, pw string) int { return post("/api/v1/login", api.LoginRequest{Email: email, Password: pw}) }
	return login, func() { client.CloseIdleConnections(); cancel(); <-done }
}

// BenchmarkLoginLatencyDefaultParams: one login at a time through the
// HTTPS listener at the default argon2id parameters; reports p50 and p99.
func BenchmarkLoginLatencyDefaultParams(b *testing.B) {
	login, stop := benchHub(b)
	defer stop()
	login(ownerEmail, ownerPassword) // warm up
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if s := login(ownerEmail, ownerPassword); s != 200 {
			b.Fatalf("login: %d", s)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

// BenchmarkLoginThroughput: as many concurrent logins as the hashing cap
// allows (one per core); reports logins per second, the most any client
// gets before throttling (which then limits one address to 5 failures per
// account and 20 overall before growing delays).
func BenchmarkLoginThroughput(b *testing.B) {
	login, stop := benchHub(b)
	defer stop()
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := 0; w < 2*runtime.NumCPU(); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if s := login(ownerEmail, ownerPassword); s != 200 {
					b.Errorf("login: %d", s)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "logins/s")
}

// BenchmarkPeakMemory1000ConcurrentLogins fires 1,000 logins at once at the
// default parameters and samples the process's heap: the hashing cap (one
// argon2id at a time per core, 64 MiB each) bounds it; logins that wait
// longer than the queue deadline get 429.
//
// The sub-benchmarks fire 100 and 1,000 at once: if the peak grew with the
// number of requests rather than with the cap, the two would differ by far
// more than the per-connection buffers.
func BenchmarkPeakMemory1000ConcurrentLogins(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("concurrent=%d", n), func(b *testing.B) { peakMemory(b, n) })
	}
}

func peakMemory(b *testing.B, concurrent int) {
	login, stop := benchHub(b)
	defer stop()
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var base runtime.MemStats
		runtime.ReadMemStats(&base)
		var peak atomic.Uint64
		sampling := make(chan struct{})
		var sw sync.WaitGroup
		sw.Add(1)
		go func() {
			defer sw.Done()
			var m runtime.MemStats
			for {
				runtime.ReadMemStats(&m)
				if m.HeapInuse > peak.Load() {
					peak.Store(m.HeapInuse)
				}
				select {
				case <-sampling:
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
		}()
		var ok, limited, other atomic.Int64
		var wg sync.WaitGroup
		for j := 0; j < concurrent; j++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				switch login(ownerEmail, ownerPassword) {
				case 200:
					ok.Add(1)
				case 429:
					limited.Add(1)
				default:
					other.Add(1)
				}
			}()
		}
		wg.Wait()
		close(sampling)
		sw.Wait()
		b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
		b.ReportMetric(float64(base.HeapInuse)/(1<<20), "base-heap-MiB")
		b.ReportMetric(float64(runtime.NumCPU()*64), "cap-MiB")
		b.ReportMetric(float64(ok.Load()), "ok")
		b.ReportMetric(float64(limited.Load()), "429s")
		b.ReportMetric(float64(other.Load()), "other")
	}
}
