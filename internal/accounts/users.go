package accounts

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/journal"
	"github.com/rampart-iot/rampart/internal/secrets"
)

// notFound is the one answer for a missing object and another tenant's.
func notFound(what string) error {
	return api.Errorf(api.CodeNotFound, "no such %s", what)
}

// userInTenant loads a user of the principal's tenant; another tenant's
// user is "no such user", exactly as a missing one.
func (s *Service) userInTenant(ctx context.Context, p Principal, id string) (User, error) {
	u, err := s.o.Store.UserByID(ctx, id)
	if errors.Is(err, ErrNotFound) || (err == nil && u.TenantID != p.TenantID) {
		return User{}, notFound("user")
	}
	return u, err
}

func checkName(what, name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" || utf8.RuneCountInString(name) > maxNameRunes || !utf8.ValidString(name) || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "", api.Errorf(api.CodeInvalid, "%s must be 1 to %d printable characters", what, maxNameRunes)
	}
	return name, nil
}

// Signup creates a new tenant with its owner, when open sign-up is on.
// Every attempt counts against the source address's throttle, so the
// endpoint cannot be used to test many emails for registration quickly.
func (s *Service) Signup(ctx context.Context, email string, password secrets.Text, tenantName, source string) (User, error) {
	if !s.o.OpenSignup {
		return User{}, api.Errorf(api.CodeForbidden, "open sign-up is off on this hub; ask an owner or admin of your organisation for an invitation")
	}
	srcKey := "src\x00" + source
	if d := s.throttle.wait(srcKey); d > 0 {
		return User{}, throttled(d)
	}
	s.throttle.fail(srcKey, sourceFreeFailures)
	email, err := ValidateEmail(email)
	if err != nil {
		return User{}, err
	}
	name, err := checkName("tenant_name", tenantName)
	if err != nil {
		return User{}, err
	}
	if err := CheckPasswordPolicy(password, PasswordContext{Email: email, TenantName: name}); err != nil {
		return User{}, err
	}
	phc, err := s.o.Hasher.Hash(ctx, password)
	if err != nil {
		return User{}, err
	}
	tid, err := newID(s.o.Rand, "tnt")
	if err != nil {
		return User{}, err
	}
	uid, err := newID(s.o.Rand, "usr")
	if err != nil {
		return User{}, err
	}
	now := s.o.Now().UTC()
	t := Tenant{ID: tid, Name: name, CreatedAt: now}
	u := User{ID: uid, TenantID: tid, Email: email, PasswordHash: phc, Role: RoleOwner, CreatedAt: now}
	if err := s.o.Store.CreateTenantWithOwner(ctx, t, u); err != nil {
		if errors.Is(err, ErrEmailTaken) {
			s.record(ctx, journal.Event{Actor: "anonymous", Action: "tenant.signup", Outcome: "failure", Detail: map[string]string{"reason": "email taken", "source": source}})
			return User{}, api.Errorf(api.CodeConflict, "that email cannot be registered; log in, or ask for an invitation")
		}
		return User{}, err
	}
	s.record(ctx, journal.Event{Actor: u.ID, Tenant: t.ID, Action: "tenant.signup", Target: t.ID, Outcome: "success",
		Detail: map[string]string{"email": email, "source": source}})
	return u, nil
}

// TenantOf returns the principal's tenant.
func (s *Service) TenantOf(ctx context.Context, p Principal) (Tenant, error) {
	return s.o.Store.TenantByID(ctx, p.TenantID)
}

// SetRequireMFA makes a second factor mandatory (or not) for the tenant.
func (s *Service) SetRequireMFA(ctx context.Context, p Principal, require bool) (Tenant, error) {
	if err := s.o.Store.SetTenantRequireMFA(ctx, p.TenantID, require); err != nil {
		return Tenant{}, err
	}
	s.record(ctx, journal.Event{Actor: p.Actor(), Tenant: p.TenantID, Action: "tenant.require_mfa", Target: p.TenantID, Outcome: "success",
		Detail: map[string]string{"require_mfa": fmt.Sprint(require)}})
	return s.o.Store.TenantByID(ctx, p.TenantID)
}

