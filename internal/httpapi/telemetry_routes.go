package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/accounts"
	"github.com/rampart-iot/rampart/internal/telemetry"
)

// Telemetry is what the telemetry route needs.
type Telemetry interface {
	List(ctx context.Context, tenantID, deviceID string, limit int) ([]telemetry.Message, error)
}

func (h *Handler) registerTelemetryRoutes() {
	if h.o.Telemetry == nil || h.o.Devices == nil {
		return
	}
	h.mux.Handle("GET /api/v1/devices/{id}/telemetry", h.authed(accounts.PermDevicesRead, h.deviceTelemetry))
}

// deviceTelemetry serves a device's stored messages, newest last. The
// device is looked up in the caller's tenant first: another tenant's device
// answers 404 exactly like a missing one.
func (h *Handler) deviceTelemetry(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r.Context())
	id := r.PathValue("id")
	if _, err := h.o.Devices.Get(r.Context(), p.TenantID, id); err != nil {
		h.fail(w, r, err)
		return
	}
	limit, err := listLimit(r, telemetry.MaxListLimit)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	msgs, err := h.o.Telemetry.List(r.Context(), p.TenantID, id, limit)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := api.TelemetryList{DeviceID: id, Messages: make([]api.TelemetryMessage, 0, len(msgs))}
	for _, m := range msgs {
		tm := api.TelemetryMessage{Topic: m.Topic, ContentType: m.ContentType, ReceivedAt: m.Received.UTC().Format(time.RFC3339Nano)}
		if m.ContentType == "application/json" && json.Valid(m.Payload) {
			tm.JSON = json.RawMessage(m.Payload)
		} else {
			tm.Payload = m.Payload // base64 in JSON
		}
		out.Messages = append(out.Messages, tm)
	}
	writeJSON(w, http.StatusOK, out)
}

// listLimit reads ?limit=N (default 100, 1..max) for list routes.
func listLimit(r *http.Request, max int) (int, error) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return min(100, max), nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > max {
		return 0, api.Errorf(api.CodeInvalid, "limit must be 1 to %d", max)
	}
	return n, nil
}
