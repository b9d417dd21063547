package httpapi

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/accounts"
	"github.com/rampart-iot/rampart/internal/secrets"
)

// routeMux is a ServeMux that remembers its patterns, so tests can walk
// every registered route (a new route without a tenant check then fails
// the cross-tenant test).
type routeMux struct {
	*http.ServeMux
	patterns []string
}

func (m *routeMux) Handle(pattern string, h http.Handler) {
	m.patterns = append(m.patterns, pattern)
	m.ServeMux.Handle(pattern, h)
}

func (m *routeMux) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	m.patterns = append(m.patterns, pattern)
	m.ServeMux.HandleFunc(pattern, h)
}

// Routes lists every registered pattern ("METHOD /path/{id}"), sorted.
func (h *Handler) Routes() []string {
	out := slices.Clone(h.mux.patterns)
	slices.Sort(out)
	return out
}

// IsPublic reports whether pattern answers a client without a bearer token.
func IsPublic(pattern string) bool { return publicRoutes[pattern] }

// mfaLogin is the login with a second factor.
type mfaLogin interface {
	LoginMFA(ctx context.Context, email string, password secrets.Text, otp, source string) (secrets.Text, accounts.Session, error)
}

// AccountAdmin is the rest of the accounts service the API uses: users,
// tenants, invitations, resets, MFA and API tokens. When Options.Accounts
// implements it, the account routes are registered.
type AccountAdmin interface {
	LogoutAll(ctx context.Context, p accounts.Principal) error
	Signup(ctx context.Context, email string, password secrets.Text, tenantName, source string) (accounts.User, error)
	TenantOf(ctx context.Context, p accounts.Principal) (accounts.Tenant, error)
	SetRequireMFA(ctx context.Context, p accounts.Principal, require bool) (accounts.Tenant, error)
	ListUsers(ctx context.Context, p accounts.Principal) ([]accounts.User, error)
	GetUser(ctx context.Context, p accounts.Principal, id string) (accounts.User, error)
	SetRole(ctx context.Context, p accounts.Principal, id string, role accounts.Role) (accounts.User, error)
	DeleteUser(ctx context.Context, p accounts.Principal, id string) error
	Invite(ctx context.Context, p accounts.Principal, email string, role accounts.Role) (accounts.Invitation, secrets.Text, error)
	ListInvitations(ctx context.Context, p accounts.Principal) ([]accounts.Invitation, error)
	RevokeInvitation(ctx context.Context, p accounts.Principal, id string) error
	AcceptInvitation(ctx context.Context, token, password secrets.Text, source string) (accounts.User, error)
	IssueReset(ctx context.Context, p accounts.Principal, id string) (secrets.Text, time.Time, error)
	ResetPassword(ctx context.Context, token, password secrets.Text, source string) error
	ChangePassword(ctx context.Context, p accounts.Principal, token, current, next secrets.Text) error
	BeginTOTP(ctx context.Context, p accounts.Principal) (secrets.Text, secrets.Text, error)
	ConfirmTOTP(ctx context.Context, p accounts.Principal, code string) ([]string, secrets.Text, accounts.Session, error)
	DisableTOTP(ctx context.Context, p accounts.Principal, password secrets.Text) error
	CreateAPIToken(ctx context.Context, p accounts.Principal, r accounts.TokenRequest) (accounts.APIToken, secrets.Text, error)
	ListAPITokens(ctx context.Context, p accounts.Principal) ([]accounts.APIToken, error)
	RevokeAPIToken(ctx context.Context, p accounts.Principal, id string) error
}

var _ AccountAdmin = (*accounts.Service)(nil)

func (h *Handler) admin() AccountAdmin {
	a, _ := h.o.Accounts.(AccountAdmin)
	return a
}

