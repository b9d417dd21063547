package firmware

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/journal"
	sdkfw "github.com/rampart-iot/rampart/sdk/firmware"
)

// Options configure the service.
type Options struct {
	Store   Store
	Blobs   Blobs
	Fleet   Fleet
	Journal Recorder
	Now     func() time.Time
	Rand    io.Reader
	Logger  *slog.Logger
}

// Service is the hub's firmware service.
type Service struct{ o Options }

// New checks o and builds the service.
func New(o Options) (*Service, error) {
	if o.Store == nil || o.Blobs == nil || o.Fleet == nil || o.Journal == nil || o.Now == nil || o.Rand == nil {
		return nil, errors.New("firmware: Options needs Store, Blobs, Fleet, Journal, Now and Rand")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{o: o}, nil
}

func (s *Service) newID(prefix string) (string, error) {
	b := make([]byte, 15)
	if _, err := io.ReadFull(s.o.Rand, b); err != nil {
		return "", err
	}
	return prefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)), nil
}

func (s *Service) record(ctx context.Context, evs ...journal.Event) error {
	for _, e := range evs {
		if e.Outcome == "" {
			e.Outcome = journal.OutcomeSuccess
		}
		if err := s.o.Journal.Record(ctx, e); err != nil {
			return err
		}
	}
	return nil
}

func notFound(what string, err error) error {
	if errors.Is(err, ErrNotFound) {
		return api.Errorf(api.CodeNotFound, "no such %s", what)
	}
	return err
}

// refuse journals a refusal and returns the error for the caller.
func (s *Service) refuse(ctx context.Context, e journal.Event, err error) error {
	e.Outcome = journal.OutcomeDenied
	if e.Detail == nil {
		e.Detail = map[string]string{}
	}
	e.Detail["reason"] = api.ErrorMessage(err)
	if rerr := s.record(ctx, e); rerr != nil {
		return rerr
	}
	return err
}

// ---- roots ----

// SetRoot stores a new firmware root for tenantID. The first root is
// trusted as given (it must carry its own threshold of signatures); every
// later one must be the next version, signed by the current root's
// threshold and its own, and unexpired.
func (s *Service) SetRoot(ctx context.Context, tenantID, actor string, raw []byte) (*sdkfw.Root, error) {
	ev := journal.Event{Actor: actor, Tenant: tenantID, Action: "firmware.root_set", Target: "root"}
	var roots []RootRecord
	if err := s.o.Store.View(ctx, func(tx Tx) (err error) { roots, err = tx.Roots(tenantID); return err }); err != nil {
		return nil, err
	}
	now := s.o.Now()
	var root *sdkfw.Root
	var err error
	if len(roots) == 0 {
		root, err = sdkfw.ParseRootUnverified(raw)
		if err == nil && !now.Before(root.Expires) {
			err = fmt.Errorf("%w: root expired at %s", sdkfw.ErrExpired, root.Expires.UTC().Format(time.RFC3339))
		}
	} else {
		var cur *sdkfw.Root
		cur, err = sdkfw.ParseRootUnverified(roots[len(roots)-1].Envelope)
		if err == nil {
			root, _, err = sdkfw.UpdateRoot(cur, roots[len(roots)-1].Envelope, [][]byte{raw}, now)
		}
		if err == nil && root.Version == cur.Version {
			err = fmt.Errorf("%w: version %d is already the current root", sdkfw.ErrRootVersion, root.Version)
		}
	}
	if err != nil {
		return nil, s.refuse(ctx, ev, api.Errorf(api.CodeInvalid, "firmware root refused: %v", err))
	}
	err = s.o.Store.Update(ctx, func(tx Tx) error {
		return tx.AddRoot(RootRecord{TenantID: tenantID, Version: root.Version, Envelope: raw, CreatedAt: now})
	})
	if errors.Is(err, ErrDuplicate) {
		return nil, s.refuse(ctx, ev, api.Errorf(api.CodeConflict, "root version %d is already stored", root.Version))
	}
	if err != nil {
		return nil, err
	}
	ev.Detail = map[string]string{"version": fmt.Sprint(root.Version)}
	return root, s.record(ctx, ev)
}

