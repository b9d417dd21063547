// Package api holds Rampart's public wire types (JSON bodies of the HTTPS API)
// and its error codes. It imports only the standard library, so device
// firmware, the SDK and third-party tools can use it without pulling in the hub.
package api

import (
	"errors"
	"fmt"
)

// Code is a stable, machine-readable error code. Transports map codes to
// their own vocabulary (HTTP statuses, MQTT reason codes) in one place each.
type Code string

// Error codes. Extend freely; never change the meaning of one that shipped.
const (
	CodeInvalid         Code = "invalid_request"   // malformed or failed validation
	CodeTooLarge        Code = "too_large"         // body or field over a hard limit
	CodeUnauthenticated Code = "unauthenticated"   // no or bad credential
	CodeForbidden       Code = "forbidden"         // authenticated, not allowed
	CodeNotFound        Code = "not_found"         // missing, or not visible to the caller's tenant
	CodeConflict        Code = "conflict"          // state does not allow it (e.g. setup already done)
	CodeRateLimited     Code = "rate_limited"      // too many attempts
	CodeExpired         Code = "expired"           // a code or token past its expiry
	CodeUnsupported     Code = "unsupported_media" // wrong Content-Type
	CodeInternal        Code = "internal"          // anything else; detail is only logged
)

// Error is the one application error type. Message is safe to show to the
// caller; it never carries a secret.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// Errorf builds an *Error.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, or
// CodeInternal when there is none.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// ErrorMessage returns the caller-safe message of err: the message of an
// *Error, or "internal error" for anything else (whose detail is logged, not
// returned).
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// ErrorBody is the JSON body of every error response:
// {"error":{"code":"...","message":"..."}}.
type ErrorBody struct {
	Error Error `json:"error"`
}

// SetupRequest is the body of POST /api/v1/setup.
type SetupRequest struct {
	SetupCode string `json:"setup_code"`
	Email     string `json:"email"`
	Password  string `json:"password"`
}

// SetupResponse is returned by POST /api/v1/setup.
type SetupResponse struct {
	UserID   string `json:"user_id"`
	TenantID string `json:"tenant_id"`
	Email    string `json:"email"`
	Role     string `json:"role"`
}

// LoginRequest is the body of POST /api/v1/login.
type LoginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	TOTP     string `json:"totp,omitempty"`
}

// LoginResponse carries a bearer token, shown once.
type LoginResponse struct {
	Token     string `json:"token"`
	ExpiresAt string `json:"expires_at"` // RFC 3339
}

// Me is returned by GET /api/v1/me.
type Me struct {
	UserID   string `json:"user_id"`
	TenantID string `json:"tenant_id"`
	Email    string `json:"email"`
	Role     string `json:"role"`
}