func (h *Handler) registerAccountRoutes() {
	if h.admin() == nil {
		return
	}
	m := h.mux
	// Public, each with its own single-use credential or a config switch.
	m.HandleFunc("POST /api/v1/signup", h.signup)
	m.HandleFunc("POST /api/v1/invitations/accept", h.acceptInvitation)
	m.HandleFunc("POST /api/v1/password-reset", h.passwordReset)
	// One's own account.
	m.Handle("POST /api/v1/logout-all", h.authed(accounts.PermSelfRead, h.logoutAll))
	m.Handle("POST /api/v1/me/password", h.authed(accounts.PermSelfRead, h.changePassword))
	m.Handle("POST /api/v1/me/mfa/totp", h.authed(accounts.PermSelfRead, h.beginTOTP))
	m.Handle("POST /api/v1/me/mfa/totp/confirm", h.authed(accounts.PermSelfRead, h.confirmTOTP))
	m.Handle("POST /api/v1/me/mfa/totp/disable", h.authed(accounts.PermSelfRead, h.disableTOTP))
	// The tenant.
	m.Handle("GET /api/v1/tenant", h.authed(accounts.PermSelfRead, h.getTenant))
	m.Handle("PATCH /api/v1/tenant", h.authed(accounts.PermTenantAdmin, h.patchTenant))
	// Users and invitations.
	m.Handle("GET /api/v1/users", h.authed(accounts.PermUsersRead, h.listUsers))
	m.Handle("GET /api/v1/users/{id}", h.authed(accounts.PermUsersRead, h.getUser))
	m.Handle("PATCH /api/v1/users/{id}", h.authed(accounts.PermUsersWrite, h.patchUser))
	m.Handle("DELETE /api/v1/users/{id}", h.authed(accounts.PermUsersWrite, h.deleteUser))
	m.Handle("POST /api/v1/users/{id}/reset-link", h.authed(accounts.PermUsersWrite, h.resetLink))
	m.Handle("POST /api/v1/invitations", h.authed(accounts.PermUsersWrite, h.invite))
	m.Handle("GET /api/v1/invitations", h.authed(accounts.PermUsersRead, h.listInvitations))
	m.Handle("DELETE /api/v1/invitations/{id}", h.authed(accounts.PermUsersWrite, h.revokeInvitation))
	// API tokens.
	m.Handle("POST /api/v1/tokens", h.authed(accounts.PermTokensWrite, h.createToken))
	m.Handle("GET /api/v1/tokens", h.authed(accounts.PermTokensWrite, h.listTokens))
	m.Handle("DELETE /api/v1/tokens/{id}", h.authed(accounts.PermTokensWrite, h.revokeToken))
}

func accTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func apiUser(u accounts.User) api.User {
	return api.User{ID: u.ID, TenantID: u.TenantID, Email: u.Email, Role: string(u.Role), MFAEnabled: u.MFAEnabled, Locked: u.HardLocked, CreatedAt: accTime(u.CreatedAt)}
}

func apiTenant(t accounts.Tenant) api.Tenant {
	return api.Tenant{ID: t.ID, Name: t.Name, RequireMFA: t.RequireMFA, CreatedAt: accTime(t.CreatedAt)}
}

func apiToken(t accounts.APIToken) api.APIToken {
	scopes := make([]string, len(t.Scopes))
	for i, s := range t.Scopes {
		scopes[i] = string(s)
	}
	return api.APIToken{ID: t.ID, Name: t.Name, Scopes: scopes, CreatedBy: t.CreatedBy, CreatedAt: accTime(t.CreatedAt),
		ExpiresAt: accTime(t.ExpiresAt), NeverExpires: t.ExpiresAt.IsZero(), LastUsedAt: accTime(t.LastUsed), Revoked: t.Revoked}
}

// handle decodes a body of type T and runs fn, answering its error.
func handle[T any](h *Handler, fn func(w http.ResponseWriter, r *http.Request, req T) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req, err := decode[T](h, w, r)
		if err == nil {
			err = fn(w, r, req)
		}
		if err != nil {
			h.fail(w, r, err)
		}
	}
}

// noBody runs fn for a route without a body, answering its error.
func (h *Handler) noBody(fn func(w http.ResponseWriter, r *http.Request, p accounts.Principal) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r, principalFrom(r.Context())); err != nil {
			h.fail(w, r, err)
		}
	}
}

func (h *Handler) signup(w http.ResponseWriter, r *http.Request) {
	handle(h, func(w http.ResponseWriter, r *http.Request, req api.SignupRequest) error {
		u, err := h.admin().Signup(r.Context(), req.Email, secrets.Text(req.Password), req.TenantName, source(r))
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusCreated, apiUser(u))
		return nil
	})(w, r)
}

