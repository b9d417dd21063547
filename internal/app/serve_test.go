package app

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/secrets"
	"github.com/rampart-iot/rampart/internal/testkit"
	"github.com/rampart-iot/rampart/internal/tlsconf"
)

var codeRE = regexp.MustCompile(`^[A-Z2-7]{5}-[A-Z2-7]{5}-[A-Z2-7]{5}-[A-Z2-7]{5}$`)

func mode(t *testing.T, p string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestFirstRunCreatesSecureDataFolderAndRestartReusesIt(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	cfg := testConfig(t, dir)
	h := startHub(t, cfg)
	if !codeRE.MatchString(h.code) {
		t.Fatalf("setup code %q does not look like XXXXX-XXXXX-XXXXX-XXXXX", h.code)
	}
	for p, want := range map[string]fs.FileMode{
		dir: 0o700, filepath.Join(dir, "master.key"): 0o600, filepath.Join(dir, "rampart.db"): 0o600,
		filepath.Join(dir, "setup-code"): 0o600, filepath.Join(dir, "ca.pem"): 0o644,
	} {
		if got := mode(t, p); got != want {
			t.Errorf("%s has mode %#o, want %#o", p, got, want)
		}
	}
	onDisk, _ := os.ReadFile(filepath.Join(dir, "setup-code"))
	if strings.TrimSpace(string(onDisk)) != h.code {
		t.Fatalf("setup-code file holds %q, console printed %q", onDisk, h.code)
	}
	ca1, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	firstCode := h.code
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}

	// A restart before setup prints a new code and kills the old one.
	h = startHub(t, cfg)
	if h.code == "" || h.code == firstCode {
		t.Fatalf("restart before setup printed code %q (first was %q); want a new one", h.code, firstCode)
	}
	r := h.do("POST", "/api/v1/setup", "", api.SetupRequest{SetupCode: firstCode, Email: ownerEmail, Password: ownerPassword})
	if r.status != http.StatusUnauthorized {
		t.Fatalf("old setup code after restart: %d %s; want 401", r.status, r.body)
	}
	h.setupAndLogin()
	if _, err := os.Stat(filepath.Join(dir, "setup-code")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("setup-code file still there after setup: %v", err)
	}
	h.stop()

	// After setup: no code, same CA, the owner can log in.
	h = startHub(t, cfg)
	if h.code != "" {
		t.Fatalf("a set-up hub printed a setup code %q", h.code)
	}
	ca2, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if !bytes.Equal(ca1, ca2) {
		t.Fatal("the root CA changed across restarts")
	}
	h.login(ownerEmail, ownerPassword)
}

