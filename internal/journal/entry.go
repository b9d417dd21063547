package journal

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"slices"
	"time"
)

// Outcomes callers commonly record. Outcome is free text within the limits;
// these spell the usual ones the same way everywhere.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
	OutcomeDenied  = "denied"
)

// Event is what a caller records: who did what to what, in which tenant,
// and how it ended. The journal adds the sequence number, time and chain.
type Event struct {
	Actor   string
	Tenant  string
	Action  string
	Target  string
	Outcome string
	Detail  map[string]string
}

// Entry is one stored journal entry.
type Entry struct {
	Seq      int64
	Time     time.Time
	Actor    string
	Tenant   string
	Action   string
	Target   string
	Outcome  string
	Detail   map[string]string
	PrevHash []byte // Hash of entry Seq-1; GenesisHash for Seq 1
	Hash     []byte // EntryHash of this entry
	MAC      []byte // HMAC-SHA256(MAC key, Hash)
}

// Checkpoint is a signed statement that the journal's entry Seq had Hash at
// Time. It pins every entry up to Seq: removing or rewriting any of them, or
// truncating the journal below Seq, is detected by Verify.
type Checkpoint struct {
	Seq       int64
	Hash      []byte
	Time      time.Time
	KeyID     string // KeyID of the signing key
	Signature []byte // Ed25519 over checkpointMessage
}

// Head is the last entry of a journal: its seq and hash. The zero Head is an
// empty journal.
type Head struct {
	Seq  int64
	Hash []byte
}

// Store is the storage the journal consumes. internal/store/sqlite
// implements it.
type Store interface {
	// Head returns the last entry's seq and hash, or the zero Head.
	Head(ctx context.Context) (Head, error)
	// Append runs build with the current head inside ONE write transaction
	// (the head is read from the database inside the transaction, since
	// another process may append too) and inserts the entries build returns,
	// atomically. Entries must continue the head's seq without a gap.
	Append(ctx context.Context, build func(head Head) ([]Entry, error)) error
	// Scan calls fn for each entry with Seq >= fromSeq, in seq order, and
	// stops at the first error fn returns (Scan returns it). A row that
	// cannot be decoded is reported as a *CorruptError.
	Scan(ctx context.Context, fromSeq int64, fn func(Entry) error) error
	// AddCheckpoint stores c; ErrCheckpointExists if one exists at c.Seq.
	AddCheckpoint(ctx context.Context, c Checkpoint) error
	// Checkpoints returns every checkpoint in seq order.
	Checkpoints(ctx context.Context) ([]Checkpoint, error)
}

// ErrCheckpointExists is returned by Store.AddCheckpoint when a checkpoint at
// that seq is already stored (for example written by another process).
var ErrCheckpointExists = errors.New("journal: checkpoint already exists at this seq")

// ErrInvalidEvent is wrapped by every validation error of Record and
// RecordBatch.
var ErrInvalidEvent = errors.New("journal: invalid event")

// CorruptError is returned by a Store's Scan for a row it cannot decode
// (a column of the wrong type, detail that is not a JSON object of
// strings). Verify reports it as a modified entry.
type CorruptError struct {
	Seq int64
	Err error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("journal entry %d cannot be decoded: %v", e.Seq, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }

// GenesisHash is the PrevHash of entry 1: 32 zero bytes.
var GenesisHash = make([]byte, sha256.Size)

// Domain-separation prefixes: a hash or signature made for one purpose can
// never be replayed as another.
const (
	entryDomain      = "rampart/journal/entry/v1\x00"
	checkpointDomain = "rampart/journal/checkpoint/v1\x00"
)

// appendCanonical appends the unambiguous encoding of e (every field but
// Hash and MAC) to buf: a domain prefix, fixed-width integers, and each
// string or byte field prefixed by its length; detail as a count then
// key/value pairs in sorted key order.
func appendCanonical(buf []byte, e *Entry) []byte {
	buf = append(buf, entryDomain...)
	buf = binary.BigEndian.AppendUint64(buf, uint64(e.Seq))
	buf = binary.BigEndian.AppendUint64(buf, uint64(e.Time.UnixNano()))
	buf = appendLP(buf, e.Actor)
	buf = appendLP(buf, e.Tenant)
	buf = appendLP(buf, e.Action)
	buf = appendLP(buf, e.Target)
	buf = appendLP(buf, e.Outcome)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(e.Detail)))
	if len(e.Detail) > 0 {
		var arr [16]string
		keys := arr[:0]
		for k := range e.Detail {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			buf = appendLP(buf, k)
			buf = appendLP(buf, e.Detail[k])
		}
	}
	buf = appendLP(buf, string(e.PrevHash))
	return buf
}

func appendLP(buf []byte, s string) []byte {
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(s)))
	return append(buf, s...)
}

// EntryHash is the chain hash of e: SHA-256 over its canonical encoding
// (seq, time, actor, tenant, action, target, outcome, detail, prev_hash).
// The algorithm is public; what an attacker cannot reproduce is the MAC.
func EntryHash(e *Entry) []byte {
	var h hasher
	return h.hash(e, nil)
}

// hasher reuses its buffers across entries (writer batches, verify).
type hasher struct {
	buf []byte
	out [sha256.Size]byte
	mac hash.Hash
}

func (h *hasher) hash(e *Entry, dst []byte) []byte {
	h.buf = appendCanonical(h.buf[:0], e)
	sum := sha256.Sum256(h.buf)
	return append(dst, sum[:]...)
}

// sum hashes e into h's own buffer, valid until the next call.
func (h *hasher) sum(e *Entry) []byte {
	h.buf = appendCanonical(h.buf[:0], e)
	h.out = sha256.Sum256(h.buf)
	return h.out[:]
}

func newHasher(macKey []byte) *hasher {
	return &hasher{buf: make([]byte, 0, 512), mac: hmac.New(sha256.New, macKey)}
}

// macOf is HMAC-SHA256(MAC key, hash).
func (h *hasher) macOf(hash, dst []byte) []byte {
	h.mac.Reset()
	h.mac.Write(hash)
	return h.mac.Sum(dst)
}

// KeyID names an Ed25519 public key: the first 16 hex characters of the
// SHA-256 of the key.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// checkpointMessage is what a checkpoint signature covers.
func checkpointMessage(seq int64, hash []byte, t time.Time) []byte {
	buf := make([]byte, 0, len(checkpointDomain)+8+4+len(hash)+8)
	buf = append(buf, checkpointDomain...)
	buf = binary.BigEndian.AppendUint64(buf, uint64(seq))
	buf = appendLP(buf, string(hash))
	buf = binary.BigEndian.AppendUint64(buf, uint64(t.UnixNano()))
	return buf
}
