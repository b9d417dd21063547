package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/accounts"
	"github.com/rampart-iot/rampart/internal/secrets"
)

// fakeAdmin is an accounts service that authenticates "good" as an owner
// and counts the calls that get past decoding.
type fakeAdmin struct {
	recordingAccounts
	calls int
}

var errNope = api.Errorf(api.CodeInvalid, "refused by the fake")

func (f *fakeAdmin) Authenticate(ctx context.Context, tok secrets.Text) (accounts.Principal, error) {
	if tok.Reveal() == "good" {
		return accounts.Principal{UserID: "usr_a", TenantID: "tnt_a", Role: accounts.RoleOwner}, nil
	}
	return accounts.Principal{}, api.Errorf(api.CodeUnauthenticated, "no")
}
func (f *fakeAdmin) LoginMFA(context.Context, string, secrets.Text, string, string) (secrets.Text, accounts.Session, error) {
	f.calls++
	return "", accounts.Session{}, errNope
}
func (f *fakeAdmin) LogoutAll(context.Context, accounts.Principal) error { f.calls++; return errNope }
func (f *fakeAdmin) Signup(context.Context, string, secrets.Text, string, string) (accounts.User, error) {
	f.calls++
	return accounts.User{}, errNope
}
func (f *fakeAdmin) TenantOf(context.Context, accounts.Principal) (accounts.Tenant, error) {
	f.calls++
	return accounts.Tenant{}, errNope
}
func (f *fakeAdmin) SetRequireMFA(context.Context, accounts.Principal, bool) (accounts.Tenant, error) {
	f.calls++
	return accounts.Tenant{}, errNope
}
func (f *fakeAdmin) ListUsers(context.Context, accounts.Principal) ([]accounts.User, error) {
	f.calls++
	return nil, errNope
}
func (f *fakeAdmin) GetUser(context.Context, accounts.Principal, string) (accounts.User, error) {
	f.calls++
	return accounts.User{}, errNope
}
func (f *fakeAdmin) SetRole(context.Context, accounts.Principal, string, accounts.Role) (accounts.User, error) {
	f.calls++
	return accounts.User{}, errNope
}
func (f *fakeAdmin) DeleteUser(context.Context, accounts.Principal, string) error {
	f.calls++
	return errNope
}
func (f *fakeAdmin) Invite(context.Context, accounts.Principal, string, accounts.Role) (accounts.Invitation, secrets.Text, error) {
	f.calls++
	return accounts.Invitation{}, "", errNope
}
func (f *fakeAdmin) ListInvitations(context.Context, accounts.Principal) ([]accounts.Invitation, error) {
	f.calls++
	return nil, errNope
}
func (f *fakeAdmin) RevokeInvitation(context.Context, accounts.Principal, string) error {
	f.calls++
	return errNope
}
func (f *fakeAdmin) AcceptInvitation(context.Context, secrets.Text, secrets.Text, string) (accounts.User, error) {
	f.calls++
	return accounts.User{}, errNope
}
func (f *fakeAdmin) IssueReset(context.Context, accounts.Principal, string) (secrets.Text, time.Time, error) {
	f.calls++
	return "", time.Time{}, errNope
}
func (f *fakeAdmin) ResetPassword(context.Context, secrets.Text, secrets.Text, string) error {
	f.calls++
	return errNope
}
func (f *fakeAdmin) ChangePassword(context.Context, accounts.Principal, secrets.Text, secrets.Text, secrets.Text) error {
	f.calls++
	return errNope
}
func (f *fakeAdmin) BeginTOTP(context.Context, accounts.Principal) (secrets.Text, secrets.Text, error) {
	f.calls++
	return "", "", errNope
}
func (f *fakeAdmin) ConfirmTOTP(context.Context, accounts.Principal, string) ([]string, secrets.Text, accounts.Session, error) {
	f.calls++
	return nil, "", accounts.Session{}, errNope
}
func (f *fakeAdmin) DisableTOTP(context.Context, accounts.Principal, secrets.Text) error {
	f.calls++
	return errNope
}
func (f *fakeAdmin) CreateAPIToken(context.Context, accounts.Principal, accounts.TokenRequest) (accounts.APIToken, secrets.Text, error) {
	f.calls++
	return accounts.APIToken{}, "", errNope
}
func (f *fakeAdmin) ListAPITokens(context.Context, accounts.Principal) ([]accounts.APIToken, error) {
	f.calls++
	return nil, errNope
}
func (f *fakeAdmin) RevokeAPIToken(context.Context, accounts.Principal, string) error {
	f.calls++
	return errNope
}

