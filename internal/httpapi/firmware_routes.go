package httpapi

import (
	"context"
	"crypto/x509"
	"io"
	"mime"
	"net/http"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/accounts"
	"github.com/rampart-iot/rampart/internal/firmware"
	sdkfw "github.com/rampart-iot/rampart/sdk/firmware"
)

// Firmware is what the API needs from the firmware service.
type Firmware interface {
	SetRoot(ctx context.Context, tenantID, actor string, raw []byte) (*sdkfw.Root, error)
	Roots(ctx context.Context, tenantID string) ([]firmware.RootRecord, error)
	UploadManifest(ctx context.Context, tenantID, actor string, raw []byte) (firmware.Image, error)
	PutImage(ctx context.Context, tenantID, actor, id string, r io.Reader) (firmware.Image, error)
	Image(ctx context.Context, tenantID, id string) (firmware.Image, error)
	Images(ctx context.Context, tenantID string) ([]firmware.Image, error)
	CreateRollout(ctx context.Context, tenantID, actor string, sp firmware.RolloutSpec) (firmware.Rollout, error)
	Rollout(ctx context.Context, tenantID, id string) (firmware.Rollout, []firmware.Target, error)
	Rollouts(ctx context.Context, tenantID string) ([]firmware.Rollout, error)
	Act(ctx context.Context, tenantID, actor, id string, a firmware.Action) (firmware.Rollout, error)
	Settings(ctx context.Context, tenantID string) (firmware.Settings, error)
	UpdateSettings(ctx context.Context, tenantID, actor string, requireApproval *bool, mins map[string]uint64) (firmware.Settings, error)
	SetTags(ctx context.Context, tenantID, actor, deviceID string, tags []string) (firmware.DeviceState, error)
	BelowMinimum(ctx context.Context, tenantID string) ([]firmware.DeviceState, error)
	Denied(ctx context.Context, tenantID, actor, action, missing string)

	AuthorizeDevice(ctx context.Context, leaf *x509.Certificate) (firmware.FleetDevice, error)
	Offer(ctx context.Context, dev firmware.FleetDevice) (firmware.Offer, bool, error)
	OpenImage(ctx context.Context, dev firmware.FleetDevice, imageID string) (firmware.Image, firmware.Blob, error)
	Report(ctx context.Context, dev firmware.FleetDevice, rep api.FirmwareReport) error
}

func (h *Handler) registerFirmwareRoutes() {
	if h.o.Firmware == nil {
		return
	}
	// Devices (mutual TLS; each handler verifies the client certificate).
	h.mux.HandleFunc("GET /api/v1/firmware/offer", h.firmwareOffer)
	h.mux.HandleFunc("GET /api/v1/firmware/images/{id}/download", h.firmwareDownload)
	h.mux.HandleFunc("POST /api/v1/firmware/report", h.firmwareReport)

	// Operators.
	h.mux.Handle("GET /api/v1/firmware/root", h.authed(accounts.PermFirmwareRead, h.getFirmwareRoot))
	h.mux.Handle("PUT /api/v1/firmware/root", h.journaledGate(accounts.PermFirmwareAdmin, "firmware.root_set", h.putFirmwareRoot))
	h.mux.Handle("GET /api/v1/firmware/settings", h.authed(accounts.PermFirmwareRead, h.getFirmwareSettings))
	h.mux.Handle("PATCH /api/v1/firmware/settings", h.journaledGate(accounts.PermFirmwareAdmin, "firmware.settings_changed", h.patchFirmwareSettings))
	h.mux.Handle("POST /api/v1/firmware/images", h.journaledGate(accounts.PermFirmwareWrite, "firmware.manifest_uploaded", h.postFirmwareImage))
	h.mux.Handle("GET /api/v1/firmware/images", h.authed(accounts.PermFirmwareRead, h.listFirmwareImages))
	h.mux.Handle("GET /api/v1/firmware/images/{id}", h.authed(accounts.PermFirmwareRead, h.getFirmwareImage))
	h.mux.Handle("PUT /api/v1/firmware/images/{id}/blob", h.journaledGate(accounts.PermFirmwareWrite, "firmware.image_uploaded", h.putFirmwareBlob))
	h.mux.Handle("POST /api/v1/firmware/rollouts", h.journaledGate(accounts.PermFirmwareWrite, "firmware.rollout_created", h.postRollout))
	h.mux.Handle("GET /api/v1/firmware/rollouts", h.authed(accounts.PermFirmwareRead, h.listRollouts))
	h.mux.Handle("GET /api/v1/firmware/rollouts/{id}", h.authed(accounts.PermFirmwareRead, h.getRollout))
	h.mux.Handle("POST /api/v1/firmware/rollouts/{id}/approve", h.journaledGate(accounts.PermRolloutsApprove, "firmware.rollout_approve", h.rolloutAction(firmware.ActionApprove)))
	h.mux.Handle("POST /api/v1/firmware/rollouts/{id}/pause", h.authed(accounts.PermFirmwareWrite, h.rolloutAction(firmware.ActionPause)))
	h.mux.Handle("POST /api/v1/firmware/rollouts/{id}/resume", h.authed(accounts.PermFirmwareWrite, h.rolloutAction(firmware.ActionResume)))
	h.mux.Handle("POST /api/v1/firmware/rollouts/{id}/abort", h.authed(accounts.PermFirmwareWrite, h.rolloutAction(firmware.ActionAbort)))
	h.mux.Handle("PUT /api/v1/firmware/devices/{id}/tags", h.authed(accounts.PermFirmwareWrite, h.putDeviceTags))
	h.mux.Handle("GET /api/v1/firmware/below-minimum", h.authed(accounts.PermFirmwareRead, h.belowMinimum))
}