// ListUsers lists the principal's tenant's users.
func (s *Service) ListUsers(ctx context.Context, p Principal) ([]User, error) {
	return s.o.Store.ListUsers(ctx, p.TenantID)
}

// GetUser returns a user of the principal's tenant.
func (s *Service) GetUser(ctx context.Context, p Principal, id string) (User, error) {
	return s.userInTenant(ctx, p, id)
}

// canManage: only an owner may act on an owner or grant the owner role; a
// user may not grant a role above their own.
func canManage(actor Role, target, newRole Role) bool {
	if target == RoleOwner || newRole == RoleOwner {
		return actor == RoleOwner
	}
	return roleRank(actor) >= roleRank(newRole) && roleRank(actor) >= roleRank(target)
}

// SetRole changes a user's role. The user's sessions end (a privilege
// change always means a new token), and the last owner cannot be demoted.
func (s *Service) SetRole(ctx context.Context, p Principal, id string, role Role) (User, error) {
	if !ValidRole(role) {
		return User{}, api.Errorf(api.CodeInvalid, "role must be owner, admin, operator or viewer")
	}
	u, err := s.userInTenant(ctx, p, id)
	if err != nil {
		return User{}, err
	}
	if !canManage(p.Role, u.Role, role) {
		return User{}, api.Errorf(api.CodeForbidden, "your role (%s) may not change a %s into a %s", p.Role, u.Role, role)
	}
	if u.Role == role {
		return u, nil
	}
	if u.Role == RoleOwner {
		if err := s.keepAnOwner(ctx, p.TenantID); err != nil {
			return User{}, err
		}
	}
	if err := s.o.Store.SetRole(ctx, p.TenantID, u.ID, role); err != nil {
		return User{}, err
	}
	n, err := s.o.Store.DeleteUserSessions(ctx, u.ID, nil)
	if err != nil {
		return User{}, err
	}
	s.record(ctx, journal.Event{Actor: p.Actor(), Tenant: p.TenantID, Action: "user.role_changed", Target: u.ID, Outcome: "success",
		Detail: map[string]string{"from": string(u.Role), "to": string(role), "sessions_ended": fmt.Sprint(n)}})
	u.Role = role
	return u, nil
}

func (s *Service) keepAnOwner(ctx context.Context, tenantID string) error {
	n, err := s.o.Store.CountOwners(ctx, tenantID)
	if err != nil {
		return err
	}
	if n <= 1 {
		return api.Errorf(api.CodeConflict, "this is the tenant's last owner; make another user an owner first")
	}
	return nil
}

// DeleteUser removes a user of the tenant with their sessions and tokens.
func (s *Service) DeleteUser(ctx context.Context, p Principal, id string) error {
	u, err := s.userInTenant(ctx, p, id)
	if err != nil {
		return err
	}
	if !canManage(p.Role, u.Role, u.Role) {
		return api.Errorf(api.CodeForbidden, "your role (%s) may not remove a %s", p.Role, u.Role)
	}
	if u.Role == RoleOwner {
		if err := s.keepAnOwner(ctx, p.TenantID); err != nil {
			return err
		}
	}
	if err := s.o.Store.DeleteUser(ctx, p.TenantID, u.ID); err != nil {
		if errors.Is(err, ErrNotFound) {
			return notFound("user")
		}
		return err
	}
	s.record(ctx, journal.Event{Actor: p.Actor(), Tenant: p.TenantID, Action: "user.removed", Target: u.ID, Outcome: "success",
		Detail: map[string]string{"email": u.Email, "role": string(u.Role)}})
	return nil
}

