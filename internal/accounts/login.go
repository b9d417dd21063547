package accounts

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/journal"
	"github.com/rampart-iot/rampart/internal/secrets"
)

// Token prefixes: a leaked token is recognisable (secret scanners) and its
// kind is known before any lookup.
const (
	apiTokenPrefix   = "rpt_"
	invitePrefix     = "rpi_"
	resetTokenPrefix = "rpr_"
)

// CodeMFARequired: the password was right and the account needs its TOTP
// code (or a recovery code) in the "totp" field.
const CodeMFARequired api.Code = "mfa_required"

// ThrottledError is a refusal with a time to wait (HTTP 429 + Retry-After).
type ThrottledError struct {
	Err   *api.Error
	After time.Duration
}

func (e *ThrottledError) Error() string { return e.Err.Error() }

// Unwrap lets api.ErrorCode find the code.
func (e *ThrottledError) Unwrap() error { return e.Err }

// RetryAfter is how long the client should wait.
func (e *ThrottledError) RetryAfter() time.Duration { return e.After }

func throttled(d time.Duration) error {
	secs := int((d + time.Second - 1) / time.Second)
	return &ThrottledError{After: time.Duration(secs) * time.Second,
		Err: api.Errorf(api.CodeRateLimited, "too many failed logins; wait %d seconds and try again", secs)}
}

// hashSecret hashes a high-entropy token for storage, with a domain label
// so a hash of one kind can never stand in for another.
func hashSecret(kind, token string) []byte {
	sum := sha256.Sum256([]byte("rampart/" + kind + "/v1\x00" + token))
	return sum[:]
}

func hashToken(token string) []byte { return hashSecret("session", token) }

// newToken returns prefix + 256 random bits, base64url.
func (s *Service) newToken(prefix string) (string, error) {
	raw := make([]byte, sessionTokenBytes)
	if _, err := io.ReadFull(s.o.Rand, raw); err != nil {
		return "", fmt.Errorf("reading randomness for token: %w", err)
	}
	return prefix + base64.RawURLEncoding.EncodeToString(raw), nil
}

func short(hash []byte) string { return hex.EncodeToString(hash[:8]) }

// Login checks a password (and second factor) and returns a new session
// token (shown once).
//
// No enumeration: an unknown email costs one hash and gets the same answer
// as a wrong password; a hard-locked account also gets that answer.
// Throttling: per source address and per (account, source), with doubling
// delays (429 + Retry-After) that are checked before any hashing, so an
// attacker at one address does not lock the owner out at another; 100
// consecutive failures from anywhere lock the account until an admin
// issues a reset link.
func (s *Service) Login(ctx context.Context, email string, password secrets.Text, source string) (secrets.Text, Session, error) {
	return s.LoginMFA(ctx, email, password, "", source)
}