func TestSetupCode(t *testing.T) {
	t.Run("ok/single use", func(t *testing.T) {
		h := startHub(t, testConfig(t, t.TempDir()))
		h.setupAndLogin()
		r := h.do("POST", "/api/v1/setup", "", api.SetupRequest{SetupCode: h.code, Email: "second@example.com", Password: ownerPassword})
		if r.status != http.StatusConflict || r.errCode() != api.CodeConflict {
			t.Fatalf("second setup: %d %s; want 409 conflict", r.status, r.body)
		}
		r = h.do("POST", "/api/v1/login", "", api.LoginRequest{Email: "second@example.com", Password: ownerPassword})
		if r.status != http.StatusUnauthorized {
			t.Fatalf("second setup created an account: login %d", r.status)
		}
	})
	t.Run("fail/burnt after five wrong tries", func(t *testing.T) {
		h := startHub(t, testConfig(t, t.TempDir()))
		wrong := "AAAAA-AAAAA-AAAAA-AAAAA"
		for i := 1; i <= 5; i++ {
			r := h.do("POST", "/api/v1/setup", "", api.SetupRequest{SetupCode: wrong, Email: ownerEmail, Password: ownerPassword})
			want := http.StatusUnauthorized
			if i == 5 {
				want = http.StatusTooManyRequests
			}
			if r.status != want {
				t.Fatalf("wrong try %d: %d %s; want %d", i, r.status, r.body, want)
			}
		}
		r := h.do("POST", "/api/v1/setup", "", api.SetupRequest{SetupCode: h.code, Email: ownerEmail, Password: ownerPassword})
		if r.status != http.StatusConflict {
			t.Fatalf("right code after burn: %d %s; want 409", r.status, r.body)
		}
		if _, err := os.Stat(filepath.Join(h.cfg.DataDir, "setup-code")); err != nil {
			// the file stays until restart or setup; what matters is the code is dead
			t.Logf("setup-code file: %v", err)
		}
	})
	t.Run("fail/expired", func(t *testing.T) {
		clock := testkit.NewClock(time.Now())
		h := startHub(t, testConfig(t, t.TempDir()), WithClock(clock.Now))
		clock.Advance(61 * time.Minute)
		r := h.do("POST", "/api/v1/setup", "", api.SetupRequest{SetupCode: h.code, Email: ownerEmail, Password: ownerPassword})
		if r.status != http.StatusGone || r.errCode() != api.CodeExpired {
			t.Fatalf("expired code: %d %s; want 410 expired", r.status, r.body)
		}
	})
	t.Run("fail/bad input costs no try and changes nothing", func(t *testing.T) {
		h := startHub(t, testConfig(t, t.TempDir()))
		bad := []api.SetupRequest{
			{SetupCode: h.code, Email: ownerEmail, Password: "short"},
			{SetupCode: h.code, Email: ownerEmail, Password: "mailcreated5240"}, // on the common-password list
			{SetupCode: h.code, Email: ownerEmail, Password: "rampartrampart1"}, // built on the service name
			{SetupCode: h.code, Email: ownerEmail, Password: "owner@example.com"},
			{SetupCode: h.code, Email: ownerEmail, Password: strings.Repeat("a", 20)},
			{SetupCode: h.code, Email: "not an email", Password: ownerPassword},
			{SetupCode: h.code, Email: "", Password: ownerPassword},
		}
		for _, b := range bad {
			r := h.do("POST", "/api/v1/setup", "", b)
			if r.status != http.StatusBadRequest || r.errCode() != api.CodeInvalid {
				t.Errorf("setup %+v: %d %s; want 400 invalid_request", b, r.status, r.body)
			}
		}
		// The code is intact: four wrong codes leave exactly one try.
		for i := 0; i < 4; i++ {
			h.do("POST", "/api/v1/setup", "", api.SetupRequest{SetupCode: "BBBBB-BBBBB-BBBBB-BBBBB", Email: ownerEmail, Password: ownerPassword})
		}
		h.setupAndLogin()
	})
}

func TestLoginSessionsAndLogout(t *testing.T) {
	h := startHub(t, testConfig(t, t.TempDir()))
	token := h.setupAndLogin()
	if !strings.HasPrefix(token, "rps_") || len(token) < 40 {
		t.Fatalf("token %q is not a 256-bit rps_ token", token)
	}
	r := h.do("GET", "/api/v1/me", token, nil)
	var me api.Me
	if r.status != 200 || json.Unmarshal(r.body, &me) != nil || me.Email != ownerEmail || me.Role != "owner" {
		t.Fatalf("me: %d %s", r.status, r.body)
	}
	unknown := h.do("POST", "/api/v1/login", "", api.LoginRequest{Email: "nobody@example.com", Password: ownerPassword})
	wrong := h.do("POST", "/api/v1/login", "", api.LoginRequest{Email: ownerEmail, Password: "wrong password for sure"})
	if unknown.status != 401 || wrong.status != 401 || !bytes.Equal(unknown.body, wrong.body) {
		t.Fatalf("unknown user (%d %s) and wrong password (%d %s) must answer alike", unknown.status, unknown.body, wrong.status, wrong.body)
	}
	if r := h.do("POST", "/api/v1/logout", token, nil); r.status != http.StatusNoContent {
		t.Fatalf("logout: %d %s", r.status, r.body)
	}
	if r := h.do("GET", "/api/v1/me", token, nil); r.status != 401 {
		t.Fatalf("token still works after logout: %d", r.status)
	}
}

