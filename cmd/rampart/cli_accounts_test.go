package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// rampartIn runs a one-shot sub-command with stdin and extra environment.
func rampartIn(t *testing.T, stdin string, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stdin = strings.NewReader(stdin)
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

// TestBinaryAccountCLI drives `rampart login`, `users` and `tokens` against
// a real hub over TLS: the session file is 0600 and holds no password; the
// CLI trusts only the hub's ca.pem.
func TestBinaryAccountCLI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rampart-data")
	p := serve(t, "--data", dir)
	ca := filepath.Join(dir, "ca.pem")
	hub := "https://" + p.addr
	out, rc := curl(t, "--cacert", ca, "-H", "Content-Type: application/json", "-w", "\n%{http_code}",
		"-d", fmt.Sprintf(`{"setup_code":%q,"email":%q,"password":%q}`, p.code, email, password), hub+"/api/v1/setup")
	if rc != 0 || !strings.HasSuffix(out, "\n201") {
		t.Fatalf("setup: %d %s", rc, out)
	}
	session := filepath.Join(t.TempDir(), "cfg", "session.json")
	env := []string{"RAMPART_SESSION=" + session}

	if _, e, code := rampartIn(t, "wrong password entirely\n", env, "login", "--hub", hub, "--ca", ca, "--email", email); code == 0 || !strings.Contains(e, "wrong email or password") {
		t.Fatalf("login with a wrong password: %d %s", code, e)
	}
	if _, e, code := rampartIn(t, password+"\n", env, "login", "--hub", hub, "--ca", filepath.Join(t.TempDir(), "none.pem"), "--email", email); code == 0 {
		t.Fatalf("login without the hub's CA succeeded: %s", e)
	}
	if o, e, code := rampartIn(t, password+"\n", env, "login", "--hub", hub, "--ca", ca, "--email", email); code != 0 || !strings.Contains(o, "logged in") {
		t.Fatalf("login: %d %s %s", code, o, e)
	}
	fi, err := os.Stat(session)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("session file: %v mode %v; want 0600", err, fi.Mode())
	}
	raw, _ := os.ReadFile(session)
	if strings.Contains(string(raw), password) || !strings.Contains(string(raw), `"token": "rps_`) {
		t.Fatalf("session file content: %s", raw)
	}
	o, e, code := rampartIn(t, "", env, "users", "invite", "op@example.com", "operator")
	var inv struct{ ID, Token string }
	if code != 0 || json.Unmarshal([]byte(o), &inv) != nil || !strings.HasPrefix(inv.Token, "rpi_") {
		t.Fatalf("users invite: %d %s %s", code, o, e)
	}
	if o, e, code := rampartIn(t, "", env, "users", "list"); code != 0 || !strings.Contains(o, email) {
		t.Fatalf("users list: %d %s %s", code, o, e)
	}
	o, e, code = rampartIn(t, "", env, "tokens", "create", "--name", "prom", "--scopes", "metrics:read", "--expires-in", "24h")
	var tok struct{ ID, Token string }
	if code != 0 || json.Unmarshal([]byte(o), &tok) != nil || !strings.HasPrefix(tok.Token, "rpt_") {
		t.Fatalf("tokens create: %d %s %s", code, o, e)
	}
	if o, _, code := rampartIn(t, "", env, "tokens", "list"); code != 0 || strings.Contains(o, tok.Token) || !strings.Contains(o, tok.ID) {
		t.Fatalf("tokens list: %d %s", code, o)
	}
	if o, e, code := rampartIn(t, "", env, "tokens", "revoke", tok.ID); code != 0 || !strings.Contains(o, "done") {
		t.Fatalf("tokens revoke: %d %s %s", code, o, e)
	}
	if _, e, code := rampartIn(t, "", env, "tokens", "revoke", "tok_nosuchtoken"); code == 0 || !strings.Contains(e, "no such token") {
		t.Fatalf("revoking a missing token: %d %s", code, e)
	}
	os.Chmod(session, 0o644)
	if _, e, code := rampartIn(t, "", env, "users", "list"); code == 0 || !strings.Contains(e, "readable by others") {
		t.Fatalf("a world-readable session file was used: %d %s", code, e)
	}
	os.Chmod(session, 0o600)
	if o, e, code := rampartIn(t, "", env, "logout"); code != 0 || !strings.Contains(o, "logged out") {
		t.Fatalf("logout: %d %s %s", code, o, e)
	}
	if _, err := os.Stat(session); !os.IsNotExist(err) {
		t.Fatal("session file remains after logout")
	}
}
