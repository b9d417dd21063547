package app

import (
	"encoding/base32"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/accounts"
	"github.com/rampart-iot/rampart/internal/config"
	"github.com/rampart-iot/rampart/internal/httpapi"
	"github.com/rampart-iot/rampart/internal/testkit"
)

// acctHub is a hub with open sign-up on, a controllable clock and its
// route table.
type acctHub struct {
	*testHub
	clock  *testkit.Clock
	routes []string
}

func startAccountsHub(t *testing.T, mutate func(*config.Config), opts ...Option) *acctHub {
	t.Helper()
	cfg := testConfig(t, t.TempDir())
	cfg.Accounts.OpenSignup = true
	if mutate != nil {
		mutate(cfg)
	}
	clk := testkit.NewClock(time.Now())
	var mu sync.Mutex
	var routes []string
	opts = append([]Option{WithClock(clk.Now), withHandler(func(h *httpapi.Handler) {
		mu.Lock()
		defer mu.Unlock()
		routes = h.Routes()
	})}, opts...)
	h := startHub(t, cfg, opts...)
	mu.Lock()
	defer mu.Unlock()
	return &acctHub{testHub: h, clock: clk, routes: routes}
}

// from returns a view of the hub whose requests come from the local
// address ip (127.0.0.x: Linux routes all of 127/8 to loopback), so the
// hub sees a different source address.
func (h *acctHub) from(ip string) *acctHub {
	h.t.Helper()
	base := h.client.Transport.(*http.Transport)
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	tr := &http.Transport{TLSClientConfig: base.TLSClientConfig.Clone(), ForceAttemptHTTP2: true, DialContext: d.DialContext}
	th := *h.testHub
	th.client = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	h.t.Cleanup(tr.CloseIdleConnections)
	return &acctHub{testHub: &th, clock: h.clock, routes: h.routes}
}

func decodeInto[T any](t *testing.T, r reply, want int) T {
	t.Helper()
	var v T
	if r.status != want {
		t.Fatalf("status %d, want %d: %s", r.status, want, r.body)
	}
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
	return v
}

func (h *acctHub) signup(email, password, tenant string) api.User {
	h.t.Helper()
	return decodeInto[api.User](h.t, h.do("POST", "/api/v1/signup", "", api.SignupRequest{Email: email, Password: password, TenantName: tenant}), http.StatusCreated)
}

// invite creates an invitation and accepts it, returning the new user.
func (h *acctHub) addUser(ownerTok, email, role, password string) api.User {
	h.t.Helper()
	inv := decodeInto[api.Invitation](h.t, h.do("POST", "/api/v1/invitations", ownerTok, api.InviteRequest{Email: email, Role: role}), http.StatusCreated)
	return decodeInto[api.User](h.t, h.do("POST", "/api/v1/invitations/accept", "", api.AcceptInvitationRequest{Token: inv.Token, Password: password}), http.StatusCreated)
}

func (h *acctHub) newToken(tok string, req api.TokenRequest) api.APIToken {
	h.t.Helper()
	return decodeInto[api.APIToken](h.t, h.do("POST", "/api/v1/tokens", tok, req), http.StatusCreated)
}

func totpNow(t *testing.T, secret string, now time.Time) string {
	t.Helper()
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return accounts.TOTPCode(raw, now)
}

// tenantB is the other tenant in the cross-tenant walk: every kind of
// object the API addresses by ID, owned by B.
type tenantB struct {
	ownerTok, apiTok        string
	tenantID, ownerID       string
	userID, invID, tokID    string
	deviceID, claimID       string
	secrets                 []string // must never appear in A's answers
	inviteToken, resetToken string
	fwImageID, rolloutID    string // firmware (firmware_test.go)
	modelName, commandID    string // command safety (commands_test.go)
}

const (
	bOwner    = "bea@beta.example"
	bPassword = "lantern orchard velvet compass"
)

