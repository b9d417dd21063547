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
	// fleet needs room, a stuck client must not grow without bound. The
	// engine allocates this queue in full for every connection (8 bytes a
	// slot), devices included: 8192 slots cost 64 KiB per idle device and
	// were half of the hub's memory per connection. 1024 is Mosquitto's
	// default (max_queued_messages 1000): 100 ms of a 10,000-message/s
	// fleet for a stalled application (docs/performance.md).
	maxWritesPending = 1024

	// maxInflight: QoS 1/2 messages sent to one client and not yet
	// acknowledged; beyond it the engine drops QoS 1 deliveries (it has no
	// queue behind the window, unlike Mosquitto). 256 capped a fleet-wide
	// application at about 256 messages per round trip; 1024 matches the
	// write queue above, so the window never drops what the queue could
	// hold. An MQTT 5 client's own receive maximum still applies below it.
	maxInflight = 1024

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