// LoginMFA is Login with the "totp" field: a TOTP code or a recovery code.
func (s *Service) LoginMFA(ctx context.Context, email string, password secrets.Text, otp string, source string) (secrets.Text, Session, error) {
	bad := api.Errorf(api.CodeUnauthenticated, "wrong email or password")
	norm, err := ValidateEmail(email)
	if err != nil || len(password.Reveal()) == 0 || len(password.Reveal()) > maxPasswordBytes || len(otp) > 64 {
		norm = strings.ToLower(strings.TrimSpace(email))
		if len(norm) > maxEmailBytes {
			norm = norm[:maxEmailBytes]
		}
	}
	srcKey, acctKey := "src\x00"+source, "acct\x00"+norm+"\x00"+source
	if d := max(s.throttle.wait(srcKey), s.throttle.wait(acctKey)); d > 0 {
		s.record(ctx, journal.Event{Actor: "anonymous", Action: "auth.login", Outcome: "denied",
			Detail: map[string]string{"reason": "throttled", "email": norm, "source": source, "retry_after": d.Round(time.Second).String()}})
		return "", Session{}, throttled(d)
	}
	failed := func(u *User, reason string) error {
		d := max(s.throttle.fail(srcKey, sourceFreeFailures), s.throttle.fail(acctKey, accountSourceFreeFailures))
		e := journal.Event{Actor: "anonymous", Action: "auth.login", Outcome: "failure",
			Detail: map[string]string{"reason": reason, "email": norm, "source": source}}
		if u != nil {
			e.Actor, e.Tenant, e.Target = u.ID, u.TenantID, u.ID
			n, err := s.o.Store.AddLoginFailure(ctx, u.ID)
			if err != nil {
				return err
			}
			e.Detail["consecutive_failures"] = fmt.Sprint(n)
			if n >= hardLockFailures && !u.HardLocked {
				if err := s.o.Store.SetHardLock(ctx, u.ID, true); err != nil {
					return err
				}
				s.record(ctx, journal.Event{Actor: "system", Tenant: u.TenantID, Action: "auth.account_locked", Target: u.ID, Outcome: "success",
					Detail: map[string]string{"consecutive_failures": fmt.Sprint(n), "until": "reset by an admin"}})
			}
		}
		s.record(ctx, e)
		if d > 0 {
			s.record(ctx, journal.Event{Actor: "system", Tenant: e.Tenant, Action: "auth.throttled", Target: e.Target, Outcome: "success",
				Detail: map[string]string{"email": norm, "source": source, "lock": d.String()}})
		}
		return bad
	}
	if err != nil || len(password.Reveal()) == 0 || len(password.Reveal()) > maxPasswordBytes || len(otp) > 64 {
		s.o.Hasher.Burn(ctx)
		return "", Session{}, failed(nil, "malformed")
	}
	u, err := s.o.Store.UserByEmail(ctx, norm)
	if errors.Is(err, ErrNotFound) {
		s.o.Hasher.Burn(ctx)
		return "", Session{}, failed(nil, "unknown user")
	}
	if err != nil {
		return "", Session{}, err
	}
	ok, err := s.o.Hasher.Verify(ctx, u.PasswordHash, password)
	if err != nil {
		return "", Session{}, err
	}
	if !ok {
		return "", Session{}, failed(&u, "wrong password")
	}
	if u.HardLocked {
		return "", Session{}, failed(&u, "account locked")
	}
	if u.MFAEnabled {
		if otp == "" {
			s.record(ctx, journal.Event{Actor: u.ID, Tenant: u.TenantID, Action: "auth.login", Target: u.ID, Outcome: "pending",
				Detail: map[string]string{"reason": "second factor required", "source": source}})
			return "", Session{}, api.Errorf(CodeMFARequired, "this account uses a second factor: send the code from your authenticator app (or a recovery code) in \"totp\"")
		}
		method, err := s.checkSecondFactor(ctx, u, otp)
		if err != nil {
			return "", Session{}, err
		}
		if method == "" {
			return "", Session{}, failed(&u, "wrong second factor")
		}
		if method == "recovery_code" {
			s.record(ctx, journal.Event{Actor: u.ID, Tenant: u.TenantID, Action: "mfa.recovery_code_used", Target: u.ID, Outcome: "success",
				Detail: map[string]string{"source": source}})
		}
	}
	if u.FailedLogins > 0 {
		if err := s.o.Store.ResetLoginFailures(ctx, u.ID); err != nil {
			return "", Session{}, err
		}
	}
	s.throttle.reset(acctKey)
	if s.o.Hasher.NeedsRehash(u.PasswordHash) {
		if phc, err := s.o.Hasher.Hash(ctx, password); err == nil {
			if err := s.o.Store.SetPassword(ctx, u.ID, phc); err != nil {
				return "", Session{}, err
			}
			p := s.o.Hasher.Params()
			s.record(ctx, journal.Event{Actor: "system", Tenant: u.TenantID, Action: "auth.password_rehashed", Target: u.ID, Outcome: "success",
				Detail: map[string]string{"params": fmt.Sprintf("m=%d,t=%d,p=%d", p.Memory, p.Time, p.Threads)}})
		}
	}
	tok, sess, err := s.newSession(ctx, u)
	if err != nil {
		return "", Session{}, err
	}
	s.record(ctx, journal.Event{Actor: u.ID, Tenant: u.TenantID, Action: "auth.login", Target: u.ID, Outcome: "success",
		Detail: map[string]string{"source": source, "session": short(sess.TokenHash), "mfa": fmt.Sprint(u.MFAEnabled)}})
	return tok, sess, nil
}

// checkSecondFactor returns "totp" or "recovery_code" for a good code, ""
// for a bad one. A TOTP code is accepted once: its step must be later than
// the last one used.
func (s *Service) checkSecondFactor(ctx context.Context, u User, otp string) (string, error) {
	secret, err := s.openTOTP(u.ID, u.TOTPSecret)
	if err != nil {
		return "", err
	}
	if step, ok := matchTOTP(secret, otp, s.o.Now()); ok {
		fresh, err := s.o.Store.AdvanceTOTPStep(ctx, u.ID, step)
		if err != nil || !fresh {
			return "", err
		}
		return "totp", nil
	}
	if len(otp) > totpDigits {
		used, err := s.o.Store.UseRecoveryCode(ctx, u.ID, hashRecoveryCode(otp))
		if err != nil || !used {
			return "", err
		}
		return "recovery_code", nil
	}
	return "", nil
}

func (s *Service) newSession(ctx context.Context, u User) (secrets.Text, Session, error) {
	token, err := s.newToken(sessionPrefix)
	if err != nil {
		return "", Session{}, err
	}
	now := s.o.Now().UTC()
	sess := Session{TokenHash: hashToken(token), UserID: u.ID, TenantID: u.TenantID, CreatedAt: now, ExpiresAt: now.Add(s.o.SessionTTL), LastSeen: now}
	if err := s.o.Store.CreateSession(ctx, sess); err != nil {
		return "", Session{}, err
	}
	return secrets.Text(token), sess, nil
}

