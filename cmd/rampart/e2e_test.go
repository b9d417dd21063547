package main

// These tests run the real rampart binary, as a newcomer or an attacker
// would, and drive it with real clients (openssl s_client, curl).

import (
	"bufio"
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/rampart-iot/rampart/internal/testkit"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rampart-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "rampart")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building rampart: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	addr   string
	code   string
	stderr *bytes.Buffer
	exited chan error
}

var readyRE = regexp.MustCompile(`^rampart ready https=(127\.0\.0\.1:\d+)( [a-z]+=\S+)*$`)

// serve starts `rampart serve` and waits for its ready line.
func serve(t *testing.T, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"serve", "--https-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0"}, args...)...)
	cmd.Env = cleanEnv()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, cmd: cmd, stderr: &bytes.Buffer{}, exited: make(chan error, 1)}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() { p.kill() })
	deadline := time.After(30 * time.Second)
	for p.addr == "" {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("rampart exited before its ready line: %s", p.stderr)
			}
			if c, ok := strings.CutPrefix(line, "setup code: "); ok {
				p.code = c
			} else if m := readyRE.FindStringSubmatch(line); m != nil {
				p.addr = m[1]
			} else {
				t.Fatalf("unexpected stdout line %q", line)
			}
		case <-deadline:
			t.Fatalf("no ready line in 30s: %s", p.stderr)
		}
	}
	go func() {
		for range lines {
		}
	}()
	return p
}

func (p *proc) kill() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// stop sends SIGTERM and returns the exit error (nil for status 0).
func (p *proc) stop() error {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.exited:
		return err
	case <-time.After(30 * time.Second):
		p.t.Fatal("rampart did not exit within 30s of SIGTERM")
		return nil
	}
}

// cleanEnv drops RAMPART_* variables from the developer's environment.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RAMPART_") {
			env = append(env, kv)
		}
	}
	return env
}

// rampart runs a one-shot sub-command.
func rampart(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = cleanEnv()
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return o.String(), e.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), 0
}

func curl(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(testkit.NeedTool(t, "curl"), append([]string{"-sS", "--max-time", "20"}, args...)...)
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

const (
	email    = "owner@example.com"
	password = "a long passphrase nobody guesses"
)

func TestBinaryFirstRunSetupWithCurl(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rampart-data")
	p := serve(t, "--data", dir)
	if !regexp.MustCompile(`^[A-Z2-7]{5}(-[A-Z2-7]{5}){3}$`).MatchString(p.code) {
		t.Fatalf("first run printed setup code %q", p.code)
	}
	ca := filepath.Join(dir, "ca.pem")
	base := "https://" + p.addr + "/api/v1/"
	body := fmt.Sprintf(`{"setup_code":%q,"email":%q,"password":%q}`, p.code, email, password)
	out, rc := curl(t, "--cacert", ca, "-w", "\n%{http_code}", "-H", "Content-Type: application/json", "-d", body, base+"setup")
	if rc != 0 || !strings.HasSuffix(out, "\n201") {
		t.Fatalf("curl setup: rc=%d %s", rc, out)
	}
	out, rc = curl(t, "--cacert", ca, "-H", "Content-Type: application/json", "-d", fmt.Sprintf(`{"email":%q,"password":%q}`, email, password), base+"login")
	var lr struct{ Token string }
	if rc != 0 || json.Unmarshal([]byte(out), &lr) != nil || lr.Token == "" {
		t.Fatalf("curl login: rc=%d %s", rc, out)
	}
	out, rc = curl(t, "--cacert", ca, "-H", "Authorization: Bearer "+lr.Token, base+"me")
	if rc != 0 || !strings.Contains(out, `"role":"owner"`) {
		t.Fatalf("curl me: rc=%d %s", rc, out)
	}
	// Without the hub's CA, curl refuses the server (no system-root trust).
	if _, rc = curl(t, base+"me"); rc != 60 {
		t.Fatalf("curl without --cacert: rc=%d; want 60 (certificate problem)", rc)
	}
	// Plaintext HTTP to the HTTPS port: no data at all.
	if out, rc = curl(t, "http://"+p.addr+"/api/v1/me"); rc != 52 || out != "" {
		t.Fatalf("plaintext HTTP: rc=%d out=%q; want curl 52 (empty reply)", rc, out)
	}
	if err := p.stop(); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, p.stderr)
	}
	out, errOut, code := rampart(t, "journal", "verify", "--data", dir)
	if code != 0 || !strings.Contains(out, "journal intact") {
		t.Fatalf("journal verify: %d %s %s", code, out, errOut)
	}
	// A second start reuses everything and prints no setup code.
	p = serve(t, "--data", dir)
	if p.code != "" {
		t.Fatalf("second start printed a setup code")
	}
}

