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
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/config"
	"github.com/rampart-iot/rampart/internal/devicesim"
	"github.com/rampart-iot/rampart/internal/tlsconf"
	"github.com/rampart-iot/rampart/sdk"
)

// sdkBenchHub is a minimal in-process hub for benchmarks (startHub takes a
// *testing.T).
type sdkBenchHub struct {
	tb     testing.TB
	cfg    *config.Config
	cancel context.CancelFunc
	done   chan error
	code   string
	client *http.Client
}

func startSDKBenchHub(tb testing.TB, cfg *config.Config) *sdkBenchHub {
	tb.Helper()
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	h := &sdkBenchHub{tb: tb, cfg: cfg, cancel: cancel, done: make(chan error, 1)}
	go func() {
		err := Serve(ctx, cfg, IO{Stdout: pw, Stderr: io.Discard}, WithHashParams(cheapHash))
		pw.CloseWithError(fmt.Errorf("serve returned: %v", err))
		h.done <- err
	}()
	sc := bufio.NewScanner(pr)
	ready := false
	for sc.Scan() {
		if c, ok := strings.CutPrefix(sc.Text(), "setup code: "); ok {
			h.code = c
		}
		if strings.HasPrefix(sc.Text(), "rampart ready ") {
			ready = true
			break
		}
	}
	if !ready {
		tb.Fatalf("hub not ready: %v", sc.Err())
	}
	go io.Copy(io.Discard, pr)
	pemBytes, err := os.ReadFile(filepath.Join(cfg.DataDir, "ca.pem"))
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	tcfg, err := tlsconf.Client(tlsconf.ClientOptions{RootCAs: pool})
	if err != nil {
		tb.Fatal(err)
	}
	h.client = &http.Client{Transport: &http.Transport{TLSClientConfig: tcfg}, Timeout: 30 * time.Second}
	return h
}

func (h *sdkBenchHub) stop() {
	if h.cancel == nil {
		return
	}
	h.client.CloseIdleConnections()
	h.cancel()
	h.cancel = nil
	<-h.done
}

func (h *sdkBenchHub) call(path, token string, body, out any) {
	h.tb.Helper()
	j, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", "https://"+h.cfg.HTTPS.Addr+path, bytes.NewReader(j))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		h.tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		h.tb.Fatalf("POST %s: %d %s", path, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			h.tb.Fatal(err)
		}
	}
}

// BenchmarkFleetRestart enrolls a fleet of simulated devices (1,000 by
// default; RAMPART_BENCH_DEVICES changes it) with one claim, connects
// them over mutual TLS from 8 loopback source addresses (127.0.0.1-8:
// the broker allows 256 connections and 20 new ones per second, burst 50,
// per address), stops the hub, restarts it on the same data folder and
// ports, and prints the histogram of reconnect times measured from the
// moment the hub is started again (its start-up time is printed too). Run it once:
//
//	go test -run '^$' -bench BenchmarkFleetRestart -benchtime 1x ./internal/app
func BenchmarkFleetRestart(b *testing.B) {
	n := 1000
	if s := os.Getenv("RAMPART_BENCH_DEVICES"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	addrs, _ := devicesim.ParseAddrs("127.0.0.1-127.0.0.8")
	for b.Loop() {
		cfg := testConfig(b, b.TempDir())
		cfg.Log.Level = "error"
		cfg.HTTPS.Addr, cfg.MQTT.Addr = freePort(b), freePort(b)
		h := startSDKBenchHub(b, cfg)
		h.call("/api/v1/setup", "", api.SetupRequest{SetupCode: h.code, Email: ownerEmail, Password: ownerPassword}, nil)
		var lr api.LoginResponse
		h.call("/api/v1/login", "", api.LoginRequest{Email: ownerEmail, Password: ownerPassword}, &lr)
		var claim api.Claim
		h.call("/api/v1/claims", lr.Token, api.CreateClaimRequest{Name: "bench", MaxUses: n, TTL: "1h"}, &claim)
		caPEM, _ := os.ReadFile(filepath.Join(cfg.DataDir, "ca.pem"))

		ctx, cancel := context.WithCancel(context.Background())
		t0 := time.Now()
		fleet, err := devicesim.Enroll(ctx, devicesim.Config{Hub: "https://" + cfg.HTTPS.Addr, MQTT: cfg.MQTT.Addr,
			Trust: sdk.Trust{CABundle: caPEM}, Count: n, Claim: claim.Token, StateDir: b.TempDir(), SourceAddrs: addrs, Rate: 0.2})
		if err != nil {
			b.Fatal(err)
		}
		enrolled := time.Since(t0)
		t0 = time.Now()
		fleet.Start(ctx)
		waitFleet(b, "fleet online", 3*time.Minute, func() bool { return fleet.Online() == n })
		online := time.Since(t0)
		fleet.MeasureMemory()
		before := fleet.Counts()

		h.stop()
		time.Sleep(3 * time.Second)
		restart := time.Now() // the hub process starts again
		h = startSDKBenchHub(b, cfg)
		ready := time.Now()
		waitFleet(b, "fleet back", 5*time.Minute, func() bool { return fleet.Online() == n })
		var back []time.Duration
		for _, r := range fleet.Reconnects() {
			if r.BackAt.After(restart) {
				back = append(back, r.BackAt.Sub(restart))
			}
		}
		after := fleet.Counts()
		fctx, fcancel := context.WithTimeout(ctx, time.Minute)
		if err := fleet.Flush(fctx); err != nil {
			b.Error(err)
		}
		fcancel()
		final := fleet.Counts()
		cancel()
		fleet.Close()
		h.stop()

		fmt.Printf("fleet of %d: enrolled in %v, all online in %v (%d CONNECT attempts)\n", n, enrolled.Round(time.Millisecond), online.Round(time.Millisecond), before.Attempts)
		fmt.Printf("memory (device SDK and hub in one process): %.1f KiB heap+stack per device; %.1f goroutines per device (SDK only)\n",
			before.HeapPerDeviceBytes/1024, before.GoroutinesPerDevice)
		fmt.Printf("hub restart took %v to its ready line\n", ready.Sub(restart).Round(time.Millisecond))
		fmt.Printf("after restart: %d reconnects, %d CONNECT attempts, sent=%d acked=%d dropped=%d\n", len(back), after.Attempts-before.Attempts, final.Sent, final.Acked, final.Dropped)
		devicesim.Histogram(os.Stdout, "first CONNECT attempt after the hub was restarted", fleet.FirstAttemptsAfter(restart), time.Second)
		devicesim.Histogram(os.Stdout, "reconnect time (session up) after the hub was restarted", back, time.Second)
		if len(back) > 0 {
			s := sortedDurations(back)
			b.ReportMetric(s[len(s)/2].Seconds(), "p50-reconnect-s")
			b.ReportMetric(s[len(s)*99/100].Seconds(), "p99-reconnect-s")
			b.ReportMetric(s[len(s)-1].Seconds(), "max-reconnect-s")
		}
		b.ReportMetric(before.HeapPerDeviceBytes/1024, "KiB/device")
	}
}

func sortedDurations(ds []time.Duration) []time.Duration {
	s := append([]time.Duration(nil), ds...)
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s
}

func waitFleet(tb testing.TB, what string, d time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