// Roots returns the tenant's stored roots, oldest first.
func (s *Service) Roots(ctx context.Context, tenantID string) ([]RootRecord, error) {
	var roots []RootRecord
	err := s.o.Store.View(ctx, func(tx Tx) (err error) { roots, err = tx.Roots(tenantID); return err })
	return roots, err
}

func (s *Service) currentRoot(tx Tx, tenantID string) (*sdkfw.Root, []RootRecord, error) {
	roots, err := tx.Roots(tenantID)
	if err != nil {
		return nil, nil, err
	}
	if len(roots) == 0 {
		return nil, nil, api.Errorf(api.CodeConflict, "this tenant has no firmware root yet: PUT /api/v1/firmware/root first")
	}
	r, err := sdkfw.ParseRootUnverified(roots[len(roots)-1].Envelope)
	return r, roots, err
}

// ---- images ----

// UploadManifest verifies raw against the tenant's current root and stores
// it; the image bytes follow with PutImage.
func (s *Service) UploadManifest(ctx context.Context, tenantID, actor string, raw []byte) (Image, error) {
	ev := journal.Event{Actor: actor, Tenant: tenantID, Action: "firmware.manifest_uploaded"}
	var root *sdkfw.Root
	if err := s.o.Store.View(ctx, func(tx Tx) (err error) { root, _, err = s.currentRoot(tx, tenantID); return err }); err != nil {
		return Image{}, s.refuse(ctx, ev, err)
	}
	m, err := sdkfw.VerifyManifest(root, raw, s.o.Now())
	if err != nil {
		return Image{}, s.refuse(ctx, ev, api.Errorf(api.CodeInvalid, "manifest refused: %v", err))
	}
	if m.Length > MaxImageBytes {
		return Image{}, s.refuse(ctx, ev, api.Errorf(api.CodeInvalid, "manifest refused: image of %d bytes is over the hub's limit of %d", m.Length, MaxImageBytes))
	}
	id, err := s.newID("fwi_")
	if err != nil {
		return Image{}, err
	}
	img := Image{ID: id, TenantID: tenantID, Manifest: *m, Envelope: raw, Status: ImageAwaiting, CreatedBy: actor, CreatedAt: s.o.Now()}
	err = s.o.Store.Update(ctx, func(tx Tx) error { return tx.PutImage(img) })
	if errors.Is(err, ErrDuplicate) {
		return Image{}, s.refuse(ctx, ev, api.Errorf(api.CodeConflict, "an image of %s with sequence %d is already stored", m.Model, m.Sequence))
	}
	if err != nil {
		return Image{}, err
	}
	ev.Target = id
	ev.Detail = map[string]string{"model": m.Model, "version": m.Version, "sequence": fmt.Sprint(m.Sequence), "sha256": m.SHA256}
	return img, s.record(ctx, ev)
}

// PutImage streams an image's bytes, reading at most the signed length
// plus one byte, and keeps them only when length and SHA-256 match.
func (s *Service) PutImage(ctx context.Context, tenantID, actor, id string, r io.Reader) (Image, error) {
	ev := journal.Event{Actor: actor, Tenant: tenantID, Action: "firmware.image_uploaded", Target: id}
	var img Image
	if err := s.o.Store.View(ctx, func(tx Tx) (err error) { img, err = tx.Image(tenantID, id); return err }); err != nil {
		return Image{}, notFound("firmware image", err)
	}
	if img.Status != ImageAwaiting {
		return Image{}, api.Errorf(api.CodeConflict, "this image's bytes are already stored")
	}
	w, err := s.o.Blobs.Create(tenantID, id)
	if err != nil {
		return Image{}, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(h, w), io.LimitReader(r, img.Manifest.Length+1))
	want, _ := hex.DecodeString(img.Manifest.SHA256)
	switch {
	case err != nil:
		_ = w.Abort()
		return Image{}, api.Errorf(api.CodeInvalid, "reading the image failed after %d bytes; upload it again", n)
	case n != img.Manifest.Length:
		_ = w.Abort()
		return Image{}, s.refuse(ctx, ev, api.Errorf(api.CodeInvalid, "image refused: the manifest says %d bytes, the upload has %s", img.Manifest.Length, sizeWord(n, img.Manifest.Length)))
	case subtle.ConstantTimeCompare(h.Sum(nil), want) != 1:
		_ = w.Abort()
		return Image{}, s.refuse(ctx, ev, api.Errorf(api.CodeInvalid, "image refused: its SHA-256 does not match the signed manifest"))
	}
	if err := w.Commit(); err != nil {
		return Image{}, err
	}
	err = s.o.Store.Update(ctx, func(tx Tx) error {
		cur, err := tx.Image(tenantID, id)
		if err != nil {
			return err
		}
		cur.Status = ImageReady
		img = cur
		return tx.PutImage(cur)
	})
	if err != nil {
		return Image{}, err
	}
	ev.Detail = map[string]string{"sha256": img.Manifest.SHA256, "length": fmt.Sprint(n)}
	return img, s.record(ctx, ev)
}

