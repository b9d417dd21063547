package app

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/accounts"
)

// TestNoUserEnumeration: an unknown email and a wrong password get the same
// status and body, and (statistically) the same time: the unknown user
// costs one hash too. The hash is made moderately expensive so that it,
// not the database, dominates, as it does at the default parameters.
func TestNoUserEnumeration(t *testing.T) {
	h := startAccountsHub(t, nil, WithHashParams(accounts.HashParams{Time: 1, Memory: 8 * 1024, Threads: 1}))
	h.setupAndLogin()
	const tries = 25
	var known, unknown []time.Duration
	var kBody, uBody []byte
	for i := 0; i < tries; i++ {
		// Move the clock past any throttle so every try reaches the hash.
		h.clock.Advance(2 * time.Hour)
		start := time.Now()
		k := h.do("POST", "/api/v1/login", "", api.LoginRequest{Email: ownerEmail, Password: "definitely not it " + strconv.Itoa(i)})
		known = append(known, time.Since(start))
		start = time.Now()
		u := h.do("POST", "/api/v1/login", "", api.LoginRequest{Email: fmt.Sprintf("nobody%d@example.com", i), Password: "definitely not it " + strconv.Itoa(i)})
		unknown = append(unknown, time.Since(start))
		if k.status != 401 || u.status != 401 {
			t.Fatalf("try %d: known %d %s, unknown %d %s; want 401 both", i, k.status, k.body, u.status, u.body)
		}
		if i > 0 && (!bytes.Equal(k.body, kBody) || !bytes.Equal(u.body, uBody)) {
			t.Fatal("answers vary between tries")
		}
		kBody, uBody = k.body, u.body
	}
	if !bytes.Equal(kBody, uBody) {
		t.Fatalf("wrong password answers %s, unknown user %s", kBody, uBody)
	}
	med := func(d []time.Duration) time.Duration { s := slices.Clone(d); slices.Sort(s); return s[len(s)/2] }
	mk, mu := med(known), med(unknown)
	t.Logf("median login time: wrong password %v, unknown user %v (ratio %.2f)", mk, mu, float64(mk)/float64(mu))
	if ratio := float64(mk) / float64(mu); ratio > 2.5 || ratio < 0.4 {
		t.Fatalf("median time for a wrong password %v vs an unknown user %v: ratio %.2f tells them apart", mk, mu, ratio)
	}
}

// TestBruteForceThrottledPerSourceButOwnerLogsInElsewhere: failures from
// one address lead to 429 + Retry-After with growing delays (even for the
// right password from that address), the lock is journaled, and the
// owner still logs in from another address.
func TestBruteForceThrottledPerSourceButOwnerLogsInElsewhere(t *testing.T) {
	h := startAccountsHub(t, nil)
	h.setupAndLogin()
	attacker := h.from("127.0.0.1")
	var got []int
	for i := 0; i < 8; i++ {
		r := attacker.do("POST", "/api/v1/login", "", api.LoginRequest{Email: ownerEmail, Password: "guess number " + strconv.Itoa(i)})
		got = append(got, r.status)
		if r.status == 429 {
			ra, err := strconv.Atoi(r.header.Get("Retry-After"))
			if err != nil || ra < 1 || r.errCode() != api.CodeRateLimited {
				t.Fatalf("429 without a usable Retry-After (%q) or code: %s", r.header.Get("Retry-After"), r.body)
			}
		}
	}
	if want := []int{401, 401, 401, 401, 401, 401, 429, 429}; !slices.Equal(got, want) {
		t.Fatalf("statuses %v, want %v (5 free failures, the 6th locks)", got, want)
	}
	if r := attacker.do("POST", "/api/v1/login", "", api.LoginRequest{Email: ownerEmail, Password: ownerPassword}); r.status != 429 {
		t.Fatalf("the right password from the throttled address: %d; want 429 (no oracle while locked)", r.status)
	}
	owner := h.from("127.0.0.2")
	if r := owner.do("POST", "/api/v1/login", "", api.LoginRequest{Email: ownerEmail, Password: ownerPassword}); r.status != 200 {
		t.Fatalf("owner from another address: %d %s; want 200", r.status, r.body)
	}
	// Delays grow: after the lock passes, one more failure locks longer.
	h.clock.Advance(2 * time.Second)
	attacker.do("POST", "/api/v1/login", "", api.LoginRequest{Email: ownerEmail, Password: "guess again"})
	r := attacker.do("POST", "/api/v1/login", "", api.LoginRequest{Email: ownerEmail, Password: "guess again"})
	if ra, _ := strconv.Atoi(r.header.Get("Retry-After")); r.status != 429 || ra < 2 {
		t.Fatalf("after the first lock: %d Retry-After %q; want a longer lock", r.status, r.header.Get("Retry-After"))
	}
	// Per source across accounts: spraying many emails from one address.
	sprayer := h.from("127.0.0.3")
	var last reply
	for i := 0; i < 25; i++ {
		last = sprayer.do("POST", "/api/v1/login", "", api.LoginRequest{Email: fmt.Sprintf("user%d@example.com", i), Password: "Summer2026!Summer"})
	}
	if last.status != 429 {
		t.Fatalf("password spraying from one address: last status %d; want 429", last.status)
	}
	events := journalActions(t, h)
	if !strings.Contains(events, "auth.throttled/success") || !strings.Contains(events, "auth.login/denied") {
		t.Fatalf("throttling not journaled: %s", events)
	}
}