func TestEveryRouteRefusesUnauthenticatedClients(t *testing.T) {
	h := startHub(t, testConfig(t, t.TempDir()))
	token := h.setupAndLogin()
	for _, tc := range []struct{ method, path, token string }{
		{"GET", "/api/v1/me", ""},
		{"POST", "/api/v1/logout", ""},
		{"GET", "/metrics", ""},
		{"GET", "/", ""},
		{"GET", "/api/v1/devices", ""},
		{"DELETE", "/api/v1/setup", ""},
		{"GET", "/api/v1/me", "rps_forged"},
		{"GET", "/metrics", "rps_" + strings.Repeat("A", 43)},
	} {
		r := h.do(tc.method, tc.path, tc.token, nil)
		if r.status != http.StatusUnauthorized || r.errCode() != api.CodeUnauthenticated {
			t.Errorf("%s %s (token %q): %d %s; want 401", tc.method, tc.path, tc.token, r.status, r.body)
		}
		if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s %s: no WWW-Authenticate challenge", tc.method, tc.path)
		}
	}
	r := h.do("GET", "/metrics", token, nil)
	if r.status != 200 || !bytes.Contains(r.body, []byte("rampart_http_requests_total")) {
		t.Fatalf("metrics with the owner's token: %d %.200s", r.status, r.body)
	}
	if r := h.do("GET", "/api/v1/nothing-here", token, nil); r.status != 404 || r.errCode() != api.CodeNotFound {
		t.Fatalf("unknown route with a token: %d %s; want 404", r.status, r.body)
	}
}

func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	h := startHub(t, testConfig(t, t.TempDir()))
	for _, r := range []reply{
		h.do("GET", "/api/v1/me", "", nil),
		h.do("POST", "/api/v1/login", "", "{"),
		h.do("POST", "/api/v1/login", "", api.LoginRequest{Email: "a@example.com", Password: "x"}),
	} {
		for k, want := range map[string]string{
			"Strict-Transport-Security": "max-age=63072000; includeSubDomains",
			"X-Content-Type-Options":    "nosniff",
			"Cache-Control":             "no-store",
			"X-Frame-Options":           "DENY",
		} {
			if got := r.header.Get(k); got != want {
				t.Errorf("%s = %q, want %q", k, got, want)
			}
		}
		csp := r.header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("Content-Security-Policy = %q", csp)
		}
	}
}

func TestBadBodiesAreRefusedAndChangeNothing(t *testing.T) {
	h := startHub(t, testConfig(t, t.TempDir()))
	huge := `{"setup_code":"` + strings.Repeat("A", 1<<20) + `","email":"a@example.com","password":"x"}`
	cases := []struct {
		name, body, ctype string
		status            int
		code              api.Code
	}{
		{"fail/over 1 MiB", huge, "application/json", 413, api.CodeTooLarge},
		{"fail/malformed", `{"setup_code":`, "application/json", 400, api.CodeInvalid},
		{"fail/unknown field", `{"setup_code":"` + h.code + `","email":"` + ownerEmail + `","password":"` + ownerPassword + `","role":"admin"}`, "application/json", 400, api.CodeInvalid},
		{"fail/trailing data", `{"setup_code":"x"} {"a":1}`, "application/json", 400, api.CodeInvalid},
		{"fail/wrong type", `{"setup_code":5}`, "application/json", 400, api.CodeInvalid},
		{"fail/empty", ``, "application/json", 400, api.CodeInvalid},
		{"fail/not json", `setup_code=x`, "application/x-www-form-urlencoded", 415, api.CodeUnsupported},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", "https://"+h.addr+"/api/v1/setup", strings.NewReader(tc.body))
			req.Header.Set("Content-Type", tc.ctype)
			resp, err := h.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var e api.ErrorBody
			if resp.StatusCode != tc.status || json.Unmarshal(b, &e) != nil || e.Error.Code != tc.code || e.Error.Message == "" {
				t.Fatalf("%d %.300s; want %d with code %s", resp.StatusCode, b, tc.status, tc.code)
			}
			if bytes.Contains(b, []byte(ownerPassword)) {
				t.Fatal("the error echoes the password")
			}
		})
	}
	// Nothing changed: the setup code still has all five tries and no
	// account exists.
	for i := 0; i < 4; i++ {
		h.do("POST", "/api/v1/setup", "", api.SetupRequest{SetupCode: "CCCCC-CCCCC-CCCCC-CCCCC", Email: ownerEmail, Password: ownerPassword})
	}
	h.setupAndLogin()
}