// Authenticate resolves a bearer token (a session or an API token) to its
// principal.
func (s *Service) Authenticate(ctx context.Context, token secrets.Text) (Principal, error) {
	unauth := api.Errorf(api.CodeUnauthenticated, "missing, expired or unknown bearer token; log in again")
	t := token.Reveal()
	if len(t) > maxTokenBytes {
		return Principal{}, unauth
	}
	if strings.HasPrefix(t, apiTokenPrefix) {
		return s.authenticateAPIToken(ctx, t, unauth)
	}
	if !strings.HasPrefix(t, sessionPrefix) {
		return Principal{}, unauth
	}
	sess, err := s.o.Store.SessionByHash(ctx, hashToken(t))
	if errors.Is(err, ErrNotFound) {
		return Principal{}, unauth
	}
	if err != nil {
		return Principal{}, err
	}
	now := s.o.Now()
	if !now.Before(sess.ExpiresAt) || now.Sub(sess.LastSeen) >= s.o.IdleTTL {
		_ = s.o.Store.DeleteSession(ctx, sess.TokenHash)
		reason := "absolute expiry"
		if now.Before(sess.ExpiresAt) {
			reason = "idle expiry"
		}
		s.record(ctx, journal.Event{Actor: "system", Tenant: sess.TenantID, Action: "auth.session_expired", Target: sess.UserID, Outcome: "success",
			Detail: map[string]string{"session": short(sess.TokenHash), "reason": reason}})
		return Principal{}, unauth
	}
	u, err := s.o.Store.UserByID(ctx, sess.UserID)
	if errors.Is(err, ErrNotFound) {
		return Principal{}, unauth
	}
	if err != nil {
		return Principal{}, err
	}
	if u.HardLocked {
		return Principal{}, unauth
	}
	if now.Sub(sess.LastSeen) >= sessionTouchEvery {
		if err := s.o.Store.TouchSession(ctx, sess.TokenHash, now); err != nil {
			return Principal{}, err
		}
	}
	p := Principal{UserID: u.ID, TenantID: u.TenantID, Email: u.Email, Role: u.Role}
	if !u.MFAEnabled {
		t, err := s.o.Store.TenantByID(ctx, u.TenantID)
		if err != nil {
			return Principal{}, err
		}
		p.MFASetupRequired = t.RequireMFA
	}
	return p, nil
}

func (s *Service) authenticateAPIToken(ctx context.Context, t string, unauth error) (Principal, error) {
	tok, err := s.o.Store.APITokenByHash(ctx, hashSecret("api-token", t))
	if errors.Is(err, ErrNotFound) {
		return Principal{}, unauth
	}
	if err != nil {
		return Principal{}, err
	}
	now := s.o.Now()
	if tok.Revoked || (!tok.ExpiresAt.IsZero() && !now.Before(tok.ExpiresAt)) {
		return Principal{}, api.Errorf(api.CodeUnauthenticated, "this API token is revoked or expired; create a new one")
	}
	u, err := s.o.Store.UserByID(ctx, tok.CreatedBy)
	if errors.Is(err, ErrNotFound) {
		return Principal{}, unauth
	}
	if err != nil {
		return Principal{}, err
	}
	if u.TenantID != tok.TenantID || u.HardLocked {
		return Principal{}, unauth
	}
	if now.Sub(tok.LastUsed) >= sessionTouchEvery {
		if err := s.o.Store.TouchAPIToken(ctx, tok.ID, now); err != nil {
			return Principal{}, err
		}
	}
	return Principal{UserID: u.ID, TenantID: tok.TenantID, Email: u.Email, Role: u.Role, TokenID: tok.ID, Scopes: tok.Scopes}, nil
}

// Logout ends the session of token.
func (s *Service) Logout(ctx context.Context, p Principal, token secrets.Text) error {
	if err := s.o.Store.DeleteSession(ctx, hashToken(token.Reveal())); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	s.record(ctx, journal.Event{Actor: p.UserID, Tenant: p.TenantID, Action: "auth.logout", Target: p.UserID, Outcome: "success"})
	return nil
}

// LogoutAll ends every session of the principal's user, this one included.
func (s *Service) LogoutAll(ctx context.Context, p Principal) error {
	n, err := s.o.Store.DeleteUserSessions(ctx, p.UserID, nil)
	if err != nil {
		return err
	}
	s.record(ctx, journal.Event{Actor: p.UserID, Tenant: p.TenantID, Action: "auth.logout_everywhere", Target: p.UserID, Outcome: "success",
		Detail: map[string]string{"sessions": fmt.Sprint(n)}})
	return nil
}