func makeTenantB(h *acctHub) *tenantB {
	t := h.t
	t.Helper()
	b := &tenantB{}
	u := h.signup(bOwner, bPassword, "Beta Industries")
	b.tenantID, b.ownerID = u.TenantID, u.ID
	b.ownerTok = h.login(bOwner, bPassword)
	b.userID = h.addUser(b.ownerTok, "otto@beta.example", "operator", "granite meadow tulip harbour").ID
	inv := decodeInto[api.Invitation](t, h.do("POST", "/api/v1/invitations", b.ownerTok, api.InviteRequest{Email: "ivy@beta.example", Role: "viewer"}), http.StatusCreated)
	b.invID, b.inviteToken = inv.ID, inv.Token
	tok := h.newToken(b.ownerTok, api.TokenRequest{Name: "b-automation", Scopes: []string{"devices:read", "metrics:read"}})
	b.tokID, b.apiTok = tok.ID, tok.Token
	rl := decodeInto[api.ResetLink](t, h.do("POST", "/api/v1/users/"+b.userID+"/reset-link", b.ownerTok, nil), http.StatusCreated)
	b.resetToken = rl.Token
	if r := h.do("POST", "/api/v1/devices", b.ownerTok, map[string]string{"name": "b-pump"}); r.status == http.StatusCreated {
		var d struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(r.body, &d)
		b.deviceID = d.ID
	}
	if r := h.do("POST", "/api/v1/claims", b.ownerTok, map[string]any{"name": "b-claim", "max_uses": 1, "ttl": "1h"}); r.status == http.StatusCreated {
		var c struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(r.body, &c)
		b.claimID = c.ID
	}
	b.fwImageID, b.rolloutID = makeFirmwareB(h, b.ownerTok)
	b.modelName, b.commandID = makeCommandsB(h, b.ownerTok)
	b.secrets = []string{b.fwImageID, b.rolloutID, b.tenantID, b.ownerID, b.userID, b.invID, b.tokID, bOwner, "otto@beta.example", "ivy@beta.example", "Beta Industries", b.ownerTok, b.apiTok, b.inviteToken, b.resetToken}
	if b.deviceID != "" {
		b.secrets = append(b.secrets, b.deviceID)
	}
	if b.claimID != "" {
		b.secrets = append(b.secrets, b.claimID)
	}
	if b.commandID != "" {
		b.secrets = append(b.secrets, b.commandID, b.modelName)
	}
	return b
}

// expectation says what a route must answer when tenant A calls it with
// tenant B's IDs.
type expectation int

const (
	// notFound: the route addresses one of B's objects by ID; A must get
	// 404, exactly as for a missing object (a token may get 403 first).
	notFound expectation = iota
	// noLeak: the route is about the caller's own tenant or account (or
	// is hub-wide and holds no tenant data); its answer must hold none of
	// B's IDs, names or secrets.
	noLeak
	// refused: a public route that takes its own credential in the body;
	// A's bearer token must not make it accept B's-looking input.
	refused
)

// crossTenantFixture is how the walk calls one route.
type crossTenantFixture struct {
	expect expectation
	id     func(b *tenantB) string // fills {id}
	body   func(b *tenantB) any
}