func sizeWord(n, want int64) string {
	if n > want {
		return "more"
	}
	return fmt.Sprint(n)
}

// Image returns one image.
func (s *Service) Image(ctx context.Context, tenantID, id string) (Image, error) {
	var img Image
	err := s.o.Store.View(ctx, func(tx Tx) (err error) { img, err = tx.Image(tenantID, id); return err })
	return img, notFound("firmware image", err)
}

// Images lists the tenant's images.
func (s *Service) Images(ctx context.Context, tenantID string) ([]Image, error) {
	var out []Image
	err := s.o.Store.View(ctx, func(tx Tx) (err error) { out, err = tx.Images(tenantID); return err })
	return out, err
}

// ---- settings and device state ----

// Settings returns the tenant's firmware settings.
func (s *Service) Settings(ctx context.Context, tenantID string) (Settings, error) {
	var st Settings
	err := s.o.Store.View(ctx, func(tx Tx) (err error) { st, err = tx.Settings(tenantID); return err })
	st.TenantID = tenantID
	if st.MinSequences == nil {
		st.MinSequences = map[string]uint64{}
	}
	return st, err
}

// UpdateSettings changes the tenant's settings; a zero minimum removes a
// model's minimum.
func (s *Service) UpdateSettings(ctx context.Context, tenantID, actor string, requireApproval *bool, mins map[string]uint64) (Settings, error) {
	if len(mins) > 256 {
		return Settings{}, api.Errorf(api.CodeInvalid, "at most 256 models per request")
	}
	var st Settings
	err := s.o.Store.Update(ctx, func(tx Tx) (err error) {
		if st, err = tx.Settings(tenantID); err != nil {
			return err
		}
		st.TenantID = tenantID
		if st.MinSequences == nil {
			st.MinSequences = map[string]uint64{}
		}
		if requireApproval != nil {
			st.RequireApproval = *requireApproval
		}
		for m, v := range mins {
			if m == "" || len(m) > 128 {
				return api.Errorf(api.CodeInvalid, "model names are 1..128 bytes")
			}
			if v == 0 {
				delete(st.MinSequences, m)
			} else {
				st.MinSequences[m] = v
			}
		}
		return tx.PutSettings(st)
	})
	if err != nil {
		return Settings{}, err
	}
	return st, s.record(ctx, journal.Event{Actor: actor, Tenant: tenantID, Action: "firmware.settings_changed", Target: tenantID,
		Detail: map[string]string{"require_approval": fmt.Sprint(st.RequireApproval), "min_sequences": fmt.Sprint(st.MinSequences)}})
}

// SetTags sets the firmware tags of one of the tenant's devices.
func (s *Service) SetTags(ctx context.Context, tenantID, actor, deviceID string, tags []string) (DeviceState, error) {
	if _, err := s.o.Fleet.Device(ctx, tenantID, deviceID); err != nil {
		return DeviceState{}, notFound("device", err)
	}
	clean, err := cleanTags(tags)
	if err != nil {
		return DeviceState{}, err
	}
	var ds DeviceState
	err = s.o.Store.Update(ctx, func(tx Tx) error {
		cur, err := tx.DeviceState(tenantID, deviceID)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		cur.TenantID, cur.DeviceID, cur.Tags, cur.UpdatedAt = tenantID, deviceID, clean, s.o.Now()
		ds = cur
		return tx.PutDeviceState(cur)
	})
	if err != nil {
		return DeviceState{}, err
	}
	return ds, s.record(ctx, journal.Event{Actor: actor, Tenant: tenantID, Action: "firmware.device_tags", Target: deviceID,
		Detail: map[string]string{"tags": strings.Join(clean, ",")}})
}

