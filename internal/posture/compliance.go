package posture

import (
	"html/template"
	"io"
	"slices"
)

// Provision is one requirement of a standard and how Rampart meets it.
type Provision struct {
	ID       string // "ETSI EN 303 645 5.1-1", "NISTIR 8259A Device Identification"
	Title    string
	Design   string // how the product meets it by construction
	Checks   []string
	Status   string   // "met", "not met" (a finding names it)
	Evidence []string // the findings that name it, or the design statement
}

// provisions is the compliance table: ETSI EN 303 645 provisions and the
// NISTIR 8259A core capabilities that a device cloud can evidence.
var provisions = []Provision{
	{ID: etsiNoDefaultPasswords, Title: "No universal default passwords", Design: "no account exists until the one-time setup code is used; device secrets are unique and must be rotated at first use", Checks: []string{CheckSecretNotRotated}},
	{ID: etsiUniquePasswords, Title: "Unique per-device credentials", Design: "every device gets its own key pair and certificate, or a unique random secret; clones are detected", Checks: []string{CheckIdentityFindings, CheckSecretNotRotated}},
	{ID: etsiUpdates, Title: "Software updates are installed", Design: "signed firmware with anti-rollback and staged rollouts; a per-model minimum", Checks: []string{CheckFirmwareMinimum}},
	{ID: etsiSecureStorage, Title: "Sensitive security parameters stored securely", Design: "AES-256-GCM envelope encryption under a master key; nothing secret in plaintext on disk", Checks: []string{CheckMasterKeyLocation}},
	{ID: etsiSecureComms, Title: "Communicate securely", Design: "TLS 1.3 (1.2 with ECDHE+AEAD only when configured) on every listener; no plaintext listener exists", Checks: []string{CheckListeners}},
	{ID: etsiBestPracticeCrypto, Title: "Best-practice cryptography", Design: "P-256/P-384/Ed25519 keys only; AEAD suites only", Checks: []string{CheckTLSProfile}},
	{ID: etsiCredentialsMgmt, Title: "Credentials managed across their life", Design: "short-lived device certificates renewed over mTLS, expiring tokens, claims with limits", Checks: []string{CheckDeviceCertExpiry, CheckCAExpiry, CheckClaims, CheckAPITokens}},
	{ID: etsiMinimiseSurface, Title: "Minimise exposed attack surfaces", Design: "every port refuses unauthenticated clients; the hub probes its own listeners", Checks: []string{CheckListeners}},
	{ID: etsiIntegrity, Title: "Software and data integrity", Design: "hash-chained, MAC'd, checkpoint-signed journal", Checks: []string{CheckJournal}},
	{ID: etsiExamineTelemetry, Title: "Examine telemetry for security anomalies", Design: "clone and revoked-identity findings; broker refusals journaled", Checks: []string{CheckIdentityFindings}},
	{ID: "NISTIR 8259A Device Identification", Title: "Device identification", Design: "unique device IDs bound to certificates (URI SAN urn:rampart:device:ID)", Checks: []string{CheckIdentityFindings}},
	{ID: "NISTIR 8259A Data Protection", Title: "Data protection", Design: "TLS in transit, envelope encryption at rest", Checks: []string{CheckMasterKeyLocation, CheckTLSProfile}},
	{ID: "NISTIR 8259A Logical Access to Interfaces", Title: "Logical access to interfaces", Design: "mTLS or unique secrets for devices, scoped tokens for applications, deny-by-default ACL", Checks: []string{CheckListeners, CheckAPITokens}},
	{ID: "NISTIR 8259A Cybersecurity State Awareness", Title: "Cybersecurity state awareness", Design: "tamper-evident journal of every security event; audit findings", Checks: []string{CheckJournal, CheckIdentityFindings}},
}

// Compliance evaluates the provision table against an audit's findings: a
// provision is met unless a finding names it.
func Compliance(fs []Finding) []Provision {
	out := make([]Provision, 0, len(provisions))
	for _, p := range provisions {
		p.Status = "met"
		p.Evidence = nil
		for _, f := range fs {
			if slices.Contains(f.Provisions, p.ID) {
				p.Status = "not met"
				p.Evidence = append(p.Evidence, string(f.Severity)+": "+f.Title+" ("+f.Target+"): "+f.Evidence)
			}
		}
		if p.Status == "met" {
			p.Evidence = []string{p.Design}
		}
		out = append(out, p)
	}
	return out
}

var reportHTML = template.Must(template.New("report").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Rampart compliance report</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #999;padding:4px 8px;vertical-align:top}.met{color:#060}.not{color:#a00}</style>
</head><body>
<h1>Rampart compliance report</h1>
<p>Tenant {{.TenantID}}, audited {{.At}}.</p>
<table><tr><th>Provision</th><th>Status</th><th>Evidence</th></tr>
{{range .Provisions}}<tr><td>{{.ID}}<br>{{.Title}}</td><td class="{{if eq .Status "met"}}met{{else}}not{{end}}">{{.Status}}</td><td>{{range .Evidence}}<div>{{.}}</div>{{end}}</td></tr>
{{end}}</table>
<h2>Findings</h2>
<table><tr><th>Severity</th><th>Check</th><th>Target</th><th>Finding</th><th>Fix</th></tr>
{{range .Findings}}<tr><td>{{.Severity}}</td><td>{{.Check}}</td><td>{{.Target}}</td><td>{{.Title}}: {{.Evidence}}</td><td>{{.Fix}}</td></tr>
{{end}}</table></body></html>
`))

// ComplianceReport is the document `rampart audit --report` writes.
type ComplianceReport struct {
	TenantID   string      `json:"tenant_id"`
	At         string      `json:"at"`
	Provisions []Provision `json:"provisions"`
	Findings   []Finding   `json:"findings"`
}

// WriteHTML renders the report (html/template escapes every value).
func (r ComplianceReport) WriteHTML(w io.Writer) error { return reportHTML.Execute(w, r) }
