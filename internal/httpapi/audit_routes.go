package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/accounts"
	"github.com/rampart-iot/rampart/internal/posture"
)

// Audit runs the fleet and hub audit for a principal's tenant.
type Audit interface {
	Audit(ctx context.Context, p accounts.Principal) (*posture.Report, error)
}

func (h *Handler) registerAuditRoutes() {
	if h.o.Audit == nil {
		return
	}
	h.mux.Handle("GET /api/v1/audit", h.authed(accounts.PermAuditRead, h.audit))
}

func (h *Handler) audit(w http.ResponseWriter, r *http.Request) {
	rep, err := h.o.Audit.Audit(r.Context(), principalFrom(r.Context()))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := api.AuditReport{TenantID: rep.TenantID, At: rep.At.Format(time.RFC3339), Checks: rep.Checks, Findings: []api.AuditFinding{}}
	for _, f := range rep.Findings {
		out.Findings = append(out.Findings, api.AuditFinding{Check: f.Check, Severity: string(f.Severity), Target: f.Target,
			Title: f.Title, Evidence: f.Evidence, Fix: f.Fix, Provisions: f.Provisions})
	}
	writeJSON(w, http.StatusOK, out)
}
