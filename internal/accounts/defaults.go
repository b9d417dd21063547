package accounts

import "time"

const (
	// DefaultSetupTTL: long enough to read the console and open a browser,
	// short enough that a code left in a scroll-back buffer goes stale.
	DefaultSetupTTL = time.Hour
	// DefaultSessionTTL: one working day; issue #3 adds idle expiry.
	DefaultSessionTTL = 12 * time.Hour

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
	minPasswordRunes = 15
	maxPasswordRunes = 128
	maxPasswordBytes = 1024
	maxEmailBytes    = 254
	// minOtherRunes: a password containing a context word (the email, the
	// service name) needs this many other characters to stand on its own.
	minOtherRunes = 10
)