// Invite creates a single-use invitation (its token is shown once).
func (s *Service) Invite(ctx context.Context, p Principal, email string, role Role) (Invitation, secrets.Text, error) {
	email, err := ValidateEmail(email)
	if err != nil {
		return Invitation{}, "", err
	}
	if !ValidRole(role) {
		return Invitation{}, "", api.Errorf(api.CodeInvalid, "role must be owner, admin, operator or viewer")
	}
	if !canManage(p.Role, role, role) {
		return Invitation{}, "", api.Errorf(api.CodeForbidden, "your role (%s) may not invite a %s", p.Role, role)
	}
	token, err := s.newToken(invitePrefix)
	if err != nil {
		return Invitation{}, "", err
	}
	id, err := newID(s.o.Rand, "inv")
	if err != nil {
		return Invitation{}, "", err
	}
	now := s.o.Now().UTC()
	inv := Invitation{ID: id, TenantID: p.TenantID, Email: email, Role: role, TokenHash: hashSecret("invite", token),
		CreatedBy: p.UserID, CreatedAt: now, ExpiresAt: now.Add(s.o.InviteTTL)}
	if err := s.o.Store.CreateInvitation(ctx, inv); err != nil {
		return Invitation{}, "", err
	}
	s.record(ctx, journal.Event{Actor: p.Actor(), Tenant: p.TenantID, Action: "user.invited", Target: id, Outcome: "success",
		Detail: map[string]string{"email": email, "role": string(role), "expires_at": inv.ExpiresAt.Format(time.RFC3339)}})
	return inv, secrets.Text(token), nil
}

// ListInvitations lists the tenant's pending invitations.
func (s *Service) ListInvitations(ctx context.Context, p Principal) ([]Invitation, error) {
	return s.o.Store.ListInvitations(ctx, p.TenantID, s.o.Now())
}

// RevokeInvitation deletes a pending invitation of the tenant.
func (s *Service) RevokeInvitation(ctx context.Context, p Principal, id string) error {
	if err := s.o.Store.DeleteInvitation(ctx, p.TenantID, id); err != nil {
		if errors.Is(err, ErrNotFound) {
			return notFound("invitation")
		}
		return err
	}
	s.record(ctx, journal.Event{Actor: p.Actor(), Tenant: p.TenantID, Action: "user.invitation_revoked", Target: id, Outcome: "success"})
	return nil
}

// AcceptInvitation spends an invitation to create the invited user.
func (s *Service) AcceptInvitation(ctx context.Context, token, password secrets.Text, source string) (User, error) {
	gone := api.Errorf(api.CodeNotFound, "this invitation does not exist, was already used, or has expired; ask for a new one")
	t := token.Reveal()
	if !strings.HasPrefix(t, invitePrefix) || len(t) > maxTokenBytes {
		return User{}, gone
	}
	srcKey := "src\x00" + source
	if d := s.throttle.wait(srcKey); d > 0 {
		return User{}, throttled(d)
	}
	var tenantName string
	u, err := s.o.Store.AcceptInvitation(ctx, hashSecret("invite", t), s.o.Now(), func(inv Invitation) (User, error) {
		if tn, err := s.o.Store.TenantByID(ctx, inv.TenantID); err == nil {
			tenantName = tn.Name
		}
		if err := CheckPasswordPolicy(password, PasswordContext{Email: inv.Email, TenantName: tenantName}); err != nil {
			return User{}, err
		}
		phc, err := s.o.Hasher.Hash(ctx, password)
		if err != nil {
			return User{}, err
		}
		id, err := newID(s.o.Rand, "usr")
		if err != nil {
			return User{}, err
		}
		return User{ID: id, TenantID: inv.TenantID, Email: inv.Email, PasswordHash: phc, Role: inv.Role, CreatedAt: s.o.Now().UTC()}, nil
	})
	if errors.Is(err, ErrNotFound) {
		s.throttle.fail(srcKey, sourceFreeFailures)
		s.record(ctx, journal.Event{Actor: "anonymous", Action: "user.invitation_accepted", Outcome: "failure",
			Detail: map[string]string{"reason": "unknown, used or expired", "source": source}})
		return User{}, gone
	}
	if errors.Is(err, ErrEmailTaken) {
		return User{}, api.Errorf(api.CodeConflict, "an account with this email exists already; log in instead")
	}
	if err != nil {
		return User{}, err
	}
	s.record(ctx, journal.Event{Actor: u.ID, Tenant: u.TenantID, Action: "user.invitation_accepted", Target: u.ID, Outcome: "success",
		Detail: map[string]string{"email": u.Email, "role": string(u.Role), "source": source}})
	return u, nil
}

