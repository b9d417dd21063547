package accounts

// Permission is one thing a role may do. Handlers ask Can; none compares
// role names itself.
type Permission string

// Permissions. Later issues add devices, commands, firmware, audit...
const (
	PermSelfRead    Permission = "self:read"    // see one's own account
	PermMetricsRead Permission = "metrics:read" // scrape /metrics
	PermJournalRead Permission = "journal:read" // read the tenant's journal

	PermDevicesRead  Permission = "devices:read"  // list and inspect devices, telemetry
	PermDevicesWrite Permission = "devices:write" // create, revoke, quarantine devices
	PermPKIAdmin     Permission = "pki:admin"     // claims, manufacturer CAs, clone approvals
)

// rolePermissions is the one table of what each role may do (also in the
// README). Anything not listed is denied.
var rolePermissions = map[Role]map[Permission]bool{
	RoleOwner:    {PermSelfRead: true, PermMetricsRead: true, PermJournalRead: true, PermDevicesRead: true, PermDevicesWrite: true, PermPKIAdmin: true},
	RoleAdmin:    {PermSelfRead: true, PermMetricsRead: true, PermJournalRead: true, PermDevicesRead: true, PermDevicesWrite: true, PermPKIAdmin: true},
	RoleOperator: {PermSelfRead: true, PermDevicesRead: true, PermDevicesWrite: true},
	RoleViewer:   {PermSelfRead: true, PermDevicesRead: true},
}

// Can reports whether role may do p. Unknown roles may do nothing.
func Can(role Role, p Permission) bool {
	return rolePermissions[role][p]
}
