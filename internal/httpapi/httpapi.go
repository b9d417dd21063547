// Package httpapi serves Rampart's HTTPS API under /api/v1/ and the
// Prometheus metrics endpoint. It is the only place that maps application
// error codes to HTTP statuses. Every response carries strict security
// headers; every body is size-limited and strictly decoded; every route
// except setup and login refuses a client that has not authenticated.
package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/accounts"
	"github.com/rampart-iot/rampart/internal/secrets"
)

// Accounts is what the API needs from the accounts service.
type Accounts interface {
	Setup(ctx context.Context, code secrets.Text, email string, password secrets.Text) (accounts.User, error)
	Login(ctx context.Context, email string, password secrets.Text, source string) (secrets.Text, accounts.Session, error)
	Authenticate(ctx context.Context, token secrets.Text) (accounts.Principal, error)
	Logout(ctx context.Context, p accounts.Principal, token secrets.Text) error
	// IsOperator: p belongs to the tenant that runs the hub (hub-wide views).
	IsOperator(ctx context.Context, p accounts.Principal) bool
}

// Options configure the handler.
type Options struct {
	Accounts     Accounts
	Logger       *slog.Logger
	MaxBodyBytes int64
	Registry     *prometheus.Registry // metrics served at /metrics; nil disables the route
	// OnSetupDone runs after the first owner is created (the app removes
	// DATA/setup-code).
	OnSetupDone func()
	// Devices is the device registry; nil leaves the device routes out.
	Devices Devices
	// Telemetry serves GET /api/v1/devices/{id}/telemetry; nil disables it.
	// Audit serves GET /api/v1/audit; nil disables it.
	Audit     Audit
	Telemetry Telemetry
	// Commands is the command safety service (models, commands,
	// approvals, the command key); nil leaves those routes out.
	Commands Commands
	// Firmware is the firmware service (roots, images, rollouts, device
	// offers); nil leaves those routes out.
	Firmware Firmware
}

// Handler is the API's http.Handler.
type Handler struct {
	o        Options
	mux      *routeMux
	requests *prometheus.CounterVec
	public   *sourceLimiter // per-address rate on the routes open without a bearer token
}

type ctxKey int

const principalKey ctxKey = 1

// New builds the handler.
func New(o Options) *Handler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	h := &Handler{o: o, mux: &routeMux{ServeMux: http.NewServeMux()},
		public: newSourceLimiter(publicPerSourcePerSec, publicPerSourceBurst, time.Now)}
	if o.Registry != nil {
		h.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rampart_http_requests_total", Help: "HTTPS API requests by route pattern and status.",
		}, []string{"route", "code"})
		o.Registry.MustRegister(h.requests)
	}
	// Public routes: the only two a client without a credential may reach.
	h.mux.HandleFunc("POST /api/v1/setup", h.setup)
	h.mux.HandleFunc("POST /api/v1/login", h.login)
	// Authenticated routes.
	h.mux.Handle("POST /api/v1/logout", h.authed(accounts.PermSelfRead, h.logout))
	h.mux.Handle("GET /api/v1/me", h.authed(accounts.PermSelfRead, h.me))
	if o.Registry != nil {
		metrics := promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
		h.mux.Handle("GET /metrics", h.authed(accounts.PermMetricsRead, func(w http.ResponseWriter, r *http.Request) {
			// Metrics are hub-wide (every tenant's traffic): only the
			// operator tenant may read them.
			if !h.o.Accounts.IsOperator(r.Context(), principalFrom(r.Context())) {
				h.fail(w, r, api.Errorf(api.CodeForbidden, "metrics are hub-wide; only the hub's operator tenant may read them"))
				return
			}
			metrics.ServeHTTP(w, r)
		}))
	}
	h.registerDeviceRoutes()
	h.registerTelemetryRoutes()
	h.registerAuditRoutes()
	h.registerAccountRoutes()
	h.registerCommandRoutes()
	h.registerFirmwareRoutes()
	return h
}

