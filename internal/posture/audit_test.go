package posture

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/accounts"
	"github.com/rampart-iot/rampart/internal/devices"
	"github.com/rampart-iot/rampart/internal/firmware"
)

var now = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

type fleet struct {
	below    []firmware.DeviceState
	devs     []devices.Device
	claims   []devices.Claim
	findings []devices.Finding
	tokens   []accounts.APIToken
}

func (f fleet) List(context.Context, string) ([]devices.Device, error)      { return f.devs, nil }
func (f fleet) Claims(context.Context, string) ([]devices.Claim, error)     { return f.claims, nil }
func (f fleet) Findings(context.Context, string) ([]devices.Finding, error) { return f.findings, nil }
func (f fleet) ListAPITokens(context.Context, accounts.Principal) ([]accounts.APIToken, error) {
	return f.tokens, nil
}

func (f fleet) BelowMinimum(context.Context, string) ([]firmware.DeviceState, error) {
	return f.below, nil
}

func run(t *testing.T, f fleet, hub *Hub) []Finding {
	t.Helper()
	a := New(Options{Devices: f, Tokens: f, Firmware: f, Now: func() time.Time { return now }})
	r, err := a.Audit(context.Background(), accounts.Principal{TenantID: "t"}, hub)
	if err != nil {
		t.Fatal(err)
	}
	return r.Findings
}

func byCheck(fs []Finding, check string) []Finding {
	var out []Finding
	for _, f := range fs {
		if f.Check == check {
			out = append(out, f)
		}
	}
	return out
}

func TestEachCheckTriggersAndStaysQuiet(t *testing.T) {
	day := 24 * time.Hour
	cases := []struct {
		name    string
		check   string
		trigger fleet
		hubT    *Hub
		quiet   fleet
		hubQ    *Hub
	}{
		{name: "device certificate expiring", check: CheckDeviceCertExpiry,
			trigger: fleet{devs: []devices.Device{{ID: "d1", Status: devices.StatusActive, CertNotAfter: now.Add(2 * day), UpdatedAt: now.Add(-20 * day)}}},
			quiet:   fleet{devs: []devices.Device{{ID: "d1", Status: devices.StatusActive, CertNotAfter: now.Add(20 * day), UpdatedAt: now.Add(-10 * day)}}}},
		{name: "device certificate expired", check: CheckDeviceCertExpiry,
			trigger: fleet{devs: []devices.Device{{ID: "d1", Status: devices.StatusActive, CertNotAfter: now.Add(-time.Hour), UpdatedAt: now.Add(-31 * day)}}},
			quiet:   fleet{devs: []devices.Device{{ID: "d1", Status: devices.StatusRevoked, CertNotAfter: now.Add(-time.Hour)}}}},
		{name: "identity never renewed", check: CheckDeviceCertExpiry,
			trigger: fleet{devs: []devices.Device{{ID: "d1", Status: devices.StatusActive, CertNotAfter: now.Add(20 * day), UpdatedAt: now.Add(-100 * day)}}},
			quiet:   fleet{devs: []devices.Device{{ID: "d1", Status: devices.StatusActive, CertNotAfter: now.Add(20 * day), UpdatedAt: now.Add(-80 * day)}}}},
		{name: "secret never rotated", check: CheckSecretNotRotated,
			trigger: fleet{devs: []devices.Device{{ID: "s1", Method: devices.MethodSecret, MustRotate: true, Status: devices.StatusActive, CreatedAt: now.Add(-3 * day)}}},
			quiet:   fleet{devs: []devices.Device{{ID: "s1", Method: devices.MethodSecret, MustRotate: false, Status: devices.StatusActive, CreatedAt: now.Add(-3 * day)}}}},
		{name: "over-broad claim", check: CheckClaims,
			trigger: fleet{claims: []devices.Claim{{ID: "c1", Name: "batch", MaxUses: 100000, Uses: 3, CreatedAt: now.Add(-day)}}},
			quiet:   fleet{claims: []devices.Claim{{ID: "c1", Name: "batch", MaxUses: 500, Uses: 3, CreatedAt: now.Add(-day)}}}},
		{name: "unused claim", check: CheckClaims,
			trigger: fleet{claims: []devices.Claim{{ID: "c1", Name: "old", MaxUses: 10, CreatedAt: now.Add(-60 * day)}}},
			quiet:   fleet{claims: []devices.Claim{{ID: "c1", Name: "old", MaxUses: 10, CreatedAt: now.Add(-60 * day), Revoked: true}}}},
		{name: "possible clone", check: CheckIdentityFindings,
			trigger: fleet{findings: []devices.Finding{{ID: "f1", DeviceID: "d1", Kind: devices.FindingCloneConnection, Detail: "two addresses"}}},
			quiet:   fleet{findings: []devices.Finding{{ID: "f1", DeviceID: "d1", Kind: devices.FindingCloneConnection, Resolved: true}}}},
		{name: "token without expiry", check: CheckAPITokens,
			trigger: fleet{tokens: []accounts.APIToken{{ID: "k1", Name: "ci", Scopes: []accounts.Permission{accounts.PermDevicesRead}, CreatedAt: now.Add(-day), LastUsed: now}}},
			quiet:   fleet{tokens: []accounts.APIToken{{ID: "k1", Name: "ci", Scopes: []accounts.Permission{accounts.PermDevicesRead}, CreatedAt: now.Add(-day), ExpiresAt: now.Add(day), LastUsed: now}}}},
		{name: "token with every scope", check: CheckAPITokens,
			trigger: fleet{tokens: []accounts.APIToken{{ID: "k1", Name: "god", Scopes: accounts.TokenScopes, CreatedAt: now.Add(-day), ExpiresAt: now.Add(day), LastUsed: now}}},
			quiet:   fleet{tokens: []accounts.APIToken{{ID: "k1", Name: "god", Scopes: accounts.TokenScopes, CreatedAt: now.Add(-day), ExpiresAt: now.Add(day), LastUsed: now, Revoked: true}}}},
		{name: "firmware below minimum", check: CheckFirmwareMinimum,
			trigger: fleet{below: []firmware.DeviceState{{DeviceID: "d1", Model: "t1000", Version: "1.0.0", Sequence: 3}}},
			quiet:   fleet{}},
		{name: "master key beside data", check: CheckMasterKeyLocation,
			hubT: &Hub{MasterKeyBesideData: true, MasterKeyPath: "/data/master.key", TLSMinVersion: "1.3"},
			hubQ: &Hub{MasterKeyPath: "/secrets/master.key", TLSMinVersion: "1.3"}},
		{name: "TLS 1.2 accepted", check: CheckTLSProfile,
			hubT: &Hub{TLSMinVersion: "1.2"}, hubQ: &Hub{TLSMinVersion: "1.3"}},
		{name: "CA expiring", check: CheckCAExpiry,
			hubT: &Hub{TLSMinVersion: "1.3", RootNotAfter: now.Add(10 * day), DeviceCANotAfter: now.Add(400 * day)},
			hubQ: &Hub{TLSMinVersion: "1.3", RootNotAfter: now.Add(4000 * day), DeviceCANotAfter: now.Add(400 * day)}},
		{name: "journal tampered", check: CheckJournal,
			hubT: &Hub{TLSMinVersion: "1.3", JournalChecked: true, JournalProblem: "journal entry 4 removed"},
			hubQ: &Hub{TLSMinVersion: "1.3", JournalChecked: true}},
		{name: "listener answers anonymously", check: CheckListeners,
			hubT: &Hub{TLSMinVersion: "1.3", Probes: []Probe{{Listener: "https", Address: "127.0.0.1:1", Refused: false, Detail: "200 OK"}}},
			hubQ: &Hub{TLSMinVersion: "1.3", Probes: []Probe{{Listener: "https", Address: "127.0.0.1:1", Refused: true}}}},
	}
	for _, tc := range cases {
		t.Run("fail/"+tc.name, func(t *testing.T) {
			got := byCheck(run(t, tc.trigger, tc.hubT), tc.check)
			if len(got) == 0 {
				t.Fatalf("check %s found nothing", tc.check)
			}
			for _, f := range got {
				if f.Severity == "" || f.Evidence == "" || f.Fix == "" || len(f.Provisions) == 0 || f.Target == "" {
					t.Fatalf("incomplete finding %+v", f)
				}
			}
		})
		t.Run("ok/"+tc.name, func(t *testing.T) {
			if got := byCheck(run(t, tc.quiet, tc.hubQ), tc.check); len(got) != 0 {
				t.Fatalf("check %s fired on a clean fixture: %+v", tc.check, got)
			}
		})
	}
}

