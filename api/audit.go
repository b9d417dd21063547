package api

// AuditFinding is one problem found by an audit check.
type AuditFinding struct {
	Check      string   `json:"check"`
	Severity   string   `json:"severity"` // critical, high, medium, low
	Target     string   `json:"target"`
	Title      string   `json:"title"`
	Evidence   string   `json:"evidence"`
	Fix        string   `json:"fix"`
	Provisions []string `json:"provisions"`
}

// AuditReport is returned by GET /api/v1/audit.
type AuditReport struct {
	TenantID string         `json:"tenant_id"`
	At       string         `json:"at"` // RFC 3339
	Checks   []string       `json:"checks"`
	Findings []AuditFinding `json:"findings"`
}
