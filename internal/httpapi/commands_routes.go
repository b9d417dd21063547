package httpapi

import (
	"context"
	"net/http"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/accounts"
	"github.com/rampart-iot/rampart/internal/safety"
)

// Commands is what the command routes need from the safety service.
type Commands interface {
	PutModel(ctx context.Context, a safety.Actor, m api.DeviceModel) (api.DeviceModel, error)
	Model(ctx context.Context, tenantID, name string) (api.DeviceModel, error)
	Models(ctx context.Context, tenantID string) ([]api.DeviceModel, error)
	Submit(ctx context.Context, a safety.Actor, deviceID string, req api.CommandRequest) (safety.Command, error)
	Confirm(ctx context.Context, a safety.Actor, id string) (safety.Command, error)
	Approve(ctx context.Context, a safety.Actor, id string) (safety.Command, error)
	Get(ctx context.Context, tenantID, id string) (safety.Command, error)
	List(ctx context.Context, tenantID, deviceID string, limit int) ([]safety.Command, error)
	CommandKey() api.CommandKey
}

var _ Commands = (*safety.Service)(nil)

func (h *Handler) registerCommandRoutes() {
	if h.o.Commands == nil || h.o.Devices == nil {
		return
	}
	h.mux.HandleFunc("GET /pki/command-key", h.commandKey)
	h.mux.Handle("POST /api/v1/models", h.authed(accounts.PermModelsWrite, h.putModel))
	h.mux.Handle("GET /api/v1/models", h.authed(accounts.PermDevicesRead, h.listModels))
	h.mux.Handle("GET /api/v1/models/{id}", h.authed(accounts.PermDevicesRead, h.getModel))
	h.mux.Handle("POST /api/v1/devices/{id}/commands", h.authed(accounts.PermCommandsWrite, h.submitCommand))
	h.mux.Handle("GET /api/v1/devices/{id}/commands", h.authed(accounts.PermDevicesRead, h.listCommands))
	h.mux.Handle("GET /api/v1/commands/{id}", h.authed(accounts.PermDevicesRead, h.getCommand))
	h.mux.Handle("POST /api/v1/commands/{id}/confirm", h.authed(accounts.PermCommandsWrite, h.confirmCommand))
	h.mux.Handle("POST /api/v1/commands/{id}/approve", h.authed(accounts.PermCommandsApprove, h.approveCommand))
}

func actor(ctx context.Context) safety.Actor {
	p := principalFrom(ctx)
	return safety.Actor{UserID: p.UserID, TenantID: p.TenantID, TokenID: p.TokenID}
}

// commandKey is public: the hub's command public key, which devices pin
// at enrollment (over TLS to the hub they trust by ca.pem).
func (h *Handler) commandKey(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, h.o.Commands.CommandKey())
}

func (h *Handler) putModel(w http.ResponseWriter, r *http.Request) {
	m, err := decode[api.DeviceModel](h, w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out, err := h.o.Commands.PutModel(r.Context(), actor(r.Context()), m)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, out)
}

func (h *Handler) listModels(w http.ResponseWriter, r *http.Request) {
	ms, err := h.o.Commands.Models(r.Context(), principalFrom(r.Context()).TenantID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.ModelList{Models: ms})
}

func (h *Handler) getModel(w http.ResponseWriter, r *http.Request) {
	m, err := h.o.Commands.Model(r.Context(), principalFrom(r.Context()).TenantID, r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, m)
}

// submitCommand: 201 with the command (sent, or waiting for confirmation
// or approval), or 422 policy_violation with the verdict naming every
// failed rule.
func (h *Handler) submitCommand(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r.Context())
	id := r.PathValue("id")
	if _, err := h.o.Devices.Get(r.Context(), p.TenantID, id); err != nil {
		h.fail(w, r, err)
		return
	}
	req, err := decode[api.CommandRequest](h, w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	c, err := h.o.Commands.Submit(r.Context(), actor(r.Context()), id, req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.writeCommand(w, http.StatusCreated, c)
}

func (h *Handler) writeCommand(w http.ResponseWriter, okStatus int, c safety.Command) {
	if c.Status == api.CommandRefused {
		writeJSON(w, status(api.CodePolicyViolation), api.CommandRefusal{
			Error:   api.Error{Code: api.CodePolicyViolation, Message: refusalMessage(c.Verdict)},
			Command: c.Wire(),
		})
		return
	}
	writeJSON(w, okStatus, c.Wire())
}

func refusalMessage(v api.Verdict) string {
	msg := "the safety policy refused the command:"
	for i, f := range v.Failures {
		if i > 0 {
			msg += ";"
		}
		msg += " " + f.Rule + ": " + f.Message
	}
	return msg
}

func (h *Handler) listCommands(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r.Context())
	id := r.PathValue("id")
	if _, err := h.o.Devices.Get(r.Context(), p.TenantID, id); err != nil {
		h.fail(w, r, err)
		return
	}
	limit, err := listLimit(r, safety.MaxListLimit)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	cs, err := h.o.Commands.List(r.Context(), p.TenantID, id, limit)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := api.CommandList{Commands: make([]api.Command, 0, len(cs))}
	for _, c := range cs {
		out.Commands = append(out.Commands, c.Wire())
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) getCommand(w http.ResponseWriter, r *http.Request) {
	c, err := h.o.Commands.Get(r.Context(), principalFrom(r.Context()).TenantID, r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, c.Wire())
}

func (h *Handler) confirmCommand(w http.ResponseWriter, r *http.Request) {
	c, err := h.o.Commands.Confirm(r.Context(), actor(r.Context()), r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.writeCommand(w, http.StatusOK, c)
}

func (h *Handler) approveCommand(w http.ResponseWriter, r *http.Request) {
	c, err := h.o.Commands.Approve(r.Context(), actor(r.Context()), r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.writeCommand(w, http.StatusOK, c)
}