// IssueReset creates a single-use reset link for a user of the tenant.
func (s *Service) IssueReset(ctx context.Context, p Principal, id string) (secrets.Text, time.Time, error) {
	u, err := s.userInTenant(ctx, p, id)
	if err != nil {
		return "", time.Time{}, err
	}
	if !canManage(p.Role, u.Role, u.Role) {
		return "", time.Time{}, api.Errorf(api.CodeForbidden, "your role (%s) may not reset a %s's password", p.Role, u.Role)
	}
	token, err := s.newToken(resetTokenPrefix)
	if err != nil {
		return "", time.Time{}, err
	}
	exp := s.o.Now().UTC().Add(s.o.ResetTTL)
	if err := s.o.Store.CreateReset(ctx, ResetToken{TokenHash: hashSecret("reset", token), UserID: u.ID, TenantID: u.TenantID, CreatedBy: p.UserID, ExpiresAt: exp}); err != nil {
		return "", time.Time{}, err
	}
	s.record(ctx, journal.Event{Actor: p.Actor(), Tenant: p.TenantID, Action: "user.reset_issued", Target: u.ID, Outcome: "success",
		Detail: map[string]string{"expires_at": exp.Format(time.RFC3339)}})
	return secrets.Text(token), exp, nil
}

// ResetPassword spends a reset link: sets the new password, lifts a hard
// lock, ends every session of the user.
func (s *Service) ResetPassword(ctx context.Context, token, password secrets.Text, source string) error {
	gone := api.Errorf(api.CodeNotFound, "this reset link does not exist, was already used, or has expired; ask an admin for a new one")
	t := token.Reveal()
	if !strings.HasPrefix(t, resetTokenPrefix) || len(t) > maxTokenBytes {
		return gone
	}
	srcKey := "src\x00" + source
	if d := s.throttle.wait(srcKey); d > 0 {
		return throttled(d)
	}
	r, err := s.o.Store.UseReset(ctx, hashSecret("reset", t), s.o.Now())
	if errors.Is(err, ErrNotFound) {
		s.throttle.fail(srcKey, sourceFreeFailures)
		s.record(ctx, journal.Event{Actor: "anonymous", Action: "user.password_reset", Outcome: "failure",
			Detail: map[string]string{"reason": "unknown, used or expired", "source": source}})
		return gone
	}
	if err != nil {
		return err
	}
	u, err := s.o.Store.UserByID(ctx, r.UserID)
	if err != nil {
		return gone
	}
	tn, _ := s.o.Store.TenantByID(ctx, u.TenantID)
	if err := CheckPasswordPolicy(password, PasswordContext{Email: u.Email, TenantName: tn.Name, HasMFA: u.MFAEnabled}); err != nil {
		// The link is spent either way: a reset link is not a place to
		// try passwords. Re-issue it for the same user.
		if _, rerr := s.reissue(ctx, r); rerr != nil {
			return rerr
		}
		return err
	}
	phc, err := s.o.Hasher.Hash(ctx, password)
	if err != nil {
		return err
	}
	if err := s.o.Store.SetPassword(ctx, u.ID, phc); err != nil {
		return err
	}
	if err := s.o.Store.ResetLoginFailures(ctx, u.ID); err != nil {
		return err
	}
	if u.HardLocked {
		if err := s.o.Store.SetHardLock(ctx, u.ID, false); err != nil {
			return err
		}
	}
	n, err := s.o.Store.DeleteUserSessions(ctx, u.ID, nil)
	if err != nil {
		return err
	}
	s.record(ctx, journal.Event{Actor: u.ID, Tenant: u.TenantID, Action: "user.password_reset", Target: u.ID, Outcome: "success",
		Detail: map[string]string{"issued_by": r.CreatedBy, "sessions_ended": fmt.Sprint(n), "unlocked": fmt.Sprint(u.HardLocked), "source": source}})
	return nil
}

// reissue puts back a reset spent on a password the policy refused, with
// the same token hash and expiry, so the user can try a better password.
func (s *Service) reissue(ctx context.Context, r ResetToken) (ResetToken, error) {
	return r, s.o.Store.CreateReset(ctx, r)
}

