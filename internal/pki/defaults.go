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

// Device PKI.
const (
	// deviceCALifetime: the intermediate is pinned by nothing (devices pin
	// the root), so it can be re-signed freely; ten years bounds a leak of
	// an old certificate. It is re-signed with the same key when less than
	// deviceCARenewBefore remains, so issued certificates keep chaining.
	deviceCALifetime    = 10 * 365 * 24 * time.Hour
	deviceCARenewBefore = 365 * 24 * time.Hour
	// DefaultDeviceCertLifetime: short-lived device certificates (30 days)
	// so a stolen key ages out even if nobody revokes it.
	DefaultDeviceCertLifetime = 30 * 24 * time.Hour
	// maxDeviceCertLifetime: a hard ceiling whatever the configuration says.
	maxDeviceCertLifetime = 398 * 24 * time.Hour
	// crlLifetime: third parties refetch the CRL at least daily.
	crlLifetime = 24 * time.Hour
	// maxCSRBytes: an ECDSA or Ed25519 CSR is under 1 KiB; 16 KiB leaves
	// room for extensions and bounds parsing work.
	maxCSRBytes = 16 << 10
	// maxCertsPEMBytes and maxCertsInPEM bound a manufacturer CA bundle.
	maxCertsPEMBytes = 64 << 10
	maxCertsInPEM    = 8
)