// TestHardLockAfter100ConsecutiveFailures: the 100th consecutive failure
// locks the account (journaled); even the right password from a new
// address then gets the generic refusal; an admin's reset link unlocks.
func TestHardLockAfter100ConsecutiveFailures(t *testing.T) {
	h := startAccountsHub(t, nil)
	owner := h.setupAndLogin()
	h.addUser(owner, "op@example.com", "operator", "granite meadow tulip harbour")
	for i := 0; i < 100; i++ {
		h.clock.Advance(2 * time.Hour) // past every throttle: only the count matters
		if r := h.do("POST", "/api/v1/login", "", api.LoginRequest{Email: "op@example.com", Password: "wrong " + strconv.Itoa(i) + " password"}); r.status != 401 {
			t.Fatalf("failure %d: %d %s", i+1, r.status, r.body)
		}
	}
	h.clock.Advance(2 * time.Hour)
	owner = h.login(ownerEmail, ownerPassword)
	r := h.from("127.0.0.9").do("POST", "/api/v1/login", "", api.LoginRequest{Email: "op@example.com", Password: "granite meadow tulip harbour"})
	wrong := h.from("127.0.0.10").do("POST", "/api/v1/login", "", api.LoginRequest{Email: "nobody@example.com", Password: "granite meadow tulip harbour"})
	if r.status != 401 || !bytes.Equal(r.body, wrong.body) {
		t.Fatalf("locked account with the right password: %d %s; want the generic 401 %s", r.status, r.body, wrong.body)
	}
	users := decodeInto[api.UserList](t, h.do("GET", "/api/v1/users", owner, nil), 200)
	var op api.User
	for _, u := range users.Users {
		if u.Email == "op@example.com" {
			op = u
		}
	}
	if !op.Locked {
		t.Fatalf("user list does not show the lock: %+v", op)
	}
	link := decodeInto[api.ResetLink](t, h.do("POST", "/api/v1/users/"+op.ID+"/reset-link", owner, nil), 201)
	if r := h.do("POST", "/api/v1/password-reset", "", api.PasswordResetRequest{Token: link.Token, Password: "brand new harbour lights"}); r.status != 204 {
		t.Fatalf("reset: %d %s", r.status, r.body)
	}
	h.login("op@example.com", "brand new harbour lights")
	if ev := journalActions(t, h); !strings.Contains(ev, "auth.account_locked/success") || !strings.Contains(ev, "user.password_reset/success") {
		t.Fatalf("lock or reset not journaled: %s", ev)
	}
}

