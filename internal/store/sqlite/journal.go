package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/rampart-iot/rampart/internal/journal"
)

// JournalStore keeps the tamper-evident journal in the journal and
// journal_checkpoints tables. It implements journal.Store.
type JournalStore struct{ db *DB }

var _ journal.Store = (*JournalStore)(nil)

// Journal returns the journal store over db.
func (db *DB) Journal() *JournalStore { return &JournalStore{db: db} }

const (
	journalColumns = `seq, time_ns, actor, tenant, action, target, outcome, detail, prev_hash, hash, mac`
	journalHead    = `SELECT seq, hash FROM journal ORDER BY seq DESC LIMIT 1`

	// journalInsertRows is how many entries one INSERT statement carries.
	// A multi-row INSERT pays database/sql's and SQLite's per-statement cost
	// once per 64 rows; 64*11 = 704 parameters stays far below SQLite's
	// limit of 32766.
	journalInsertRows = 64
)

// journalInsertSQL is a prepared-statement text inserting n entries.
func journalInsertSQL(n int) string {
	return `INSERT INTO journal (` + journalColumns + `) VALUES (?,?,?,?,?,?,?,?,?,?,?)` +
		strings.Repeat(`,(?,?,?,?,?,?,?,?,?,?,?)`, n-1)
}

var journalInsertFull = journalInsertSQL(journalInsertRows)

type journalQueryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func readHead(ctx context.Context, q journalQueryer) (journal.Head, error) {
	var h journal.Head
	err := q.QueryRowContext(ctx, journalHead).Scan(&h.Seq, &h.Hash)
	if errors.Is(err, sql.ErrNoRows) {
		return journal.Head{}, nil
	}
	if err != nil {
		return journal.Head{}, fmt.Errorf("reading journal head: %w", err)
	}
	return h, nil
}

// Head returns the last entry's seq and hash.
func (s *JournalStore) Head(ctx context.Context) (journal.Head, error) {
	return readHead(ctx, s.db.reader)
}

// Append reads the head and inserts what build returns in one write
// transaction (BEGIN IMMEDIATE, so another process appending waits for the
// lock rather than racing for the same seq).
func (s *JournalStore) Append(ctx context.Context, build func(journal.Head) ([]journal.Entry, error)) error {
	return s.db.withTx(ctx, func(tx *sql.Tx) error {
		head, err := readHead(ctx, tx)
		if err != nil {
			return err
		}
		entries, err := build(head)
		if err != nil || len(entries) == 0 {
			return err
		}
		// At most two prepared statements per transaction: one for full
		// chunks of journalInsertRows entries, one for the remainder.
		var full, rest *sql.Stmt
		defer func() {
			for _, st := range []*sql.Stmt{full, rest} {
				if st != nil {
					st.Close()
				}
			}
		}()
		args := make([]any, 0, 11*min(len(entries), journalInsertRows))
		var detail []byte
		for off := 0; off < len(entries); off += journalInsertRows {
			part := entries[off:min(off+journalInsertRows, len(entries))]
			stmt := &full
			text := journalInsertFull
			if len(part) < journalInsertRows {
				stmt, text = &rest, journalInsertSQL(len(part))
			}
			if *stmt == nil {
				if *stmt, err = tx.PrepareContext(ctx, text); err != nil {
					return fmt.Errorf("preparing journal insert: %w", err)
				}
			}
			args = args[:0]
			for i := range part {
				e := &part[i]
				if want := head.Seq + 1 + int64(off+i); e.Seq != want {
					return fmt.Errorf("journal entry has seq %d, want %d (entries must continue the head)", e.Seq, want)
				}
				detail = appendDetailJSON(detail[:0], e.Detail)
				args = append(args, e.Seq, unixNano(e.Time), e.Actor, e.Tenant, e.Action,
					e.Target, e.Outcome, string(detail), e.PrevHash, e.Hash, e.MAC)
			}
			if _, err := (*stmt).ExecContext(ctx, args...); err != nil {
				return fmt.Errorf("inserting journal entries %d..%d: %w", part[0].Seq, part[len(part)-1].Seq, err)
			}
		}
		return nil
	})
}

// appendDetailJSON encodes detail as a JSON object with sorted keys; an
// empty map is {}. Plain strings (the usual case) are written directly;
// anything needing an escape goes through encoding/json, which also sorts
// map keys.
func appendDetailJSON(buf []byte, d map[string]string) []byte {
	if len(d) == 0 {
		return append(buf, "{}"...)
	}
	var arr [16]string
	keys := arr[:0]
	for k, v := range d {
		if !plainJSON(k) || !plainJSON(v) {
			b, err := json.Marshal(d)
			if err != nil { // a map[string]string always encodes
				panic(err)
			}
			return append(buf, b...)
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	buf = append(buf, '{')
	for i, k := range keys {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, '"')
		buf = append(buf, k...)
		buf = append(buf, '"', ':', '"')
		buf = append(buf, d[k]...)
		buf = append(buf, '"')
	}
	return append(buf, '}')
}

// plainJSON reports whether s can stand between JSON quotes unescaped and
// decode to itself: printable ASCII other than the quote and backslash.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// parseDetailJSON decodes a detail column. The fast path reads what
// appendDetailJSON writes for plain strings; anything else (escapes,
// non-ASCII, whitespace, a tampered value) is left to encoding/json, so
// both paths agree on every input (FuzzParseDetailJSON checks it).
func parseDetailJSON(b string) (map[string]string, error) {
	if b == "{}" {
		return nil, nil
	}
	if d, ok := parsePlainDetail(b); ok {
		return d, nil
	}
	var d map[string]string
	if err := json.Unmarshal([]byte(b), &d); err != nil {
		return nil, fmt.Errorf("detail: %w", err)
	}
	if d == nil {
		return nil, errors.New("detail is not a JSON object")
	}
	if len(d) == 0 {
		return nil, nil
	}
	return d, nil
}

// parsePlainDetail parses {"k":"v",...} with plain strings and no
// whitespace; ok is false for anything else. Keys and values are
// substrings of b: no copies.
func parsePlainDetail(b string) (map[string]string, bool) {
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return nil, false
	}
	b = b[1 : len(b)-1]
	d := make(map[string]string, 4)
	str := func() (string, bool) {
		if len(b) == 0 || b[0] != '"' {
			return "", false
		}
		for i := 1; i < len(b); i++ {
			switch c := b[i]; {
			case c == '"':
				s := b[1:i]
				b = b[i+1:]
				return s, true
			case c < 0x20 || c >= 0x7f || c == '\\':
				return "", false
			}
		}
		return "", false
	}
	for {
		k, ok := str()
		if !ok || len(b) == 0 || b[0] != ':' {
			return nil, false
		}
		b = b[1:]
		v, ok := str()
		if !ok {
			return nil, false
		}
		d[k] = v
		if len(b) == 0 {
			return d, true
		}
		if b[0] != ',' {
			return nil, false
		}
		b = b[1:]
	}
}