// crossTenantFixtures has an entry for every route the hub registers. A
// route without one fails TestCrossTenantEveryRoute: whoever adds a route
// says here how another tenant's caller must be refused.
var crossTenantFixtures = map[string]crossTenantFixture{
	"POST /api/v1/setup": {expect: refused, body: func(b *tenantB) any {
		return api.SetupRequest{SetupCode: "AAAAA-AAAAA-AAAAA-AAAAA", Email: "x@a.example", Password: "some long password here"}
	}},
	"POST /api/v1/login": {expect: refused, body: func(b *tenantB) any { return api.LoginRequest{Email: bOwner, Password: "not bea's password at all"} }},
	"POST /api/v1/signup": {expect: noLeak, body: func(b *tenantB) any {
		return api.SignupRequest{Email: bOwner, Password: "another long passphrase", TenantName: "Beta Industries"}
	}},
	"POST /api/v1/invitations/accept": {expect: refused, body: func(b *tenantB) any {
		return api.AcceptInvitationRequest{Token: "rpi_" + b.invID, Password: "a long enough passphrase"}
	}},
	"POST /api/v1/password-reset": {expect: refused, body: func(b *tenantB) any {
		return api.PasswordResetRequest{Token: "rpr_" + b.userID, Password: "a long enough passphrase"}
	}},
	"POST /api/v1/logout":     {expect: noLeak},
	"POST /api/v1/logout-all": {expect: noLeak},
	"GET /api/v1/me":          {expect: noLeak},
	"GET /metrics":            {expect: noLeak},
	"POST /api/v1/me/password": {expect: noLeak, body: func(b *tenantB) any {
		return api.PasswordChangeRequest{CurrentPassword: bPassword, NewPassword: "fresh new passphrase here"}
	}},
	"POST /api/v1/me/mfa/totp":           {expect: noLeak},
	"POST /api/v1/me/mfa/totp/confirm":   {expect: noLeak, body: func(b *tenantB) any { return api.TOTPConfirmRequest{Code: "000000"} }},
	"POST /api/v1/me/mfa/totp/disable":   {expect: noLeak, body: func(b *tenantB) any { return api.PasswordRequest{Password: bPassword} }},
	"GET /api/v1/tenant":                 {expect: noLeak},
	"PATCH /api/v1/tenant":               {expect: noLeak, body: func(b *tenantB) any { f := false; return api.TenantRequest{RequireMFA: &f} }},
	"GET /api/v1/users":                  {expect: noLeak},
	"GET /api/v1/users/{id}":             {expect: notFound, id: func(b *tenantB) string { return b.userID }},
	"PATCH /api/v1/users/{id}":           {expect: notFound, id: func(b *tenantB) string { return b.userID }, body: func(b *tenantB) any { return api.RoleRequest{Role: "viewer"} }},
	"DELETE /api/v1/users/{id}":          {expect: notFound, id: func(b *tenantB) string { return b.userID }},
	"POST /api/v1/users/{id}/reset-link": {expect: notFound, id: func(b *tenantB) string { return b.ownerID }},
	"POST /api/v1/invitations":           {expect: noLeak, body: func(b *tenantB) any { return api.InviteRequest{Email: "ivy@alpha.example", Role: "viewer"} }},
	"GET /api/v1/invitations":            {expect: noLeak},
	"DELETE /api/v1/invitations/{id}":    {expect: notFound, id: func(b *tenantB) string { return b.invID }},
	"POST /api/v1/tokens":                {expect: noLeak, body: func(b *tenantB) any { return api.TokenRequest{Name: "b-automation", Scopes: []string{"devices:read"}} }},
	"GET /api/v1/tokens":                 {expect: noLeak},
	"DELETE /api/v1/tokens/{id}":         {expect: notFound, id: func(b *tenantB) string { return b.tokID }},

	// Device identity (issue #4).
	"POST /api/v1/devices":                 {expect: noLeak, body: func(b *tenantB) any { return map[string]string{"name": "b-pump"} }},
	"GET /api/v1/devices":                  {expect: noLeak},
	"GET /api/v1/devices/{id}":             {expect: notFound, id: func(b *tenantB) string { return b.deviceID }},
	"DELETE /api/v1/devices/{id}":          {expect: notFound, id: func(b *tenantB) string { return b.deviceID }},
	"POST /api/v1/devices/{id}/revoke":     {expect: notFound, id: func(b *tenantB) string { return b.deviceID }, body: func(b *tenantB) any { return map[string]string{"reason": "x"} }},
	"POST /api/v1/devices/{id}/suspend":    {expect: notFound, id: func(b *tenantB) string { return b.deviceID }, body: func(b *tenantB) any { return map[string]string{} }},
	"POST /api/v1/devices/{id}/quarantine": {expect: notFound, id: func(b *tenantB) string { return b.deviceID }, body: func(b *tenantB) any { return map[string]string{} }},
	"POST /api/v1/devices/{id}/reactivate": {expect: notFound, id: func(b *tenantB) string { return b.deviceID }, body: func(b *tenantB) any { return map[string]string{} }},
	"POST /api/v1/devices/{id}/token":      {expect: notFound, id: func(b *tenantB) string { return b.deviceID }, body: func(b *tenantB) any { return map[string]string{} }},
	"GET /api/v1/devices/{id}/telemetry":   {expect: notFound, id: func(b *tenantB) string { return b.deviceID }},
	"GET /api/v1/audit":                    {expect: noLeak},
	"POST /api/v1/claims":                  {expect: noLeak, body: func(b *tenantB) any { return map[string]any{"name": "b-claim", "max_uses": 1, "ttl": "1h"} }},
	"GET /api/v1/claims":                   {expect: noLeak},
	"POST /api/v1/claims/{id}/revoke":      {expect: notFound, id: func(b *tenantB) string { return b.claimID }, body: func(b *tenantB) any { return map[string]string{} }},
	"POST /api/v1/manufacturers":           {expect: noLeak, body: func(b *tenantB) any { return map[string]string{"name": "b-maker"} }},
	"GET /api/v1/manufacturers":            {expect: noLeak},
	"GET /api/v1/findings":                 {expect: noLeak},
	"POST /api/v1/findings/{id}/approve":   {expect: notFound, id: func(b *tenantB) string { return "fnd_" + strings.TrimPrefix(b.deviceID, "dev_") }, body: func(b *tenantB) any { return map[string]string{} }},
	"POST /api/v1/findings/{id}/resolve":   {expect: notFound, id: func(b *tenantB) string { return "fnd_" + strings.TrimPrefix(b.deviceID, "dev_") }, body: func(b *tenantB) any { return map[string]string{} }},
	"POST /api/v1/enroll": {expect: refused, body: func(b *tenantB) any {
		return map[string]string{"token": "rpe_" + b.deviceID, "csr": "-----BEGIN CERTIFICATE REQUEST-----\n-----END CERTIFICATE REQUEST-----\n"}
	}},
	"POST /api/v1/enroll/attest": {expect: refused, body: func(b *tenantB) any { return map[string]string{"csr": "x"} }},
	"POST /api/v1/renew":         {expect: refused, body: func(b *tenantB) any { return map[string]string{"csr": "x"} }},
	"POST /api/v1/device-secret": {expect: refused, body: func(b *tenantB) any {
		return map[string]string{"device_id": b.deviceID, "secret": "x", "new_secret": "y"}
	}},
	"GET /pki/crl": {expect: noLeak},

	// Firmware (issue #8).
	"GET /api/v1/firmware/offer":                  {expect: refused},
	"GET /api/v1/firmware/images/{id}/download":   {expect: refused, id: func(b *tenantB) string { return b.fwImageID }},
	"POST /api/v1/firmware/report":                {expect: refused, body: func(b *tenantB) any { return api.FirmwareReport{RolloutID: b.rolloutID, Status: "failed"} }},
	"GET /api/v1/firmware/root":                   {expect: noLeak},
	"PUT /api/v1/firmware/root":                   {expect: noLeak, body: func(b *tenantB) any { return api.FirmwareRootRequest{Root: "x"} }},
	"GET /api/v1/firmware/settings":               {expect: noLeak},
	"PATCH /api/v1/firmware/settings":             {expect: noLeak, body: func(b *tenantB) any { return map[string]any{} }},
	"POST /api/v1/firmware/images":                {expect: noLeak, body: func(b *tenantB) any { return api.FirmwareImageRequest{Manifest: "x"} }},
	"GET /api/v1/firmware/images":                 {expect: noLeak},
	"GET /api/v1/firmware/images/{id}":            {expect: notFound, id: func(b *tenantB) string { return b.fwImageID }},
	"PUT /api/v1/firmware/images/{id}/blob":       {expect: notFound, id: func(b *tenantB) string { return b.fwImageID }, body: func(b *tenantB) any { return "image bytes" }},
	"POST /api/v1/firmware/rollouts":              {expect: noLeak, body: func(b *tenantB) any { return api.RolloutRequest{ImageID: b.fwImageID} }},
	"GET /api/v1/firmware/rollouts":               {expect: noLeak},
	"GET /api/v1/firmware/rollouts/{id}":          {expect: notFound, id: func(b *tenantB) string { return b.rolloutID }},
	"POST /api/v1/firmware/rollouts/{id}/approve": {expect: notFound, id: func(b *tenantB) string { return b.rolloutID }, body: func(b *tenantB) any { return map[string]any{} }},
	"POST /api/v1/firmware/rollouts/{id}/pause":   {expect: notFound, id: func(b *tenantB) string { return b.rolloutID }, body: func(b *tenantB) any { return map[string]any{} }},
	"POST /api/v1/firmware/rollouts/{id}/resume":  {expect: notFound, id: func(b *tenantB) string { return b.rolloutID }, body: func(b *tenantB) any { return map[string]any{} }},
	"POST /api/v1/firmware/rollouts/{id}/abort":   {expect: notFound, id: func(b *tenantB) string { return b.rolloutID }, body: func(b *tenantB) any { return map[string]any{} }},
	"PUT /api/v1/firmware/devices/{id}/tags":      {expect: notFound, id: func(b *tenantB) string { return b.deviceID }, body: func(b *tenantB) any { return api.DeviceTagsRequest{Tags: []string{"x"}} }},
	"GET /api/v1/firmware/below-minimum":          {expect: noLeak},

	// Command safety (issue #9). A's model names never collide with B's,
	// so GET models/{B's name} stays a 404 whatever order the walk takes.
	"GET /pki/command-key":               {expect: noLeak},
	"POST /api/v1/models":                {expect: noLeak, body: func(b *tenantB) any { return e2ePumpModel(100) }},
	"GET /api/v1/models":                 {expect: noLeak},
	"GET /api/v1/models/{id}":            {expect: notFound, id: func(b *tenantB) string { return b.modelName }},
	"POST /api/v1/devices/{id}/commands": {expect: notFound, id: func(b *tenantB) string { return b.deviceID }, body: func(b *tenantB) any { return api.CommandRequest{Name: "estop"} }},
	"GET /api/v1/devices/{id}/commands":  {expect: notFound, id: func(b *tenantB) string { return b.deviceID }},
	"GET /api/v1/commands/{id}":          {expect: notFound, id: func(b *tenantB) string { return b.commandID }},
	"POST /api/v1/commands/{id}/confirm": {expect: notFound, id: func(b *tenantB) string { return b.commandID }},
	"POST /api/v1/commands/{id}/approve": {expect: notFound, id: func(b *tenantB) string { return b.commandID }},
}

