package sdk

import (
	"crypto/tls"
	"time"
)

// Defaults and hard limits, each with its reason.
const (
	// DefaultQueueSize: telemetry messages kept while offline. A thermostat
	// reporting every 10 s covers almost three hours; the oldest go first
	// when it overflows, and every drop is counted (Stats.Dropped).
	DefaultQueueSize = 1000

	// DefaultBackoffBase / DefaultBackoffMax: reconnect waits are drawn
	// uniformly from [0, min(max, base*2^attempt)) ("full jitter"), so a
	// fleet that lost the hub at the same instant comes back spread out
	// (ETSI EN 303 645 5.9-3), not as one thundering herd.
	DefaultBackoffBase = 500 * time.Millisecond
	DefaultBackoffMax  = 60 * time.Second

	// maxConnectsPerWindow in connectWindow: the hub bans an identity that
	// sends more than 10 CONNECTs in 30 s; the SDK never sends more than
	// 8, whatever the jitter draws.
	maxConnectsPerWindow = 8
	connectWindow        = 30 * time.Second

	// stableSession: a session that lasted this long resets the backoff;
	// one the hub closes at once (a clone refusal, a ban) keeps growing it.
	stableSession = 20 * time.Second

	// DefaultKeepAlive: within the hub's 10 s .. 20 min range; a dead link
	// is noticed in about a minute and a half.
	DefaultKeepAlive = 60 * time.Second

	// connectTimeout bounds dialing, the TLS handshake and CONNACK.
	connectTimeout = 15 * time.Second
	// publishTimeout bounds the wait for a PUBACK before the message is
	// treated as unacknowledged (it stays queued and is sent again).
	publishTimeout = 15 * time.Second
	// inflightWindow: QoS 1 messages in flight at once; well under the
	// hub's receive maximum (64).
	inflightWindow = 16

	// renewFraction: renew when 2/3 of the certificate's lifetime has
	// passed, leaving a third (10 days of the default 30) for retries.
	renewFraction = 2.0 / 3.0
	// renewRetryBase / renewRetryMax: backoff (full jitter) between failed
	// renewals.
	renewRetryBase = 30 * time.Second
	renewRetryMax  = time.Hour

	// maxResponseBytes: replies from the hub are small (a certificate chain).
	maxResponseBytes = 1 << 20
	// httpTimeout bounds one HTTPS exchange with the hub.
	httpTimeout = 30 * time.Second

	// commandQueue: commands waiting for the handler; more are refused
	// (acknowledged "rejected", code busy) rather than queued without bound.
	commandQueue = 16
	// maxCommandBytes: a command is a name and a few parameters.
	maxCommandBytes = 64 << 10

	// secretBytes: a device-chosen MQTT secret is 32 random bytes (256
	// bits), base64url: 43 characters, above the hub's 32-character floor.
	secretBytes = 32
)

// tlsMinVersion: TLS 1.2 for hubs configured down to it; 1.3 is preferred
// by Go whenever both sides have it.
const tlsMinVersion = tls.VersionTLS12

// tls12Suites: only ECDHE with AEAD for TLS 1.2 (forward secrecy,
// no CBC); TLS 1.3 suites are not configurable and all good.
var tls12Suites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

const (
	// maxRateLimitedTries / maxRetryAfter: a request the hub refused with
	// 429 is tried at most this many times, waiting the hub's Retry-After
	// (capped) plus jitter: a burst of enrollments spreads out instead of
	// failing, and a device never waits on the hub's word for long.
	maxRateLimitedTries = 8
	maxRetryAfter       = 30 * time.Second
)

// maxNetworkReport bounds one network report (the hub reads at most 256).
const maxNetworkReport = 256