func TestPlaintextHTTPGetsNoData(t *testing.T) {
	h := startHub(t, testConfig(t, t.TempDir()))
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /api/v1/me HTTP/1.1\r\nHost: %s\r\n\r\n", h.addr)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if len(b) != 0 {
		t.Fatalf("plaintext request got %d bytes back: %q", len(b), b)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the hub kept a plaintext connection open instead of closing it")
	}
}

func TestTLSFloor(t *testing.T) {
	dial := func(addr string, pool *x509.CertPool, max uint16, suites []uint16) error {
		cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS10, MaxVersion: max, CipherSuites: suites}
		c, err := tls.Dial("tcp", addr, cfg)
		if err == nil {
			c.Close()
		}
		return err
	}
	pool := func(dir string) *x509.CertPool {
		p := x509.NewCertPool()
		b, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
		p.AppendCertsFromPEM(b)
		return p
	}
	t.Run("default is TLS 1.3 only", func(t *testing.T) {
		h := startHub(t, testConfig(t, t.TempDir()))
		p := pool(h.cfg.DataDir)
		if err := dial(h.addr, p, tls.VersionTLS13, nil); err != nil {
			t.Fatalf("ok/TLS 1.3: %v", err)
		}
		for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS11, tls.VersionTLS10} {
			if err := dial(h.addr, p, v, nil); err == nil {
				t.Errorf("fail/%s was accepted", tls.VersionName(v))
			}
		}
	})
	t.Run("1.2 allowed only with ECDHE and AEAD", func(t *testing.T) {
		cfg := testConfig(t, t.TempDir())
		cfg.TLS.MinVersion = "1.2"
		h := startHub(t, cfg)
		p := pool(h.cfg.DataDir)
		if err := dial(h.addr, p, tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}); err != nil {
			t.Fatalf("ok/TLS 1.2 ECDHE-GCM: %v", err)
		}
		if err := dial(h.addr, p, tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}); err == nil {
			t.Error("fail/TLS 1.2 CBC suite was accepted")
		}
		if err := dial(h.addr, p, tls.VersionTLS11, nil); err == nil {
			t.Error("fail/TLS 1.1 was accepted")
		}
	})
}

// keyBytes returns the raw private key material the data folder protects,
// decrypted through the real keyring, for the disk scan.
func keyBytes(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	cfg := testConfig(t, dir)
	d, err := openData(context.Background(), cfg, defaultEnv(), false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	out := map[string][]byte{}
	for _, name := range []string{"pki/root/key", "pki/server/key", vaultJournalSigner, vaultJournalMAC} {
		b, err := d.vault.Get(context.Background(), name)
		if err != nil {
			t.Fatalf("vault %s: %v", name, err)
		}
		out[name] = b
		if k, err := x509.ParsePKCS8PrivateKey(b); err == nil {
			if ek, ok := k.(interface{ Bytes() ([]byte, error) }); ok {
				if raw, err := ek.Bytes(); err == nil {
					out[name+" scalar"] = raw
				}
			}
		}
	}
	signer, _, _ := d.journalKeys(context.Background(), defaultEnv(), false)
	out["journal private key"] = []byte(signer)
	_ = ed25519.PublicKey(nil)
	return out
}

func TestNoSecretInPlaintextOnDisk(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	h := startHub(t, cfg)
	code := h.code
	token := h.setupAndLogin()
	h.do("GET", "/api/v1/me", token, nil)
	h.do("POST", "/api/v1/login", "", api.LoginRequest{Email: ownerEmail, Password: "a wrong password attempt"})
	logText := h.stderr.String()
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	mkFile, _ := os.ReadFile(filepath.Join(dir, "master.key"))
	mkRaw, err := base64.StdEncoding.DecodeString(strings.Fields(string(mkFile))[1])
	if err != nil {
		t.Fatal(err)
	}
	needles := map[string][]byte{
		"PEM private key":     []byte("PRIVATE KEY"),
		"setup code":          []byte(code),
		"setup code (bare)":   []byte(strings.ReplaceAll(code, "-", "")),
		"password":            []byte(ownerPassword),
		"wrong password":      []byte("a wrong password attempt"),
		"session token":       []byte(token),
		"session token (raw)": []byte(strings.TrimPrefix(token, "rps_")),
		"master key":          mkRaw,
	}
	for name, b := range keyBytes(t, dir) {
		needles[name] = b
	}
	for name, b := range needles {
		if len(b) == 0 {
			t.Fatalf("empty needle %s", name)
		}
		forms := map[string][]byte{"raw": b}
		if !strings.Contains(name, "PEM") {
			forms["hex"] = []byte(hex.EncodeToString(b))
			forms["base64"] = []byte(base64.StdEncoding.EncodeToString(b))
		}
		for form, needle := range forms {
			if strings.Contains(logText, string(needle)) {
				t.Errorf("the log holds the %s (%s)", name, form)
			}
			filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
				if err != nil || de.IsDir() {
					return err
				}
				if filepath.Base(p) == "master.key" && name == "master key" {
					return nil // the key file is where the master key lives (by design)
				}
				content, _ := os.ReadFile(p)
				if bytes.Contains(content, needle) {
					t.Errorf("%s holds the %s (%s)", p, name, form)
				}
				return nil
			})
		}
	}
}

