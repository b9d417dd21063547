package app

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/tlsconf"
)

// benchPost sends a JSON body and decodes the reply into out.
func benchPost(b *testing.B, c *http.Client, url, token string, body, out any, want int) {
	j, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", url, bytes.NewReader(j))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		b.Fatalf("POST %s: %d %s", url, resp.StatusCode, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEnrollThroughListener measures POST /api/v1/enroll (token + P-256
// CSR -> certificate chain) through the real HTTPS listener, over a kept-
// alive HTTP/2 connection, and reports p50 and p99 latency. Creating the
// device and making the key and CSR are not timed.
func BenchmarkEnrollThroughListener(b *testing.B) {
	dir := b.TempDir()
	cfg := testConfig(b, dir)
	cfg.Log.Level = "error"
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		err := Serve(ctx, cfg, IO{Stdout: pw, Stderr: io.Discard}, WithHashParams(cheapHash))
		pw.Close()
		done <- err
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()
	var addr, code string
	sc := bufio.NewScanner(pr)
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
	pemBytes, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	tcfg, err := tlsconf.Client(tlsconf.ClientOptions{RootCAs: pool})
	if err != nil {
		b.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: tcfg, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	base := "https://" + addr + "/api/v1/"
	benchPost(b, c, base+"setup", "", api.SetupRequest{SetupCode: code, Email: ownerEmail, Password: ownerPassword}, nil, 201)
	var lr api.LoginResponse
	benchPost(b, c, base+"login", "", api.LoginRequest{Email: ownerEmail, Password: ownerPassword}, &lr, 200)

	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		var d api.Device
		benchPost(b, c, base+"devices", lr.Token, api.CreateDeviceRequest{Name: "bench"}, &d, 201)
		req := api.EnrollRequest{Token: d.EnrollmentToken, CSR: csrPEM(b, p256(b), "x")}
		b.StartTimer()
		start := time.Now()
		var er api.EnrollResponse
		benchPost(b, c, base+"enroll", "", req, &er, 200)
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}