// TestTOTPEnrolmentReplayAndRecoveryCodes: enrolment gives a new token and
// ends the old one; a code is never accepted twice (not even the one used
// to confirm); ±1 step works; recovery codes work once.
func TestTOTPEnrolmentReplayAndRecoveryCodes(t *testing.T) {
	h := startAccountsHub(t, nil)
	old := h.setupAndLogin()
	enr := decodeInto[api.TOTPEnrolment](t, h.do("POST", "/api/v1/me/mfa/totp", old, nil), 201)
	if !strings.HasPrefix(enr.URI, "otpauth://totp/") || len(enr.Secret) < 32 {
		t.Fatalf("enrolment %+v", enr)
	}
	if r := h.do("POST", "/api/v1/me/mfa/totp/confirm", old, api.TOTPConfirmRequest{Code: "000000"}); r.status != 400 {
		t.Fatalf("confirm with a wrong code: %d", r.status)
	}
	code := totpNow(t, enr.Secret, h.clock.Now())
	conf := decodeInto[api.TOTPConfirmResponse](t, h.do("POST", "/api/v1/me/mfa/totp/confirm", old, api.TOTPConfirmRequest{Code: code}), 200)
	if len(conf.RecoveryCodes) != 10 || conf.Token == "" || conf.Token == old {
		t.Fatalf("confirm: %+v", conf)
	}
	if r := h.do("GET", "/api/v1/me", old, nil); r.status != 401 {
		t.Fatalf("the pre-MFA session survives enrolment: %d", r.status)
	}
	if r := h.do("GET", "/api/v1/me", conf.Token, nil); r.status != 200 {
		t.Fatalf("the new token: %d", r.status)
	}
	login := func(otp string) reply {
		return h.do("POST", "/api/v1/login", "", api.LoginRequest{Email: ownerEmail, Password: ownerPassword, TOTP: otp})
	}
	if r := login(""); r.status != 401 || r.errCode() != accounts.CodeMFARequired {
		t.Fatalf("login without a code: %d %s; want 401 mfa_required", r.status, r.body)
	}
	if r := login(code); r.status != 401 {
		t.Fatalf("replay of the code used to confirm: %d; want 401", r.status)
	}
	h.clock.Advance(30 * time.Second)
	next := totpNow(t, enr.Secret, h.clock.Now())
	if r := login(next); r.status != 200 {
		t.Fatalf("fresh code: %d %s", r.status, r.body)
	}
	if r := h.from("127.0.0.2").do("POST", "/api/v1/login", "", api.LoginRequest{Email: ownerEmail, Password: ownerPassword, TOTP: next}); r.status != 401 {
		t.Fatalf("replay of a used code from another address: %d; want 401", r.status)
	}
	// A code one step ahead (clock drift) is accepted once.
	ahead := totpNow(t, enr.Secret, h.clock.Now().Add(30*time.Second))
	if r := login(ahead); r.status != 200 {
		t.Fatalf("code one step ahead: %d %s", r.status, r.body)
	}
	if r := login(conf.RecoveryCodes[0]); r.status != 200 {
		t.Fatalf("recovery code: %d %s", r.status, r.body)
	}
	if r := login(conf.RecoveryCodes[0]); r.status != 401 {
		t.Fatalf("recovery code reused: %d; want 401", r.status)
	}
	if ev := journalActions(t, h); !strings.Contains(ev, "mfa.totp_enabled/success") || !strings.Contains(ev, "mfa.recovery_code_used/success") {
		t.Fatalf("MFA events not journaled: %s", ev)
	}
}

// TestTenantRequiresMFA: once the owner requires MFA, a user without it may
// only reach their own account until they enrol.
func TestTenantRequiresMFA(t *testing.T) {
	h := startAccountsHub(t, nil)
	owner := h.setupAndLogin()
	h.addUser(owner, "adm@example.com", "admin", "granite meadow tulip harbour")
	admin := h.login("adm@example.com", "granite meadow tulip harbour")
	if r := h.do("PATCH", "/api/v1/tenant", admin, map[string]bool{"require_mfa": true}); r.status != 403 {
		t.Fatalf("an admin changed the tenant's MFA rule: %d; only owners may", r.status)
	}
	if r := h.do("PATCH", "/api/v1/tenant", owner, map[string]bool{"require_mfa": true}); r.status != 200 {
		t.Fatalf("require MFA: %d %s", r.status, r.body)
	}
	if r := h.do("GET", "/api/v1/users", admin, nil); r.status != 403 || !strings.Contains(string(r.body), "second factor") {
		t.Fatalf("admin without MFA: %d %s; want 403 asking for a second factor", r.status, r.body)
	}
	if r := h.do("GET", "/api/v1/me", admin, nil); r.status != 200 {
		t.Fatalf("own account without MFA: %d", r.status)
	}
	enr := decodeInto[api.TOTPEnrolment](t, h.do("POST", "/api/v1/me/mfa/totp", admin, nil), 201)
	conf := decodeInto[api.TOTPConfirmResponse](t, h.do("POST", "/api/v1/me/mfa/totp/confirm", admin, api.TOTPConfirmRequest{Code: totpNow(t, enr.Secret, h.clock.Now())}), 200)
	if r := h.do("GET", "/api/v1/users", conf.Token, nil); r.status != 200 {
		t.Fatalf("admin after enrolling: %d %s", r.status, r.body)
	}
	if r := h.do("POST", "/api/v1/me/mfa/totp/disable", conf.Token, api.PasswordRequest{Password: "granite meadow tulip harbour"}); r.status != 409 {
		t.Fatalf("turning MFA off while the tenant requires it: %d; want 409", r.status)
	}
}

