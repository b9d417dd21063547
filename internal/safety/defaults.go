package safety

import "time"

// Defaults and hard limits, each with its reason.
const (
	// DefaultQuotaPerMinute: commands a device may be sent per minute.
	// A person or a control loop at 2 Hz fits; a runaway script does not.
	// Emergency stops never count and are never refused by it (SR 1.1).
	DefaultQuotaPerMinute = 120

	// SweepInterval: how often deadlines are checked. A command is failed
	// at most this long after its ack deadline.
	SweepInterval = 250 * time.Millisecond

	// MaxAckBytes bounds an acknowledgement from a device.
	MaxAckBytes = 8 << 10
	// MaxAckMessage bounds the device's message kept with the command.
	MaxAckMessage = 512

	// MaxListLimit bounds GET .../commands.
	MaxListLimit = 500

	// sweepBatch bounds one sweep's work.
	sweepBatch = 500
)

// maxModelQuota caps each per-model MQTT quota value: generous for a busy
// device, far below what would let one model starve the broker.
const maxModelQuota = 1_000_000
