package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/accounts"
	"github.com/rampart-iot/rampart/internal/secrets"
)

// recordingAccounts counts the calls that get past decoding.
type recordingAccounts struct{ setups, logins int }

func (r *recordingAccounts) Setup(ctx context.Context, code secrets.Text, email string, pw secrets.Text) (accounts.User, error) {
	r.setups++
	return accounts.User{}, api.Errorf(api.CodeUnauthenticated, "wrong setup code")
}

func (r *recordingAccounts) Login(ctx context.Context, email string, pw secrets.Text, src string) (secrets.Text, accounts.Session, error) {
	r.logins++
	return "", accounts.Session{}, api.Errorf(api.CodeUnauthenticated, "wrong email or password")
}

func (r *recordingAccounts) Authenticate(ctx context.Context, tok secrets.Text) (accounts.Principal, error) {
	return accounts.Principal{}, api.Errorf(api.CodeUnauthenticated, "no")
}

func (r *recordingAccounts) Logout(ctx context.Context, p accounts.Principal, tok secrets.Text) error {
	return nil
}

func (r *recordingAccounts) IsOperator(context.Context, accounts.Principal) bool { return false }

// FuzzDecodeBodies feeds arbitrary bodies to the two public routes: the
// handler never panics or answers 5xx, every refusal is the error JSON, and
// only a body that decodes cleanly reaches the accounts service.
func FuzzDecodeBodies(f *testing.F) {
	for _, s := range []string{
		`{"setup_code":"A","email":"a@b.c","password":"x"}`, `{"email":"a@b.c","password":"x","totp":"1"}`,
		`{`, `[]`, `null`, `{"a":1}`, `{"email":1}`, `{} {}`, "\x00", `{"email":"\ud800"}`, ``,
	} {
		f.Add([]byte(s), true)
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, body []byte, setup bool) {
		acc := &recordingAccounts{}
		h := New(Options{Accounts: acc, MaxBodyBytes: 4096})
		path := "/api/v1/login"
		if setup {
			path = "/api/v1/setup"
		}
		req := httptest.NewRequest("POST", path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for body %q", rec.Code, body)
		}
		var e api.ErrorBody
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Code == "" {
			t.Fatalf("refusal is not the error JSON: %q", rec.Body.String())
		}
		reached := acc.setups + acc.logins
		var probe map[string]json.RawMessage
		dec := json.NewDecoder(bytes.NewReader(body))
		decodes := dec.Decode(&probe) == nil && !dec.More() && probe != nil
		if reached == 1 && !decodes {
			t.Fatalf("a body that is not one JSON object reached the service: %q", body)
		}
		if reached == 0 && rec.Code != http.StatusBadRequest && rec.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("refused with %d, want 400 or 413: %q", rec.Code, body)
		}
	})
}

func TestUnknownRouteWithoutTokenIsUnauthenticated(t *testing.T) {
	h := New(Options{Accounts: &recordingAccounts{}})
	for _, path := range []string{"/", "/api/v1/", "/api/v1/devices", "/metrics", "/../etc/passwd"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != http.StatusUnauthorized {
			t.Errorf("GET %s: %d, want 401", path, rec.Code)
		}
	}
}