// TestCrossTenantEveryRoute walks every route the hub registers and calls
// it as tenant A (with an owner's session, and with an API token holding
// every scope) aimed at tenant B's objects. Objects of B answer 404 like
// missing ones; nothing of B appears in any answer; afterwards all of B's
// objects and credentials are intact. A route without a fixture fails.
func TestCrossTenantEveryRoute(t *testing.T) {
	h := startAccountsHub(t, nil)
	aTok := h.setupAndLogin()
	b := makeTenantB(h)
	aAPI := h.newToken(aTok, api.TokenRequest{Name: "a-all", Scopes: []string{"devices:read", "devices:write", "telemetry:read", "commands:write", "mqtt:subscribe", "metrics:read", "journal:read", "pki:admin"}}).Token
	if len(h.routes) < 20 {
		t.Fatalf("route table has %d routes; the walk needs the hub's real table", len(h.routes))
	}
	for _, route := range h.routes {
		fx, ok := crossTenantFixtures[route]
		if !ok {
			t.Errorf("route %q has no cross-tenant fixture: add one to crossTenantFixtures saying how another tenant is refused", route)
			continue
		}
		method, path, _ := strings.Cut(route, " ")
		if strings.Contains(path, "{id}") {
			id := fx.id(b)
			if id == "" {
				t.Logf("%s: tenant B has no such object in this build; skipped", route)
				continue
			}
			path = strings.ReplaceAll(path, "{id}", id)
		}
		var body any
		if fx.body != nil {
			body = fx.body(b)
		}
		for _, who := range []struct {
			name, tok string
		}{{"session", h.login(ownerEmail, ownerPassword)}, {"api-token", aAPI}} {
			r := h.do(method, path, who.tok, body)
			if r.status >= 500 {
				t.Errorf("%s as A's %s: %d %s", route, who.name, r.status, r.body)
			}
			for _, s := range b.secrets {
				if s != "" && strings.Contains(string(r.body), s) {
					t.Errorf("%s as A's %s: answer holds tenant B's %q: %s", route, who.name, s, r.body)
				}
			}
			switch fx.expect {
			case notFound:
				okStatus := r.status == http.StatusNotFound && r.errCode() == api.CodeNotFound
				if who.name == "api-token" && r.status == http.StatusForbidden {
					okStatus = true
				}
				if !okStatus {
					t.Errorf("%s on B's object as A's %s: %d %s; want 404 not_found, exactly as a missing object", route, who.name, r.status, r.body)
				}
				// A missing object must answer the same.
				missing := h.do(method, strings.Replace(h.addr+path, fx.id(b), fx.id(b)[:4]+"zzzzzzzzzzzzzzzz", 1)[len(h.addr):], who.tok, body)
				if missing.status != r.status || missing.errCode() != r.errCode() {
					t.Errorf("%s: B's object answers %d %s but a missing one %d %s", route, r.status, r.errCode(), missing.status, missing.errCode())
				}
			case refused:
				if r.status < 400 {
					t.Errorf("%s with A's %s and B's identifiers: %d %s; want a refusal", route, who.name, r.status, r.body)
				}
			}
		}
	}
	// Nothing of B changed.
	if r := h.do("GET", "/api/v1/me", b.ownerTok, nil); r.status != 200 {
		t.Errorf("B's owner session no longer works: %d %s", r.status, r.body)
	}
	if r := h.do("GET", "/api/v1/devices", b.apiTok, nil); r.status != 200 {
		t.Errorf("B's API token no longer works: %d %s", r.status, r.body)
	}
	// Metrics are hub-wide: B (not the operator tenant) may not read them,
	// even with the metrics:read scope.
	if r := h.do("GET", "/metrics", b.apiTok, nil); r.status != http.StatusForbidden {
		t.Errorf("tenant B read the hub's metrics: %d", r.status)
	}
	bu := decodeInto[api.UserList](t, h.do("GET", "/api/v1/users", b.ownerTok, nil), 200)
	roles := map[string]string{}
	for _, u := range bu.Users {
		roles[u.Email] = u.Role
	}
	if len(bu.Users) != 2 || roles["otto@beta.example"] != "operator" || roles[bOwner] != "owner" {
		t.Errorf("B's users changed: %+v", bu.Users)
	}
	bi := decodeInto[api.InvitationList](t, h.do("GET", "/api/v1/invitations", b.ownerTok, nil), 200)
	if len(bi.Invitations) != 1 || bi.Invitations[0].ID != b.invID {
		t.Errorf("B's invitations changed: %+v", bi.Invitations)
	}
	bt := decodeInto[api.Tenant](t, h.do("GET", "/api/v1/tenant", b.ownerTok, nil), 200)
	if bt.RequireMFA || bt.ID != b.tenantID {
		t.Errorf("B's tenant changed: %+v", bt)
	}
	if b.deviceID != "" {
		if r := h.do("GET", "/api/v1/devices/"+b.deviceID, b.ownerTok, nil); r.status != 200 {
			t.Errorf("B's device is gone or changed: %d %s", r.status, r.body)
		}
	}
	if r := h.do("POST", "/api/v1/password-reset", "", api.PasswordResetRequest{Token: b.resetToken, Password: "granite meadow tulip harbour 2"}); r.status != http.StatusNoContent {
		t.Errorf("B's reset link no longer works: %d %s", r.status, r.body)
	}
	if r := h.do("POST", "/api/v1/invitations/accept", "", api.AcceptInvitationRequest{Token: b.inviteToken, Password: "quiet river copper lantern"}); r.status != http.StatusCreated {
		t.Errorf("B's invitation no longer works: %d %s", r.status, r.body)
	}
}
