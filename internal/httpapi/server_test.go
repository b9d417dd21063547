package httpapi

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func selfSigned(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS13}, pool
}

// A client that connects and says nothing (slowloris) is cut off at the
// handshake deadline, and a stalled handshake does not block others.
func TestSilentClientIsDroppedAtTheHandshakeDeadline(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg, pool := selfSigned(t)
	l := newHandshakeListener(raw, cfg, slog.New(slog.DiscardHandler))
	l.timeout = 300 * time.Millisecond
	l.start()
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hello"))
			c.Close()
		}
	}()
	silent, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	// A real client still gets through while the silent one waits.
	good, err := tls.Dial("tcp", raw.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatalf("a good client was blocked by a silent one: %v", err)
	}
	b, _ := io.ReadAll(good)
	good.Close()
	if string(b) != "hello" {
		t.Fatalf("good client read %q", b)
	}
	start := time.Now()
	silent.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := silent.Read(make([]byte, 1))
	if n != 0 || err == nil {
		t.Fatalf("silent client read %d bytes, err %v", n, err)
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the hub never closed a connection that sent nothing")
	}
	if waited := time.Since(start); waited > 4*time.Second {
		t.Fatalf("closed after %v", waited)
	}
}

func TestPublicRoutesAreRateLimitedPerSource(t *testing.T) {
	h := New(Options{Accounts: &recordingAccounts{}})
	clock := time.Unix(1_800_000_000, 0)
	h.public = newSourceLimiter(2, 3, func() time.Time { return clock })
	call := func(remote string) int {
		req := httptest.NewRequest("POST", "/api/v1/login", strings.NewReader(`{"email":"a@b.c","password":"x"}`))
		req.Header.Set("Content-Type", "application/json")
		req.RemoteAddr = remote
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	for i := 0; i < 3; i++ {
		if c := call("192.0.2.1:1000"); c != http.StatusUnauthorized {
			t.Fatalf("request %d within the burst: %d", i, c)
		}
	}
	if c := call("192.0.2.1:1001"); c != http.StatusTooManyRequests {
		t.Fatalf("over the burst: %d, want 429", c)
	}
	if c := call("192.0.2.2:1000"); c != http.StatusUnauthorized {
		t.Fatalf("another source was limited: %d", c)
	}
	clock = clock.Add(time.Second) // two more tokens
	if c := call("192.0.2.1:1002"); c != http.StatusUnauthorized {
		t.Fatalf("after refill: %d", c)
	}
}

func TestListLimit(t *testing.T) {
	for q, want := range map[string]int{"": 100, "?limit=1": 1, "?limit=50": 50, "?limit=0": -1, "?limit=51": -1, "?limit=x": -1, "?limit=-3": -1} {
		n, err := listLimit(httptest.NewRequest("GET", "/x"+q, nil), 50)
		if q == "" {
			want = 50 // the default never exceeds the maximum
		}
		if (want < 0) != (err != nil) || (want >= 0 && n != want) {
			t.Errorf("%q: %d %v, want %d", q, n, err, want)
		}
	}
}
