package pki

import "time"

const (
	// rootLifetime: the root is pinned in every device at provisioning and
	// devices live for a decade or more; re-rooting a fleet is expensive.
	rootLifetime = 20 * 365 * 24 * time.Hour

	// serverLifetime: short enough that a leaked hub key ages out, long
	// enough that a hub that is down for weeks still starts cleanly; it is
	// renewed at start when less than serverRenewBefore remains.
	serverLifetime    = 90 * 24 * time.Hour
	serverRenewBefore = 30 * 24 * time.Hour

	// clockSkew backdates NotBefore so devices with slightly slow clocks
	// accept a fresh certificate.
	clockSkew = 5 * time.Minute

	// serialBytes: 128 bits of randomness (CA/B Forum asks for >= 64).
	serialBytes = 16
)