func (h *Handler) acceptInvitation(w http.ResponseWriter, r *http.Request) {
	handle(h, func(w http.ResponseWriter, r *http.Request, req api.AcceptInvitationRequest) error {
		u, err := h.admin().AcceptInvitation(r.Context(), secrets.Text(req.Token), secrets.Text(req.Password), source(r))
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusCreated, apiUser(u))
		return nil
	})(w, r)
}

func (h *Handler) passwordReset(w http.ResponseWriter, r *http.Request) {
	handle(h, func(w http.ResponseWriter, r *http.Request, req api.PasswordResetRequest) error {
		if err := h.admin().ResetPassword(r.Context(), secrets.Text(req.Token), secrets.Text(req.Password), source(r)); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})(w, r)
}

func (h *Handler) logoutAll(w http.ResponseWriter, r *http.Request) {
	h.noBody(func(w http.ResponseWriter, r *http.Request, p accounts.Principal) error {
		if err := h.admin().LogoutAll(r.Context(), p); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})(w, r)
}

func (h *Handler) changePassword(w http.ResponseWriter, r *http.Request) {
	handle(h, func(w http.ResponseWriter, r *http.Request, req api.PasswordChangeRequest) error {
		tok, _ := bearer(r)
		err := h.admin().ChangePassword(r.Context(), principalFrom(r.Context()), tok, secrets.Text(req.CurrentPassword), secrets.Text(req.NewPassword))
		if err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})(w, r)
}

func (h *Handler) beginTOTP(w http.ResponseWriter, r *http.Request) {
	h.noBody(func(w http.ResponseWriter, r *http.Request, p accounts.Principal) error {
		secret, uri, err := h.admin().BeginTOTP(r.Context(), p)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusCreated, api.TOTPEnrolment{Secret: secret.Reveal(), URI: uri.Reveal()})
		return nil
	})(w, r)
}

func (h *Handler) confirmTOTP(w http.ResponseWriter, r *http.Request) {
	handle(h, func(w http.ResponseWriter, r *http.Request, req api.TOTPConfirmRequest) error {
		codes, tok, sess, err := h.admin().ConfirmTOTP(r.Context(), principalFrom(r.Context()), req.Code)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, api.TOTPConfirmResponse{RecoveryCodes: codes, Token: tok.Reveal(), ExpiresAt: accTime(sess.ExpiresAt)})
		return nil
	})(w, r)
}

func (h *Handler) disableTOTP(w http.ResponseWriter, r *http.Request) {
	handle(h, func(w http.ResponseWriter, r *http.Request, req api.PasswordRequest) error {
		if err := h.admin().DisableTOTP(r.Context(), principalFrom(r.Context()), secrets.Text(req.Password)); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})(w, r)
}

func (h *Handler) getTenant(w http.ResponseWriter, r *http.Request) {
	h.noBody(func(w http.ResponseWriter, r *http.Request, p accounts.Principal) error {
		t, err := h.admin().TenantOf(r.Context(), p)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, apiTenant(t))
		return nil
	})(w, r)
}

func (h *Handler) patchTenant(w http.ResponseWriter, r *http.Request) {
	handle(h, func(w http.ResponseWriter, r *http.Request, req api.TenantRequest) error {
		if req.RequireMFA == nil {
			return api.Errorf(api.CodeInvalid, "nothing to change; send {\"require_mfa\": true} or false")
		}
		t, err := h.admin().SetRequireMFA(r.Context(), principalFrom(r.Context()), *req.RequireMFA)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, apiTenant(t))
		return nil
	})(w, r)
}

func (h *Handler) listUsers(w http.ResponseWriter, r *http.Request) {
	h.noBody(func(w http.ResponseWriter, r *http.Request, p accounts.Principal) error {
		us, err := h.admin().ListUsers(r.Context(), p)
		if err != nil {
			return err
		}
		out := api.UserList{Users: []api.User{}}
		for _, u := range us {
			out.Users = append(out.Users, apiUser(u))
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	})(w, r)
}

func (h *Handler) getUser(w http.ResponseWriter, r *http.Request) {
	h.noBody(func(w http.ResponseWriter, r *http.Request, p accounts.Principal) error {
		u, err := h.admin().GetUser(r.Context(), p, r.PathValue("id"))
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, apiUser(u))
		return nil
	})(w, r)
}

