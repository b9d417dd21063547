package firmware

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/rampart-iot/rampart/api"
)

// Installed is the device's persistent firmware state.
type Installed struct {
	Sequence uint64 // anti-rollback counter: the highest sequence committed
	Version  string // running version, for reports
	Root     []byte // the trusted root envelope
}

// State persists Installed. The SDK keystore implements it (the counter
// must survive a reflash of the application slot and be protected like a
// key); MemState is for tests and simulations.
type State interface {
	Load() (Installed, error)
	Save(Installed) error
}

// SlotWriter receives the image for the inactive slot.
type SlotWriter interface {
	io.Writer
	// Abort discards what was written; the inactive slot stays unbootable.
	Abort() error
}

// Slots is the device's A/B storage. Open begins writing the inactive
// slot; Activate makes it the trial boot target; Healthy checks the trial
// image; Commit makes it permanent; Revert returns to the running slot.
type Slots interface {
	Open(ctx context.Context, m *Manifest) (SlotWriter, error)
	Activate(ctx context.Context) error
	Healthy(ctx context.Context) error
	Commit(ctx context.Context) error
	Revert(ctx context.Context) error
}

// Hub is the updater's view of the hub: offers, downloads, reports.
type Hub interface {
	// Offer returns the waiting offer, or nil.
	Offer(ctx context.Context) (*api.FirmwareOffer, error)
	// Download returns the image from byte offset on.
	Download(ctx context.Context, o *api.FirmwareOffer, offset int64) (io.ReadCloser, error)
	Report(ctx context.Context, r api.FirmwareReport) error
}

// Options configure an Updater.
type Options struct {
	Vendor string // the device's vendor (compatibility)
	Model  string // the device's model (compatibility)
	State  State
	Slots  Slots
	Hub    Hub
	// MaxImageBytes caps any download whatever a manifest says
	// (default DefaultMaxImageBytes).
	MaxImageBytes int64
	// Retries is how many times a broken download resumes (default 3).
	Retries int
	Now     func() time.Time
}

// DefaultMaxImageBytes is the default download cap: 256 MiB.
const DefaultMaxImageBytes = 256 << 20

// Updater applies offers on a device.
type Updater struct{ o Options }

