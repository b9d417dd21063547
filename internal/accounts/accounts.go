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
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/mail"
	"strings"
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
	ID        string
	Name      string
	CreatedAt time.Time
}

// User is a person who logs in.
type User struct {
	ID           string
	TenantID     string
	Email        string
	PasswordHash string // PHC string; never leaves this package's callers
	Role         Role
	CreatedAt    time.Time
}

// Session is a logged-in bearer token, stored only as its hash.
type Session struct {
	TokenHash []byte
	UserID    string
	TenantID  string
	CreatedAt time.Time
	ExpiresAt time.Time
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
}

// Sentinel errors adapters return.
var (
	ErrNotFound = errors.New("not found")
	// ErrSetupDone is returned by CreateFirstOwner when a user exists.
	ErrSetupDone = errors.New("setup already done")
	// ErrEmailTaken is returned when the email is in use.
	ErrEmailTaken = errors.New("email already registered")
)

// Store is what accounts needs from storage.
type Store interface {
	HasUsers(ctx context.Context) (bool, error)
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
}

// Service implements setup, login and sessions.
type Service struct {
	o Options
}

// New validates options and returns a Service.
func New(o Options) (*Service, error) {
	if o.Store == nil || o.Journal == nil || o.Now == nil || o.Rand == nil || o.Hasher == nil {
		return nil, errors.New("accounts: Store, Journal, Now, Rand and Hasher are required")
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
	return &Service{o: o}, nil
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

// Login checks a password and returns a new session token (shown once).
// An unknown email costs one hash too, and gets the same answer as a wrong
// password, so the API does not tell which accounts exist.
func (s *Service) Login(ctx context.Context, email string, password secrets.Text, source string) (secrets.Text, Session, error) {
	bad := api.Errorf(api.CodeUnauthenticated, "wrong email or password")
	norm, err := ValidateEmail(email)
	if err != nil || len(password.Reveal()) == 0 || len(password.Reveal()) > maxPasswordBytes {
		s.o.Hasher.Burn(ctx)
		s.record(ctx, journal.Event{Actor: "anonymous", Action: "auth.login", Outcome: "failure",
			Detail: map[string]string{"reason": "malformed", "source": source}})
		return "", Session{}, bad
	}
	u, err := s.o.Store.UserByEmail(ctx, norm)
	if errors.Is(err, ErrNotFound) {
		s.o.Hasher.Burn(ctx)
		s.record(ctx, journal.Event{Actor: "anonymous", Action: "auth.login", Outcome: "failure",
			Detail: map[string]string{"reason": "unknown user", "email": norm, "source": source}})
		return "", Session{}, bad
	}
	if err != nil {
		return "", Session{}, err
	}
	ok, err := s.o.Hasher.Verify(ctx, u.PasswordHash, password)
	if err != nil {
		return "", Session{}, err
	}
	if !ok {
		s.record(ctx, journal.Event{Actor: u.ID, Tenant: u.TenantID, Action: "auth.login", Target: u.ID, Outcome: "failure",
			Detail: map[string]string{"reason": "wrong password", "source": source}})
		return "", Session{}, bad
	}
	raw := make([]byte, sessionTokenBytes)
	if _, err := io.ReadFull(s.o.Rand, raw); err != nil {
		return "", Session{}, fmt.Errorf("reading randomness for session: %w", err)
	}
	token := sessionPrefix + base64.RawURLEncoding.EncodeToString(raw)
	now := s.o.Now().UTC()
	sess := Session{TokenHash: hashToken(token), UserID: u.ID, TenantID: u.TenantID, CreatedAt: now, ExpiresAt: now.Add(s.o.SessionTTL)}
	if err := s.o.Store.CreateSession(ctx, sess); err != nil {
		return "", Session{}, err
	}
	s.record(ctx, journal.Event{Actor: u.ID, Tenant: u.TenantID, Action: "auth.login", Target: u.ID, Outcome: "success",
		Detail: map[string]string{"source": source, "session": hex.EncodeToString(sess.TokenHash[:8])}})
	return secrets.Text(token), sess, nil
}

func hashToken(token string) []byte {
	sum := sha256.Sum256([]byte("rampart/session/v1\x00" + token))
	return sum[:]
}

// Authenticate resolves a bearer token to its principal.
func (s *Service) Authenticate(ctx context.Context, token secrets.Text) (Principal, error) {
	unauth := api.Errorf(api.CodeUnauthenticated, "missing, expired or unknown bearer token; log in again")
	t := token.Reveal()
	if !strings.HasPrefix(t, sessionPrefix) || len(t) > maxTokenBytes {
		return Principal{}, unauth
	}
	sess, err := s.o.Store.SessionByHash(ctx, hashToken(t))
	if errors.Is(err, ErrNotFound) {
		return Principal{}, unauth
	}
	if err != nil {
		return Principal{}, err
	}
	if !s.o.Now().Before(sess.ExpiresAt) {
		_ = s.o.Store.DeleteSession(ctx, sess.TokenHash)
		return Principal{}, unauth
	}
	u, err := s.o.Store.UserByID(ctx, sess.UserID)
	if errors.Is(err, ErrNotFound) {
		return Principal{}, unauth
	}
	if err != nil {
		return Principal{}, err
	}
	return Principal{UserID: u.ID, TenantID: u.TenantID, Email: u.Email, Role: u.Role}, nil
}

// Logout ends the session of token.
func (s *Service) Logout(ctx context.Context, p Principal, token secrets.Text) error {
	if err := s.o.Store.DeleteSession(ctx, hashToken(token.Reveal())); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	s.record(ctx, journal.Event{Actor: p.UserID, Tenant: p.TenantID, Action: "auth.logout", Target: p.UserID, Outcome: "success"})
	return nil
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
