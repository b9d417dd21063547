package httpapi

import (
	"context"
	"crypto/x509"
	"net/http"
	"time"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/accounts"
	"github.com/rampart-iot/rampart/internal/devices"
	"github.com/rampart-iot/rampart/internal/pki"
	"github.com/rampart-iot/rampart/internal/secrets"
)

// Devices is what the API needs from the device registry.
type Devices interface {
	Create(ctx context.Context, tenantID, actor string, req devices.CreateRequest) (devices.Created, error)
	NewEnrollmentToken(ctx context.Context, tenantID, actor, id string) (secrets.Text, time.Time, error)
	Get(ctx context.Context, tenantID, id string) (devices.Device, error)
	List(ctx context.Context, tenantID string) ([]devices.Device, error)
	SetStatus(ctx context.Context, tenantID, actor, id string, to devices.Status) (devices.Device, error)
	Revoke(ctx context.Context, tenantID, actor, id, reason string) (devices.Device, error)
	Decommission(ctx context.Context, tenantID, actor, id string) (devices.Device, error)

	EnrollToken(ctx context.Context, token secrets.Text, csrPEM []byte, source string) (devices.Enrolled, error)
	EnrollClaim(ctx context.Context, claim secrets.Text, csrPEM []byte, serial, name, source string) (devices.Enrolled, error)
	EnrollAttested(ctx context.Context, factoryChain []*x509.Certificate, csrPEM []byte, name, source string) (devices.Enrolled, error)
	Renew(ctx context.Context, peer []*x509.Certificate, csrPEM []byte, source string) (devices.Enrolled, error)
	RotateSecret(ctx context.Context, deviceID string, current, next secrets.Text, source string) (devices.Device, error)

	CreateClaim(ctx context.Context, tenantID, actor string, spec devices.ClaimSpec) (devices.Claim, secrets.Text, error)
	Claims(ctx context.Context, tenantID string) ([]devices.Claim, error)
	RevokeClaim(ctx context.Context, tenantID, actor, id string) (devices.Claim, error)
	RegisterManufacturer(ctx context.Context, tenantID, actor, name, model string, caPEM []byte) (devices.Manufacturer, error)
	Manufacturers(ctx context.Context, tenantID string) ([]devices.Manufacturer, error)
	Findings(ctx context.Context, tenantID string) ([]devices.Finding, error)
	ApproveReprovision(ctx context.Context, tenantID, actor, findingID string) (devices.Finding, error)
	ResolveFinding(ctx context.Context, tenantID, actor, findingID string) (devices.Finding, error)
	CRL(ctx context.Context) ([]byte, error)
}

var _ Devices = (*devices.Service)(nil)

