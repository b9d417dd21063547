package sqlite

import "time"

const (
	// busyTimeout is how long a writer waits for another process (for
	// example `rampart keys rotate` beside a running hub) to release the
	// write lock before giving up. Long enough for any single transaction the
	// hub runs; short enough that a stuck lock surfaces as an error.
	busyTimeout = 5 * time.Second

	// readerConns bounds the read pool. WAL readers do not block the writer;
	// a handful covers two cores with room for slow scans (journal verify).
	readerConns = 4
)
