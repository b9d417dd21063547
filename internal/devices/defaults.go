package devices

import "time"

// Defaults and hard limits, each with its reason.
const (
	// DefaultTokenTTL: an enrollment token is meant to be used on the
	// production line or at installation the same day.
	DefaultTokenTTL = 24 * time.Hour
	// DefaultCloneWindow: a second connection of one identity from another
	// address within this long after the last one closed is a clone, not a
	// device that moved networks.
	DefaultCloneWindow = 5 * time.Second
	// tokenBytes: 256-bit enrollment and claim tokens (the issue asks >= 128).
	tokenBytes = 32
	// secretBytes: 128-bit per-device MQTT secrets, the floor the issue sets.
	secretBytes = 16
	// minDeviceSecretLen: a secret a device chooses at rotation is at least
	// 32 characters (128 bits as hex); shorter ones are refused.
	minDeviceSecretLen = 32
	maxSecretLen       = 256
	// idBytes: 80-bit random IDs; not guessable, not sequential.
	idBytes = 10
	// Name and model bounds: labels, not documents.
	maxNameLen   = 128
	maxModelLen  = 64
	maxSerialLen = 128
	// maxListed bounds one list response.
	maxListed = 1000
	// maxClaimUses and maxClaimTTL: a claim is for one production batch.
	maxClaimUses    = 1_000_000
	maxClaimTTL     = 365 * 24 * time.Hour
	maxClaimSerials = 100_000
	// renewGrace: after a renewal the previous certificate is still accepted
	// this long, so a device whose reply was lost can retry.
	renewGrace = time.Hour
	// revokedAttemptsFlag: repeated attempts by a revoked identity raise a
	// finding at this count (and every revokedAttemptsEvery after it).
	revokedAttemptsFlag  = 3
	revokedAttemptsEvery = 100
	// maxTrackedDevices bounds the clone detector's memory of closed
	// sessions; the oldest are forgotten first.
	maxTrackedDevices = 1_000_000
	// maxJournalList bounds a list of serials in one journal detail (the
	// journal takes 4 KiB of detail per entry).
	maxJournalList = 1024
)

// Token prefixes make a leaked credential recognisable (secret scanners)
// and tell which kind it is.
const (
	enrollTokenPrefix = "rpe_"
	claimTokenPrefix  = "rpc_"
	secretPrefix      = "rpd_"
)