// TestPasswordPolicyThroughTheAPI: blocklisted, short and context-built
// passwords are refused on every path that sets one; 8 characters are
// enough only with a second factor.
func TestPasswordPolicyThroughTheAPI(t *testing.T) {
	h := startAccountsHub(t, nil)
	owner := h.setupAndLogin()
	for _, tc := range []struct{ name, email, tenant, pw string }{
		{"fail/blocklisted", "a1@acme.example", "Acme Widgets", "1234567887654321"},
		{"fail/blocklisted after NFKC", "a2@acme.example", "Acme Widgets", "ｍａｉｌｃｒｅａｔｅｄ５２４０"},
		{"fail/email local part", "jonathan.smith@acme.example", "Acme Widgets", "jonathan.smith2026"},
		{"fail/tenant name", "a3@acme.example", "Acme Widgets", "acme widgets 2026!"},
		{"fail/service name", "a4@acme.example", "Acme Widgets", "rampart-rampart1"},
		{"fail/14 characters", "a5@acme.example", "Acme Widgets", "qz7!vk2#mw9$pl"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do("POST", "/api/v1/signup", "", api.SignupRequest{Email: tc.email, Password: tc.pw, TenantName: tc.tenant})
			if r.status != 400 || r.errCode() != api.CodeInvalid || strings.Contains(string(r.body), tc.pw) {
				t.Fatalf("signup: %d %s; want 400 without the password echoed", r.status, r.body)
			}
			if tc.name == "fail/tenant name" {
				return // the invitation's tenant is "default", not this name
			}
			inv := decodeInto[api.Invitation](t, h.do("POST", "/api/v1/invitations", owner, api.InviteRequest{Email: tc.email, Role: "viewer"}), 201)
			if r := h.do("POST", "/api/v1/invitations/accept", "", api.AcceptInvitationRequest{Token: inv.Token, Password: tc.pw}); r.status != 400 {
				t.Fatalf("accept: %d %s", r.status, r.body)
			}
		})
	}
	if r := h.do("POST", "/api/v1/me/password", owner, api.PasswordChangeRequest{CurrentPassword: ownerPassword, NewPassword: "qz7!vk2#"}); r.status != 400 {
		t.Fatalf("8 characters without MFA: %d", r.status)
	}
	enr := decodeInto[api.TOTPEnrolment](t, h.do("POST", "/api/v1/me/mfa/totp", owner, nil), 201)
	owner = decodeInto[api.TOTPConfirmResponse](t, h.do("POST", "/api/v1/me/mfa/totp/confirm", owner, api.TOTPConfirmRequest{Code: totpNow(t, enr.Secret, h.clock.Now())}), 200).Token
	if r := h.do("POST", "/api/v1/me/password", owner, api.PasswordChangeRequest{CurrentPassword: ownerPassword, NewPassword: "qz7!vk2#"}); r.status != 204 {
		t.Fatalf("8 characters with MFA: %d %s", r.status, r.body)
	}
	if r := h.do("POST", "/api/v1/me/mfa/totp/disable", owner, api.PasswordRequest{Password: "qz7!vk2#"}); r.status != 409 {
		t.Fatalf("turning MFA off with an 8-character password: %d; want 409", r.status)
	}
}

