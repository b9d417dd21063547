package app

import (
	"database/sql"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/posture"
)

func findingsOf(r api.AuditReport, check string) []api.AuditFinding {
	var out []api.AuditFinding
	for _, f := range r.Findings {
		if f.Check == check {
			out = append(out, f)
		}
	}
	return out
}

func TestAuditThroughTheAPI(t *testing.T) {
	h := startAccountsHub(t, nil)
	owner := h.setupAndLogin()
	audit := func() api.AuditReport {
		t.Helper()
		return decodeInto[api.AuditReport](t, h.do("GET", "/api/v1/audit", owner, nil), http.StatusOK)
	}
	r := audit()
	for _, c := range []string{posture.CheckListeners, posture.CheckJournal, posture.CheckMasterKeyLocation, posture.CheckTLSProfile,
		posture.CheckCAExpiry, posture.CheckAPITokens, posture.CheckClaims, posture.CheckSecretNotRotated, posture.CheckDeviceCertExpiry} {
		if !slices.Contains(r.Checks, c) {
			t.Errorf("check %s did not run", c)
		}
	}
	// The hub probed its own listeners without credentials; all refused.
	if f := findingsOf(r, posture.CheckListeners); len(f) != 0 {
		t.Fatalf("a listener answered an anonymous client: %+v", f)
	}
	// Default install: the master key sits in the data folder.
	if f := findingsOf(r, posture.CheckMasterKeyLocation); len(f) != 1 || f[0].Severity != "medium" {
		t.Fatalf("master key finding: %+v", f)
	}
	if f := findingsOf(r, posture.CheckJournal); len(f) != 0 {
		t.Fatalf("an intact journal was reported: %+v", f)
	}

	// A secret device that never rotates, and a token that never expires.
	h.newDevice(owner, api.CreateDeviceRequest{Name: "legacy", Credential: "secret"})
	h.newToken(owner, api.TokenRequest{Name: "forever", Scopes: []string{"devices:read"}, NeverExpires: true})
	h.clock.Advance(48 * time.Hour)
	owner = h.login(ownerEmail, ownerPassword) // the session expired meanwhile
	r = audit()
	if f := findingsOf(r, posture.CheckSecretNotRotated); len(f) != 1 {
		t.Fatalf("secret not rotated: %+v", f)
	}
	if f := findingsOf(r, posture.CheckAPITokens); len(f) == 0 {
		t.Fatal("a never-expiring token was not reported")
	}

	// Tampering with the journal behind the running hub's back is critical.
	db, err := sql.Open("sqlite", filepath.Join(h.cfg.DataDir, "rampart.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE journal SET actor = 'mallory' WHERE seq = 2`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	r = audit()
	if f := findingsOf(r, posture.CheckJournal); len(f) != 1 || f[0].Severity != "critical" || r.Findings[0].Severity != "critical" {
		t.Fatalf("tampered journal: %+v", f)
	}

	// A viewer may not run the audit.
	h.addUser(owner, "vic@alpha.example", "viewer", "a viewer's long passphrase")
	viewer := h.login("vic@alpha.example", "a viewer's long passphrase")
	if r := h.do("GET", "/api/v1/audit", viewer, nil); r.status != http.StatusForbidden {
		t.Fatalf("viewer ran the audit: %d", r.status)
	}
}

// Another tenant's owner gets its own fleet checks, not the hub's.
func TestAuditHubChecksAreForTheOperatorTenantOnly(t *testing.T) {
	h := startAccountsHub(t, nil)
	h.setupAndLogin()
	h.signup("bea@beta.example", "another long passphrase for beta", "Beta")
	ownerB := h.login("bea@beta.example", "another long passphrase for beta")
	r := decodeInto[api.AuditReport](t, h.do("GET", "/api/v1/audit", ownerB, nil), http.StatusOK)
	for _, c := range []string{posture.CheckListeners, posture.CheckJournal, posture.CheckMasterKeyLocation} {
		if slices.Contains(r.Checks, c) {
			t.Errorf("tenant B ran the hub check %s", c)
		}
	}
	if !slices.Contains(r.Checks, posture.CheckAPITokens) {
		t.Error("tenant B's own checks did not run")
	}
	if r := h.do("GET", "/metrics", ownerB, nil); r.status != http.StatusForbidden {
		t.Fatalf("tenant B's owner read the hub's metrics: %d", r.status)
	}
}
