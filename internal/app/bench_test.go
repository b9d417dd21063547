package app

import (
	"bufio"
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serveUntilReady starts Serve and returns how long the ready line took,
// then stops the hub (not timed).
func serveUntilReady(b *testing.B, dir string) time.Duration {
	b.Helper()
	cfg := testConfig(b, dir)
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		err := Serve(ctx, cfg, IO{Stdout: pw, Stderr: io.Discard}, WithHashParams(cheapHash))
		pw.Close()
		done <- err
	}()
	sc := bufio.NewScanner(pr)
	var took time.Duration
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "rampart ready ") {
			took = time.Since(start)
			break
		}
	}
	go io.Copy(io.Discard, pr)
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	if took == 0 {
		b.Fatal("no ready line")
	}
	return took
}

// BenchmarkFirstStart measures a first run to the ready line: data folder,
// master key, database and migrations, keyring, root CA and server
// certificate, journal keys, setup code.
func BenchmarkFirstStart(b *testing.B) {
	var total time.Duration
	for i := 0; i < b.N; i++ {
		total += serveUntilReady(b, filepath.Join(b.TempDir(), "data"))
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/ready")
}

// BenchmarkWarmStart measures a restart of an existing data folder.
func BenchmarkWarmStart(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "data")
	serveUntilReady(b, dir)
	var total time.Duration
	for i := 0; i < b.N; i++ {
		total += serveUntilReady(b, dir)
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/ready")
}