func (h *Handler) patchUser(w http.ResponseWriter, r *http.Request) {
	handle(h, func(w http.ResponseWriter, r *http.Request, req api.RoleRequest) error {
		u, err := h.admin().SetRole(r.Context(), principalFrom(r.Context()), r.PathValue("id"), accounts.Role(req.Role))
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, apiUser(u))
		return nil
	})(w, r)
}

func (h *Handler) deleteUser(w http.ResponseWriter, r *http.Request) {
	h.noBody(func(w http.ResponseWriter, r *http.Request, p accounts.Principal) error {
		if err := h.admin().DeleteUser(r.Context(), p, r.PathValue("id")); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})(w, r)
}

func (h *Handler) resetLink(w http.ResponseWriter, r *http.Request) {
	h.noBody(func(w http.ResponseWriter, r *http.Request, p accounts.Principal) error {
		tok, exp, err := h.admin().IssueReset(r.Context(), p, r.PathValue("id"))
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusCreated, api.ResetLink{Token: tok.Reveal(), ExpiresAt: accTime(exp)})
		return nil
	})(w, r)
}

func (h *Handler) invite(w http.ResponseWriter, r *http.Request) {
	handle(h, func(w http.ResponseWriter, r *http.Request, req api.InviteRequest) error {
		inv, tok, err := h.admin().Invite(r.Context(), principalFrom(r.Context()), req.Email, accounts.Role(req.Role))
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusCreated, api.Invitation{ID: inv.ID, Email: inv.Email, Role: string(inv.Role), ExpiresAt: accTime(inv.ExpiresAt), Token: tok.Reveal()})
		return nil
	})(w, r)
}

func (h *Handler) listInvitations(w http.ResponseWriter, r *http.Request) {
	h.noBody(func(w http.ResponseWriter, r *http.Request, p accounts.Principal) error {
		invs, err := h.admin().ListInvitations(r.Context(), p)
		if err != nil {
			return err
		}
		out := api.InvitationList{Invitations: []api.Invitation{}}
		for _, inv := range invs {
			out.Invitations = append(out.Invitations, api.Invitation{ID: inv.ID, Email: inv.Email, Role: string(inv.Role), ExpiresAt: accTime(inv.ExpiresAt)})
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	})(w, r)
}

func (h *Handler) revokeInvitation(w http.ResponseWriter, r *http.Request) {
	h.noBody(func(w http.ResponseWriter, r *http.Request, p accounts.Principal) error {
		if err := h.admin().RevokeInvitation(r.Context(), p, r.PathValue("id")); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})(w, r)
}

func (h *Handler) createToken(w http.ResponseWriter, r *http.Request) {
	handle(h, func(w http.ResponseWriter, r *http.Request, req api.TokenRequest) error {
		tr := accounts.TokenRequest{Name: req.Name, Scopes: req.Scopes, NeverExpires: req.NeverExpires}
		if req.ExpiresIn != "" {
			d, err := time.ParseDuration(req.ExpiresIn)
			if err != nil || d <= 0 {
				return api.Errorf(api.CodeInvalid, "expires_in must be a duration like 720h")
			}
			tr.TTL = d
		}
		t, tok, err := h.admin().CreateAPIToken(r.Context(), principalFrom(r.Context()), tr)
		if err != nil {
			return err
		}
		out := apiToken(t)
		out.Token = tok.Reveal()
		writeJSON(w, http.StatusCreated, out)
		return nil
	})(w, r)
}

func (h *Handler) listTokens(w http.ResponseWriter, r *http.Request) {
	h.noBody(func(w http.ResponseWriter, r *http.Request, p accounts.Principal) error {
		ts, err := h.admin().ListAPITokens(r.Context(), p)
		if err != nil {
			return err
		}
		out := api.APITokenList{Tokens: []api.APIToken{}}
		for _, t := range ts {
			out.Tokens = append(out.Tokens, apiToken(t))
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	})(w, r)
}

func (h *Handler) revokeToken(w http.ResponseWriter, r *http.Request) {
	h.noBody(func(w http.ResponseWriter, r *http.Request, p accounts.Principal) error {
		if err := h.admin().RevokeAPIToken(r.Context(), p, r.PathValue("id")); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})(w, r)
}