// journaledGate is authed, and also journals a refusal of an authenticated
// caller who lacks perm (uploading firmware or changing its trust is
// security-relevant even when refused).
func (h *Handler) journaledGate(perm accounts.Permission, action string, next http.HandlerFunc) http.Handler {
	inner := h.authed(perm, next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, err := h.principal(r); err == nil && !p.Can(perm) {
			actor := "user:" + p.UserID
			if p.TokenID != "" {
				actor = "token:" + p.TokenID
			}
			h.o.Firmware.Denied(r.Context(), p.TenantID, actor, action, string(perm))
		}
		inner.ServeHTTP(w, r)
	})
}

func imageJSON(i firmware.Image) api.FirmwareImage {
	m := i.Manifest
	return api.FirmwareImage{ID: i.ID, Vendor: m.Vendor, Model: m.Model, Version: m.Version, Sequence: m.Sequence, Length: m.Length,
		SHA256: m.SHA256, ExpiresAt: rfc3339(m.Expires), Status: string(i.Status), CreatedAt: rfc3339(i.CreatedAt)}
}

func rolloutJSON(r firmware.Rollout, ts []firmware.Target, withDevices bool) api.Rollout {
	out := api.Rollout{ID: r.ID, ImageID: r.ImageID, Model: r.Model, Version: r.Version, Status: string(r.Status), Reason: r.Reason,
		Wave: r.Wave, Waves: r.Waves, SuccessRate: r.SuccessRate, FailureThreshold: r.FailureThreshold, Tags: r.Tags, Percent: r.Percent,
		CreatedBy: r.CreatedBy, ApprovedBy: r.ApprovedBy, Counts: firmware.Counts(ts), CreatedAt: rfc3339(r.CreatedAt), UpdatedAt: rfc3339(r.UpdatedAt)}
	if withDevices {
		out.Devices = make([]api.RolloutDevice, 0, len(ts))
		for _, t := range ts {
			out.Devices = append(out.Devices, api.RolloutDevice{DeviceID: t.DeviceID, Wave: t.Wave, Status: string(t.Status), Reason: t.Reason, UpdatedAt: rfc3339(t.UpdatedAt)})
		}
	}
	return out
}

func (h *Handler) getFirmwareRoot(w http.ResponseWriter, r *http.Request) {
	roots, err := h.o.Firmware.Roots(r.Context(), principalFrom(r.Context()).TenantID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if len(roots) == 0 {
		h.fail(w, r, api.Errorf(api.CodeNotFound, "this tenant has no firmware root yet; PUT /api/v1/firmware/root"))
		return
	}
	cur, err := sdkfw.ParseRootUnverified(roots[len(roots)-1].Envelope)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rootJSON(cur, roots))
}

