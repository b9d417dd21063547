package config

import "time"

// Defaults. Each is the value a fresh install runs with when neither the file,
// the environment nor a flag says otherwise; each is the safe choice.
const (
	// defaultDataDir is relative to the working directory so that a first
	// `rampart serve` works without root and without touching system paths.
	defaultDataDir = "./rampart-data"

	// defaultHTTPSAddr and defaultMQTTAddr listen on loopback only: a fresh
	// hub is not reachable from the network until an operator says so.
	defaultHTTPSAddr = "127.0.0.1:8443"
	defaultMQTTAddr  = "127.0.0.1:8883"

	// defaultMaxBodyBytes (1 MiB) fits every JSON request the API takes (a
	// CSR, a device list, a safety policy); firmware is uploaded by other
	// means. Bigger bodies only serve to exhaust memory.
	defaultMaxBodyBytes = 1 << 20

	// defaultReadHeaderTimeout bounds how long a client may take to send its
	// request headers, which defeats slowloris-style connection hoarding.
	defaultReadHeaderTimeout = 10 * time.Second

	// defaultTLSMinVersion: TLS 1.3 removes the legacy handshake, static RSA
	// and CBC suites outright. "1.2" remains possible for older device stacks.
	defaultTLSMinVersion = tls13

	// defaultLogLevel and defaultLogFormat: info is what an operator needs
	// day to day; text is what a person reads in a terminal.
	defaultLogLevel  = "info"
	defaultLogFormat = "text"

	// defaultSetupCodeTTL: long enough to read the code off the console and
	// type it into a browser, short enough that a code seen in an old log or
	// scroll-back is useless.
	defaultSetupCodeTTL = time.Hour

	// defaultSessionTTL covers a working day; a stolen session token is
	// useless by the next morning.
	defaultSessionTTL = 12 * time.Hour

	// defaultSessionIdleTTL: NIST SP 800-63B rev. 4 (AAL2) asks for
	// re-authentication after at most an hour without activity.
	defaultSessionIdleTTL = time.Hour

	// defaultInviteTTL: an invitation outlives a weekend, not much more;
	// unused, it is a standing credential.
	defaultInviteTTL = 72 * time.Hour

	// defaultResetTTL: an admin hands a reset link over directly; an hour
	// is plenty and keeps a leaked link short-lived.
	defaultResetTTL = time.Hour

	// defaultArgon2*: RFC 9106's second recommended option (m=64 MiB, t=3,
	// p=4), for machines where 2 GiB per hash is out of the question.
	defaultArgon2MemoryKiB = 64 * 1024
	defaultArgon2Time      = 3
	defaultArgon2Threads   = 4

	// defaultCheckpointEvery and defaultCheckpointInterval: a signed journal
	// checkpoint at least every 1000 entries or every minute, whichever comes
	// first, bounds how much history an attacker could rewrite unnoticed
	// while keeping signing cost negligible.
	defaultCheckpointEvery    = 1000
	defaultCheckpointInterval = time.Minute
	// MQTT quotas (internal/broker/defaults.go explains each).
	defaultMQTTMaxPacketBytes      = 256 << 10
	defaultMQTTPublishPerSec       = 50
	defaultMQTTPublishBurst        = 200
	defaultMQTTBytesPerSec         = 256 << 10
	defaultMQTTMaxSubscriptions    = 32
	defaultMQTTMaxConnsPerIP       = 256
	defaultMQTTNewConnsPerIPPerSec = 20
	defaultMQTTMaxConns            = 50_000

	// Anomaly detection: 10 s windows; quarantine on a baseline anomaly.
	defaultDetectWindow   = 10 * time.Second
	defaultBaselineAction = "quarantine"

	// defaultDeviceCertLifetime: 30 days, so a stolen device key ages out
	// even if nobody revokes it; devices renew over mTLS well before.
	defaultDeviceCertLifetime = 30 * 24 * time.Hour
	// defaultDeviceTokenTTL: an enrollment token is for the production line
	// or the installer the same day.
	defaultDeviceTokenTTL = 24 * time.Hour
	// defaultClonePolicy: refuse the second connection of a live identity,
	// so a clone gets nothing and the genuine device keeps working.
	defaultClonePolicy = "refuse"
	// defaultCloneWindow: a reconnection from another address this soon
	// after the last session closed is a clone, not a roaming device.
	defaultCloneWindow = 5 * time.Second
)

// TLS versions accepted by tls.min_version.
const (
	tls13 = "1.3"
	tls12 = "1.2"
)

// Hard limits, with their reason.
const (
	// maxFileBytes caps the config file before it is parsed: a real config is
	// a few KiB, and a YAML parser given gigabytes is a memory exhaustion.
	maxFileBytes = 1 << 20

	// maxNameLen and maxLabelLen are the DNS limits of RFC 1035 section 2.3.4
	// (names in text form, without the trailing dot).
	maxNameLen  = 253
	maxLabelLen = 63
)

