package journal

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Hard limits on what one event may hold. Events come from every part of the
// hub, often carrying values a network client chose (a device name, a
// login email), so each is bounded: the journal must never be the way to fill
// the disk or make verification slow.
const (
	// maxFieldBytes bounds actor, tenant, action, target, outcome and each
	// detail key and value. IDs, emails, topic names and error codes fit;
	// a payload does not belong in the journal.
	maxFieldBytes = 256

	// maxDetailKeys bounds the detail map. An audit record names a few
	// facts; 64 is far above any event the hub writes.
	maxDetailKeys = 64

	// maxDetailBytes bounds the sum of detail key and value lengths, so one
	// entry stays well under a page of the database and a line of export.
	maxDetailBytes = 4 << 10

	// maxBatch bounds RecordBatch: one batch is one write transaction, and
	// a transaction holds the database write lock for its whole length.
	maxBatch = 4096

	// diagnoseWindow is how many rows Verify reads past a bad entry to tell
	// an inserted, reordered or renumbered entry from a modified one.
	diagnoseWindow = 64

	// maxVerifyWorkers bounds how many ranges Verify reads at once: each
	// holds a read connection (the SQLite store's pool has 4), and hashing
	// stops scaling before the disk does.
	maxVerifyWorkers = 4

	// minParallelEntries is the smallest range worth its own goroutine and
	// connection; below it, one sequential pass is as fast.
	minParallelEntries = 10_000

	// maxExportLine bounds one line ParseExportLine accepts: the largest
	// entry within the limits above, JSON-escaped (up to 6 bytes per input
	// byte), with room for the fixed fields.
	maxExportLine = 6*(5*maxFieldBytes+maxDetailBytes) + 4<<10
)

func validateEvent(ev *Event) error {
	if ev.Action == "" {
		return fmt.Errorf("%w: action is empty", ErrInvalidEvent)
	}
	fields := [...]struct{ name, v string }{
		{"actor", ev.Actor}, {"tenant", ev.Tenant}, {"action", ev.Action},
		{"target", ev.Target}, {"outcome", ev.Outcome},
	}
	for _, f := range fields {
		if err := validateString(f.name, f.v); err != nil {
			return err
		}
	}
	if len(ev.Detail) > maxDetailKeys {
		return fmt.Errorf("%w: detail has %d keys, at most %d allowed", ErrInvalidEvent, len(ev.Detail), maxDetailKeys)
	}
	total := 0
	for k, v := range ev.Detail {
		if k == "" {
			return fmt.Errorf("%w: detail has an empty key", ErrInvalidEvent)
		}
		if err := validateString("detail key", k); err != nil {
			return err
		}
		if err := validateString("detail["+k+"]", v); err != nil {
			return err
		}
		total += len(k) + len(v)
	}
	if total > maxDetailBytes {
		return fmt.Errorf("%w: detail holds %d bytes, at most %d allowed", ErrInvalidEvent, total, maxDetailBytes)
	}
	return nil
}

// validateString: bounded, valid UTF-8 (stored as JSON and TEXT, which
// would silently replace invalid bytes and so break the hash), and free of
// NUL (which C-string tools such as the sqlite3 shell cut text at).
func validateString(name, v string) error {
	if len(v) > maxFieldBytes {
		return fmt.Errorf("%w: %s is %d bytes, at most %d allowed", ErrInvalidEvent, name, len(v), maxFieldBytes)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidEvent, name)
	}
	if strings.IndexByte(v, 0) >= 0 {
		return fmt.Errorf("%w: %s contains a NUL byte", ErrInvalidEvent, name)
	}
	return nil
}
