package journal

import "time"

const (
	// defaultCheckpointEvery: a signature every 1000 entries costs one
	// Ed25519 signing (~20µs) per 1000 appends, and bounds what a truncation
	// past the last checkpoint can silently remove to under 1000 entries.
	defaultCheckpointEvery = 1000

	// defaultCheckpointInterval: on a quiet hub, entries still get signed
	// within a minute, so an attacker who truncates the tail has at most a
	// minute of history they can erase without a trace.
	defaultCheckpointInterval = 60 * time.Second
)

// macKeySize: the MAC key is exactly 32 bytes, the full strength of
// HMAC-SHA256; a shorter key would be the weakest link of the chain.
const macKeySize = 32
