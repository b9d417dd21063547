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
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/accounts"
	"github.com/rampart-iot/rampart/internal/config"
	"github.com/rampart-iot/rampart/internal/tlsconf"
)

// cheapHash keeps in-process tests fast; the real parameters are exercised
// by the binary tests in cmd/rampart.
var cheapHash = accounts.HashParams{Time: 1, Memory: 1024, Threads: 1}

type testHub struct {
	t        *testing.T
	cfg      *config.Config
	addr     string
	mqttAddr string
	code     string
	client   *http.Client
	cancel   context.CancelFunc
	done     chan error
	stderr   *syncBuffer
}

func testConfig(t testing.TB, dir string) *config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.HTTPS.Addr = "127.0.0.1:0"
	cfg.MQTT.Addr = "127.0.0.1:0"
	cfg.Log.Level = "debug"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startHub runs Serve in-process and waits for the ready line.
func startHub(t *testing.T, cfg *config.Config, opts ...Option) *testHub {
	t.Helper()
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	h := &testHub{t: t, cfg: cfg, cancel: cancel, done: make(chan error, 1), stderr: &syncBuffer{}}
	opts = append([]Option{WithHashParams(cheapHash)}, opts...)
	go func() {
		err := Serve(ctx, cfg, IO{Stdout: pw, Stderr: h.stderr}, opts...)
		pw.CloseWithError(fmt.Errorf("serve returned: %v", err))
		h.done <- err
	}()
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		line := sc.Text()
		if c, ok := strings.CutPrefix(line, "setup code: "); ok {
			h.code = c
		}
		if a, ok := strings.CutPrefix(line, "rampart ready https="); ok {
			fields := strings.Fields(a)
			h.addr = fields[0]
			for _, f := range fields[1:] {
				if m, ok := strings.CutPrefix(f, "mqtt="); ok {
					h.mqttAddr = m
				}
			}
			break
		}
	}
	if h.addr == "" {
		t.Fatalf("hub never printed its ready line: %v\nlog:\n%s", sc.Err(), h.stderr)
	}
	go io.Copy(io.Discard, pr)
	h.client = clientFor(t, cfg.DataDir)
	t.Cleanup(func() { h.stop() })
	return h
}

// syncBuffer is a bytes.Buffer safe for the logger and the test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (h *testHub) stop() error {
	if h.cancel == nil {
		return nil
	}
	if h.client != nil {
		h.client.CloseIdleConnections()
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		return err
	case <-time.After(30 * time.Second):
		h.t.Fatal("hub did not shut down in 30s")
		return nil
	}
}

func clientFor(t *testing.T, dir string) *http.Client {
	t.Helper()
	pemBytes, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatal("ca.pem holds no certificate")
	}
	cfg, err := tlsconf.Client(tlsconf.ClientOptions{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}, Timeout: 30 * time.Second}
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) errCode() api.Code {
	var e api.ErrorBody
	_ = json.Unmarshal(r.body, &e)
	return e.Error.Code
}

func (h *testHub) do(method, path, token string, body any) reply {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, "https://"+h.addr+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

const (
	ownerEmail    = "owner@example.com"
	ownerPassword = "correct horse battery staple"
)

func (h *testHub) setupAndLogin() string {
	h.t.Helper()
	r := h.do("POST", "/api/v1/setup", "", api.SetupRequest{SetupCode: h.code, Email: ownerEmail, Password: ownerPassword})
	if r.status != http.StatusCreated {
		h.t.Fatalf("setup: %d %s", r.status, r.body)
	}
	return h.login(ownerEmail, ownerPassword)
}

func (h *testHub) login(email, password string) string {
	h.t.Helper()
	r := h.do("POST", "/api/v1/login", "", api.LoginRequest{Email: email, Password: password})
	if r.status != http.StatusOK {
		h.t.Fatalf("login: %d %s", r.status, r.body)
	}
	var lr api.LoginResponse
	if err := json.Unmarshal(r.body, &lr); err != nil || lr.Token == "" {
		h.t.Fatalf("login body %s: %v", r.body, err)
	}
	return lr.Token
}
