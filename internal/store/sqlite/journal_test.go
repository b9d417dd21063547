package sqlite

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rampart-iot/rampart/internal/journal"
	"github.com/rampart-iot/rampart/internal/testkit"
)

var journalT0 = time.Date(2026, 3, 4, 5, 6, 7, 8, time.UTC)

// journalKeys are fixed test keys.
func journalKeys(t testing.TB) (ed25519.PrivateKey, journal.VerifyKeys) {
	t.Helper()
	seed := make([]byte, 32)
	testkit.NewRand("journal-signer").Read(seed)
	mac := make([]byte, 32)
	testkit.NewRand("journal-mac").Read(mac)
	priv := ed25519.NewKeyFromSeed(seed)
	return priv, journal.VerifyKeys{Public: priv.Public().(ed25519.PublicKey), MACKey: mac}
}

func journalEvent(i int) journal.Event {
	return journal.Event{
		Actor: fmt.Sprintf("user:%d", i%17), Tenant: "tenant-a", Action: "device.command",
		Target: fmt.Sprintf("device:%d", i), Outcome: journal.OutcomeSuccess,
		Detail: map[string]string{"ip": "192.0.2.7", "command": "reboot", "n": fmt.Sprint(i)},
	}
}

// writeJournal creates a journal of n entries at path (checkpoints every
// 1000 and on Close) and closes the database.
func writeJournal(t testing.TB, path string, n int) {
	t.Helper()
	ctx := context.Background()
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	priv, keys := journalKeys(t)
	clock := testkit.NewClock(journalT0)
	j, err := journal.New(journal.Options{Store: db.Journal(), Signer: priv, MACKey: keys.MACKey, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	batch := make([]journal.Event, 0, 100)
	for i := range n {
		batch = append(batch, journalEvent(i))
		if len(batch) == cap(batch) || i == n-1 {
			clock.Advance(time.Millisecond)
			if err := j.RecordBatch(ctx, batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := j.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func verifyFile(t testing.TB, path string) *journal.Report {
	t.Helper()
	ctx := context.Background()
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, keys := journalKeys(t)
	rep, err := journal.Verify(ctx, db.Journal(), keys)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// raw opens the file the way an attacker with write access would: a plain
// database/sql connection, no journal code.
func raw(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1) // BEGIN ... COMMIT in rehashFrom must share a connection
	t.Cleanup(func() { db.Close() })
	return db
}

func exec(t testing.TB, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

type rawRow struct {
	seq, timeNS                                    int64
	actor, tenant, action, target, outcome, detail string
	prev, hash, mac                                []byte
}

func readRaw(t testing.TB, db *sql.DB, seq int64) rawRow {
	t.Helper()
	var r rawRow
	err := db.QueryRow(`SELECT seq, time_ns, actor, tenant, action, target, outcome, detail, prev_hash, hash, mac FROM journal WHERE seq = ?`, seq).
		Scan(&r.seq, &r.timeNS, &r.actor, &r.tenant, &r.action, &r.target, &r.outcome, &r.detail, &r.prev, &r.hash, &r.mac)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// attackerHash recomputes an entry's hash with the public algorithm, as an
// attacker who read the source would.
func attackerHash(t testing.TB, r rawRow) []byte {
	t.Helper()
	var d map[string]string
	if err := json.Unmarshal([]byte(r.detail), &d); err != nil {
		t.Fatal(err)
	}
	return journal.EntryHash(&journal.Entry{Seq: r.seq, Time: time.Unix(0, r.timeNS), Actor: r.actor, Tenant: r.tenant,
		Action: r.action, Target: r.target, Outcome: r.outcome, Detail: d, PrevHash: r.prev})
}

func randomMAC() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
}

// rehashFrom rewrites the hash chain from entry k to the end after a change,
// as an attacker without the MAC key can: hashes consistent, MACs not.
func rehashFrom(t testing.TB, db *sql.DB, k int64) {
	t.Helper()
	var last int64
	if err := db.QueryRow(`SELECT max(seq) FROM journal`).Scan(&last); err != nil {
		t.Fatal(err)
	}
	prev := readRaw(t, db, k-1).hash
	exec(t, db, `BEGIN`)
	for s := k; s <= last; s++ {
		r := readRaw(t, db, s)
		r.prev = prev
		h := attackerHash(t, r)
		if _, err := db.Exec(`UPDATE journal SET prev_hash = ?, hash = ?, mac = ? WHERE seq = ?`, prev, h, randomMAC(), s); err != nil {
			t.Fatal(err)
		}
		prev = h
	}
	exec(t, db, `COMMIT`)
}

func TestJournalVerifyDetectsTampering(t *testing.T) {
	const n, k = 3000, 1234
	tests := []struct {
		name     string
		tamper   func(t *testing.T, db *sql.DB)
		wantSeq  int64
		wantKind string
	}{
		{"ok/untouched", func(*testing.T, *sql.DB) {}, 0, ""},
		{"fail/modified-actor", func(t *testing.T, db *sql.DB) {
			exec(t, db, fmt.Sprintf(`UPDATE journal SET actor = 'user:mallory' WHERE seq = %d`, k))
		}, k, journal.KindModified},
		{"fail/modified-outcome", func(t *testing.T, db *sql.DB) {
			exec(t, db, fmt.Sprintf(`UPDATE journal SET outcome = 'denied' WHERE seq = %d`, k))
		}, k, journal.KindModified},
		{"fail/modified-detail", func(t *testing.T, db *sql.DB) {
			exec(t, db, fmt.Sprintf(`UPDATE journal SET detail = '{"command":"reboot","ip":"203.0.113.9","n":"1234"}' WHERE seq = %d`, k))
		}, k, journal.KindModified},
		{"fail/modified-time", func(t *testing.T, db *sql.DB) {
			exec(t, db, fmt.Sprintf(`UPDATE journal SET time_ns = time_ns + 1 WHERE seq = %d`, k))
		}, k, journal.KindModified},
		{"fail/detail-not-json", func(t *testing.T, db *sql.DB) {
			exec(t, db, fmt.Sprintf(`UPDATE journal SET detail = 'gone' WHERE seq = %d`, k))
		}, k, journal.KindModified},
		{"fail/time-not-integer", func(t *testing.T, db *sql.DB) {
			exec(t, db, fmt.Sprintf(`UPDATE journal SET time_ns = 'yesterday' WHERE seq = %d`, k))
		}, k, journal.KindModified},
		{"fail/mac-column-edited", func(t *testing.T, db *sql.DB) {
			exec(t, db, fmt.Sprintf(`UPDATE journal SET mac = zeroblob(32) WHERE seq = %d`, k))
		}, k, journal.KindModified},
		{"fail/modified-and-chain-rehashed-without-mac-key", func(t *testing.T, db *sql.DB) {
			exec(t, db, fmt.Sprintf(`UPDATE journal SET outcome = 'failure' WHERE seq = %d`, k))
			rehashFrom(t, db, k)
		}, k, journal.KindModified},
		{"fail/removed", func(t *testing.T, db *sql.DB) {
			exec(t, db, fmt.Sprintf(`DELETE FROM journal WHERE seq = %d`, k))
		}, k, journal.KindRemoved},
		{"fail/removed-three", func(t *testing.T, db *sql.DB) {
			exec(t, db, fmt.Sprintf(`DELETE FROM journal WHERE seq BETWEEN %d AND %d`, k, k+2))
		}, k, journal.KindRemoved},
		{"fail/removed-and-renumbered", func(t *testing.T, db *sql.DB) {
			exec(t, db, fmt.Sprintf(`DELETE FROM journal WHERE seq = %d`, k),
				fmt.Sprintf(`UPDATE journal SET seq = -(seq - 1) WHERE seq > %d`, k),
				`UPDATE journal SET seq = -seq WHERE seq < 0`)
		}, k, journal.KindRemoved},
		{"fail/inserted-and-renumbered", func(t *testing.T, db *sql.DB) {
			exec(t, db, fmt.Sprintf(`UPDATE journal SET seq = -(seq + 1) WHERE seq >= %d`, k),
				`UPDATE journal SET seq = -seq WHERE seq < 0`)
			forged := readRaw(t, db, k-1)
			forged.seq, forged.prev, forged.actor, forged.action = k, forged.hash, "user:0", "account.grant_owner"
			forged.hash = attackerHash(t, forged)
			if _, err := db.Exec(`INSERT INTO journal VALUES (?,?,?,?,?,?,?,?,?,?,?)`, forged.seq, forged.timeNS, forged.actor,
				forged.tenant, forged.action, forged.target, forged.outcome, forged.detail, forged.prev, forged.hash, randomMAC()); err != nil {
				t.Fatal(err)
			}
		}, k, journal.KindInserted},
		{"fail/inserted-at-end", func(t *testing.T, db *sql.DB) {
			forged := readRaw(t, db, n)
			forged.seq, forged.prev, forged.action = n+1, forged.hash, "firmware.approve"
			forged.hash = attackerHash(t, forged)
			if _, err := db.Exec(`INSERT INTO journal VALUES (?,?,?,?,?,?,?,?,?,?,?)`, forged.seq, forged.timeNS, forged.actor,
				forged.tenant, forged.action, forged.target, forged.outcome, forged.detail, forged.prev, forged.hash, randomMAC()); err != nil {
				t.Fatal(err)
			}
		}, n + 1, journal.KindInserted},
		{"fail/reordered", func(t *testing.T, db *sql.DB) {
			exec(t, db, fmt.Sprintf(`UPDATE journal SET seq = -1 WHERE seq = %d`, k),
				fmt.Sprintf(`UPDATE journal SET seq = %d WHERE seq = %d`, k, k+1),
				fmt.Sprintf(`UPDATE journal SET seq = %d WHERE seq = -1`, k+1))
		}, k, journal.KindReordered},
		{"fail/truncated-past-last-checkpoint", func(t *testing.T, db *sql.DB) {
			exec(t, db, `DELETE FROM journal WHERE seq > 2500`)
		}, 2501, journal.KindRemoved},
		{"fail/everything-deleted", func(t *testing.T, db *sql.DB) {
			exec(t, db, `DELETE FROM journal`)
		}, 1, journal.KindRemoved},
		{"fail/checkpoint-bad-signature", func(t *testing.T, db *sql.DB) {
			exec(t, db, `UPDATE journal_checkpoints SET signature = zeroblob(64) WHERE seq = 2000`)
		}, 2000, journal.KindCheckpoint},
		{"fail/checkpoint-hash-edited", func(t *testing.T, db *sql.DB) {
			exec(t, db, `UPDATE journal_checkpoints SET hash = zeroblob(32) WHERE seq = 2000`)
		}, 2000, journal.KindCheckpoint},
		{"fail/checkpoint-signed-by-attacker", func(t *testing.T, db *sql.DB) {
			_, priv, _ := ed25519.GenerateKey(rand.Reader)
			var hash []byte
			var ns int64
			if err := db.QueryRow(`SELECT hash, time_ns FROM journal_checkpoints WHERE seq = 2000`).Scan(&hash, &ns); err != nil {
				t.Fatal(err)
			}
			// The attacker cannot reach the unexported message builder, so
			// signs something plausible with their own key under their own ID.
			sig := ed25519.Sign(priv, hash)
			id := journal.KeyID(priv.Public().(ed25519.PublicKey))
			if _, err := db.Exec(`UPDATE journal_checkpoints SET key_id = ?, signature = ? WHERE seq = 2000`, id, sig); err != nil {
				t.Fatal(err)
			}
		}, 2000, journal.KindCheckpoint},
		{"fail/first-problem-wins-entry", func(t *testing.T, db *sql.DB) {
			exec(t, db, `UPDATE journal_checkpoints SET signature = zeroblob(64) WHERE seq = 2000`,
				`UPDATE journal SET target = 'device:x' WHERE seq = 500`)
		}, 500, journal.KindModified},
		{"fail/first-problem-wins-checkpoint", func(t *testing.T, db *sql.DB) {
			exec(t, db, `UPDATE journal_checkpoints SET signature = zeroblob(64) WHERE seq = 1000`,
				`UPDATE journal SET target = 'device:x' WHERE seq = 2500`)
		}, 1000, journal.KindCheckpoint},
	}
	base := filepath.Join(t.TempDir(), "base.db")
	writeJournal(t, base, n)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "rampart.db")
			copyDB(t, base, path)
			db := raw(t, path)
			tc.tamper(t, db)
			db.Close()

			rep := verifyFile(t, path)
			if tc.wantKind == "" {
				if !rep.OK() {
					t.Fatalf("untouched journal reported %v", rep.Problem)
				}
				if rep.Entries != n || rep.LastSeq != n || rep.Checkpoints != 3 || rep.CheckpointedSeq != n {
					t.Fatalf("report = %+v, want %d entries and 3 checkpoints covering all", rep, n)
				}
				return
			}
			p := rep.Problem
			if p == nil {
				t.Fatal("tampering went undetected")
			}
			if p.Seq != tc.wantSeq || p.Kind != tc.wantKind {
				t.Fatalf("problem = %v, want seq %d %s", p, tc.wantSeq, tc.wantKind)
			}
			if p.Seq > 1 && p.Kind != journal.KindCheckpoint && rep.LastSeq != p.Seq-1 {
				t.Errorf("report LastSeq = %d, want %d (entries before the problem are intact)", rep.LastSeq, p.Seq-1)
			}
			t.Logf("%v", p)
		})
	}
}

// TestJournalVerifyLargeParallel runs Verify over a journal big enough to
// be read in parallel ranges through the real reader pool (with 2 or 4
// CPUs a range starts at 20,001), tampered at a range boundary.
func TestJournalVerifyLargeParallel(t *testing.T) {
	const n = 40_000
	path := filepath.Join(t.TempDir(), "big.db")
	writeJournal(t, path, n)
	if rep := verifyFile(t, path); !rep.OK() || rep.Entries != n || rep.Checkpoints != n/1000 {
		t.Fatalf("untouched: report %+v, problem %v", rep, rep.Problem)
	}
	db := raw(t, path)
	exec(t, db, `UPDATE journal SET outcome = 'failure' WHERE seq = 20001`, `DELETE FROM journal WHERE seq = 30000`)
	db.Close()
	rep := verifyFile(t, path)
	if p := rep.Problem; p == nil || p.Seq != 20001 || p.Kind != journal.KindModified || rep.Entries != 20000 {
		t.Fatalf("problem = %v (after %d entries), want 20001 modified after 20000", p, rep.Entries)
	}
}

// copyDB copies a closed database with VACUUM INTO, which is WAL-safe.
func copyDB(t testing.TB, from, to string) {
	t.Helper()
	db := raw(t, from)
	if _, err := db.Exec(`VACUUM INTO ?`, to); err != nil {
		t.Fatal(err)
	}
	db.Close()
}

func TestJournalStoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	priv, keys := journalKeys(t)
	clock := testkit.NewClock(journalT0)
	j, err := journal.New(journal.Options{Store: db.Journal(), Signer: priv, MACKey: keys.MACKey, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	events := []journal.Event{
		{Action: "a"},
		{Actor: "user:ä", Tenant: "t", Action: "login", Target: "x", Outcome: journal.OutcomeDenied,
			Detail: map[string]string{"html": "<b>&</b>", "quote": `"\`, "ctl": "\n\t\x01", "emoji": "🔒"}},
	}
	if err := j.RecordBatch(ctx, events); err != nil {
		t.Fatal(err)
	}
	var got []journal.Entry
	if err := db.Journal().Scan(ctx, 1, func(e journal.Entry) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("scanned %d entries, want 2", len(got))
	}
	for i, e := range got {
		ev := events[i]
		if e.Seq != int64(i+1) || !e.Time.Equal(journalT0) || e.Actor != ev.Actor || e.Tenant != ev.Tenant ||
			e.Action != ev.Action || e.Target != ev.Target || e.Outcome != ev.Outcome ||
			(len(ev.Detail) > 0 && !reflect.DeepEqual(e.Detail, ev.Detail)) || (len(ev.Detail) == 0 && e.Detail != nil) {
			t.Errorf("entry %d = %+v, want %+v", i+1, e, ev)
		}
		if !bytes.Equal(journal.EntryHash(&e), e.Hash) {
			t.Errorf("entry %d does not hash to its stored hash after a round trip", e.Seq)
		}
	}
	var detail string
	if err := db.Reader().QueryRow(`SELECT detail FROM journal WHERE seq = 2`).Scan(&detail); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(detail, `{"ctl":`) || !strings.Contains(detail, `"quote":`) {
		t.Errorf("detail stored as %s, want a JSON object with sorted keys", detail)
	}
	if rep, err := journal.Verify(ctx, db.Journal(), keys); err != nil || !rep.OK() {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}

func TestJournalStoreAppendRefusesGap(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := db.Journal()
	e := journal.Entry{Time: journalT0, Action: "a", PrevHash: journal.GenesisHash, Hash: make([]byte, 32), MAC: make([]byte, 32)}
	err = s.Append(ctx, func(h journal.Head) ([]journal.Entry, error) {
		a, b := e, e
		a.Seq, b.Seq = h.Seq+1, h.Seq+3
		return []journal.Entry{a, b}, nil
	})
	if err == nil {
		t.Fatal("Append stored entries with a seq gap")
	}
	if h, err := s.Head(ctx); err != nil || h.Seq != 0 {
		t.Fatalf("after a refused append head = %+v, %v; want empty (nothing stored)", h, err)
	}
	boom := errors.New("boom")
	if err := s.Append(ctx, func(journal.Head) ([]journal.Entry, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("Append returned %v, want build's error", err)
	}
}

func TestJournalStoreCheckpointExists(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c := journal.Checkpoint{Seq: 5, Hash: make([]byte, 32), Time: journalT0, KeyID: "k", Signature: make([]byte, 64)}
	if err := db.Journal().AddCheckpoint(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := db.Journal().AddCheckpoint(ctx, c); !errors.Is(err, journal.ErrCheckpointExists) {
		t.Fatalf("second checkpoint at the same seq: %v, want ErrCheckpointExists", err)
	}
	got, err := db.Journal().Checkpoints(ctx)
	if err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], c) {
		t.Fatalf("Checkpoints = %+v, %v; want [%+v]", got, err, c)
	}
}

// TestJournalTwoProcesses: two handles on one file (the hub and `rampart keys
// rotate`) append concurrently; the head is read inside each write
// transaction, so the chain stays whole.
func TestJournalTwoProcesses(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "r.db")
	priv, keys := journalKeys(t)
	var wg sync.WaitGroup
	for p := range 2 {
		db, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		j, err := journal.New(journal.Options{Store: db.Journal(), Signer: priv, MACKey: keys.MACKey, CheckpointEvery: 50})
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for i := range 100 {
				if err := j.RecordBatch(ctx, []journal.Event{journalEvent(p*1000 + i), journalEvent(i)}); err != nil {
					t.Error(err)
					return
				}
			}
			if err := j.Close(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	rep := verifyFile(t, path)
	if !rep.OK() || rep.Entries != 400 || rep.CheckpointedSeq != 400 {
		t.Fatalf("report = %+v, problem %v", rep, rep.Problem)
	}
}

func TestJournalExport(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "r.db")
	writeJournal(t, path, 1500)
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var buf bytes.Buffer
	if err := journal.Export(ctx, db.Journal(), &buf); err != nil {
		t.Fatal(err)
	}
	var entries, ckpts int
	sc := bufio.NewScanner(&buf)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		rec, err := journal.ParseExportLine(sc.Bytes())
		if err != nil {
			t.Fatalf("line %d: %v", entries+ckpts+1, err)
		}
		if rec.Entry != nil {
			entries++
			if rec.Entry.Seq != int64(entries) || ckpts > 0 {
				t.Fatalf("entry %d out of order (after %d checkpoints)", rec.Entry.Seq, ckpts)
			}
		} else {
			ckpts++
		}
	}
	if entries != 1500 || ckpts != 2 {
		t.Fatalf("export has %d entries and %d checkpoints, want 1500 and 2", entries, ckpts)
	}
}

// FuzzParseDetailJSON: the detail column is outside input (anyone who can
// write the file can put anything there). The fast path must agree with
// encoding/json on every input, and what appendDetailJSON writes must read
// back unchanged.
func FuzzParseDetailJSON(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":"b"}`, `{"command":"reboot","ip":"192.0.2.7","n":"1"}`, `{"a":"b","a":"c"}`,
		`{"a":"\u003c"}`, `{"a" : "b"}`, `{"a":1}`, `null`, `[]`, `{"a":"b",}`, `{"é":"ü"}`, `{"a":"b"}x`} {
		f.Add(s, "k", "v")
	}
	f.Fuzz(func(t *testing.T, col, k, v string) {
		got, err := parseDetailJSON(col)
		var want map[string]string
		wantErr := json.Unmarshal([]byte(col), &want)
		if wantErr == nil && want == nil {
			wantErr = errors.New("null")
		}
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("parseDetailJSON(%q) error = %v, encoding/json error = %v", col, err, wantErr)
		}
		if err == nil && !(len(got) == 0 && len(want) == 0) && !reflect.DeepEqual(got, want) {
			t.Fatalf("parseDetailJSON(%q) = %v, encoding/json = %v", col, got, want)
		}
		if !utf8Valid(k, v) {
			return // the journal refuses invalid UTF-8 before it reaches the store
		}
		d := map[string]string{k: v, "z" + k: v + "z"}
		back, err := parseDetailJSON(string(appendDetailJSON(nil, d)))
		if err != nil || !reflect.DeepEqual(back, d) {
			t.Fatalf("detail %q read back as %q, %v", d, back, err)
		}
	})
}

func utf8Valid(ss ...string) bool {
	for _, s := range ss {
		if !utf8.ValidString(s) {
			return false
		}
	}
	return true
}

// journalBatch and journalBatchesPerOp size BenchmarkJournalAppend: one op
// is 40 batches of 256 events (10,240 entries), so even -benchtime 3x
// measures a steady state rather than the first statement's preparation.
const (
	journalBatch        = 256
	journalBatchesPerOp = 40
)

// BenchmarkJournalAppend records batches of 256 events through the journal
// into a real database file.
func BenchmarkJournalAppend(b *testing.B) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	priv, keys := journalKeys(b)
	j, err := journal.New(journal.Options{Store: db.Journal(), Signer: priv, MACKey: keys.MACKey})
	if err != nil {
		b.Fatal(err)
	}
	events := make([]journal.Event, journalBatch)
	for i := range events {
		events[i] = journalEvent(i)
	}
	if err := j.RecordBatch(ctx, events); err != nil { // warm up: schema, page cache
		b.Fatal(err)
	}
	for b.Loop() {
		for range journalBatchesPerOp {
			if err := j.RecordBatch(ctx, events); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N*journalBatch*journalBatchesPerOp)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkJournalVerify verifies a 100,000-entry journal (with its 100
// checkpoints); one op is one full verification.
func BenchmarkJournalVerify(b *testing.B) {
	const n = 100_000
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "bench.db")
	writeJournal(b, path, n)
	db, err := Open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	_, keys := journalKeys(b)
	for b.Loop() {
		rep, err := journal.Verify(ctx, db.Journal(), keys)
		if err != nil || !rep.OK() || rep.Entries != n || rep.Checkpoints != n/1000 {
			b.Fatalf("verify: %+v %v", rep, err)
		}
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "entries/s")
}
