package posture

import "time"

const (
	// defaultCertExpiryWarn: devices renew at 2/3 of a 30-day lifetime;
	// one with less than 7 days left has missed its renewal.
	defaultCertExpiryWarn = 7 * 24 * time.Hour
	// defaultCAExpiryWarn: rotating a CA takes a fleet-wide rollout of the
	// new root; 30 days is the least warning that allows it.
	defaultCAExpiryWarn = 30 * 24 * time.Hour
	// defaultMaxCertAge: an identity unchanged for 90 days is not renewing.
	defaultMaxCertAge = 90 * 24 * time.Hour
	// defaultSecretRotateWithin: a secret device should set its own secret
	// at first connect; a day is generous.
	defaultSecretRotateWithin = 24 * time.Hour
	// defaultClaimUnusedAfter: a claim for a batch nobody enrolls is a
	// forgotten live credential.
	defaultClaimUnusedAfter = 30 * 24 * time.Hour
	// defaultBroadClaimUses: a claim without a serial allow-list should not
	// cover more than a production batch.
	defaultBroadClaimUses = 1000
)
