// Package posture audits a Rampart installation and its fleet: each check
// looks at live state (device identities, claims, tokens, certificates, the
// journal, the hub's own configuration and listeners) and returns findings
// with a severity, the evidence, the fix, and the ETSI EN 303 645 / OWASP
// IoT Top 10 provisions they map to.
package posture

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/rampart-iot/rampart/internal/accounts"
	"github.com/rampart-iot/rampart/internal/devices"
	"github.com/rampart-iot/rampart/internal/firmware"
)

// Severity of a finding.
type Severity string

// Severities, most to least urgent.
const (
	Critical Severity = "critical"
	High     Severity = "high"
	Medium   Severity = "medium"
	Low      Severity = "low"
)

var severityRank = map[Severity]int{Critical: 0, High: 1, Medium: 2, Low: 3}

// Finding is one problem a check found.
type Finding struct {
	Check      string   // the check's ID
	Severity   Severity //
	Target     string   // what it is about: a device ID, token ID, "hub", a listener
	Title      string
	Evidence   string
	Fix        string
	Provisions []string // e.g. "ETSI EN 303 645 5.4-1", "OWASP IoT I1"
}

// Devices is the device registry as the audit reads it.
type Devices interface {
	List(ctx context.Context, tenantID string) ([]devices.Device, error)
	Claims(ctx context.Context, tenantID string) ([]devices.Claim, error)
	Findings(ctx context.Context, tenantID string) ([]devices.Finding, error)
}

// Tokens lists a tenant's API tokens.
type Tokens interface {
	ListAPITokens(ctx context.Context, p accounts.Principal) ([]accounts.APIToken, error)
}

// Firmware lists the devices running firmware below their tenant's minimum.
type Firmware interface {
	BelowMinimum(ctx context.Context, tenantID string) ([]firmware.DeviceState, error)
}

// Probe is the result of probing one of the hub's own listeners from
// loopback without credentials.
type Probe struct {
	Listener string // "https", "mqtt", "metrics"
	Address  string
	Refused  bool   // the listener refused the anonymous client
	Detail   string // what it answered
}

// Hub holds facts about the installation for the hub-wide checks.
type Hub struct {
	MasterKeyBesideData bool   // the master key file is inside the data folder
	MasterKeyPath       string //
	TLSMinVersion       string // "1.3" or "1.2"
	RootNotAfter        time.Time
	DeviceCANotAfter    time.Time
	// JournalProblem is the first problem journal verification found, ""
	// when the journal verified clean.
	JournalProblem string
	JournalChecked bool
	Probes         []Probe
}

// Options configure an Auditor.
type Options struct {
	Devices  Devices
	Tokens   Tokens
	Firmware Firmware // optional
	Now      func() time.Time
	// Thresholds; zero takes the defaults (defaults.go).
	CertExpiryWarn     time.Duration // device certificate expiring within
	CAExpiryWarn       time.Duration // CA certificate expiring within
	MaxCertAge         time.Duration // a device certificate older than this was never renewed
	SecretRotateWithin time.Duration // a must_rotate secret older than this
	ClaimUnusedAfter   time.Duration // a claim unused for this long
	BroadClaimUses     int           // a claim allowing more uses than this without a serial allow-list
}

// Auditor runs the checks.
type Auditor struct{ o Options }

// New returns an Auditor.
func New(o Options) *Auditor {
	if o.Now == nil {
		o.Now = time.Now
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.CertExpiryWarn, defaultCertExpiryWarn)
	def(&o.CAExpiryWarn, defaultCAExpiryWarn)
	def(&o.MaxCertAge, defaultMaxCertAge)
	def(&o.SecretRotateWithin, defaultSecretRotateWithin)
	def(&o.ClaimUnusedAfter, defaultClaimUnusedAfter)
	if o.BroadClaimUses <= 0 {
		o.BroadClaimUses = defaultBroadClaimUses
	}
	return &Auditor{o: o}
}

// Report is an audit's result.
type Report struct {
	TenantID string
	At       time.Time
	Checks   []string // IDs of the checks that ran
	Findings []Finding
}

// Audit runs every tenant check for p's tenant, and the hub checks when hub
// is not nil. Findings come most severe first.
func (a *Auditor) Audit(ctx context.Context, p accounts.Principal, hub *Hub) (*Report, error) {
	r := &Report{TenantID: p.TenantID, At: a.o.Now().UTC()}
	add := func(id string, fs []Finding) {
		r.Checks = append(r.Checks, id)
		r.Findings = append(r.Findings, fs...)
	}
	if a.o.Devices != nil {
		devs, err := a.o.Devices.List(ctx, p.TenantID)
		if err != nil {
			return nil, fmt.Errorf("listing devices: %w", err)
		}
		add(CheckDeviceCertExpiry, a.certExpiry(devs))
		add(CheckSecretNotRotated, a.secretsNotRotated(devs))
		claims, err := a.o.Devices.Claims(ctx, p.TenantID)
		if err != nil {
			return nil, fmt.Errorf("listing claims: %w", err)
		}
		add(CheckClaims, a.claims(claims))
		fs, err := a.o.Devices.Findings(ctx, p.TenantID)
		if err != nil {
			return nil, fmt.Errorf("listing registry findings: %w", err)
		}
		add(CheckIdentityFindings, identityFindings(fs))
	}
	if a.o.Tokens != nil {
		toks, err := a.o.Tokens.ListAPITokens(ctx, p)
		if err != nil {
			return nil, fmt.Errorf("listing API tokens: %w", err)
		}
		add(CheckAPITokens, a.tokens(toks))
	}
	if a.o.Firmware != nil {
		below, err := a.o.Firmware.BelowMinimum(ctx, p.TenantID)
		if err != nil {
			return nil, fmt.Errorf("listing firmware below the minimum: %w", err)
		}
		add(CheckFirmwareMinimum, firmwareBelow(below))
	}
	if hub != nil {
		add(CheckMasterKeyLocation, masterKey(hub))
		add(CheckTLSProfile, tlsProfile(hub))
		add(CheckCAExpiry, a.caExpiry(hub))
		add(CheckJournal, journalCheck(hub))
		add(CheckListeners, listeners(hub))
	}
	SortFindings(r.Findings)
	return r, nil
}

// SortFindings orders findings most severe first, stably.
func SortFindings(fs []Finding) {
	sort.SliceStable(fs, func(i, j int) bool { return severityRank[fs[i].Severity] < severityRank[fs[j].Severity] })
}
