package accounts

import (
	"context"
	"time"
)

// Invitation is a single-use invite to join a tenant, stored by its hash.
type Invitation struct {
	ID        string
	TenantID  string
	Email     string
	Role      Role
	TokenHash []byte
	CreatedBy string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// ResetToken is an admin-issued, single-use password reset, stored by its hash.
type ResetToken struct {
	TokenHash []byte
	UserID    string
	TenantID  string
	CreatedBy string
	ExpiresAt time.Time
}

// APIToken is a scoped credential for automation, stored by its hash.
type APIToken struct {
	ID        string
	TenantID  string
	CreatedBy string // user ID; the token never exceeds this user's role
	Name      string
	TokenHash []byte
	Scopes    []Permission
	CreatedAt time.Time
	ExpiresAt time.Time // zero: never (only with an explicit flag, flagged in lists)
	LastUsed  time.Time // zero: never used
	Revoked   bool
}

// MoreStore is the storage the accounts issue (#3) adds. Every method that
// takes a tenant ID matches it in the same statement, so an object of
// another tenant is ErrNotFound, exactly like a missing one.
type MoreStore interface {
	// CreateTenantWithOwner creates a tenant and its first user (open sign-up).
	CreateTenantWithOwner(ctx context.Context, t Tenant, u User) error
	TenantByID(ctx context.Context, id string) (Tenant, error)
	SetTenantRequireMFA(ctx context.Context, tenantID string, require bool) error

	ListUsers(ctx context.Context, tenantID string) ([]User, error)
	SetPassword(ctx context.Context, userID, phc string) error
	SetRole(ctx context.Context, tenantID, userID string, role Role) error
	// DeleteUser removes a user, its sessions, recovery codes and tokens.
	DeleteUser(ctx context.Context, tenantID, userID string) error
	CountOwners(ctx context.Context, tenantID string) (int, error)
	// SetTOTP stores the pending and confirmed TOTP secrets (sealed) and
	// whether MFA is on; lastStep resets with a new secret.
	SetTOTP(ctx context.Context, userID string, pending, secret []byte, enabled bool) error
	// AdvanceTOTPStep records step as used if it is later than the last
	// used one, atomically; false means the code was already used.
	AdvanceTOTPStep(ctx context.Context, userID string, step int64) (bool, error)
	ReplaceRecoveryCodes(ctx context.Context, userID string, hashes [][]byte) error
	// UseRecoveryCode spends a recovery code; false if none matches.
	UseRecoveryCode(ctx context.Context, userID string, hash []byte) (bool, error)

	// AddLoginFailure increments the consecutive failures and returns them.
	AddLoginFailure(ctx context.Context, userID string) (int, error)
	ResetLoginFailures(ctx context.Context, userID string) error
	SetHardLock(ctx context.Context, userID string, locked bool) error

	TouchSession(ctx context.Context, hash []byte, at time.Time) error
	// DeleteUserSessions ends every session of userID except keep (may be nil).
	DeleteUserSessions(ctx context.Context, userID string, keep []byte) (int, error)

	CreateInvitation(ctx context.Context, inv Invitation) error
	ListInvitations(ctx context.Context, tenantID string, now time.Time) ([]Invitation, error)
	DeleteInvitation(ctx context.Context, tenantID, id string) error
	// AcceptInvitation, in one transaction: finds the unexpired invitation
	// by hash (ErrNotFound otherwise), deletes it, creates u from it.
	AcceptInvitation(ctx context.Context, hash []byte, now time.Time, build func(Invitation) (User, error)) (User, error)

	CreateReset(ctx context.Context, r ResetToken) error
	// UseReset, in one transaction: finds the unexpired reset by hash,
	// deletes it (and every other reset of that user), and returns it.
	UseReset(ctx context.Context, hash []byte, now time.Time) (ResetToken, error)

	CreateAPIToken(ctx context.Context, t APIToken) error
	APITokenByHash(ctx context.Context, hash []byte) (APIToken, error)
	ListAPITokens(ctx context.Context, tenantID string) ([]APIToken, error)
	RevokeAPIToken(ctx context.Context, tenantID, id string, at time.Time) error
	TouchAPIToken(ctx context.Context, id string, at time.Time) error
}