func TestRefusesToStartAndChangesNothing(t *testing.T) {
	prepare := func(t *testing.T) (string, *testHub) {
		dir := filepath.Join(t.TempDir(), "data")
		h := startHub(t, testConfig(t, dir))
		h.setupAndLogin()
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
		return dir, h
	}
	cases := []struct {
		name   string
		break_ func(t *testing.T, dir string)
		want   string
	}{
		{"fail/wrong master key", func(t *testing.T, dir string) {
			other := filepath.Join(t.TempDir(), "other.key")
			if _, err := secrets.CreateKeyFile(other, testkit.NewRand("other")); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(other)
			if err := os.WriteFile(filepath.Join(dir, "master.key"), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "does not match"},
		{"fail/key file readable by others", func(t *testing.T, dir string) {
			os.Chmod(filepath.Join(dir, "master.key"), 0o644)
		}, "chmod 600"},
		{"fail/world-writable data folder", func(t *testing.T, dir string) {
			os.Chmod(dir, 0o777)
		}, "chmod 700"},
		{"fail/missing key file", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "master.key"))
		}, "does not exist"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir, _ := prepare(t)
			tc.break_(t, dir)
			before := testkit.SnapshotDir(t, dir)
			var out, errb bytes.Buffer
			err := Serve(context.Background(), testConfig(t, dir), IO{Stdout: &out, Stderr: &errb}, WithHashParams(cheapHash))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Serve: %v; want an error containing %q", err, tc.want)
			}
			if out.Len() != 0 {
				t.Fatalf("printed %q before refusing", out.String())
			}
			testkit.SameSnapshot(t, before, testkit.SnapshotDir(t, dir))
		})
	}
}

