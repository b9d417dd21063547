package accounts

import "time"

const (
	// DefaultSetupTTL: long enough to read the console and open a browser,
	// short enough that a code left in a scroll-back buffer goes stale.
	DefaultSetupTTL = time.Hour
	// DefaultSessionTTL: one working day (absolute expiry).
	DefaultSessionTTL = 12 * time.Hour
	// DefaultSessionIdleTTL: NIST SP 800-63B rev. 4 AAL2 asks for
	// re-authentication after at most an hour of inactivity.
	DefaultSessionIdleTTL = time.Hour
	// sessionTouchEvery: last use is written at most this often, so a busy
	// client does not turn every request into a database write.
	sessionTouchEvery = 30 * time.Second
	// DefaultInviteTTL: three days covers a weekend; an unused invitation
	// is a standing credential, so not longer.
	DefaultInviteTTL = 72 * time.Hour
	// DefaultResetTTL: a reset link is handed over in person or by chat;
	// an hour is plenty and keeps a leaked link short-lived.
	DefaultResetTTL = time.Hour
	// DefaultAPITokenTTL is used when a token request names no expiry;
	// maxAPITokenTTL bounds an explicit one (longer needs never_expires,
	// which the journal and the token list flag).
	DefaultAPITokenTTL = 90 * 24 * time.Hour
	maxAPITokenTTL     = 366 * 24 * time.Hour

	// hashQueueWait: a login waits at most this long for a hashing slot,
	// then gets 429; a flood queues briefly instead of piling up.
	hashQueueWait = 5 * time.Second

	// Throttling. Per (account, source address): 5 free failures, then a
	// lock that starts at 1s and doubles to at most 15 minutes. Per source
	// address across accounts: 20 free failures, same curve. Counters
	// forget a source after throttleWindow without failures. Per account,
	// across all sources: a hard lock at 100 consecutive failures (NIST SP
	// 800-63B 3.2.2), lifted only by an admin-issued reset link.
	accountSourceFreeFailures = 5
	sourceFreeFailures        = 20
	throttleBaseDelay         = time.Second
	throttleMaxDelay          = 15 * time.Minute
	throttleWindow            = time.Hour
	throttleMaxEntries        = 100_000
	hardLockFailures          = 100

	// TOTP (RFC 6238): 30-second steps, 6 digits, SHA-1 (what every
	// authenticator app implements), one step of drift either way.
	totpStep       = 30
	totpDigits     = 6
	totpSkew       = 1
	totpSecretSize = 20
	// recoveryCodes: ten one-time codes of 50 bits each.
	recoveryCodes     = 10
	recoveryCodeBytes = 7

	maxNameRunes = 100

	// setupCodeBytes: 96 bits (>= the 80 the design asks for), 20 base32
	// characters in groups of five: easy to copy from a console.
	setupCodeBytes = 12 // 96 bits: 20 base32 characters, XXXXX-XXXXX-XXXXX-XXXXX
	// maxSetupFailures: after this many wrong codes the code is burnt and
	// only a restart (someone with console access) makes a new one.
	maxSetupFailures = 5

	// sessionTokenBytes: 256-bit bearer tokens.
	sessionTokenBytes = 32
	sessionPrefix     = "rps_"
	maxTokenBytes     = 128

	// idBytes: 80-bit random IDs; not guessable, not sequential.
	idBytes = 10

	// Password bounds (NIST SP 800-63B: at least 15 without MFA, allow at
	// least 64; we allow 128 characters and cap bytes to bound hashing cost).
	minPasswordRunes    = 15
	minPasswordRunesMFA = 8
	maxPasswordRunes    = 128
	maxPasswordBytes    = 1024
	maxEmailBytes       = 254
	// minOtherRunes: a password containing a context word (the email, the
	// service name) needs this many other characters to stand on its own.
	minOtherRunes = 10
)
