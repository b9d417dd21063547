// Package accounts holds tenants, users, roles, passwords and sessions, and
// the first-run setup that creates the first owner from a one-time code.
//
// There is no default account and no default password: until someone who can
// read the hub's console (or the 0600 file DATA/setup-code) spends the setup
// code, no account exists at all.
package accounts

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/mail"
	"strings"
	"sync"
	"time"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/journal"
	"github.com/rampart-iot/rampart/internal/secrets"
)

// Role names. The role table (roles.go) says what each may do.
type Role string

// Roles, most to least privileged.
const (
	RoleOwner    Role = "owner"
	RoleAdmin    Role = "admin"
	RoleOperator Role = "operator"
	RoleViewer   Role = "viewer"
)

// Tenant is an isolated organisation.
type Tenant struct {
	ID         string
	Name       string
	CreatedAt  time.Time
	RequireMFA bool // every user of the tenant must use a second factor
}

// User is a person who logs in.
type User struct {
	ID           string
	TenantID     string
	Email        string
	PasswordHash string // PHC string; never leaves this package's callers
	Role         Role
	CreatedAt    time.Time

	MFAEnabled   bool
	TOTPSecret   []byte // sealed; nil without TOTP
	TOTPPending  []byte // sealed; a secret being enrolled, not yet confirmed
	FailedLogins int    // consecutive failures across every source
	HardLocked   bool   // 100 consecutive failures: only a reset link opens it
}

// Session is a logged-in bearer token, stored only as its hash.
type Session struct {
	TokenHash []byte
	UserID    string
	TenantID  string
	CreatedAt time.Time
	ExpiresAt time.Time // absolute expiry
	LastSeen  time.Time // for idle expiry
}

// SetupCode is the stored state of the one-time setup code.
type SetupCode struct {
	Hash      []byte
	ExpiresAt time.Time
	Failures  int
	Burnt     bool
}

// Principal is who a request acts as.
type Principal struct {
	UserID   string
	TenantID string
	Email    string
	Role     Role

	// TokenID is set when the request carries an API token (not a
	// session); Scopes are then all it may do (within Role, its creator's
	// current role).
	TokenID string
	Scopes  []Permission
	// MFASetupRequired: the tenant requires MFA and this user has none
	// yet; the session may only reach its own account to enrol.
	MFASetupRequired bool
}

// Actor names the principal in the journal.
func (p Principal) Actor() string {
	if p.TokenID != "" {
		return p.TokenID
	}
	return p.UserID
}

// Sentinel errors adapters return.
var (
	ErrNotFound = errors.New("not found")
	// ErrSetupDone is returned by CreateFirstOwner when a user exists.
	ErrSetupDone = errors.New("setup already done")
	// ErrEmailTaken is returned when the email is in use.
	ErrEmailTaken = errors.New("email already registered")
	// ErrUsed is returned when a single-use token was already spent.
	ErrUsed = errors.New("already used")
)

// Store is what accounts needs from storage.
type Store interface {
	HasUsers(ctx context.Context) (bool, error)
	// OperatorTenant is the tenant of the first owner (created by setup):
	// the one that runs the hub. ErrNotFound before setup.
	OperatorTenant(ctx context.Context) (string, error)
	PutSetupCode(ctx context.Context, c SetupCode) error
	GetSetupCode(ctx context.Context) (SetupCode, error)
	// AddSetupFailure increments the failure count and returns the new count.
	AddSetupFailure(ctx context.Context) (int, error)
	BurnSetupCode(ctx context.Context) error
	// CreateFirstOwner, in one transaction: fails with ErrSetupDone if any
	// user exists, deletes the setup code, creates the tenant and the user.
	CreateFirstOwner(ctx context.Context, t Tenant, u User) error
	UserByEmail(ctx context.Context, email string) (User, error)
	UserByID(ctx context.Context, id string) (User, error)
	CreateSession(ctx context.Context, s Session) error
	SessionByHash(ctx context.Context, hash []byte) (Session, error)
	DeleteSession(ctx context.Context, hash []byte) error
	MoreStore
}

// Recorder is the journal as accounts sees it.
type Recorder interface {
	Record(ctx context.Context, e journal.Event) error
}