// NewUpdater checks o and returns an Updater.
func NewUpdater(o Options) (*Updater, error) {
	if o.Vendor == "" || o.Model == "" || o.State == nil || o.Slots == nil || o.Hub == nil {
		return nil, errors.New("firmware: Options needs Vendor, Model, State, Slots and Hub")
	}
	if o.MaxImageBytes <= 0 {
		o.MaxImageBytes = DefaultMaxImageBytes
	}
	if o.Retries <= 0 {
		o.Retries = 3
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Updater{o: o}, nil
}

// Result says what Apply did.
type Result struct {
	Installed bool
	Manifest  *Manifest // nil when the manifest never verified
}

// Poll fetches the waiting offer (if any) and applies it.
func (u *Updater) Poll(ctx context.Context) (Result, error) {
	o, err := u.o.Hub.Offer(ctx)
	if err != nil || o == nil {
		return Result{}, err
	}
	return u.Apply(ctx, o)
}

// Apply verifies and installs an offer. On any failure the running slot
// and the counter are unchanged, the failure is reported to the hub, and
// the returned error wraps one of this package's sentinel errors.
func (u *Updater) Apply(ctx context.Context, o *api.FirmwareOffer) (Result, error) {
	st, err := u.o.State.Load()
	if err != nil {
		return Result{}, fmt.Errorf("loading firmware state: %w", err)
	}
	m, err := u.apply(ctx, o, &st)
	res := Result{Manifest: m}
	if err != nil {
		u.report(ctx, o, st, "failed", err.Error())
		return res, err
	}
	res.Installed = true
	u.report(ctx, o, st, "succeeded", "")
	return res, nil
}

func (u *Updater) report(ctx context.Context, o *api.FirmwareOffer, st Installed, status, reason string) {
	_ = u.o.Hub.Report(ctx, api.FirmwareReport{RolloutID: o.RolloutID, Status: status, Reason: reason, Version: st.Version, Sequence: st.Sequence})
}

func (u *Updater) apply(ctx context.Context, o *api.FirmwareOffer, st *Installed) (*Manifest, error) {
	now := u.o.Now()
	if len(st.Root) == 0 {
		return nil, ErrNoRoot
	}
	trusted, err := ParseRootUnverified(st.Root)
	if err != nil {
		return nil, fmt.Errorf("stored root: %w", err)
	}
	chain := make([][]byte, 0, len(o.Roots))
	for _, r := range o.Roots {
		chain = append(chain, []byte(r))
	}
	root, rootRaw, err := UpdateRoot(trusted, st.Root, chain, now)
	if err != nil {
		return nil, err
	}
	if root.Version != trusted.Version {
		// A verified rotation is kept even if this manifest fails: later
		// offers are checked against the newer keys (TUF does the same).
		next := *st
		next.Root = rootRaw
		if err := u.o.State.Save(next); err != nil {
			return nil, fmt.Errorf("saving the rotated root: %w", err)
		}
		*st = next
	}
	m, err := VerifyManifest(root, []byte(o.Manifest), now)
	if err != nil {
		return nil, err
	}
	switch {
	case m.Vendor != u.o.Vendor || m.Model != u.o.Model:
		return m, fmt.Errorf("%w: manifest is for %s/%s, this device is %s/%s", ErrIncompatible, m.Vendor, m.Model, u.o.Vendor, u.o.Model)
	case m.Sequence <= st.Sequence:
		return m, fmt.Errorf("%w: offered %d, installed %d", ErrRollback, m.Sequence, st.Sequence)
	case m.Length > u.o.MaxImageBytes:
		return m, fmt.Errorf("%w: %d bytes, limit %d", ErrImageLimit, m.Length, u.o.MaxImageBytes)
	}
	u.report(ctx, o, *st, "downloading", "")
	w, err := u.o.Slots.Open(ctx, m)
	if err != nil {
		return m, fmt.Errorf("%w: %v", ErrInstall, err)
	}
	if err := u.download(ctx, o, m, w); err != nil {
		_ = w.Abort()
		return m, err
	}
	u.report(ctx, o, *st, "installing", "")
	if err := u.o.Slots.Activate(ctx); err != nil {
		_ = u.o.Slots.Revert(ctx)
		return m, fmt.Errorf("%w: %v", ErrInstall, err)
	}
	if err := u.o.Slots.Healthy(ctx); err != nil {
		_ = u.o.Slots.Revert(ctx)
		return m, fmt.Errorf("%w: %v", ErrHealthCheck, err)
	}
	if err := u.o.Slots.Commit(ctx); err != nil {
		_ = u.o.Slots.Revert(ctx)
		return m, fmt.Errorf("%w: commit: %v", ErrInstall, err)
	}
	next := *st
	next.Sequence, next.Version = m.Sequence, m.Version
	if err := u.o.State.Save(next); err != nil {
		return m, fmt.Errorf("raising the anti-rollback counter: %w", err)
	}
	*st = next
	return m, nil
}

// download streams the image into w through a SHA-256, never reading more
// than the signed length plus one byte, resuming a broken transfer from
// the last byte received.
func (u *Updater) download(ctx context.Context, o *api.FirmwareOffer, m *Manifest, w SlotWriter) error {
	h := sha256.New()
	var got int64
	var lastErr error
	for attempt := 0; attempt <= u.o.Retries; attempt++ {
		body, err := u.o.Hub.Download(ctx, o, got)
		if err != nil {
			lastErr = err
			continue
		}
		// Read at most one byte past what remains: enough to detect an
		// endless or overlong image, never enough to exhaust the device.
		n, err := io.Copy(io.MultiWriter(h, w), io.LimitReader(body, m.Length-got+1))
		body.Close()
		got += n
		if got > m.Length {
			return fmt.Errorf("%w: more than %d bytes", ErrTooLarge, m.Length)
		}
		if err != nil {
			lastErr = err
			continue
		}
		if got < m.Length {
			lastErr = fmt.Errorf("%w: %d of %d bytes", ErrTooShort, got, m.Length)
			continue
		}
		want, _ := hex.DecodeString(m.SHA256)
		if subtle.ConstantTimeCompare(h.Sum(nil), want) != 1 {
			return ErrHashMismatch
		}
		return nil
	}
	if errors.Is(lastErr, ErrTooShort) {
		return lastErr
	}
	return fmt.Errorf("%w: %v", ErrDownload, lastErr)
}