// Scan streams entries with seq >= fromSeq in seq order. A row whose
// columns do not decode is reported as a *journal.CorruptError.
func (s *JournalStore) Scan(ctx context.Context, fromSeq int64, fn func(journal.Entry) error) error {
	rows, err := s.db.reader.QueryContext(ctx,
		`SELECT `+journalColumns+` FROM journal WHERE seq >= ? ORDER BY seq`, fromSeq)
	if err != nil {
		return fmt.Errorf("reading journal: %w", err)
	}
	defer rows.Close()
	// Text columns scan straight into strings (the driver's own, no copy);
	// time, detail and the blobs into RawBytes, copied out or parsed below,
	// so a column of the wrong type is blamed on its row instead of failing
	// the whole scan.
	var (
		seq                                         int64
		actor, tenant, action, target, outcome, dtl string
		timeNS, prev, hash, mac                     sql.RawBytes
	)
	for rows.Next() {
		if err := rows.Scan(&seq, &timeNS, &actor, &tenant, &action, &target, &outcome, &dtl, &prev, &hash, &mac); err != nil {
			// A NULL where text belongs (a rebuilt table): name the row.
			dest := make([]any, 11)
			for i := range dest {
				dest[i] = new(any)
			}
			if rows.Scan(dest...) == nil {
				if n, ok := (*dest[0].(*any)).(int64); ok {
					return &journal.CorruptError{Seq: n, Err: err}
				}
			}
			return fmt.Errorf("reading journal: %w", err)
		}
		ns, err := strconv.ParseInt(string(timeNS), 10, 64)
		if err != nil {
			return &journal.CorruptError{Seq: seq, Err: fmt.Errorf("time_ns %q is not an integer", timeNS)}
		}
		detail, err := parseDetailJSON(dtl)
		if err != nil {
			return &journal.CorruptError{Seq: seq, Err: err}
		}
		sums := make([]byte, 0, len(prev)+len(hash)+len(mac))
		sums = append(append(append(sums, prev...), hash...), mac...)
		e := journal.Entry{
			Seq: seq, Time: fromUnixNano(ns),
			Actor: actor, Tenant: tenant, Action: action,
			Target: target, Outcome: outcome, Detail: detail,
			PrevHash: sums[:len(prev):len(prev)],
			Hash:     sums[len(prev) : len(prev)+len(hash) : len(prev)+len(hash)],
			MAC:      sums[len(prev)+len(hash):],
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading journal: %w", err)
	}
	return nil
}

// AddCheckpoint stores c, or returns journal.ErrCheckpointExists when a
// checkpoint at c.Seq is already stored.
func (s *JournalStore) AddCheckpoint(ctx context.Context, c journal.Checkpoint) error {
	res, err := s.db.writer.ExecContext(ctx,
		`INSERT INTO journal_checkpoints (seq, hash, time_ns, key_id, signature) VALUES (?,?,?,?,?) ON CONFLICT(seq) DO NOTHING`,
		c.Seq, c.Hash, unixNano(c.Time), c.KeyID, c.Signature)
	if err != nil {
		return fmt.Errorf("storing journal checkpoint %d: %w", c.Seq, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("storing journal checkpoint %d: %w", c.Seq, err)
	}
	if n == 0 {
		return journal.ErrCheckpointExists
	}
	return nil
}

// Checkpoints returns every checkpoint in seq order.
func (s *JournalStore) Checkpoints(ctx context.Context) ([]journal.Checkpoint, error) {
	rows, err := s.db.reader.QueryContext(ctx,
		`SELECT seq, hash, time_ns, key_id, signature FROM journal_checkpoints ORDER BY seq`)
	if err != nil {
		return nil, fmt.Errorf("reading journal checkpoints: %w", err)
	}
	defer rows.Close()
	var out []journal.Checkpoint
	for rows.Next() {
		var (
			c      journal.Checkpoint
			timeNS sql.RawBytes
			keyID  sql.RawBytes
		)
		if err := rows.Scan(&c.Seq, &c.Hash, &timeNS, &keyID, &c.Signature); err != nil {
			return nil, fmt.Errorf("reading journal checkpoints: %w", err)
		}
		ns, err := strconv.ParseInt(string(timeNS), 10, 64)
		if err != nil {
			// A mangled time cannot verify; keep the row so Verify names it.
			ns = 0
		}
		c.Time = fromUnixNano(ns)
		c.KeyID = string(keyID)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading journal checkpoints: %w", err)
	}
	return out, nil
}