func cleanTags(tags []string) ([]string, error) {
	if len(tags) > maxTags {
		return nil, api.Errorf(api.CodeInvalid, "at most %d tags", maxTags)
	}
	out := make([]string, 0, len(tags))
	for _, t := range tags {
		if t == "" || len(t) > maxTagLen || strings.ContainsAny(t, ", \t\r\n") {
			return nil, api.Errorf(api.CodeInvalid, "tag %q: tags are 1..%d bytes without spaces or commas", t, maxTagLen)
		}
		out = append(out, t)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// BelowMinimum lists the tenant's devices whose installed sequence is below
// their model's minimum (devices that never reported count as 0).
func (s *Service) BelowMinimum(ctx context.Context, tenantID string) ([]DeviceState, error) {
	st, err := s.Settings(ctx, tenantID)
	if err != nil || len(st.MinSequences) == 0 {
		return nil, err
	}
	fleet, err := s.o.Fleet.Devices(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	var states []DeviceState
	if err := s.o.Store.View(ctx, func(tx Tx) (err error) { states, err = tx.DeviceStates(tenantID); return err }); err != nil {
		return nil, err
	}
	byID := map[string]DeviceState{}
	for _, d := range states {
		byID[d.DeviceID] = d
	}
	var out []DeviceState
	for _, d := range fleet {
		min := st.MinSequences[d.Model]
		if min == 0 {
			continue
		}
		ds := byID[d.ID]
		ds.TenantID, ds.DeviceID, ds.Model = tenantID, d.ID, d.Model
		if ds.Sequence < min {
			out = append(out, ds)
		}
	}
	return out, nil
}

// ---- devices (mutual TLS) ----

// AuthorizeDevice authenticates a device by its client certificate.
func (s *Service) AuthorizeDevice(ctx context.Context, leaf *x509.Certificate) (FleetDevice, error) {
	return s.o.Fleet.AuthorizeCert(ctx, leaf)
}

// Offer is what a device is offered.
type Offer struct {
	Rollout  Rollout
	Image    Image
	Manifest []byte
	Roots    [][]byte
}

// Offer returns the update waiting for dev, or ok=false. It marks the
// device offered.
func (s *Service) Offer(ctx context.Context, dev FleetDevice) (o Offer, ok bool, err error) {
	now := s.o.Now()
	err = s.o.Store.Update(ctx, func(tx Tx) error {
		targets, err := tx.DeviceTargets(dev.TenantID, dev.ID)
		if err != nil {
			return err
		}
		for _, t := range targets {
			if t.Status.terminal() {
				continue
			}
			r, err := tx.Rollout(dev.TenantID, t.RolloutID)
			if err != nil {
				return err
			}
			if r.Status != RolloutRunning || t.Wave > r.Wave {
				continue
			}
			img, err := tx.Image(dev.TenantID, r.ImageID)
			if err != nil {
				return err
			}
			if img.Status != ImageReady || !now.Before(img.Manifest.Expires) {
				continue
			}
			roots, err := tx.Roots(dev.TenantID)
			if err != nil {
				return err
			}
			if t.Status == TargetPending {
				t.Status, t.UpdatedAt = TargetOffered, now
				if err := tx.PutTarget(t); err != nil {
					return err
				}
			}
			o = Offer{Rollout: r, Image: img, Manifest: img.Envelope}
			for _, rr := range roots {
				o.Roots = append(o.Roots, rr.Envelope)
			}
			ok = true
			return nil
		}
		return nil
	})
	return o, ok, err
}

// OpenImage opens an image for a device that is a target of a rollout of
// it; any other device gets not found.
func (s *Service) OpenImage(ctx context.Context, dev FleetDevice, imageID string) (Image, Blob, error) {
	var img Image
	err := s.o.Store.View(ctx, func(tx Tx) error {
		targets, err := tx.DeviceTargets(dev.TenantID, dev.ID)
		if err != nil {
			return err
		}
		for _, t := range targets {
			r, err := tx.Rollout(dev.TenantID, t.RolloutID)
			if err != nil {
				return err
			}
			if r.ImageID == imageID && r.Status != RolloutAborted {
				img, err = tx.Image(dev.TenantID, imageID)
				return err
			}
		}
		return ErrNotFound
	})
	if err != nil {
		return Image{}, nil, notFound("firmware image", err)
	}
	if img.Status != ImageReady {
		return Image{}, nil, api.Errorf(api.CodeNotFound, "no such firmware image")
	}
	b, err := s.o.Blobs.Open(img.TenantID, img.ID)
	if err != nil {
		return Image{}, nil, err
	}
	return img, b, nil
}

// Report records a device's progress in a rollout (or, without a rollout,
// just its running version) and re-evaluates the rollout.
func (s *Service) Report(ctx context.Context, dev FleetDevice, rep api.FirmwareReport) error {
	st := TargetStatus(rep.Status)
	switch st {
	case TargetDownloading, TargetInstalling, TargetSucceeded, TargetFailed:
	default:
		return api.Errorf(api.CodeInvalid, "status must be downloading, installing, succeeded or failed")
	}
	if len(rep.Reason) > maxReason {
		rep.Reason = rep.Reason[:maxReason]
	}
	if len(rep.Version) > 128 || len(rep.RolloutID) > 64 {
		return api.Errorf(api.CodeInvalid, "version or rollout_id too long")
	}
	now := s.o.Now()
	var evs []journal.Event
	err := s.o.Store.Update(ctx, func(tx Tx) error {
		ds, err := tx.DeviceState(dev.TenantID, dev.ID)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		ds.TenantID, ds.DeviceID, ds.Model, ds.UpdatedAt = dev.TenantID, dev.ID, dev.Model, now
		if rep.Version != "" {
			ds.Version = rep.Version
		}
		if rep.Sequence != 0 {
			ds.Sequence = rep.Sequence
		}
		if err := tx.PutDeviceState(ds); err != nil {
			return err
		}
		if rep.RolloutID == "" {
			return nil
		}
		r, err := tx.Rollout(dev.TenantID, rep.RolloutID)
		if err != nil {
			return notFound("rollout", err)
		}
		targets, err := tx.Targets(r.ID)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(targets, func(t Target) bool { return t.DeviceID == dev.ID })
		if i < 0 {
			return api.Errorf(api.CodeNotFound, "no such rollout")
		}
		t := &targets[i]
		if t.Status.terminal() {
			return nil // a repeated or late report changes nothing
		}
		t.Status, t.Reason, t.UpdatedAt = st, rep.Reason, now
		if err := tx.PutTarget(*t); err != nil {
			return err
		}
		if st.terminal() {
			ev := journal.Event{Actor: "device:" + dev.ID, Tenant: dev.TenantID, Action: "firmware.device_updated", Target: r.ID,
				Detail: map[string]string{"device": dev.ID, "version": rep.Version}}
			if st == TargetFailed {
				ev.Action, ev.Outcome = "firmware.device_failed", journal.OutcomeFailure
				ev.Detail["reason"] = rep.Reason
			}
			evs = append(evs, ev)
			if r.Status == RolloutRunning {
				more, err := s.evaluate(tx, &r, targets, now)
				if err != nil {
					return err
				}
				evs = append(evs, more...)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return s.record(ctx, evs...)
}

// Denied journals that an authenticated caller without the needed
// permission tried a firmware action (the API refuses it).
func (s *Service) Denied(ctx context.Context, tenantID, actor, action, missing string) {
	if err := s.record(ctx, journal.Event{Actor: actor, Tenant: tenantID, Action: action, Outcome: journal.OutcomeDenied,
		Detail: map[string]string{"reason": "lacks " + missing}}); err != nil {
		s.o.Logger.Error("journal write failed", "err", err)
	}
}