func rootJSON(cur *sdkfw.Root, roots []firmware.RootRecord) api.FirmwareRoot {
	out := api.FirmwareRoot{Version: cur.Version, ExpiresAt: rfc3339(cur.Expires), Threshold: cur.RootRole.Threshold, Firmware: cur.Firmware.Threshold, KeyIDs: []string{}}
	for id := range cur.Keys {
		out.KeyIDs = append(out.KeyIDs, id)
	}
	for _, rr := range roots {
		out.Chain = append(out.Chain, string(rr.Envelope))
	}
	return out
}

func (h *Handler) putFirmwareRoot(w http.ResponseWriter, r *http.Request) {
	req, err := decode[api.FirmwareRootRequest](h, w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	ctx := r.Context()
	p := principalFrom(ctx)
	root, err := h.o.Firmware.SetRoot(ctx, p.TenantID, actorOf(ctx), []byte(req.Root))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rootJSON(root, nil))
}

func settingsJSON(s firmware.Settings) api.FirmwareSettings {
	return api.FirmwareSettings{RequireApproval: s.RequireApproval, MinVersions: s.MinSequences}
}

func (h *Handler) getFirmwareSettings(w http.ResponseWriter, r *http.Request) {
	s, err := h.o.Firmware.Settings(r.Context(), principalFrom(r.Context()).TenantID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, settingsJSON(s))
}

func (h *Handler) patchFirmwareSettings(w http.ResponseWriter, r *http.Request) {
	req, err := decode[api.FirmwareSettingsRequest](h, w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	ctx := r.Context()
	s, err := h.o.Firmware.UpdateSettings(ctx, principalFrom(ctx).TenantID, actorOf(ctx), req.RequireApproval, req.MinVersions)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, settingsJSON(s))
}

func (h *Handler) postFirmwareImage(w http.ResponseWriter, r *http.Request) {
	req, err := decode[api.FirmwareImageRequest](h, w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	ctx := r.Context()
	img, err := h.o.Firmware.UploadManifest(ctx, principalFrom(ctx).TenantID, actorOf(ctx), []byte(req.Manifest))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, imageJSON(img))
}

func (h *Handler) putFirmwareBlob(w http.ResponseWriter, r *http.Request) {
	// Another tenant's image answers exactly like a missing one, before
	// anything about the body is judged.
	if _, err := h.o.Firmware.Image(r.Context(), principalFrom(r.Context()).TenantID, r.PathValue("id")); err != nil {
		h.fail(w, r, err)
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/octet-stream" {
		h.fail(w, r, api.Errorf(api.CodeUnsupported, "send the image as Content-Type: application/octet-stream"))
		return
	}
	ctx := r.Context()
	body := http.MaxBytesReader(w, r.Body, firmware.MaxImageBytes+1)
	img, err := h.o.Firmware.PutImage(ctx, principalFrom(ctx).TenantID, actorOf(ctx), r.PathValue("id"), body)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, imageJSON(img))
}

