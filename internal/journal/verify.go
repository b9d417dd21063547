package journal

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sort"
	"sync"
	"time"
)

// Kinds of Problem.
const (
	KindModified   = "modified"   // an entry's fields, hash or MAC were changed
	KindRemoved    = "removed"    // entries are missing (a gap, renumbering, or a truncated tail)
	KindInserted   = "inserted"   // an entry the journal never wrote
	KindReordered  = "reordered"  // genuine entries at the wrong position
	KindCheckpoint = "checkpoint" // a checkpoint is forged or contradicts the chain
)

// VerifyKeys are what Verify needs: the checkpoint signer's public key and
// the MAC key.
type VerifyKeys struct {
	Public ed25519.PublicKey
	MACKey []byte
}

// Report is the result of Verify.
type Report struct {
	Entries         int64    // entries verified intact (up to the first problem)
	Checkpoints     int      // checkpoints stored
	LastSeq         int64    // seq of the last intact entry
	CheckpointedSeq int64    // highest seq covered by a verified checkpoint
	Problem         *Problem // the first problem; nil when the journal is intact
}

// OK reports whether the journal verified clean.
func (r *Report) OK() bool { return r.Problem == nil }

// Problem names the first bad entry (or checkpoint) Verify found.
type Problem struct {
	Seq     int64
	Kind    string
	Message string
}

func (p *Problem) Error() string {
	return fmt.Sprintf("journal entry %d %s: %s", p.Seq, p.Kind, p.Message)
}

var errStop = errors.New("stop")

// verifyWorkers is how many ranges Verify may read at once (before the
// limits); tests replace it to exercise range boundaries.
var verifyWorkers = func() int { return runtime.GOMAXPROCS(0) }