// ChangePassword needs the current password; it ends every other session.
func (s *Service) ChangePassword(ctx context.Context, p Principal, token, current, next secrets.Text) error {
	u, err := s.o.Store.UserByID(ctx, p.UserID)
	if err != nil {
		return err
	}
	ok, err := s.o.Hasher.Verify(ctx, u.PasswordHash, current)
	if err != nil {
		return err
	}
	if !ok {
		s.record(ctx, journal.Event{Actor: p.UserID, Tenant: p.TenantID, Action: "user.password_changed", Target: p.UserID, Outcome: "failure",
			Detail: map[string]string{"reason": "wrong current password"}})
		return api.Errorf(api.CodeForbidden, "the current password is wrong")
	}
	tn, _ := s.o.Store.TenantByID(ctx, u.TenantID)
	if err := CheckPasswordPolicy(next, PasswordContext{Email: u.Email, TenantName: tn.Name, HasMFA: u.MFAEnabled}); err != nil {
		return err
	}
	phc, err := s.o.Hasher.Hash(ctx, next)
	if err != nil {
		return err
	}
	if err := s.o.Store.SetPassword(ctx, u.ID, phc); err != nil {
		return err
	}
	n, err := s.o.Store.DeleteUserSessions(ctx, u.ID, hashToken(token.Reveal()))
	if err != nil {
		return err
	}
	s.record(ctx, journal.Event{Actor: p.UserID, Tenant: p.TenantID, Action: "user.password_changed", Target: p.UserID, Outcome: "success",
		Detail: map[string]string{"other_sessions_ended": fmt.Sprint(n)}})
	return nil
}

func totpAAD(userID string) []byte { return []byte("rampart/totp/v1\x00" + userID) }

func (s *Service) openTOTP(userID string, sealed []byte) ([]byte, error) {
	if len(sealed) == 0 {
		return nil, errors.New("no TOTP secret")
	}
	return s.o.Sealer.Open(sealed, totpAAD(userID))
}

// BeginTOTP makes a new TOTP secret for the user (pending until confirmed)
// and returns it (base32) with its otpauth:// URI, shown once.
func (s *Service) BeginTOTP(ctx context.Context, p Principal) (secrets.Text, secrets.Text, error) {
	u, err := s.o.Store.UserByID(ctx, p.UserID)
	if err != nil {
		return "", "", err
	}
	if u.MFAEnabled {
		return "", "", api.Errorf(api.CodeConflict, "TOTP is already on; turn it off first to enrol a new authenticator")
	}
	secret := make([]byte, totpSecretSize)
	if _, err := io.ReadFull(s.o.Rand, secret); err != nil {
		return "", "", err
	}
	sealed, err := s.o.Sealer.Seal(secret, totpAAD(u.ID))
	if err != nil {
		return "", "", err
	}
	if err := s.o.Store.SetTOTP(ctx, u.ID, sealed, nil, false); err != nil {
		return "", "", err
	}
	s.record(ctx, journal.Event{Actor: p.UserID, Tenant: p.TenantID, Action: "mfa.totp_enrolment_started", Target: p.UserID, Outcome: "success"})
	return secrets.Text(codeEncoding.EncodeToString(secret)), secrets.Text(totpURI(secret, u.Email)), nil
}