func TestBinaryTLSWithOpenSSL(t *testing.T) {
	openssl := testkit.NeedTool(t, "openssl")
	dir := t.TempDir()
	p := serve(t, "--data", dir)
	sClient := func(args ...string) (string, error) {
		cmd := exec.Command(openssl, append([]string{"s_client", "-connect", p.addr, "-servername", "localhost"}, args...)...)
		cmd.Stdin = strings.NewReader("")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, v := range []string{"-tls1", "-tls1_1", "-tls1_2"} {
		t.Run("fail/"+v, func(t *testing.T) {
			// SECLEVEL=0 lets the client offer old versions, so a refusal
			// is the server's.
			out, err := sClient(v, "-cipher", "DEFAULT@SECLEVEL=0")
			if err == nil || !strings.Contains(out, "alert protocol version") || strings.Contains(out, "BEGIN CERTIFICATE") {
				t.Fatalf("openssl %s was not refused by the server (err=%v):\n%s", v, err, out)
			}
		})
	}
	t.Run("ok/-tls1_3 verifies with ca.pem", func(t *testing.T) {
		out, err := sClient("-tls1_3", "-CAfile", filepath.Join(dir, "ca.pem"), "-verify_return_error")
		if err != nil || !strings.Contains(out, "Verify return code: 0 (ok)") || !strings.Contains(out, "TLSv1.3") {
			t.Fatalf("openssl -tls1_3: %v\n%s", err, out)
		}
	})
	t.Run("fail/-tls1_3 without ca.pem does not verify", func(t *testing.T) {
		out, err := sClient("-tls1_3", "-verify_return_error")
		if err == nil || strings.Contains(out, "Verify return code: 0 (ok)") {
			t.Fatalf("verified without the hub's CA:\n%s", out)
		}
	})
}

func TestBinaryRefusesBadStartsWithClearErrors(t *testing.T) {
	t.Run("fail/corrupt config", func(t *testing.T) {
		root := t.TempDir()
		cfgPath := filepath.Join(root, "rampart.yaml")
		os.WriteFile(cfgPath, []byte("https:\n  addr: 127.0.0.1:8443\n  max_body_bytes: lots\nbogus: 1\n"), 0o600)
		dir := filepath.Join(root, "data")
		_, errOut, code := rampart(t, "serve", "--config", cfgPath, "--data", dir)
		if code == 0 || !strings.Contains(errOut, "rampart.yaml:3:") || !strings.Contains(errOut, "max_body_bytes") || !strings.Contains(errOut, "rampart.yaml:4:") {
			t.Fatalf("exit %d, stderr %q; want non-zero naming rampart.yaml:3 max_body_bytes and line 4", code, errOut)
		}
		if _, err := os.Stat(dir); err == nil {
			t.Fatal("a refused start created the data folder")
		}
		_, errOut, code = rampart(t, "config", "check", "--config", cfgPath)
		if code == 0 || !strings.Contains(errOut, "rampart.yaml:3:") {
			t.Fatalf("config check: exit %d %q", code, errOut)
		}
	})
	prepared := func(t *testing.T) string {
		dir := filepath.Join(t.TempDir(), "data")
		p := serve(t, "--data", dir)
		if err := p.stop(); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	for _, tc := range []struct {
		name   string
		break_ func(dir string)
		want   string
	}{
		{"fail/key file mode 0644", func(dir string) { os.Chmod(filepath.Join(dir, "master.key"), 0o644) }, "run chmod 600"},
		{"fail/world-writable data folder", func(dir string) { os.Chmod(dir, 0o777) }, "run chmod 700"},
		{"fail/wrong master key", func(dir string) {
			os.WriteFile(filepath.Join(dir, "master.key"), []byte("rampart-master-key-v1 "+strings.Repeat("A", 43)+"=\n"), 0o600)
		}, "does not match this data folder"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := prepared(t)
			tc.break_(dir)
			before := testkit.SnapshotDir(t, dir)
			out, errOut, code := rampart(t, "serve", "--data", dir, "--https-addr", "127.0.0.1:0")
			if code == 0 || !strings.Contains(errOut, tc.want) || out != "" {
				t.Fatalf("exit %d stdout %q stderr %q; want non-zero and %q", code, out, errOut, tc.want)
			}
			testkit.SameSnapshot(t, before, testkit.SnapshotDir(t, dir))
		})
	}
}

func TestBinaryJournalVerifyNamesTheFirstBadEntry(t *testing.T) {
	dir := t.TempDir()
	p := serve(t, "--data", dir)
	p.stop()
	p = serve(t, "--data", dir)
	p.stop()
	db, err := sql.Open("sqlite", filepath.Join(dir, "rampart.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	db.QueryRow(`SELECT count(*) FROM journal`).Scan(&n)
	if n < 6 {
		t.Fatalf("journal has %d entries; want several", n)
	}
	if _, err := db.Exec(`DELETE FROM journal WHERE seq = 4`); err != nil {
		t.Fatal(err)
	}
	out, _, code := rampart(t, "journal", "verify", "--data", dir)
	if code == 0 || !strings.Contains(out, "entry 4") {
		t.Fatalf("verify after deleting entry 4: exit %d %q", code, out)
	}
	exp, _, code := rampart(t, "journal", "export", "--data", dir)
	if code != 0 || strings.Count(exp, "\n") < n-1 {
		t.Fatalf("export: exit %d, %d lines", code, strings.Count(exp, "\n"))
	}
	io.WriteString(io.Discard, exp)
}