// bodyRoutes are the account routes that take a JSON body.
func bodyRoutes(t testing.TB) []string {
	h := New(Options{Accounts: &fakeAdmin{}})
	var out []string
	for _, r := range h.Routes() {
		if (strings.HasPrefix(r, "POST ") || strings.HasPrefix(r, "PATCH ")) && !strings.Contains(r, "logout") &&
			r != "POST /api/v1/me/mfa/totp" && r != "POST /api/v1/users/{id}/reset-link" {
			out = append(out, r)
		}
	}
	if len(out) < 10 {
		t.Fatalf("only %d body routes: %v", len(out), out)
	}
	return out
}

// FuzzAccountBodies feeds arbitrary bodies to every account route that
// takes one (as an authenticated owner): never a panic or a 5xx, every
// refusal is the error JSON, and only a body that is one clean JSON object
// reaches the accounts service.
func FuzzAccountBodies(f *testing.F) {
	routes := bodyRoutes(f)
	for _, s := range []string{
		`{"email":"a@b.c","password":"x","tenant_name":"t"}`, `{"token":"rpi_x","password":"y"}`, `{"role":"owner"}`,
		`{"require_mfa":true}`, `{"require_mfa":null}`, `{"name":"n","scopes":["devices:read"],"expires_in":"1h"}`,
		`{"scopes":"devices:read"}`, `{"expires_in":"-1h","name":"x","scopes":[]}`, `{"code":123456}`,
		`{"current_password":"a","new_password":"b"}`, `{`, `[]`, `null`, `{"a":1}`, `{} {}`, "\x00", ``,
	} {
		for i := range routes {
			f.Add([]byte(s), uint8(i))
		}
	}
	f.Fuzz(func(t *testing.T, body []byte, which uint8) {
		route := routes[int(which)%len(routes)]
		method, path, _ := strings.Cut(route, " ")
		path = strings.ReplaceAll(path, "{id}", "usr_x")
		acc := &fakeAdmin{}
		h := New(Options{Accounts: acc, MaxBodyBytes: 4096})
		req := httptest.NewRequest(method, path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer good")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s: status %d for body %q", route, rec.Code, body)
		}
		var e api.ErrorBody
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Code == "" {
			t.Fatalf("%s: refusal is not the error JSON: %q", route, rec.Body.String())
		}
		var probe map[string]json.RawMessage
		dec := json.NewDecoder(bytes.NewReader(body))
		decodes := dec.Decode(&probe) == nil && !dec.More() && probe != nil
		if acc.calls+acc.logins+acc.setups > 0 && !decodes {
			t.Fatalf("%s: a body that is not one JSON object reached the service: %q", route, body)
		}
		if acc.calls+acc.logins+acc.setups == 0 && rec.Code != http.StatusBadRequest && rec.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("%s: refused with %d, want 400 or 413: %q", route, rec.Code, body)
		}
	})
}

func TestRouteTableListsAccountRoutes(t *testing.T) {
	h := New(Options{Accounts: &fakeAdmin{}})
	routes := strings.Join(h.Routes(), "\n")
	for _, want := range []string{"POST /api/v1/tokens", "DELETE /api/v1/users/{id}", "POST /api/v1/invitations/accept", "GET /api/v1/me"} {
		if !strings.Contains(routes, want) {
			t.Errorf("route table lacks %s:\n%s", want, routes)
		}
	}
	for _, r := range h.Routes() {
		method, path, _ := strings.Cut(r, " ")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, strings.ReplaceAll(path, "{id}", "x"), nil))
		if !IsPublic(r) && rec.Code != http.StatusUnauthorized {
			t.Errorf("%s without a token: %d, want 401", r, rec.Code)
		}
	}
}