// ConfirmTOTP turns TOTP on with a code from the pending secret, returns
// one-time recovery codes and a new session token: every session of the
// user, this one included, ends (a change of security level means a new
// token).
func (s *Service) ConfirmTOTP(ctx context.Context, p Principal, code string) ([]string, secrets.Text, Session, error) {
	u, err := s.o.Store.UserByID(ctx, p.UserID)
	if err != nil {
		return nil, "", Session{}, err
	}
	if u.MFAEnabled || len(u.TOTPPending) == 0 {
		return nil, "", Session{}, api.Errorf(api.CodeConflict, "no TOTP enrolment is pending; start one with POST /api/v1/me/mfa/totp")
	}
	secret, err := s.openTOTP(u.ID, u.TOTPPending)
	if err != nil {
		return nil, "", Session{}, err
	}
	step, ok := matchTOTP(secret, code, s.o.Now())
	if !ok {
		s.record(ctx, journal.Event{Actor: p.UserID, Tenant: p.TenantID, Action: "mfa.totp_enabled", Target: p.UserID, Outcome: "failure",
			Detail: map[string]string{"reason": "wrong code"}})
		return nil, "", Session{}, api.Errorf(api.CodeInvalid, "that code does not match; check the authenticator app's clock and try the next code")
	}
	if err := s.o.Store.SetTOTP(ctx, u.ID, nil, u.TOTPPending, true); err != nil {
		return nil, "", Session{}, err
	}
	if _, err := s.o.Store.AdvanceTOTPStep(ctx, u.ID, step); err != nil {
		return nil, "", Session{}, err
	}
	codes, err := s.newRecoveryCodes(ctx, u.ID)
	if err != nil {
		return nil, "", Session{}, err
	}
	if _, err := s.o.Store.DeleteUserSessions(ctx, u.ID, nil); err != nil {
		return nil, "", Session{}, err
	}
	u.MFAEnabled = true
	tok, sess, err := s.newSession(ctx, u)
	if err != nil {
		return nil, "", Session{}, err
	}
	s.record(ctx, journal.Event{Actor: p.UserID, Tenant: p.TenantID, Action: "mfa.totp_enabled", Target: p.UserID, Outcome: "success",
		Detail: map[string]string{"recovery_codes": fmt.Sprint(len(codes)), "session": short(sess.TokenHash)}})
	return codes, tok, sess, nil
}

// DisableTOTP turns TOTP off; it needs the current password, is refused
// while the tenant requires MFA, and is refused when the password is
// shorter than the no-MFA minimum (it was allowed only because of MFA).
func (s *Service) DisableTOTP(ctx context.Context, p Principal, password secrets.Text) error {
	u, err := s.o.Store.UserByID(ctx, p.UserID)
	if err != nil {
		return err
	}
	ok, err := s.o.Hasher.Verify(ctx, u.PasswordHash, password)
	if err != nil {
		return err
	}
	if !ok {
		return api.Errorf(api.CodeForbidden, "the current password is wrong")
	}
	if t, err := s.o.Store.TenantByID(ctx, u.TenantID); err == nil && t.RequireMFA {
		return api.Errorf(api.CodeConflict, "your tenant requires a second factor; it cannot be turned off")
	}
	if utf8.RuneCountInString(NormalizePassword(password).Reveal()) < minPasswordRunes {
		return api.Errorf(api.CodeConflict, "your password is shorter than %d characters, allowed only with a second factor; change it first", minPasswordRunes)
	}
	if err := s.o.Store.SetTOTP(ctx, u.ID, nil, nil, false); err != nil {
		return err
	}
	if err := s.o.Store.ReplaceRecoveryCodes(ctx, u.ID, nil); err != nil {
		return err
	}
	s.record(ctx, journal.Event{Actor: p.UserID, Tenant: p.TenantID, Action: "mfa.totp_disabled", Target: p.UserID, Outcome: "success"})
	return nil
}

func hashRecoveryCode(code string) []byte {
	c := strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(code))
	sum := sha256.Sum256([]byte("rampart/recovery-code/v1\x00" + c))
	return sum[:]
}

func (s *Service) newRecoveryCodes(ctx context.Context, userID string) ([]string, error) {
	codes := make([]string, recoveryCodes)
	hashes := make([][]byte, recoveryCodes)
	for i := range codes {
		b := make([]byte, recoveryCodeBytes)
		if _, err := io.ReadFull(s.o.Rand, b); err != nil {
			return nil, err
		}
		c := codeEncoding.EncodeToString(b)[:10]
		codes[i] = c[:5] + "-" + c[5:]
		hashes[i] = hashRecoveryCode(codes[i])
	}
	if err := s.o.Store.ReplaceRecoveryCodes(ctx, userID, hashes); err != nil {
		return nil, err
	}
	return codes, nil
}