// TestAPITokens: shown once, stored hashed, scoped, expiring, revocable,
// listed with last use, bounded by the creator's current role.
func TestAPITokens(t *testing.T) {
	h := startAccountsHub(t, nil)
	owner := h.setupAndLogin()
	h.addUser(owner, "adm@example.com", "admin", "granite meadow tulip harbour")
	admin := h.login("adm@example.com", "granite meadow tulip harbour")
	metrics := h.newToken(admin, api.TokenRequest{Name: "prometheus", Scopes: []string{"metrics:read"}, ExpiresIn: "1h"})
	devices := h.newToken(admin, api.TokenRequest{Name: "fleet", Scopes: []string{"devices:read"}})
	forever := h.newToken(owner, api.TokenRequest{Name: "legacy", Scopes: []string{"devices:read"}, NeverExpires: true})
	if !strings.HasPrefix(metrics.Token, "rpt_") || len(metrics.Token) < 40 {
		t.Fatalf("token %q is not a 256-bit rpt_ token", metrics.Token)
	}
	for _, tc := range []struct {
		name, tok, method, path string
		want                    int
	}{
		{"ok/scope", metrics.Token, "GET", "/metrics", 200},
		{"fail/scope missing", devices.Token, "GET", "/metrics", 403},
		{"fail/account routes are never delegated", metrics.Token, "GET", "/api/v1/me", 403},
		{"fail/tokens cannot make tokens", metrics.Token, "GET", "/api/v1/tokens", 403},
		{"fail/users", devices.Token, "GET", "/api/v1/users", 403},
	} {
		if r := h.do(tc.method, tc.path, tc.tok, nil); r.status != tc.want {
			t.Errorf("%s: %s %s: %d %s; want %d", tc.name, tc.method, tc.path, r.status, r.body, tc.want)
		}
	}
	for _, bad := range []api.TokenRequest{
		{Name: "x", Scopes: []string{"users:write"}},
		{Name: "x", Scopes: []string{}},
		{Name: "x", Scopes: []string{"metrics:read"}, ExpiresIn: "10000h"},
		{Name: "x", Scopes: []string{"metrics:read"}, ExpiresIn: "1h", NeverExpires: true},
		{Name: "", Scopes: []string{"metrics:read"}},
	} {
		if r := h.do("POST", "/api/v1/tokens", owner, bad); r.status != 400 {
			t.Errorf("token request %+v: %d %s; want 400", bad, r.status, r.body)
		}
	}
	list := decodeInto[api.APITokenList](t, h.do("GET", "/api/v1/tokens", owner, nil), 200)
	if len(list.Tokens) != 3 {
		t.Fatalf("list: %+v", list)
	}
	for _, tk := range list.Tokens {
		if tk.Token != "" {
			t.Fatal("the list shows a token's secret")
		}
		switch tk.ID {
		case metrics.ID:
			if tk.LastUsedAt == "" {
				t.Errorf("metrics token used but no last use listed: %+v", tk)
			}
		case forever.ID:
			if !tk.NeverExpires || tk.ExpiresAt != "" {
				t.Errorf("never-expiring token not flagged: %+v", tk)
			}
		}
	}
	// Demoting the creator narrows the token.
	if r := h.do("PATCH", "/api/v1/users/"+userID(t, h, owner, "adm@example.com"), owner, api.RoleRequest{Role: "operator"}); r.status != 200 {
		t.Fatalf("demote: %d %s", r.status, r.body)
	}
	if r := h.do("GET", "/metrics", metrics.Token, nil); r.status != 403 {
		t.Fatalf("token of a demoted creator still reads metrics: %d", r.status)
	}
	if r := h.do("GET", "/api/v1/me", admin, nil); r.status != 401 {
		t.Fatalf("session survives a role change: %d; want 401 (log in again for a new token)", r.status)
	}
	// Revoked and expired.
	if r := h.do("DELETE", "/api/v1/tokens/"+forever.ID, owner, nil); r.status != 204 {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	if r := h.do("GET", "/api/v1/tenant", forever.Token, nil); r.status != 401 {
		t.Fatalf("revoked token: %d; want 401", r.status)
	}
	fresh := h.newToken(owner, api.TokenRequest{Name: "short", Scopes: []string{"metrics:read"}, ExpiresIn: "2m"})
	if r := h.do("GET", "/metrics", fresh.Token, nil); r.status != 200 {
		t.Fatalf("fresh token: %d", r.status)
	}
	h.clock.Advance(3 * time.Minute)
	if r := h.do("GET", "/metrics", fresh.Token, nil); r.status != 401 {
		t.Fatalf("expired token: %d; want 401", r.status)
	}
	ev := journalActions(t, h)
	for _, want := range []string{"token.created/success", "token.revoked/success", "user.role_changed/success"} {
		if !strings.Contains(ev, want) {
			t.Errorf("journal lacks %s", want)
		}
	}
}

func userID(t *testing.T, h *acctHub, tok, email string) string {
	t.Helper()
	for _, u := range decodeInto[api.UserList](t, h.do("GET", "/api/v1/users", tok, nil), 200).Users {
		if u.Email == email {
			return u.ID
		}
	}
	t.Fatalf("no user %s", email)
	return ""
}

// TestInvitationsAndResetLinksAreSingleUse: a spent, revoked or expired
// invitation or reset link answers 404 and changes nothing.
func TestInvitationsAndResetLinksAreSingleUse(t *testing.T) {
	h := startAccountsHub(t, nil)
	owner := h.setupAndLogin()
	inv := decodeInto[api.Invitation](t, h.do("POST", "/api/v1/invitations", owner, api.InviteRequest{Email: "new@example.com", Role: "viewer"}), 201)
	accept := api.AcceptInvitationRequest{Token: inv.Token, Password: "granite meadow tulip harbour"}
	if r := h.do("POST", "/api/v1/invitations/accept", "", accept); r.status != 201 {
		t.Fatalf("accept: %d %s", r.status, r.body)
	}
	accept.Password = "another meadow tulip harbour"
	if r := h.do("POST", "/api/v1/invitations/accept", "", accept); r.status != 404 {
		t.Fatalf("invitation reused: %d %s; want 404", r.status, r.body)
	}
	h.login("new@example.com", "granite meadow tulip harbour")
	// An admin may not invite an owner; a viewer may not invite at all.
	viewer := h.login("new@example.com", "granite meadow tulip harbour")
	if r := h.do("POST", "/api/v1/invitations", viewer, api.InviteRequest{Email: "x@example.com", Role: "viewer"}); r.status != 403 {
		t.Fatalf("viewer invites: %d", r.status)
	}
	revoked := decodeInto[api.Invitation](t, h.do("POST", "/api/v1/invitations", owner, api.InviteRequest{Email: "rev@example.com", Role: "viewer"}), 201)
	if r := h.do("DELETE", "/api/v1/invitations/"+revoked.ID, owner, nil); r.status != 204 {
		t.Fatalf("revoke invitation: %d", r.status)
	}
	expired := decodeInto[api.Invitation](t, h.do("POST", "/api/v1/invitations", owner, api.InviteRequest{Email: "exp@example.com", Role: "viewer"}), 201)
	h.clock.Advance(73 * time.Hour)
	owner = h.login(ownerEmail, ownerPassword)
	for name, tok := range map[string]string{"revoked": revoked.Token, "expired": expired.Token, "forged": "rpi_" + strings.Repeat("A", 43)} {
		if r := h.do("POST", "/api/v1/invitations/accept", "", api.AcceptInvitationRequest{Token: tok, Password: "granite meadow tulip harbour"}); r.status != 404 {
			t.Errorf("%s invitation: %d %s; want 404", name, r.status, r.body)
		}
	}
	// Reset links.
	id := userID(t, h, owner, "new@example.com")
	session := h.login("new@example.com", "granite meadow tulip harbour")
	link := decodeInto[api.ResetLink](t, h.do("POST", "/api/v1/users/"+id+"/reset-link", owner, nil), 201)
	if r := h.do("POST", "/api/v1/password-reset", "", api.PasswordResetRequest{Token: link.Token, Password: "password"}); r.status != 400 {
		t.Fatalf("reset to a blocklisted password: %d", r.status)
	}
	if r := h.do("POST", "/api/v1/password-reset", "", api.PasswordResetRequest{Token: link.Token, Password: "saffron tundra kettle mosaic"}); r.status != 204 {
		t.Fatalf("reset: %d %s", r.status, r.body)
	}
	if r := h.do("POST", "/api/v1/password-reset", "", api.PasswordResetRequest{Token: link.Token, Password: "another saffron tundra kettle"}); r.status != 404 {
		t.Fatalf("reset link reused: %d; want 404", r.status)
	}
	if r := h.do("GET", "/api/v1/me", session, nil); r.status != 401 {
		t.Fatalf("session survives a password reset: %d", r.status)
	}
	h.login("new@example.com", "saffron tundra kettle mosaic")
	stale := decodeInto[api.ResetLink](t, h.do("POST", "/api/v1/users/"+id+"/reset-link", owner, nil), 201)
	h.clock.Advance(2 * time.Hour)
	if r := h.do("POST", "/api/v1/password-reset", "", api.PasswordResetRequest{Token: stale.Token, Password: "another saffron tundra kettle"}); r.status != 404 {
		t.Fatalf("expired reset link: %d; want 404", r.status)
	}
}

// TestSessions: idle and absolute expiry, log out everywhere, and a
// password change that needs the current password and ends other sessions.
func TestSessions(t *testing.T) {
	h := startAccountsHub(t, nil)
	a := h.setupAndLogin()
	b := h.login(ownerEmail, ownerPassword)
	h.clock.Advance(59 * time.Minute)
	if r := h.do("GET", "/api/v1/me", a, nil); r.status != 200 {
		t.Fatalf("session used within the idle limit: %d", r.status)
	}
	h.clock.Advance(61 * time.Minute)
	if r := h.do("GET", "/api/v1/me", b, nil); r.status != 401 {
		t.Fatalf("session idle 2h: %d; want 401", r.status)
	}
	for i := 0; i < 12; i++ {
		h.clock.Advance(50 * time.Minute)
		h.do("GET", "/api/v1/me", a, nil)
	}
	if r := h.do("GET", "/api/v1/me", a, nil); r.status != 401 {
		t.Fatalf("session past its absolute expiry (12h): %d; want 401", r.status)
	}
	c, d := h.login(ownerEmail, ownerPassword), h.login(ownerEmail, ownerPassword)
	if r := h.do("POST", "/api/v1/me/password", c, api.PasswordChangeRequest{CurrentPassword: "not the current one", NewPassword: "saffron tundra kettle mosaic"}); r.status != 403 {
		t.Fatalf("password change with a wrong current password: %d", r.status)
	}
	if r := h.do("POST", "/api/v1/me/password", c, api.PasswordChangeRequest{CurrentPassword: ownerPassword, NewPassword: "saffron tundra kettle mosaic"}); r.status != 204 {
		t.Fatalf("password change: %d %s", r.status, r.body)
	}
	if r := h.do("GET", "/api/v1/me", d, nil); r.status != 401 {
		t.Fatalf("other session survives a password change: %d", r.status)
	}
	if r := h.do("GET", "/api/v1/me", c, nil); r.status != 200 {
		t.Fatalf("the changing session: %d", r.status)
	}
	e := h.login(ownerEmail, "saffron tundra kettle mosaic")
	if r := h.do("POST", "/api/v1/logout-all", c, nil); r.status != 204 {
		t.Fatalf("logout-all: %d", r.status)
	}
	for _, tok := range []string{c, e} {
		if r := h.do("GET", "/api/v1/me", tok, nil); r.status != 401 {
			t.Fatalf("session after logout-all: %d", r.status)
		}
	}
	ev := journalActions(t, h)
	for _, want := range []string{"auth.session_expired/success", "user.password_changed/failure", "user.password_changed/success", "auth.logout_everywhere/success"} {
		if !strings.Contains(ev, want) {
			t.Errorf("journal lacks %s", want)
		}
	}
}

// TestRehashOnLoginWhenParametersChange: a hub restarted with other argon2id
// parameters rehashes each password at its owner's next login.
func TestRehashOnLoginWhenParametersChange(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	h := startHub(t, cfg)
	h.setupAndLogin()
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	stronger := accounts.HashParams{Time: 2, Memory: 2048, Threads: 1}
	h2 := startHub(t, cfg, WithHashParams(stronger))
	h2.login(ownerEmail, ownerPassword)
	h2.stop()
	db, err := sql.Open("sqlite", filepath.Join(cfg.DataDir, "rampart.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var phc string
	if err := db.QueryRow(`SELECT password_hash FROM users`).Scan(&phc); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(phc, "$m=2048,t=2,p=1$") {
		t.Fatalf("hash after login %q; want the new parameters", phc)
	}
}

// journalActions stops nothing: it reads the journal of the running hub's
// data folder through the export (SQLite WAL allows the reader).
func journalActions(t *testing.T, h *acctHub) string {
	t.Helper()
	var exp bytes.Buffer
	if err := ExportJournal(context.Background(), h.cfg, &exp); err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, line := range strings.Split(strings.TrimSpace(exp.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			continue
		}
		if a, ok := rec["action"].(string); ok {
			actions = append(actions, a+"/"+fmt.Sprint(rec["outcome"]))
		}
	}
	if strings.Contains(exp.String(), ownerPassword) {
		t.Fatal("the journal holds a password")
	}
	return strings.Join(actions, " ")
}