var publicRoutes = map[string]bool{
	"POST /api/v1/setup": true,
	"POST /api/v1/login": true,
	// Account routes that carry their own single-use credential (an
	// invitation or a reset link) or create a tenant (open sign-up, off
	// unless configured).
	"POST /api/v1/signup":             true,
	"POST /api/v1/invitations/accept": true,
	"POST /api/v1/password-reset":     true,
	// Device routes: each authenticates with its own credential (token,
	// claim, client certificate, device secret); the CRL is public.
	"POST /api/v1/enroll":        true,
	"POST /api/v1/enroll/attest": true,
	"POST /api/v1/renew":         true,
	"POST /api/v1/device-secret": true,
	"GET /pki/crl":               true,
	// The hub's command-signing public key, which devices pin.
	"GET /pki/command-key": true,
	// Firmware routes for devices: each handler verifies the device's
	// client certificate (mutual TLS).
	"GET /api/v1/firmware/offer":                true,
	"GET /api/v1/firmware/images/{id}/download": true,
	"POST /api/v1/firmware/report":              true,
}

// statusRecorder captures the status for metrics.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// ServeHTTP applies headers, panic recovery, the authentication gate for
// unknown routes, and metrics.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w.Header())
	rec := &statusRecorder{ResponseWriter: w}
	_, pattern := h.mux.Handler(r)
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			h.o.Logger.Error("panic in handler", "route", pattern, "panic", fmt.Sprint(v))
			if rec.status == 0 {
				writeError(rec, http.StatusInternalServerError, api.CodeInternal, "internal error")
			}
		}
		if h.requests != nil {
			route := pattern
			if route == "" {
				route = "unmatched"
			}
			h.requests.WithLabelValues(route, fmt.Sprint(rec.status)).Inc()
		}
	}()
	if !publicRoutes[pattern] && pattern != "" {
		h.mux.ServeHTTP(rec, r)
		return
	}
	if !h.limitPublic(rec, r) {
		return
	}
	if pattern == "" {
		// Unknown route or wrong method: an unauthenticated client learns
		// nothing about which routes exist.
		if _, err := h.principal(r); err != nil {
			h.fail(rec, r, err)
			return
		}
		writeError(rec, http.StatusNotFound, api.CodeNotFound, "no such route")
		return
	}
	h.mux.ServeHTTP(rec, r)
}

func setSecurityHeaders(hd http.Header) {
	hd.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
	hd.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	hd.Set("Cross-Origin-Resource-Policy", "same-origin")
	hd.Set("Cache-Control", "no-store")
}

func bearer(r *http.Request) (secrets.Text, bool) {
	a := r.Header.Get("Authorization")
	const p = "Bearer "
	if len(a) <= len(p) || !strings.EqualFold(a[:len(p)], p) {
		return "", false
	}
	return secrets.Text(strings.TrimSpace(a[len(p):])), true
}

func (h *Handler) principal(r *http.Request) (accounts.Principal, error) {
	tok, ok := bearer(r)
	if !ok {
		return accounts.Principal{}, api.Errorf(api.CodeUnauthenticated, "this route needs a bearer token: POST /api/v1/login, then send Authorization: Bearer TOKEN")
	}
	return h.o.Accounts.Authenticate(r.Context(), tok)
}

func (h *Handler) authed(perm accounts.Permission, next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := h.principal(r)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		if !p.Can(perm) {
			switch {
			case p.TokenID != "" && accounts.Can(p.Role, perm):
				h.fail(w, r, api.Errorf(api.CodeForbidden, "this API token lacks the %s scope", perm))
			case p.TokenID == "" && p.MFASetupRequired && accounts.Can(p.Role, perm):
				h.fail(w, r, api.Errorf(api.CodeForbidden, "your tenant requires a second factor: enrol one with POST /api/v1/me/mfa/totp first"))
			default:
				h.fail(w, r, api.Errorf(api.CodeForbidden, "your role (%s) may not do this", p.Role))
			}
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), principalKey, p)))
	})
}

func principalFrom(ctx context.Context) accounts.Principal {
	p, _ := ctx.Value(principalKey).(accounts.Principal)
	return p
}