func (h *Handler) listFirmwareImages(w http.ResponseWriter, r *http.Request) {
	list, err := h.o.Firmware.Images(r.Context(), principalFrom(r.Context()).TenantID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := api.FirmwareImageList{Images: make([]api.FirmwareImage, 0, len(list))}
	for _, i := range list {
		out.Images = append(out.Images, imageJSON(i))
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) getFirmwareImage(w http.ResponseWriter, r *http.Request) {
	img, err := h.o.Firmware.Image(r.Context(), principalFrom(r.Context()).TenantID, r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, imageJSON(img))
}

func (h *Handler) postRollout(w http.ResponseWriter, r *http.Request) {
	req, err := decode[api.RolloutRequest](h, w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	ctx := r.Context()
	ro, err := h.o.Firmware.CreateRollout(ctx, principalFrom(ctx).TenantID, actorOf(ctx), firmware.RolloutSpec{ImageID: req.ImageID,
		Tags: req.Tags, Percent: req.Percent, Waves: req.Waves, SuccessRate: req.SuccessRate, FailureThreshold: req.FailureThreshold})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	_, ts, err := h.o.Firmware.Rollout(ctx, principalFrom(ctx).TenantID, ro.ID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, rolloutJSON(ro, ts, false))
}

func (h *Handler) listRollouts(w http.ResponseWriter, r *http.Request) {
	list, err := h.o.Firmware.Rollouts(r.Context(), principalFrom(r.Context()).TenantID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := api.RolloutList{Rollouts: make([]api.Rollout, 0, len(list))}
	for _, ro := range list {
		out.Rollouts = append(out.Rollouts, rolloutJSON(ro, nil, false))
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) getRollout(w http.ResponseWriter, r *http.Request) {
	ro, ts, err := h.o.Firmware.Rollout(r.Context(), principalFrom(r.Context()).TenantID, r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rolloutJSON(ro, ts, true))
}

func (h *Handler) rolloutAction(a firmware.Action) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		ro, err := h.o.Firmware.Act(ctx, principalFrom(ctx).TenantID, actorOf(ctx), r.PathValue("id"), a)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, rolloutJSON(ro, nil, false))
	}
}

func (h *Handler) putDeviceTags(w http.ResponseWriter, r *http.Request) {
	req, err := decode[api.DeviceTagsRequest](h, w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	ctx := r.Context()
	ds, err := h.o.Firmware.SetTags(ctx, principalFrom(ctx).TenantID, actorOf(ctx), r.PathValue("id"), req.Tags)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, fwDeviceJSON(ds))
}

func fwDeviceJSON(d firmware.DeviceState) api.FirmwareDevice {
	return api.FirmwareDevice{DeviceID: d.DeviceID, Model: d.Model, Version: d.Version, Sequence: d.Sequence, Tags: d.Tags, UpdatedAt: rfc3339(d.UpdatedAt)}
}

func (h *Handler) belowMinimum(w http.ResponseWriter, r *http.Request) {
	list, err := h.o.Firmware.BelowMinimum(r.Context(), principalFrom(r.Context()).TenantID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := api.FirmwareDeviceList{Devices: make([]api.FirmwareDevice, 0, len(list))}
	for _, d := range list {
		out.Devices = append(out.Devices, fwDeviceJSON(d))
	}
	writeJSON(w, http.StatusOK, out)
}

// firmwareDevice authenticates the device of a mutual-TLS request.
func (h *Handler) firmwareDevice(w http.ResponseWriter, r *http.Request) (firmware.FleetDevice, bool) {
	peer := peerCerts(r)
	if len(peer) == 0 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="rampart"`)
		h.fail(w, r, api.Errorf(api.CodeUnauthenticated, "firmware updates need the device's certificate (mutual TLS)"))
		return firmware.FleetDevice{}, false
	}
	d, err := h.o.Firmware.AuthorizeDevice(r.Context(), peer[0])
	if err != nil {
		h.fail(w, r, err)
		return firmware.FleetDevice{}, false
	}
	return d, true
}

func (h *Handler) firmwareOffer(w http.ResponseWriter, r *http.Request) {
	dev, ok := h.firmwareDevice(w, r)
	if !ok {
		return
	}
	o, found, err := h.o.Firmware.Offer(r.Context(), dev)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if !found {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	out := api.FirmwareOffer{RolloutID: o.Rollout.ID, ImageID: o.Image.ID, Manifest: string(o.Manifest), Roots: []string{},
		URL: "/api/v1/firmware/images/" + o.Image.ID + "/download"}
	for _, rr := range o.Roots {
		out.Roots = append(out.Roots, string(rr))
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) firmwareDownload(w http.ResponseWriter, r *http.Request) {
	dev, ok := h.firmwareDevice(w, r)
	if !ok {
		return
	}
	img, blob, err := h.o.Firmware.OpenImage(r.Context(), dev, r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	defer blob.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("ETag", `"`+img.Manifest.SHA256+`"`)
	// ServeContent answers Range (and If-Range) requests, so a device
	// resumes a broken download where it stopped.
	http.ServeContent(w, r, "", img.CreatedAt, blob)
}

func (h *Handler) firmwareReport(w http.ResponseWriter, r *http.Request) {
	dev, ok := h.firmwareDevice(w, r)
	if !ok {
		return
	}
	req, err := decode[api.FirmwareReport](h, w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.o.Firmware.Report(r.Context(), dev, req); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

var _ Firmware = (*firmware.Service)(nil)
