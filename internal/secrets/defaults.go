package secrets

// Key sizes and formats. Changing any of these changes what is on disk: bump
// the matching version instead.
const (
	// masterKeySize is 32 bytes: AES-256 for wrapping, and the full output
	// of SHA-256/HKDF so no entropy is lost deriving the wrapping key.
	masterKeySize = 32

	// dataKeySize is 32 bytes: AES-256-GCM, the strongest AES and the same
	// cost as AES-128 on hardware with AES-NI.
	dataKeySize = 32

	// dataKeyIDSize is 8 random bytes (16 hex characters). A keyring holds
	// one key per rotation, so a collision is astronomically unlikely, and
	// OpenKeyring/Rotate refuse a duplicate anyway. Short enough to put in
	// every ciphertext header.
	dataKeyIDSize = 8

	// nonceSize is GCM's standard 96-bit nonce; random nonces of this size are
	// safe for 2^32 messages per key (NIST SP 800-38D §8.3). Every rotation
	// adds a fresh data key, which resets that count for new data.
	nonceSize = 12

	// masterKeyIDHexLen is how much of the SHA-256 fingerprint ID() shows:
	// 64 bits tells keys apart for a human and in error messages; it is not
	// relied on for security (unwrapping with GCM is).
	masterKeyIDHexLen = 16

	// saltSize is argon2id's recommended 16-byte salt (RFC 9106 §3.1).
	saltSize = 16
)

// Passphrase stretching (argon2id). RFC 9106 §4 "second recommended option"
// is t=3, m=64 MiB; we keep its time and memory and use 2 lanes so that a
// small two-core gateway box derives the key in well under a second at
// start-up while an attacker still pays 64 MiB per guess. These values are
// part of the v1 salt file format: a change needs a new format version, or
// existing data folders could no longer be opened.
const (
	argonTime    = 3
	argonMemKiB  = 64 * 1024
	argonThreads = 2

	// minPassphraseLen is 16 bytes: with argon2id at the cost above, a
	// passphrase of four or more random words stands up to offline guessing;
	// anything shorter is likely a password someone has used before.
	minPassphraseLen = 16

	// maxPassphraseLen bounds what we hash; passphrases come from a terminal
	// or an environment variable and need nothing longer.
	maxPassphraseLen = 1024
)

// Hard limits, each with its reason.
const (
	// maxKeyFileSize is far above the ~70-byte key or salt file; refusing
	// more stops us reading a large file someone pointed the path at by
	// mistake (a log, a database) into memory.
	maxKeyFileSize = 1024

	// maxSecretSize bounds one sealed secret. Vault holds keys, tokens and
	// passwords, not blobs; the bound keeps a bad caller from filling the
	// store or memory.
	maxSecretSize = 1 << 20

	// maxSecretNameLen bounds a secret's name (it is part of the AAD and a
	// primary key).
	maxSecretNameLen = 256
)

// File permissions and names.
const (
	// keyFileMode is owner read/write only. LoadKeyFile refuses anything
	// readable or writable by group or others.
	keyFileMode = 0o600

	// nextSuffix names the file a rotation writes before it commits; see
	// RotateKeyFile.
	nextSuffix = ".next"
)