// Verify checks the whole journal in store: every entry's hash, MAC and
// link to its predecessor, the seq sequence, and every checkpoint's
// signature and hash. It returns an error only when it cannot read the store
// or keys are malformed; tampering is reported in Report.Problem, which names
// the first bad entry.
func Verify(ctx context.Context, store Store, keys VerifyKeys) (*Report, error) {
	if len(keys.Public) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("journal: verify public key is %d bytes, want %d", len(keys.Public), ed25519.PublicKeySize)
	}
	if len(keys.MACKey) != macKeySize {
		return nil, fmt.Errorf("journal: verify MAC key is %d bytes, want %d", len(keys.MACKey), macKeySize)
	}
	ckpts, err := store.Checkpoints(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading journal checkpoints: %w", err)
	}
	rep := &Report{Checkpoints: len(ckpts)}

	// The first checkpoint with a bad signature; entries past it cannot be
	// the first problem, so the scan stops there.
	wantKey := KeyID(keys.Public)
	var ckptProblem *Problem
	for i := range ckpts {
		if p := checkSignature(&ckpts[i], keys.Public, wantKey); p != nil {
			ckptProblem = p
			ckpts = ckpts[:i]
			break
		}
	}

	// Each entry's MAC stands alone and its link is to the row before, so
	// the journal is verified in independent seq ranges, in parallel.
	stop := int64(math.MaxInt64)
	if ckptProblem != nil {
		stop = ckptProblem.Seq // entries past it cannot be the first problem
	}
	head, err := store.Head(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading journal head: %w", err)
	}
	ranges, err := splitRanges(ctx, store, min(head.Seq, stop), verifyWorkers())
	if err != nil {
		return nil, err
	}
	results := make([]rangeResult, len(ranges))
	errs := make([]error, len(ranges))
	var wg sync.WaitGroup
	for i := range ranges {
		wg.Go(func() {
			results[i], errs[i] = verifyRange(ctx, store, keys.MACKey, ranges[i], stop, ckpts)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var problem *Problem
	for _, r := range results {
		rep.Entries += r.entries
		if r.entries > 0 {
			rep.LastSeq = r.lastSeq
		}
		rep.CheckpointedSeq = max(rep.CheckpointedSeq, r.checkpointed)
		if r.problem != nil {
			problem = r.problem
			break
		}
	}
	ci := sort.Search(len(ckpts), func(i int) bool { return ckpts[i].Seq > rep.LastSeq })
	if problem == nil && ci < len(ckpts) {
		// Checkpoints past the last entry: the tail was cut off.
		c := ckpts[len(ckpts)-1]
		ends := fmt.Sprintf("the journal ends at %d", rep.LastSeq)
		if rep.LastSeq == 0 {
			ends = "the journal is empty"
		}
		problem = &Problem{Seq: rep.LastSeq + 1, Kind: KindRemoved, Message: fmt.Sprintf(
			"a checkpoint signed at %s covers entries up to %d, but %s: entries %d..%d were removed",
			c.Time.Format(time.RFC3339Nano), c.Seq, ends, rep.LastSeq+1, c.Seq)}
	}
	switch {
	case problem != nil && (ckptProblem == nil || problem.Seq <= ckptProblem.Seq):
		rep.Problem = problem
	default:
		rep.Problem = ckptProblem
	}
	return rep, nil
}

// seqRange is a part of the journal to verify: entries from..to, the first
// of which must link to prev (the stored hash of entry from-1, which the
// range before checks).
type seqRange struct {
	from, to int64
	prev     []byte
}

type rangeResult struct {
	entries, lastSeq, checkpointed int64
	problem                        *Problem
}

// splitRanges cuts 1..last into up to n ranges of at least
// minParallelEntries; the last range is open-ended, so entries appended
// while verifying, or a tail past last, are still read.
func splitRanges(ctx context.Context, store Store, last int64, n int) ([]seqRange, error) {
	n = min(n, maxVerifyWorkers, int(last/minParallelEntries))
	if n < 2 {
		return []seqRange{{from: 1, to: math.MaxInt64, prev: GenesisHash}}, nil
	}
	size := last / int64(n)
	out := make([]seqRange, n)
	for i := range out {
		from := 1 + int64(i)*size
		out[i] = seqRange{from: from, to: from + size - 1, prev: GenesisHash}
		if i == n-1 {
			out[i].to = math.MaxInt64
		}
		if i > 0 {
			// Whatever row precedes the range: if it is not entry from-1,
			// the range before reports that first.
			err := store.Scan(ctx, from-1, func(e Entry) error {
				out[i].prev = e.Hash
				return errStop
			})
			if err != nil && !errors.Is(err, errStop) {
				var ce *CorruptError
				if !errors.As(err, &ce) {
					return nil, fmt.Errorf("reading journal: %w", err)
				}
			}
		}
	}
	return out, nil
}

// verifyRange verifies the entries of r (none past stop) and the
// checkpoints that fall on them, and names its first problem.
func verifyRange(ctx context.Context, store Store, macKey []byte, r seqRange, stop int64, ckpts []Checkpoint) (rangeResult, error) {
	h := newHasher(macKey)
	var (
		res      rangeResult
		expected = r.from
		prev     [sha256.Size]byte
		prevOK   = len(r.prev) == sha256.Size
		macBuf   = make([]byte, 0, sha256.Size)
		ci       = sort.Search(len(ckpts), func(i int) bool { return ckpts[i].Seq >= r.from })
		bad      *Entry
	)
	if prevOK {
		prev = [sha256.Size]byte(r.prev)
	}
	err := store.Scan(ctx, r.from, func(e Entry) error {
		if e.Seq > stop || (e.Seq > r.to && expected > r.to) {
			return errStop
		}
		if e.Seq != expected {
			res.problem = seqProblem(expected, e.Seq)
			return errStop
		}
		sum := h.sum(&e)
		macBuf = h.macOf(sum, macBuf[:0])
		if !bytes.Equal(sum, e.Hash) || !hmac.Equal(macBuf, e.MAC) || !prevOK || !bytes.Equal(e.PrevHash, prev[:]) {
			b := e
			bad = &b
			return errStop
		}
		for ci < len(ckpts) && ckpts[ci].Seq == e.Seq {
			if !bytes.Equal(ckpts[ci].Hash, e.Hash) {
				res.problem = &Problem{Seq: e.Seq, Kind: KindCheckpoint, Message: fmt.Sprintf(
					"the checkpoint signed at %s for entry %d holds a different hash than entry %d: the journal was rewritten since it was signed",
					ckpts[ci].Time.Format(time.RFC3339Nano), e.Seq, e.Seq)}
				return errStop
			}
			res.checkpointed = e.Seq
			ci++
		}
		res.entries++
		res.lastSeq = e.Seq
		prev = [sha256.Size]byte(sum)
		prevOK = true
		expected++
		return nil
	})
	if ce := (*CorruptError)(nil); errors.As(err, &ce) {
		if ce.Seq != expected {
			res.problem = seqProblem(expected, ce.Seq)
		} else {
			res.problem = &Problem{Seq: ce.Seq, Kind: KindModified, Message: fmt.Sprintf("the stored row cannot be decoded (%v): it was edited outside the journal", ce.Err)}
		}
		err = nil
	}
	if err != nil && !errors.Is(err, errStop) {
		return res, fmt.Errorf("reading journal: %w", err)
	}
	if bad != nil {
		if res.problem, err = diagnose(ctx, store, h, bad, prev[:]); err != nil {
			return res, err
		}
	}
	return res, nil
}

func seqProblem(expected, got int64) *Problem {
	if got > expected {
		msg := fmt.Sprintf("entry %d is missing: the journal jumps from %d to %d", expected, expected-1, got)
		if got > expected+1 {
			msg = fmt.Sprintf("entries %d..%d are missing: the journal jumps from %d to %d", expected, got-1, expected-1, got)
		}
		return &Problem{Seq: expected, Kind: KindRemoved, Message: msg}
	}
	return &Problem{Seq: expected, Kind: KindReordered, Message: fmt.Sprintf("entry %d is followed by entry %d: seq out of order", expected-1, got)}
}

func checkSignature(c *Checkpoint, pub ed25519.PublicKey, wantKey string) *Problem {
	if c.Seq < 1 {
		return &Problem{Seq: c.Seq, Kind: KindCheckpoint, Message: fmt.Sprintf("a checkpoint names seq %d, which no entry can have", c.Seq)}
	}
	if c.KeyID != wantKey {
		return &Problem{Seq: c.Seq, Kind: KindCheckpoint, Message: fmt.Sprintf(
			"the checkpoint at %d names signing key %q, but the journal's key is %q: forged, or verify with the key that signed it", c.Seq, c.KeyID, wantKey)}
	}
	if !ed25519.Verify(pub, checkpointMessage(c.Seq, c.Hash, c.Time), c.Signature) {
		return &Problem{Seq: c.Seq, Kind: KindCheckpoint, Message: fmt.Sprintf(
			"the checkpoint at %d has an invalid signature: it was forged or edited", c.Seq)}
	}
	return nil
}

// diagnose explains why bad, read where entry k = bad.Seq belongs (after a
// chain ending in prev), failed. It reads up to diagnoseWindow rows after it
// to tell insertion, reordering and renumbering from modification.
func diagnose(ctx context.Context, store Store, h *hasher, bad *Entry, prev []byte) (*Problem, error) {
	k := bad.Seq
	var next []Entry
	err := store.Scan(ctx, k+1, func(e Entry) error {
		next = append(next, e)
		if len(next) >= diagnoseWindow {
			return errStop
		}
		return nil
	})
	var ce *CorruptError
	if err != nil && !errors.Is(err, errStop) && !errors.As(err, &ce) {
		return nil, fmt.Errorf("reading journal: %w", err)
	}

	macOK := len(bad.Hash) == sha256.Size && hmac.Equal(h.macOf(bad.Hash, nil), bad.MAC)
	hashAt := func(e *Entry, seq int64) bool {
		c := *e
		c.Seq = seq
		return bytes.Equal(h.sum(&c), e.Hash)
	}
	// genuineAt: e is the journal's own entry for position seq after prev.
	genuineAt := func(e *Entry, seq int64) bool {
		return bytes.Equal(e.PrevHash, prev) && hashAt(e, seq) &&
			hmac.Equal(h.macOf(e.Hash, nil), e.MAC)
	}
	hashOK := hashAt(bad, k)

	if macOK && !hashOK {
		// A genuine hash and MAC over other contents: either fields were
		// changed in place, or this is a genuine entry from elsewhere.
		for d := int64(1); d <= diagnoseWindow; d++ {
			for _, s := range [2]int64{k + d, k - d} {
				if s < 1 || !hashAt(bad, s) {
					continue
				}
				if s < k {
					return &Problem{Seq: k, Kind: KindReordered, Message: fmt.Sprintf(
						"entry %d holds the contents of entry %d: entries were moved or duplicated", k, s)}, nil
				}
				for i := range next {
					if genuineAt(&next[i], k) {
						return &Problem{Seq: k, Kind: KindReordered, Message: fmt.Sprintf(
							"entry %d holds the contents of entry %d, and entry %d's contents are stored at %d: entries were swapped", k, s, k, next[i].Seq)}, nil
					}
				}
				gone := fmt.Sprintf("entry %d was", k)
				if s-1 > k {
					gone = fmt.Sprintf("entries %d..%d were", k, s-1)
				}
				return &Problem{Seq: k, Kind: KindRemoved, Message: fmt.Sprintf(
					"entry %d holds the contents of entry %d: %s removed and later entries renumbered", k, s, gone)}, nil
			}
		}
		return &Problem{Seq: k, Kind: KindModified, Message: fmt.Sprintf(
			"entry %d's fields do not match its hash: it was edited in place", k)}, nil
	}
	if len(next) > 0 && genuineAt(&next[0], k) {
		return &Problem{Seq: k, Kind: KindInserted, Message: fmt.Sprintf(
			"entry %d was not written by the journal and the genuine entry %d follows it: a forged entry was inserted and later entries renumbered", k, k)}, nil
	}
	switch {
	case !macOK && hashOK && len(next) == 0:
		return &Problem{Seq: k, Kind: KindInserted, Message: fmt.Sprintf(
			"the last entry, %d, has no valid MAC: it was appended (or rewritten) without the journal's MAC key", k)}, nil
	case !macOK && hashOK:
		return &Problem{Seq: k, Kind: KindModified, Message: fmt.Sprintf(
			"entry %d has no valid MAC: it was rewritten, hash and all, without the journal's MAC key", k)}, nil
	case macOK && hashOK:
		return &Problem{Seq: k, Kind: KindModified, Message: fmt.Sprintf(
			"entry %d does not chain to entry %d: its prev_hash differs", k, k-1)}, nil
	default:
		return &Problem{Seq: k, Kind: KindModified, Message: fmt.Sprintf(
			"entry %d matches neither its hash nor its MAC: it was edited", k)}, nil
	}
}