func TestFindingsAreOrderedBySeverity(t *testing.T) {
	fs := run(t, fleet{claims: []devices.Claim{{ID: "c", Name: "x", MaxUses: 10, CreatedAt: now.Add(-90 * 24 * time.Hour)}}},
		&Hub{TLSMinVersion: "1.2", JournalChecked: true, JournalProblem: "entry 1 modified"})
	if len(fs) < 3 || fs[0].Severity != Critical || fs[len(fs)-1].Severity != Low {
		t.Fatalf("order: %+v", fs)
	}
	if !strings.Contains(fs[0].Evidence, "entry 1") {
		t.Fatalf("first finding %+v", fs[0])
	}
}

func TestComplianceMarksProvisionsNamedByFindings(t *testing.T) {
	fs := run(t, fleet{}, &Hub{TLSMinVersion: "1.3", MasterKeyBesideData: true, MasterKeyPath: "/d/master.key"})
	ps := Compliance(fs)
	var storage, comms Provision
	for _, p := range ps {
		switch p.ID {
		case etsiSecureStorage:
			storage = p
		case etsiSecureComms:
			comms = p
		}
	}
	if storage.Status != "not met" || len(storage.Evidence) != 1 || !strings.Contains(storage.Evidence[0], "master key") {
		t.Fatalf("secure storage: %+v", storage)
	}
	if comms.Status != "met" {
		t.Fatalf("secure communication: %+v", comms)
	}
	var sb strings.Builder
	rep := ComplianceReport{TenantID: "<script>", Provisions: ps, Findings: fs}
	if err := rep.WriteHTML(&sb); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sb.String(), "<script>") || !strings.Contains(sb.String(), "not met") {
		t.Fatal("HTML report does not escape or lacks the status")
	}
}
