package accounts

// Permission is one thing a role may do. Handlers ask Can (or
// Principal.Can); none compares role names itself.
type Permission string

// Permissions.
const (
	PermSelfRead    Permission = "self:read"    // see one's own account, log out, change one's password, enrol MFA
	PermMetricsRead Permission = "metrics:read" // scrape /metrics
	PermJournalRead Permission = "journal:read" // read the tenant's journal
	PermAuditRead   Permission = "audit:read"   // run the fleet and hub audit

	PermDevicesRead  Permission = "devices:read"  // list and inspect devices, telemetry
	PermDevicesWrite Permission = "devices:write" // create, revoke, quarantine devices
	PermPKIAdmin     Permission = "pki:admin"     // claims, manufacturer CAs, clone approvals

	PermTelemetryRead   Permission = "telemetry:read"   // read stored telemetry
	PermCommandsWrite   Permission = "commands:write"   // send commands to devices, confirm one's own hazardous commands
	PermCommandsApprove Permission = "commands:approve" // approve another user's hazardous command (never a token's)
	PermModelsWrite     Permission = "models:write"     // create device models and new versions of their safety policies
	PermMQTTSubscribe   Permission = "mqtt:subscribe"   // back-end MQTT subscriptions (API tokens)

	PermFirmwareRead    Permission = "firmware:read"    // list firmware images, roots, rollouts and device versions
	PermFirmwareWrite   Permission = "firmware:write"   // upload signed manifests and images, create and steer rollouts, tag devices
	PermFirmwareAdmin   Permission = "firmware:admin"   // set or rotate the tenant's firmware root; firmware settings
	PermRolloutsApprove Permission = "rollouts:approve" // approve another person's rollout (when the tenant requires it)

	PermUsersRead   Permission = "users:read"   // list the tenant's users and invitations
	PermUsersWrite  Permission = "users:write"  // invite, change roles, remove users, issue reset links
	PermTokensWrite Permission = "tokens:write" // create, list and revoke the tenant's API tokens
	PermTenantAdmin Permission = "tenant:admin" // tenant settings, such as requiring MFA
)

// rolePermissions is the one table of what each role may do (also in the
// README). Anything not listed is denied.
var rolePermissions = map[Role]map[Permission]bool{
	RoleOwner: {PermSelfRead: true, PermMetricsRead: true, PermJournalRead: true, PermAuditRead: true, PermDevicesRead: true, PermDevicesWrite: true, PermPKIAdmin: true,
		PermTelemetryRead: true, PermCommandsWrite: true, PermCommandsApprove: true, PermModelsWrite: true, PermMQTTSubscribe: true,
		PermFirmwareRead: true, PermFirmwareWrite: true, PermFirmwareAdmin: true, PermRolloutsApprove: true,
		PermUsersRead: true, PermUsersWrite: true, PermTokensWrite: true, PermTenantAdmin: true},
	RoleAdmin: {PermSelfRead: true, PermMetricsRead: true, PermJournalRead: true, PermAuditRead: true, PermDevicesRead: true, PermDevicesWrite: true, PermPKIAdmin: true,
		PermTelemetryRead: true, PermCommandsWrite: true, PermCommandsApprove: true, PermModelsWrite: true, PermMQTTSubscribe: true,
		PermFirmwareRead: true, PermFirmwareWrite: true, PermFirmwareAdmin: true, PermRolloutsApprove: true,
		PermUsersRead: true, PermUsersWrite: true, PermTokensWrite: true},
	RoleOperator: {PermSelfRead: true, PermDevicesRead: true, PermDevicesWrite: true, PermTelemetryRead: true, PermCommandsWrite: true,
		PermFirmwareRead: true, PermFirmwareWrite: true},
	RoleViewer: {PermSelfRead: true, PermDevicesRead: true, PermTelemetryRead: true, PermFirmwareRead: true},
}

// TokenScopes are the permissions an API token may carry. Account
// management (users, tokens, tenant, self) is never delegated to a token.
var TokenScopes = []Permission{
	PermDevicesRead, PermDevicesWrite, PermTelemetryRead, PermCommandsWrite, PermModelsWrite,
	PermMQTTSubscribe, PermMetricsRead, PermJournalRead, PermPKIAdmin, PermAuditRead,
	PermFirmwareRead, PermFirmwareWrite,
}

// Can reports whether role may do p. Unknown roles may do nothing.
func Can(role Role, p Permission) bool {
	return rolePermissions[role][p]
}

// ValidRole reports whether r is one of the four roles.
func ValidRole(r Role) bool {
	_, ok := rolePermissions[r]
	return ok
}

// roleRank orders roles; a user may only grant roles at or below their own,
// and only an owner may make or unmake owners.
func roleRank(r Role) int {
	switch r {
	case RoleOwner:
		return 4
	case RoleAdmin:
		return 3
	case RoleOperator:
		return 2
	case RoleViewer:
		return 1
	}
	return 0
}

// Can reports whether the principal may do perm: a session asks its user's
// role (and, while the tenant requires MFA that the user has not set up,
// allows only its own account); an API token needs the scope and its
// creator's current role to allow it.
func (p Principal) Can(perm Permission) bool {
	if !Can(p.Role, perm) {
		return false
	}
	if p.TokenID != "" {
		for _, s := range p.Scopes {
			if s == perm {
				return true
			}
		}
		return false
	}
	if p.MFASetupRequired {
		return perm == PermSelfRead
	}
	return true
}