// Options configure a Service.
type Options struct {
	Store      Store
	Journal    Recorder
	Now        func() time.Time
	Rand       io.Reader
	Hasher     *Hasher
	SetupTTL   time.Duration
	SessionTTL time.Duration
	Logger     *slog.Logger

	// Sealer encrypts TOTP secrets at rest (the keyring).
	Sealer Sealer
	// IdleTTL ends a session unused for this long.
	IdleTTL   time.Duration
	InviteTTL time.Duration
	ResetTTL  time.Duration
	// OpenSignup lets anyone create a new tenant (off by default).
	OpenSignup bool
}

// Sealer is the keyring as accounts sees it.
type Sealer interface {
	Seal(plaintext, aad []byte) ([]byte, error)
	Open(ciphertext, aad []byte) ([]byte, error)
}

// Service implements setup, login and sessions.
type Service struct {
	o        Options
	throttle *throttle

	opOnce   sync.Mutex // guards operator
	operator string     // the operator tenant, once known
}

// New validates options and returns a Service.
func New(o Options) (*Service, error) {
	if o.Store == nil || o.Journal == nil || o.Now == nil || o.Rand == nil || o.Hasher == nil || o.Sealer == nil {
		return nil, errors.New("accounts: Store, Journal, Now, Rand, Hasher and Sealer are required")
	}
	if o.IdleTTL <= 0 {
		o.IdleTTL = DefaultSessionIdleTTL
	}
	if o.InviteTTL <= 0 {
		o.InviteTTL = DefaultInviteTTL
	}
	if o.ResetTTL <= 0 {
		o.ResetTTL = DefaultResetTTL
	}
	if o.SetupTTL <= 0 {
		o.SetupTTL = DefaultSetupTTL
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = DefaultSessionTTL
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{o: o, throttle: newThrottle(o.Now)}, nil
}

var codeEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

func hashSetupCode(code string) []byte {
	norm := strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(code))
	sum := sha256.Sum256([]byte("rampart/setup-code/v1\x00" + norm))
	return sum[:]
}

// StartSetup makes a new setup code when no account exists yet, replacing
// (and so killing) any earlier one. It returns ok=false when setup is done.
func (s *Service) StartSetup(ctx context.Context) (code secrets.Text, ok bool, err error) {
	has, err := s.o.Store.HasUsers(ctx)
	if err != nil {
		return "", false, err
	}
	if has {
		return "", false, nil
	}
	raw := make([]byte, setupCodeBytes)
	if _, err := io.ReadFull(s.o.Rand, raw); err != nil {
		return "", false, fmt.Errorf("reading randomness for setup code: %w", err)
	}
	enc := codeEncoding.EncodeToString(raw)
	var groups []string
	for len(enc) > 5 {
		groups = append(groups, enc[:5])
		enc = enc[5:]
	}
	groups = append(groups, enc)
	plain := strings.Join(groups, "-")
	err = s.o.Store.PutSetupCode(ctx, SetupCode{Hash: hashSetupCode(plain), ExpiresAt: s.o.Now().Add(s.o.SetupTTL)})
	if err != nil {
		return "", false, fmt.Errorf("storing setup code: %w", err)
	}
	if err := s.o.Journal.Record(ctx, journal.Event{Actor: "system", Action: "setup.code_issued", Outcome: "success",
		Detail: map[string]string{"expires_at": s.o.Now().Add(s.o.SetupTTL).UTC().Format(time.RFC3339)}}); err != nil {
		return "", false, err
	}
	return secrets.Text(plain), true, nil
}

// ValidateEmail normalises and checks an email address.
func ValidateEmail(email string) (string, error) {
	email = strings.TrimSpace(email)
	if email == "" || len(email) > maxEmailBytes {
		return "", api.Errorf(api.CodeInvalid, "email must be 1 to %d bytes", maxEmailBytes)
	}
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || a.Name != "" {
		return "", api.Errorf(api.CodeInvalid, "email %q is not a plain address like ops@example.com", email)
	}
	return strings.ToLower(email), nil
}