// status maps application codes to HTTP; the one place this happens.
func status(c api.Code) int {
	switch c {
	case api.CodeInvalid:
		return http.StatusBadRequest
	case api.CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case api.CodeUnauthenticated, accounts.CodeMFARequired:
		return http.StatusUnauthorized
	case api.CodeForbidden:
		return http.StatusForbidden
	case api.CodeNotFound:
		return http.StatusNotFound
	case api.CodeConflict:
		return http.StatusConflict
	case api.CodeRateLimited:
		return http.StatusTooManyRequests
	case api.CodeExpired:
		return http.StatusGone
	case api.CodeUnsupported:
		return http.StatusUnsupportedMediaType
	case api.CodePolicyViolation:
		return http.StatusUnprocessableEntity
	default:
		return http.StatusInternalServerError
	}
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := api.ErrorCode(err)
	if code == api.CodeInternal {
		h.o.Logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if code == api.CodeUnauthenticated {
		w.Header().Set("WWW-Authenticate", `Bearer realm="rampart"`)
	}
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) {
		w.Header().Set("Retry-After", fmt.Sprint(int(ra.RetryAfter().Seconds())))
	}
	writeError(w, status(code), code, api.ErrorMessage(err))
}

func writeError(w http.ResponseWriter, status int, code api.Code, msg string) {
	writeJSON(w, status, api.ErrorBody{Error: api.Error{Code: code, Message: msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	_ = enc.Encode(v)
}

// decode reads exactly one JSON object of type T from a size-limited body,
// refusing unknown fields and trailing data.
func decode[T any](h *Handler, w http.ResponseWriter, r *http.Request) (T, error) {
	var v T
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return v, api.Errorf(api.CodeUnsupported, "send the body as Content-Type: application/json")
		}
	}
	if r.ContentLength > h.o.MaxBodyBytes {
		return v, api.Errorf(api.CodeTooLarge, "request body is larger than %d bytes", h.o.MaxBodyBytes)
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.o.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return v, api.Errorf(api.CodeTooLarge, "request body is larger than %d bytes", h.o.MaxBodyBytes)
		}
		return v, api.Errorf(api.CodeInvalid, "reading the request body failed")
	}
	trimmed := bytes.TrimLeft(raw, " \t\r\n")
	if len(trimmed) == 0 {
		return v, api.Errorf(api.CodeInvalid, "request body is empty; send a JSON object")
	}
	if trimmed[0] != '{' {
		return v, api.Errorf(api.CodeInvalid, "request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	err = dec.Decode(&v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("trailing data after the JSON object")
		}
	}
	if err != nil {
		return v, api.Errorf(api.CodeInvalid, "request body is not valid JSON for this route: %s", jsonProblem(err))
	}
	return v, nil
}

// jsonProblem describes a decoding error without echoing the body (which may
// hold a password).
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q must be %s", te.Field, te.Type)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected end of input"
	default:
		return "malformed body"
	}
}

func source(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (h *Handler) setup(w http.ResponseWriter, r *http.Request) {
	req, err := decode[api.SetupRequest](h, w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	u, err := h.o.Accounts.Setup(r.Context(), secrets.Text(req.SetupCode), req.Email, secrets.Text(req.Password))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if h.o.OnSetupDone != nil {
		h.o.OnSetupDone()
	}
	writeJSON(w, http.StatusCreated, api.SetupResponse{UserID: u.ID, TenantID: u.TenantID, Email: u.Email, Role: string(u.Role)})
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	req, err := decode[api.LoginRequest](h, w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var tok secrets.Text
	var sess accounts.Session
	if ml, ok := h.o.Accounts.(mfaLogin); ok {
		tok, sess, err = ml.LoginMFA(r.Context(), req.Email, secrets.Text(req.Password), req.TOTP, source(r))
	} else {
		tok, sess, err = h.o.Accounts.Login(r.Context(), req.Email, secrets.Text(req.Password), source(r))
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.LoginResponse{Token: tok.Reveal(), ExpiresAt: sess.ExpiresAt.UTC().Format(time.RFC3339)})
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	tok, _ := bearer(r)
	if err := h.o.Accounts.Logout(r.Context(), principalFrom(r.Context()), tok); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) me(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r.Context())
	writeJSON(w, http.StatusOK, api.Me{UserID: p.UserID, TenantID: p.TenantID, Email: p.Email, Role: string(p.Role)})
}