func (h *Handler) registerDeviceRoutes() {
	if h.o.Devices == nil {
		return
	}
	h.mux.HandleFunc("POST /api/v1/enroll", h.enroll)
	h.mux.HandleFunc("POST /api/v1/enroll/attest", h.enrollAttest)
	h.mux.HandleFunc("POST /api/v1/renew", h.renew)
	h.mux.HandleFunc("POST /api/v1/device-secret", h.rotateSecret)
	h.mux.HandleFunc("GET /pki/crl", h.crl)

	h.mux.Handle("POST /api/v1/devices", h.authed(accounts.PermDevicesWrite, h.createDevice))
	h.mux.Handle("GET /api/v1/devices", h.authed(accounts.PermDevicesRead, h.listDevices))
	h.mux.Handle("GET /api/v1/devices/{id}", h.authed(accounts.PermDevicesRead, h.getDevice))
	h.mux.Handle("DELETE /api/v1/devices/{id}", h.authed(accounts.PermDevicesWrite, h.decommissionDevice))
	h.mux.Handle("POST /api/v1/devices/{id}/revoke", h.authed(accounts.PermDevicesWrite, h.revokeDevice))
	h.mux.Handle("POST /api/v1/devices/{id}/suspend", h.authed(accounts.PermDevicesWrite, h.deviceStatus(devices.StatusSuspended)))
	h.mux.Handle("POST /api/v1/devices/{id}/quarantine", h.authed(accounts.PermDevicesWrite, h.deviceStatus(devices.StatusQuarantined)))
	h.mux.Handle("POST /api/v1/devices/{id}/reactivate", h.authed(accounts.PermDevicesWrite, h.deviceStatus(devices.StatusActive)))
	h.mux.Handle("POST /api/v1/devices/{id}/token", h.authed(accounts.PermDevicesWrite, h.newDeviceToken))

	h.mux.Handle("POST /api/v1/claims", h.authed(accounts.PermPKIAdmin, h.createClaim))
	h.mux.Handle("GET /api/v1/claims", h.authed(accounts.PermPKIAdmin, h.listClaims))
	h.mux.Handle("POST /api/v1/claims/{id}/revoke", h.authed(accounts.PermPKIAdmin, h.revokeClaim))
	h.mux.Handle("POST /api/v1/manufacturers", h.authed(accounts.PermPKIAdmin, h.createManufacturer))
	h.mux.Handle("GET /api/v1/manufacturers", h.authed(accounts.PermPKIAdmin, h.listManufacturers))
	h.mux.Handle("GET /api/v1/findings", h.authed(accounts.PermDevicesRead, h.listFindings))
	h.mux.Handle("POST /api/v1/findings/{id}/approve", h.authed(accounts.PermPKIAdmin, h.approveFinding))
	h.mux.Handle("POST /api/v1/findings/{id}/resolve", h.authed(accounts.PermPKIAdmin, h.resolveFinding))
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func deviceJSON(d devices.Device) api.Device {
	return api.Device{ID: d.ID, Name: d.Name, Model: d.Model, Status: string(d.Status), Method: string(d.Method),
		SerialNumber: d.SerialNumber, CertificateSerial: d.CertSerial, CertificateExpires: rfc3339(d.CertNotAfter),
		MustRotate: d.MustRotate, CreatedAt: rfc3339(d.CreatedAt), UpdatedAt: rfc3339(d.UpdatedAt)}
}

func actorOf(ctx context.Context) string { return "user:" + principalFrom(ctx).UserID }

func (h *Handler) createDevice(w http.ResponseWriter, r *http.Request) {
	req, err := decode[api.CreateDeviceRequest](h, w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	p := principalFrom(r.Context())
	c, err := h.o.Devices.Create(r.Context(), p.TenantID, actorOf(r.Context()),
		devices.CreateRequest{Name: req.Name, Model: req.Model, Credential: devices.Method(req.Credential)})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := deviceJSON(c.Device)
	out.EnrollmentToken, out.TokenExpiresAt, out.Secret = c.Token.Reveal(), rfc3339(c.Expiry), c.Secret.Reveal()
	writeJSON(w, http.StatusCreated, out)
}

func (h *Handler) listDevices(w http.ResponseWriter, r *http.Request) {
	list, err := h.o.Devices.List(r.Context(), principalFrom(r.Context()).TenantID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := api.DeviceList{Devices: make([]api.Device, 0, len(list))}
	for _, d := range list {
		out.Devices = append(out.Devices, deviceJSON(d))
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) getDevice(w http.ResponseWriter, r *http.Request) {
	d, err := h.o.Devices.Get(r.Context(), principalFrom(r.Context()).TenantID, r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, deviceJSON(d))
}

// optionalBody decodes T when the request has a body, else returns zero.
func optionalBody[T any](h *Handler, w http.ResponseWriter, r *http.Request) (T, error) {
	var zero T
	if r.ContentLength == 0 {
		return zero, nil
	}
	return decode[T](h, w, r)
}

func (h *Handler) revokeDevice(w http.ResponseWriter, r *http.Request) {
	req, err := optionalBody[api.RevokeRequest](h, w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if req.Reason == "" {
		req.Reason = "revoked by an operator"
	}
	d, err := h.o.Devices.Revoke(r.Context(), principalFrom(r.Context()).TenantID, actorOf(r.Context()), r.PathValue("id"), req.Reason)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, deviceJSON(d))
}

func (h *Handler) decommissionDevice(w http.ResponseWriter, r *http.Request) {
	d, err := h.o.Devices.Decommission(r.Context(), principalFrom(r.Context()).TenantID, actorOf(r.Context()), r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, deviceJSON(d))
}

func (h *Handler) deviceStatus(to devices.Status) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		d, err := h.o.Devices.SetStatus(r.Context(), principalFrom(r.Context()).TenantID, actorOf(r.Context()), r.PathValue("id"), to)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, deviceJSON(d))
	}
}

func (h *Handler) newDeviceToken(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := r.PathValue("id")
	tok, exp, err := h.o.Devices.NewEnrollmentToken(ctx, principalFrom(ctx).TenantID, actorOf(ctx), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d, err := h.o.Devices.Get(ctx, principalFrom(ctx).TenantID, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := deviceJSON(d)
	out.EnrollmentToken, out.TokenExpiresAt = tok.Reveal(), rfc3339(exp)
	writeJSON(w, http.StatusCreated, out)
}

func (h *Handler) enrolled(w http.ResponseWriter, e devices.Enrolled) {
	writeJSON(w, http.StatusOK, h.enrollResponse(e))
}

func (h *Handler) enroll(w http.ResponseWriter, r *http.Request) {
	req, err := decode[api.EnrollRequest](h, w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var e devices.Enrolled
	switch {
	case req.Token != "" && req.Claim != "":
		err = api.Errorf(api.CodeInvalid, "send token or claim, not both")
	case req.Token != "":
		if req.SerialNumber != "" || req.Name != "" {
			err = api.Errorf(api.CodeInvalid, "serial_number and name apply to claims only")
			break
		}
		e, err = h.o.Devices.EnrollToken(r.Context(), secrets.Text(req.Token), []byte(req.CSR), source(r))
	case req.Claim != "":
		e, err = h.o.Devices.EnrollClaim(r.Context(), secrets.Text(req.Claim), []byte(req.CSR), req.SerialNumber, req.Name, source(r))
	default:
		w.Header().Set("WWW-Authenticate", `Bearer realm="rampart"`)
		err = api.Errorf(api.CodeUnauthenticated, "enrollment needs an enrollment token or a claim")
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.enrolled(w, e)
}

func peerCerts(r *http.Request) []*x509.Certificate {
	if r.TLS == nil {
		return nil
	}
	return r.TLS.PeerCertificates
}

func (h *Handler) enrollAttest(w http.ResponseWriter, r *http.Request) {
	peer := peerCerts(r)
	if len(peer) == 0 {
		h.fail(w, r, api.Errorf(api.CodeUnauthenticated, "attested enrollment needs the device's factory certificate (mutual TLS)"))
		return
	}
	req, err := decode[api.CSRRequest](h, w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	e, err := h.o.Devices.EnrollAttested(r.Context(), peer, []byte(req.CSR), req.Name, source(r))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.enrolled(w, e)
}

func (h *Handler) renew(w http.ResponseWriter, r *http.Request) {
	peer := peerCerts(r)
	if len(peer) == 0 {
		h.fail(w, r, api.Errorf(api.CodeUnauthenticated, "renewal needs the device's current certificate (mutual TLS)"))
		return
	}
	req, err := decode[api.CSRRequest](h, w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if req.Name != "" {
		h.fail(w, r, api.Errorf(api.CodeInvalid, "name does not apply to renewal"))
		return
	}
	e, err := h.o.Devices.Renew(r.Context(), peer, []byte(req.CSR), source(r))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.enrolled(w, e)
}

func (h *Handler) rotateSecret(w http.ResponseWriter, r *http.Request) {
	req, err := decode[api.RotateSecretRequest](h, w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if req.DeviceID == "" || req.Secret == "" {
		h.fail(w, r, api.Errorf(api.CodeUnauthenticated, "send device_id and the current secret"))
		return
	}
	d, err := h.o.Devices.RotateSecret(r.Context(), req.DeviceID, secrets.Text(req.Secret), secrets.Text(req.NewSecret), source(r))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, deviceJSON(d))
}

func (h *Handler) crl(w http.ResponseWriter, r *http.Request) {
	der, err := h.o.Devices.CRL(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/pkix-crl")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(der)
}

func claimJSON(c devices.Claim) api.Claim {
	return api.Claim{ID: c.ID, Name: c.Name, Model: c.Model, MaxUses: c.MaxUses, Uses: c.Uses, Serials: len(c.Serials),
		ExpiresAt: rfc3339(c.ExpiresAt), Revoked: c.Revoked}
}

func (h *Handler) createClaim(w http.ResponseWriter, r *http.Request) {
	req, err := decode[api.CreateClaimRequest](h, w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	ttl, perr := time.ParseDuration(req.TTL)
	if perr != nil {
		h.fail(w, r, api.Errorf(api.CodeInvalid, "ttl %q is not a duration; write it like 72h", req.TTL))
		return
	}
	ctx := r.Context()
	c, tok, err := h.o.Devices.CreateClaim(ctx, principalFrom(ctx).TenantID, actorOf(ctx),
		devices.ClaimSpec{Name: req.Name, Model: req.Model, MaxUses: req.MaxUses, TTL: ttl, Serials: req.Serials})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := claimJSON(c)
	out.Token = tok.Reveal()
	writeJSON(w, http.StatusCreated, out)
}

func (h *Handler) listClaims(w http.ResponseWriter, r *http.Request) {
	list, err := h.o.Devices.Claims(r.Context(), principalFrom(r.Context()).TenantID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := api.ClaimList{Claims: make([]api.Claim, 0, len(list))}
	for _, c := range list {
		out.Claims = append(out.Claims, claimJSON(c))
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) revokeClaim(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	c, err := h.o.Devices.RevokeClaim(ctx, principalFrom(ctx).TenantID, actorOf(ctx), r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, claimJSON(c))
}

func manufacturerJSON(m devices.Manufacturer) api.Manufacturer {
	out := api.Manufacturer{ID: m.ID, Name: m.Name, Model: m.Model, CreatedAt: rfc3339(m.CreatedAt), Fingerprints: []string{}}
	for _, der := range m.CAs {
		if c, err := x509.ParseCertificate(der); err == nil {
			out.Fingerprints = append(out.Fingerprints, pki.Fingerprint(c))
		}
	}
	return out
}

func (h *Handler) createManufacturer(w http.ResponseWriter, r *http.Request) {
	req, err := decode[api.CreateManufacturerRequest](h, w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	ctx := r.Context()
	m, err := h.o.Devices.RegisterManufacturer(ctx, principalFrom(ctx).TenantID, actorOf(ctx), req.Name, req.Model, []byte(req.CAPEM))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, manufacturerJSON(m))
}

func (h *Handler) listManufacturers(w http.ResponseWriter, r *http.Request) {
	list, err := h.o.Devices.Manufacturers(r.Context(), principalFrom(r.Context()).TenantID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := api.ManufacturerList{Manufacturers: make([]api.Manufacturer, 0, len(list))}
	for _, m := range list {
		out.Manufacturers = append(out.Manufacturers, manufacturerJSON(m))
	}
	writeJSON(w, http.StatusOK, out)
}

func findingJSON(f devices.Finding) api.Finding {
	return api.Finding{ID: f.ID, DeviceID: f.DeviceID, Kind: f.Kind, Detail: f.Detail, Resolved: f.Resolved, CreatedAt: rfc3339(f.CreatedAt)}
}

func (h *Handler) listFindings(w http.ResponseWriter, r *http.Request) {
	list, err := h.o.Devices.Findings(r.Context(), principalFrom(r.Context()).TenantID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := api.FindingList{Findings: make([]api.Finding, 0, len(list))}
	for _, f := range list {
		out.Findings = append(out.Findings, findingJSON(f))
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) approveFinding(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	f, err := h.o.Devices.ApproveReprovision(ctx, principalFrom(ctx).TenantID, actorOf(ctx), r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, findingJSON(f))
}

func (h *Handler) resolveFinding(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	f, err := h.o.Devices.ResolveFinding(ctx, principalFrom(ctx).TenantID, actorOf(ctx), r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, findingJSON(f))
}

// enrollResponse is the answer to every enrollment and renewal: the
// certificate chain and, when commands are on, the hub's command key for
// the device to pin.
func (h *Handler) enrollResponse(e devices.Enrolled) api.EnrollResponse {
	out := api.EnrollResponse{DeviceID: e.Device.ID, Certificate: string(e.Cert.ChainPEM), ExpiresAt: rfc3339(e.Cert.Cert.NotAfter)}
	if h.o.Commands != nil {
		k := h.o.Commands.CommandKey()
		out.CommandKey = &k
	}
	return out
}