// Setup spends the setup code to create the first owner and its tenant.
// Bad input is rejected before the code is looked at, so it costs no try.
func (s *Service) Setup(ctx context.Context, code secrets.Text, email string, password secrets.Text) (User, error) {
	email, err := ValidateEmail(email)
	if err != nil {
		return User{}, err
	}
	if err := CheckPassword(password, email); err != nil {
		return User{}, err
	}
	has, err := s.o.Store.HasUsers(ctx)
	if err != nil {
		return User{}, err
	}
	if has {
		return User{}, api.Errorf(api.CodeConflict, "setup is already done; log in instead")
	}
	stored, err := s.o.Store.GetSetupCode(ctx)
	if errors.Is(err, ErrNotFound) || (err == nil && stored.Burnt) {
		return User{}, api.Errorf(api.CodeConflict, "no setup code is active; restart the hub to print a new one")
	}
	if err != nil {
		return User{}, err
	}
	if !s.o.Now().Before(stored.ExpiresAt) {
		s.record(ctx, journal.Event{Actor: "anonymous", Action: "setup.attempt", Outcome: "failure", Detail: map[string]string{"reason": "expired"}})
		return User{}, api.Errorf(api.CodeExpired, "the setup code has expired; restart the hub to print a new one")
	}
	if subtle.ConstantTimeCompare(hashSetupCode(code.Reveal()), stored.Hash) != 1 {
		n, err := s.o.Store.AddSetupFailure(ctx)
		if err != nil {
			return User{}, err
		}
		s.record(ctx, journal.Event{Actor: "anonymous", Action: "setup.attempt", Outcome: "failure",
			Detail: map[string]string{"reason": "wrong code", "failures": fmt.Sprint(n)}})
		if n >= maxSetupFailures {
			if err := s.o.Store.BurnSetupCode(ctx); err != nil {
				return User{}, err
			}
			s.record(ctx, journal.Event{Actor: "system", Action: "setup.code_burnt", Outcome: "success",
				Detail: map[string]string{"failures": fmt.Sprint(n)}})
			return User{}, api.Errorf(api.CodeRateLimited, "wrong setup code; after %d wrong tries the code is burnt: restart the hub to print a new one", maxSetupFailures)
		}
		return User{}, api.Errorf(api.CodeUnauthenticated, "wrong setup code (%d tries left)", maxSetupFailures-n)
	}
	phc, err := s.o.Hasher.Hash(ctx, password)
	if err != nil {
		return User{}, err
	}
	now := s.o.Now().UTC()
	tenantID, err := newID(s.o.Rand, "tnt")
	if err != nil {
		return User{}, err
	}
	userID, err := newID(s.o.Rand, "usr")
	if err != nil {
		return User{}, err
	}
	t := Tenant{ID: tenantID, Name: "default", CreatedAt: now}
	u := User{ID: userID, TenantID: tenantID, Email: email, PasswordHash: phc, Role: RoleOwner, CreatedAt: now}
	if err := s.o.Store.CreateFirstOwner(ctx, t, u); err != nil {
		if errors.Is(err, ErrSetupDone) {
			return User{}, api.Errorf(api.CodeConflict, "setup is already done; log in instead")
		}
		return User{}, err
	}
	s.record(ctx, journal.Event{Actor: u.ID, Tenant: t.ID, Action: "setup.owner_created", Target: u.ID, Outcome: "success",
		Detail: map[string]string{"email": email}})
	return u, nil
}

// record journals an event; a journal failure is logged loudly. Callers on
// paths where the event must be durable before answering use the error.
func (s *Service) record(ctx context.Context, e journal.Event) {
	if err := s.o.Journal.Record(ctx, e); err != nil {
		s.o.Logger.Error("journal write failed", "action", e.Action, "err", err)
	}
}

func newID(r io.Reader, prefix string) (string, error) {
	b := make([]byte, idBytes)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("reading randomness for id: %w", err)
	}
	return prefix + "_" + strings.ToLower(codeEncoding.EncodeToString(b)), nil
}

// IsOperator reports whether p belongs to the operator tenant — the tenant
// created by setup, which runs the hub. Hub-wide views (metrics, the hub's
// own audit checks) are for it alone: another tenant on the same hub must
// not learn about the hub's or other tenants' activity.
func (s *Service) IsOperator(ctx context.Context, p Principal) bool {
	s.opOnce.Lock()
	op := s.operator
	s.opOnce.Unlock()
	if op == "" {
		t, err := s.o.Store.OperatorTenant(ctx)
		if err != nil {
			return false
		}
		s.opOnce.Lock()
		s.operator, op = t, t
		s.opOnce.Unlock()
	}
	return p.TenantID != "" && p.TenantID == op
}