func TestJournalRecordsSecurityEventsAndDetectsTampering(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	h := startHub(t, cfg)
	h.do("POST", "/api/v1/setup", "", api.SetupRequest{SetupCode: "DDDDD-DDDDD-DDDDD-DDDDD", Email: ownerEmail, Password: ownerPassword})
	tok := h.setupAndLogin()
	h.do("POST", "/api/v1/login", "", api.LoginRequest{Email: ownerEmail, Password: "not the password at all"})
	h.do("POST", "/api/v1/logout", tok, nil)
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := VerifyJournal(context.Background(), cfg, &out); err != nil {
		t.Fatalf("verify of an untouched journal: %v\n%s", err, out.String())
	}
	var exp bytes.Buffer
	if err := ExportJournal(context.Background(), cfg, &exp); err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, line := range strings.Split(strings.TrimSpace(exp.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("export line %q: %v", line, err)
		}
		if a, ok := rec["action"].(string); ok {
			actions = append(actions, a+"/"+fmt.Sprint(rec["outcome"]))
		}
	}
	joined := strings.Join(actions, " ")
	for _, want := range []string{"hub.initialized/success", "pki.root_created/success", "config.changed/success",
		"setup.code_issued/success", "setup.attempt/failure", "setup.owner_created/success", "auth.login/success",
		"auth.login/failure", "auth.logout/success", "hub.started/success", "hub.stopped/success"} {
		if !strings.Contains(joined, want) {
			t.Errorf("journal lacks %s; has %s", want, joined)
		}
	}
	if strings.Contains(exp.String(), ownerPassword) || strings.Contains(exp.String(), tok) {
		t.Fatal("the journal holds a password or a token")
	}

	// Tamper with entry 3 behind the hub's back.
	db, err := sql.Open("sqlite", filepath.Join(dir, "rampart.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE journal SET actor = 'mallory' WHERE seq = 3`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	out.Reset()
	err = VerifyJournal(context.Background(), cfg, &out)
	var exit ExitError
	if !errors.As(err, &exit) || exit.Code == 0 || !strings.Contains(out.String(), "entry 3") {
		t.Fatalf("verify after tampering: %v, output %q; want non-zero exit naming entry 3", err, out.String())
	}
}

func TestKeysRotateWhileTheHubRuns(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	h := startHub(t, cfg)
	tok := h.setupAndLogin()
	oldKey, _ := os.ReadFile(filepath.Join(dir, "master.key"))
	var out bytes.Buffer
	if err := RotateKeys(context.Background(), cfg, "", &out); err != nil {
		t.Fatalf("rotate: %v", err)
	}
	newKey, _ := os.ReadFile(filepath.Join(dir, "master.key"))
	if bytes.Equal(oldKey, newKey) {
		t.Fatal("the key file did not change")
	}
	if r := h.do("GET", "/api/v1/me", tok, nil); r.status != 200 {
		t.Fatalf("the running hub broke after rotation: %d %s", r.status, r.body)
	}
	h.login(ownerEmail, ownerPassword)
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	// The new key opens everything; the old one no longer does.
	h = startHub(t, cfg)
	h.login(ownerEmail, ownerPassword)
	h.stop()
	if err := os.WriteFile(filepath.Join(dir, "master.key"), oldKey, 0o600); err != nil {
		t.Fatal(err)
	}
	err := Serve(context.Background(), cfg, IO{Stdout: io.Discard, Stderr: io.Discard}, WithHashParams(cheapHash))
	if !errors.Is(err, secrets.ErrWrongMasterKey) {
		t.Fatalf("start with the pre-rotation key: %v; want ErrWrongMasterKey", err)
	}
	os.WriteFile(filepath.Join(dir, "master.key"), newKey, 0o600)
	out.Reset()
	if err := VerifyJournal(context.Background(), cfg, &out); err != nil {
		t.Fatalf("journal after rotation: %v %s", err, out.String())
	}
}

func TestPassphraseMasterKey(t *testing.T) {
	dir := t.TempDir()
	pf := filepath.Join(t.TempDir(), "pass")
	os.WriteFile(pf, []byte("a long and private passphrase\n"), 0o600)
	cfg := testConfig(t, dir)
	cfg.MasterKey.PassphraseFile = pf
	h := startHub(t, cfg)
	h.setupAndLogin()
	h.stop()
	if _, err := os.Stat(filepath.Join(dir, "master.key")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("a key file was written although the key comes from a passphrase")
	}
	h = startHub(t, cfg)
	h.login(ownerEmail, ownerPassword)
	h.stop()
	os.WriteFile(pf, []byte("another passphrase, not the one\n"), 0o600)
	err := Serve(context.Background(), cfg, IO{Stdout: io.Discard, Stderr: io.Discard}, WithHashParams(cheapHash))
	if !errors.Is(err, secrets.ErrWrongMasterKey) {
		t.Fatalf("wrong passphrase: %v; want ErrWrongMasterKey", err)
	}
	os.Chmod(pf, 0o644)
	err = Serve(context.Background(), cfg, IO{Stdout: io.Discard, Stderr: io.Discard}, WithHashParams(cheapHash))
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("passphrase file 0644: %v", err)
	}
}

var _ = tlsconf.TLS13
