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

const (
	// DefaultDetectWindow: short enough to catch a bot within a minute,
	// long enough that a device reporting every few seconds has a rate.
	DefaultDetectWindow = 10 * time.Second
	// defaultZ / defaultFactor: a window is anomalous only when it is far
	// outside the device's own spread AND several times its usual level;
	// both together keep honest jitter (a reading every 1-2 s) quiet.
	defaultZ      = 8
	defaultFactor = 5
	// defaultMinHistory: windows of history before a baseline is trusted.
	defaultMinHistory = 6
	// defaultAlpha: EWMA weight of the newest window (~5-window memory).
	defaultAlpha = 0.2
	// defaultMaxRecent bounds the anomalies kept for the audit.
	defaultMaxRecent = 1000
	// Caps that keep the detector's memory bounded under attack.
	maxTrackedDevices  = 1_000_000
	maxTopicsPerWindow = 1024
	maxDestinations    = 256
)

// defaultFloors are the smallest per-window values worth flagging: below
// them a "burst" is still harmless, whatever the baseline.
func defaultFloors() map[string]float64 {
	return map[string]float64{
		MetricMessages: 20, MetricBytes: 16 << 10, MetricTopics: 10, MetricConnects: 5,
		MetricAuthFailures: 5, MetricACLDenied: 5, MetricSources: 3, MetricNewDests: 1, MetricNewPorts: 1,
	}
}

const (
	// Webhook retries: 3 more tries at 1 s, 2 s, 4 s ride out a receiver
	// restart without holding the detector for long.
	defaultWebhookRetries = 3
	defaultWebhookBackoff = time.Second
)
