package accounts

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/journal"
	"github.com/rampart-iot/rampart/internal/secrets"
)

// TokenRequest asks for an API token.
type TokenRequest struct {
	Name   string
	Scopes []string
	// TTL is the lifetime; zero means DefaultAPITokenTTL. NeverExpires
	// must be set explicitly for a token without expiry; the journal and
	// the token list flag it.
	TTL          time.Duration
	NeverExpires bool
}

// CreateAPIToken issues a scoped API token (shown once). Its scopes must be
// token scopes that the creator's role allows.
func (s *Service) CreateAPIToken(ctx context.Context, p Principal, r TokenRequest) (APIToken, secrets.Text, error) {
	name, err := checkName("name", r.Name)
	if err != nil {
		return APIToken{}, "", err
	}
	if len(r.Scopes) == 0 || len(r.Scopes) > len(TokenScopes) {
		return APIToken{}, "", api.Errorf(api.CodeInvalid, "scopes must list 1 to %d of: %s", len(TokenScopes), scopeList())
	}
	var scopes []Permission
	for _, sc := range r.Scopes {
		perm := Permission(sc)
		if !slices.Contains(TokenScopes, perm) {
			return APIToken{}, "", api.Errorf(api.CodeInvalid, "scope %q is not a token scope; use: %s", sc, scopeList())
		}
		if !Can(p.Role, perm) {
			return APIToken{}, "", api.Errorf(api.CodeForbidden, "your role (%s) does not have %s, so a token you make cannot", p.Role, perm)
		}
		if !slices.Contains(scopes, perm) {
			scopes = append(scopes, perm)
		}
	}
	now := s.o.Now().UTC()
	var exp time.Time
	switch {
	case r.NeverExpires && r.TTL != 0:
		return APIToken{}, "", api.Errorf(api.CodeInvalid, "give expires_in or never_expires, not both")
	case r.NeverExpires:
	case r.TTL < 0 || (r.TTL > 0 && r.TTL < time.Minute) || r.TTL > maxAPITokenTTL:
		return APIToken{}, "", api.Errorf(api.CodeInvalid, "expires_in must be from 1m to %s; a token that never expires needs never_expires: true", maxAPITokenTTL)
	case r.TTL == 0:
		exp = now.Add(DefaultAPITokenTTL)
	default:
		exp = now.Add(r.TTL)
	}
	token, err := s.newToken(apiTokenPrefix)
	if err != nil {
		return APIToken{}, "", err
	}
	id, err := newID(s.o.Rand, "tok")
	if err != nil {
		return APIToken{}, "", err
	}
	t := APIToken{ID: id, TenantID: p.TenantID, CreatedBy: p.UserID, Name: name, TokenHash: hashSecret("api-token", token),
		Scopes: scopes, CreatedAt: now, ExpiresAt: exp}
	if err := s.o.Store.CreateAPIToken(ctx, t); err != nil {
		return APIToken{}, "", err
	}
	detail := map[string]string{"name": name, "scopes": joinScopes(scopes)}
	if exp.IsZero() {
		detail["never_expires"] = "true"
	} else {
		detail["expires_at"] = exp.Format(time.RFC3339)
	}
	s.record(ctx, journal.Event{Actor: p.Actor(), Tenant: p.TenantID, Action: "token.created", Target: id, Outcome: "success", Detail: detail})
	return t, secrets.Text(token), nil
}

// ListAPITokens lists the tenant's tokens (never their secrets).
func (s *Service) ListAPITokens(ctx context.Context, p Principal) ([]APIToken, error) {
	return s.o.Store.ListAPITokens(ctx, p.TenantID)
}

// RevokeAPIToken revokes a token of the tenant; it stops working at once.
func (s *Service) RevokeAPIToken(ctx context.Context, p Principal, id string) error {
	if err := s.o.Store.RevokeAPIToken(ctx, p.TenantID, id, s.o.Now().UTC()); err != nil {
		if errors.Is(err, ErrNotFound) {
			return notFound("token")
		}
		return err
	}
	s.record(ctx, journal.Event{Actor: p.Actor(), Tenant: p.TenantID, Action: "token.revoked", Target: id, Outcome: "success"})
	return nil
}

func scopeList() string { return joinScopes(TokenScopes) }

func joinScopes(ps []Permission) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = string(p)
	}
	return strings.Join(s, ", ")
}

// ParseScopes splits a stored scope list.
func ParseScopes(s string) []Permission {
	var out []Permission
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, Permission(f))
		}
	}
	return out
}

// FormatScopes joins scopes for storage.
func FormatScopes(ps []Permission) string {
	return strings.ReplaceAll(joinScopes(ps), " ", "")
}
