package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBinaryAudit runs `rampart audit` and the compliance report against a
// real hub: the hub probes its own listeners, finds the master key beside
// the data (the default) and writes HTML and JSON reports.
func TestBinaryAudit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rampart-data")
	p := serve(t, "--data", dir)
	ca := filepath.Join(dir, "ca.pem")
	hub := "https://" + p.addr
	out, rc := curl(t, "--cacert", ca, "-H", "Content-Type: application/json", "-w", "\n%{http_code}",
		"-d", fmt.Sprintf(`{"setup_code":%q,"email":%q,"password":%q}`, p.code, email, password), hub+"/api/v1/setup")
	if rc != 0 || !strings.HasSuffix(out, "\n201") {
		t.Fatalf("setup: %d %s", rc, out)
	}
	env := []string{"RAMPART_SESSION=" + filepath.Join(t.TempDir(), "session.json")}
	if o, e, code := rampartIn(t, password+"\n", env, "login", "--hub", hub, "--ca", ca, "--email", email); code != 0 {
		t.Fatalf("login: %s %s", o, e)
	}
	o, e, code := rampartIn(t, "", env, "audit")
	if code != 0 || !strings.Contains(o, "master-key-location") || strings.Contains(o, "listeners-refuse-anonymous") {
		t.Fatalf("audit: %d\n%s\n%s", code, o, e)
	}
	htmlPath := filepath.Join(t.TempDir(), "report.html")
	if _, e, code := rampartIn(t, "", env, "audit", "--report", "html", "--out", htmlPath); code != 0 {
		t.Fatalf("html report: %s", e)
	}
	html, _ := os.ReadFile(htmlPath)
	if !strings.Contains(string(html), "ETSI EN 303 645 5.4-1") || !strings.Contains(string(html), "not met") {
		t.Fatalf("html report lacks the provisions:\n%.500s", html)
	}
	o, e, code = rampartIn(t, "", env, "audit", "--report", "json")
	var rep struct {
		Provisions []struct{ ID, Status string }
	}
	if code != 0 || json.Unmarshal([]byte(o), &rep) != nil || len(rep.Provisions) < 10 {
		t.Fatalf("json report: %d %s %s", code, o, e)
	}
}
