package journal

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// exportLine is one line of an export: an entry or a checkpoint.
type exportLine struct {
	Type      string            `json:"type"`
	Seq       int64             `json:"seq"`
	Time      string            `json:"time"`
	Actor     *string           `json:"actor,omitempty"`
	Tenant    *string           `json:"tenant,omitempty"`
	Action    *string           `json:"action,omitempty"`
	Target    *string           `json:"target,omitempty"`
	Outcome   *string           `json:"outcome,omitempty"`
	Detail    map[string]string `json:"detail,omitempty"`
	PrevHash  string            `json:"prev_hash,omitempty"`
	Hash      string            `json:"hash"`
	MAC       string            `json:"mac,omitempty"`
	KeyID     string            `json:"key_id,omitempty"`
	Signature string            `json:"signature,omitempty"`
}

const (
	lineEntry      = "entry"
	lineCheckpoint = "checkpoint"
)

func entryLine(e *Entry) exportLine {
	return exportLine{
		Type: lineEntry, Seq: e.Seq, Time: e.Time.UTC().Format(time.RFC3339Nano),
		Actor: &e.Actor, Tenant: &e.Tenant, Action: &e.Action, Target: &e.Target, Outcome: &e.Outcome,
		Detail:   e.Detail,
		PrevHash: hex.EncodeToString(e.PrevHash), Hash: hex.EncodeToString(e.Hash), MAC: hex.EncodeToString(e.MAC),
	}
}

func checkpointLine(c *Checkpoint) exportLine {
	return exportLine{
		Type: lineCheckpoint, Seq: c.Seq, Time: c.Time.UTC().Format(time.RFC3339Nano),
		Hash: hex.EncodeToString(c.Hash), KeyID: c.KeyID, Signature: hex.EncodeToString(c.Signature),
	}
}

// Export writes the journal as JSON lines: one object per entry in seq
// order ("type":"entry", seq, time in RFC 3339 with nanoseconds, the fields,
// detail, and prev_hash/hash/mac in hex), then one per checkpoint
// ("type":"checkpoint", seq, time, hash, key_id, signature). It copies what
// is stored, tampered or not; run Verify to judge it.
func Export(ctx context.Context, store Store, w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	err := store.Scan(ctx, 1, func(e Entry) error {
		return enc.Encode(entryLine(&e))
	})
	if err != nil {
		return fmt.Errorf("exporting journal entries: %w", err)
	}
	ckpts, err := store.Checkpoints(ctx)
	if err != nil {
		return fmt.Errorf("exporting journal checkpoints: %w", err)
	}
	for i := range ckpts {
		if err := enc.Encode(checkpointLine(&ckpts[i])); err != nil {
			return fmt.Errorf("exporting journal checkpoints: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("exporting journal: %w", err)
	}
	return nil
}

// ExportRecord is one parsed export line: exactly one of Entry and
// Checkpoint is set.
type ExportRecord struct {
	Entry      *Entry
	Checkpoint *Checkpoint
}

// ParseExportLine parses one line written by Export. It is strict (unknown
// fields, wrong hash sizes, fields over the journal's limits and trailing
// data are errors) because exports travel outside the hub.
func ParseExportLine(line []byte) (ExportRecord, error) {
	if len(line) > maxExportLine {
		return ExportRecord{}, fmt.Errorf("export line is %d bytes, at most %d allowed", len(line), maxExportLine)
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	var l exportLine
	if err := dec.Decode(&l); err != nil {
		return ExportRecord{}, fmt.Errorf("parsing export line: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return ExportRecord{}, errors.New("parsing export line: data after the JSON object")
	}
	if l.Seq < 1 {
		return ExportRecord{}, fmt.Errorf("parsing export line: seq %d is not positive", l.Seq)
	}
	t, err := time.Parse(time.RFC3339Nano, l.Time)
	if err != nil {
		return ExportRecord{}, fmt.Errorf("parsing export line %d: time: %w", l.Seq, err)
	}
	t = t.UTC()
	if t.Format(time.RFC3339Nano) != l.Time {
		return ExportRecord{}, fmt.Errorf("parsing export line %d: time %q is not in UTC RFC 3339 form", l.Seq, l.Time)
	}
	hash, err := hexField("hash", l.Hash, 32)
	if err != nil {
		return ExportRecord{}, fmt.Errorf("parsing export line %d: %w", l.Seq, err)
	}
	switch l.Type {
	case lineEntry:
		if l.Actor == nil || l.Tenant == nil || l.Action == nil || l.Target == nil || l.Outcome == nil ||
			l.KeyID != "" || l.Signature != "" {
			return ExportRecord{}, fmt.Errorf("parsing export line %d: an entry needs actor, tenant, action, target and outcome, and no checkpoint fields", l.Seq)
		}
		e := &Entry{Seq: l.Seq, Time: t, Actor: *l.Actor, Tenant: *l.Tenant, Action: *l.Action,
			Target: *l.Target, Outcome: *l.Outcome, Detail: l.Detail, Hash: hash}
		if len(e.Detail) == 0 {
			e.Detail = nil
		}
		ev := Event{Actor: e.Actor, Tenant: e.Tenant, Action: e.Action, Target: e.Target, Outcome: e.Outcome, Detail: e.Detail}
		if err := validateEvent(&ev); err != nil {
			return ExportRecord{}, fmt.Errorf("parsing export line %d: %w", l.Seq, err)
		}
		if e.PrevHash, err = hexField("prev_hash", l.PrevHash, 32); err != nil {
			return ExportRecord{}, fmt.Errorf("parsing export line %d: %w", l.Seq, err)
		}
		if e.MAC, err = hexField("mac", l.MAC, 32); err != nil {
			return ExportRecord{}, fmt.Errorf("parsing export line %d: %w", l.Seq, err)
		}
		return ExportRecord{Entry: e}, nil
	case lineCheckpoint:
		if l.Actor != nil || l.Tenant != nil || l.Action != nil || l.Target != nil || l.Outcome != nil ||
			l.Detail != nil || l.PrevHash != "" || l.MAC != "" {
			return ExportRecord{}, fmt.Errorf("parsing export line %d: a checkpoint has no entry fields", l.Seq)
		}
		if len(l.KeyID) != 16 {
			return ExportRecord{}, fmt.Errorf("parsing export line %d: key_id %q is not 16 hex characters", l.Seq, l.KeyID)
		}
		if _, err := hexField("key_id", l.KeyID, 8); err != nil {
			return ExportRecord{}, fmt.Errorf("parsing export line %d: %w", l.Seq, err)
		}
		sig, err := hexField("signature", l.Signature, 64)
		if err != nil {
			return ExportRecord{}, fmt.Errorf("parsing export line %d: %w", l.Seq, err)
		}
		return ExportRecord{Checkpoint: &Checkpoint{Seq: l.Seq, Hash: hash, Time: t, KeyID: l.KeyID, Signature: sig}}, nil
	default:
		return ExportRecord{}, fmt.Errorf("parsing export line %d: type %q is neither %q nor %q", l.Seq, l.Type, lineEntry, lineCheckpoint)
	}
}

// hexField decodes lower-case hex of exactly n bytes.
func hexField(name, s string, n int) ([]byte, error) {
	if len(s) != 2*n {
		return nil, fmt.Errorf("%s is %d hex characters, want %d", name, len(s), 2*n)
	}
	b, err := hex.DecodeString(s)
	if err != nil || hex.EncodeToString(b) != s {
		return nil, fmt.Errorf("%s is not lower-case hex", name)
	}
	return b, nil
}