// Bounds of the numeric and duration settings, with their reason.
var (
	// https.max_body_bytes: under 1 KiB not even a login fits; over 64 MiB a
	// handful of clients can exhaust the hub's memory.
	maxBodyBytesBounds = intBounds{min: 1 << 10, max: 64 << 20, unit: "bytes"}

	// https.read_header_timeout: under 1s, clients on slow cellular links
	// cannot connect; over 2m, slow clients can hold connections open cheaply.
	readHeaderTimeoutBounds = durBounds{min: time.Second, max: 2 * time.Minute}

	// setup.code_ttl: under 1m nobody can type the code in; over 24h the
	// one-time code becomes a standing credential.
	setupCodeTTLBounds = durBounds{min: time.Minute, max: 24 * time.Hour}

	// sessions.ttl: under 5m operators log in all day; over 7 days a stolen
	// token stays valuable for too long.
	sessionTTLBounds = durBounds{min: 5 * time.Minute, max: 7 * 24 * time.Hour}

	// sessions.idle_ttl: under 1m nobody finishes a form; over 24h idle
	// expiry means nothing (and it never exceeds sessions.ttl).
	sessionIdleTTLBounds = durBounds{min: time.Minute, max: 24 * time.Hour}

	// accounts.invite_ttl: at least 10m to pass it on; at most 30 days.
	inviteTTLBounds = durBounds{min: 10 * time.Minute, max: 30 * 24 * time.Hour}

	// accounts.reset_ttl: at least 5m; at most 3 days.
	resetTTLBounds = durBounds{min: 5 * time.Minute, max: 72 * time.Hour}

	// passwords.argon2_*: at least OWASP's floor for argon2id (19 MiB,
	// t=2 at that memory; t=1 is allowed with more memory), at most 4 GiB,
	// 10 passes and 64 lanes: beyond that a login flood is a memory attack.
	argon2MemoryBounds  = intBounds{min: 19 * 1024, max: 4 * 1024 * 1024, unit: "KiB"}
	argon2TimeBounds    = intBounds{min: 1, max: 10, unit: "passes"}
	argon2ThreadsBounds = intBounds{min: 1, max: 64, unit: "lanes"}

	// journal.checkpoint_every: at least 1; over a million entries the
	// window of unsigned history is too large to be worth the name.
	checkpointEveryBounds = intBounds{min: 1, max: 1_000_000, unit: "entries"}

	// journal.checkpoint_interval: under 1s the signer does nothing else;
	// over 1h an idle hub leaves its recent history unsigned for too long.
	checkpointIntervalBounds = durBounds{min: time.Second, max: time.Hour}
)

// Device identity bounds, with their reason.
var (
	// mqtt.*: a packet of at least 1 KiB (a CSR-sized message) and at most
	// 16 MiB (firmware goes over HTTPS, not MQTT); rates from 1 to a level
	// no single device should need; connection caps within what one
	// process can hold open.
	mqttPacketBounds   = intBounds{min: 1 << 10, max: 16 << 20, unit: "bytes"}
	mqttRateBounds     = intBounds{min: 1, max: 100_000, unit: "per second"}
	mqttBurstBounds    = intBounds{min: 1, max: 1_000_000, unit: "messages"}
	mqttByteRateBounds = intBounds{min: 1 << 10, max: 1 << 30, unit: "bytes per second"}
	mqttSubsBounds     = intBounds{min: 1, max: 10_000, unit: "subscriptions"}
	mqttConnsIPBounds  = intBounds{min: 1, max: 1_000_000, unit: "connections"}
	mqttConnsBounds    = intBounds{min: 1, max: 10_000_000, unit: "connections"}

	// devices.cert_lifetime: under 1h devices renew constantly; over 398 days
	// (the CA/B Forum ceiling) a stolen key stays useful for too long.
	deviceCertLifetimeBounds = durBounds{min: time.Hour, max: 398 * 24 * time.Hour}
	// devices.token_ttl: under 5m nobody can type it in; over 30 days an
	// unused token becomes a standing credential.
	deviceTokenTTLBounds = durBounds{min: 5 * time.Minute, max: 30 * 24 * time.Hour}
	// devices.clone_window: up to 10 minutes; longer would lock out devices
	// that legitimately change networks.
	cloneWindowBounds = durBounds{min: time.Second, max: 10 * time.Minute}
	clonePolicies     = []string{"refuse", "replace"}
	// detect.baseline_action: what happens automatically when a device
	// leaves its baseline. Quarantine by default: reversible, and the device
	// can still report events while an admin looks.
	detectActions = []string{"quarantine", "suspend", "revoke", "notify", "none"}
	// detect.window: 1 s (tests, demos) to 10 min (slow fleets).
	detectWindowBounds = durBounds{min: time.Second, max: 10 * time.Minute}
)

// logLevels and logFormats are the accepted values of log.level and log.format.
var (
	logLevels  = []string{"debug", "info", "warn", "error"}
	logFormats = []string{"text", "json"}
)

type intBounds struct {
	min, max int64
	unit     string
}

type durBounds struct {
	min, max time.Duration
}
