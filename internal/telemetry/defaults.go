package telemetry

import "time"

const (
	// defaultBatchSize / defaultFlushEvery: one SQLite transaction per 500
	// messages or per 100 ms, whichever first — thousands of messages per
	// second without a transaction each, and at most 100 ms of delay.
	defaultBatchSize  = 500
	defaultFlushEvery = 100 * time.Millisecond
	// defaultQueueSize bounds memory when storage is slower than ingest;
	// the excess is dropped and counted rather than stalling the broker.
	defaultQueueSize = 50_000
	// DefaultRetention: a month of history for dashboards and forensics.
	DefaultRetention    = 30 * 24 * time.Hour
	retentionSweepEvery = 10 * time.Minute
	// MaxListLimit bounds one API answer.
	MaxListLimit = 1000
)
