package api

// Account, tenant and token wire types (issue #3). Times are RFC 3339 UTC.

// SignupRequest is the body of POST /api/v1/signup (only when open sign-up is on).
type SignupRequest struct {
	Email      string `json:"email"`
	Password   string `json:"password"`
	TenantName string `json:"tenant_name"`
}

// User is a user as the API shows it.
type User struct {
	ID         string `json:"id"`
	TenantID   string `json:"tenant_id"`
	Email      string `json:"email"`
	Role       string `json:"role"`
	MFAEnabled bool   `json:"mfa_enabled"`
	Locked     bool   `json:"locked"`
	CreatedAt  string `json:"created_at"`
}

// UserList is returned by GET /api/v1/users.
type UserList struct {
	Users []User `json:"users"`
}

// RoleRequest is the body of PATCH /api/v1/users/{id}.
type RoleRequest struct {
	Role string `json:"role"`
}

// Tenant is returned by GET and PATCH /api/v1/tenant.
type Tenant struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	RequireMFA bool   `json:"require_mfa"`
	CreatedAt  string `json:"created_at"`
}

// TenantRequest is the body of PATCH /api/v1/tenant.
type TenantRequest struct {
	RequireMFA *bool `json:"require_mfa"`
}

// InviteRequest is the body of POST /api/v1/invitations.
type InviteRequest struct {
	Email string `json:"email"`
	Role  string `json:"role"`
}

// Invitation is a pending invitation; Token is set only in the answer to
// its creation (shown once).
type Invitation struct {
	ID        string `json:"id"`
	Email     string `json:"email"`
	Role      string `json:"role"`
	ExpiresAt string `json:"expires_at"`
	Token     string `json:"token,omitempty"`
}

// InvitationList is returned by GET /api/v1/invitations.
type InvitationList struct {
	Invitations []Invitation `json:"invitations"`
}

// AcceptInvitationRequest is the body of POST /api/v1/invitations/accept.
type AcceptInvitationRequest struct {
	Token    string `json:"token"`
	Password string `json:"password"`
}

// ResetLink is returned by POST /api/v1/users/{id}/reset-link (shown once).
type ResetLink struct {
	Token     string `json:"token"`
	ExpiresAt string `json:"expires_at"`
}

// PasswordResetRequest is the body of POST /api/v1/password-reset.
type PasswordResetRequest struct {
	Token    string `json:"token"`
	Password string `json:"password"`
}

// PasswordChangeRequest is the body of POST /api/v1/me/password.
type PasswordChangeRequest struct {
	CurrentPassword string `json:"current_password"`
	NewPassword     string `json:"new_password"`
}

// TOTPEnrolment is returned by POST /api/v1/me/mfa/totp (shown once).
type TOTPEnrolment struct {
	Secret string `json:"secret"` // base32
	URI    string `json:"uri"`    // otpauth://
}

// TOTPConfirmRequest is the body of POST /api/v1/me/mfa/totp/confirm.
type TOTPConfirmRequest struct {
	Code string `json:"code"`
}

// TOTPConfirmResponse carries the one-time recovery codes and the new
// session token (every earlier session ended).
type TOTPConfirmResponse struct {
	RecoveryCodes []string `json:"recovery_codes"`
	Token         string   `json:"token"`
	ExpiresAt     string   `json:"expires_at"`
}

// PasswordRequest is a body holding only the current password.
type PasswordRequest struct {
	Password string `json:"password"`
}

// TokenRequest is the body of POST /api/v1/tokens.
type TokenRequest struct {
	Name         string   `json:"name"`
	Scopes       []string `json:"scopes"`
	ExpiresIn    string   `json:"expires_in,omitempty"` // Go duration, e.g. "720h"; default 90 days
	NeverExpires bool     `json:"never_expires,omitempty"`
}

// APIToken is an API token as listed; Token is set only in the answer to
// its creation (shown once).
type APIToken struct {
	ID           string   `json:"id"`
	Name         string   `json:"name"`
	Scopes       []string `json:"scopes"`
	CreatedBy    string   `json:"created_by"`
	CreatedAt    string   `json:"created_at"`
	ExpiresAt    string   `json:"expires_at,omitempty"`
	NeverExpires bool     `json:"never_expires"`
	LastUsedAt   string   `json:"last_used_at,omitempty"`
	Revoked      bool     `json:"revoked"`
	Token        string   `json:"token,omitempty"`
}

// APITokenList is returned by GET /api/v1/tokens.
type APITokenList struct {
	Tokens []APIToken `json:"tokens"`
}
