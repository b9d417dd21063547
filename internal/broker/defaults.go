package broker

import "time"

// Hard limits and defaults, each with its reason. Quotas are per client
// unless stated.
const (
	// DefaultMaxPacketBytes: telemetry and commands are small; 256 KiB
	// leaves room for firmware manifests and stops a client from making the
	// engine allocate what it claims (mochi allocates the claimed length).
	DefaultMaxPacketBytes = 256 << 10

	// maxTopicBytes: MQTT allows 65,535; our topics are short and bounded.
	maxTopicBytes = 512

	// handshakeTimeout bounds the TLS handshake; connectTimeout bounds the
	// time from a finished handshake to a CONNECT packet (slowloris).
	handshakeTimeout = 10 * time.Second
	connectTimeout   = 10 * time.Second

	// DefaultMaxConnsPerIP: a NAT gateway with a few hundred devices fits;
	// a single scanner cannot take the whole connection table.
	DefaultMaxConnsPerIP = 256
	// DefaultMaxConns bounds the process (file descriptors, memory).
	DefaultMaxConns = 50_000
	// DefaultNewConnsPerIPPerSec with a burst of DefaultNewConnsBurst:
	// a reboot storm behind one NAT passes; a reconnect loop does not.
	DefaultNewConnsPerIPPerSec = 20
	DefaultNewConnsBurst       = 50

	// DefaultPublishPerSec / DefaultPublishBurst: a thermostat sends a few
	// messages a minute; 50/s sustained is far above any honest device and
	// far below a flood.
	DefaultPublishPerSec = 50
	DefaultPublishBurst  = 200
	// DefaultBytesPerSec: 256 KiB/s sustained per client.
	DefaultBytesPerSec = 256 << 10

	// maxWritesPending: messages queued to one client before the engine
	// drops (and counts) further ones; an application subscribed to a whole
	// fleet needs room, a stuck client must not grow without bound.
	maxWritesPending = 8192

	// DefaultMaxSubscriptions per client.
	DefaultMaxSubscriptions = 32
	// DefaultReceiveMaximum: inflight QoS 1/2 messages per client.
	DefaultReceiveMaximum = 64

	// Flapping: more than flapMaxConnects CONNECTs by one identity within
	// flapWindow bans it (and its address) for flapBaseBan, doubling on
	// each repeat up to flapMaxBan.
	flapWindow      = 30 * time.Second
	flapMaxConnects = 10
	flapBaseBan     = 30 * time.Second
	flapMaxBan      = 1 * time.Hour

	// minKeepalive / maxKeepalive: a zero keepalive would let a dead
	// connection hold its slot forever; the server imposes this range.
	// authJournal*: a flood of refusals must not flood the journal; the
	// excess is counted and reported with the next entry.
	authJournalPerSec = 5
	authJournalBurst  = 50

	minKeepalive = 10
	maxKeepalive = 1200
)
