package app

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"

	"github.com/rampart-iot/rampart/internal/devices"
	"github.com/rampart-iot/rampart/internal/firmware"
	"github.com/rampart-iot/rampart/internal/journal"
)

// firmwareDir holds image bytes under the data folder, one folder per
// tenant; the database holds the verified manifests.
const firmwareDir = "firmware"

// startFirmware builds the firmware service.
func startFirmware(d *data, j *journal.Journal, e env, log *slog.Logger, devs *devices.Service) (*firmware.Service, error) {
	dir := filepath.Join(d.dir, firmwareDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	return firmware.New(firmware.Options{Store: d.db.Firmware(), Blobs: fileBlobs{dir: dir}, Fleet: fleet{devs}, Journal: j,
		Now: e.now, Rand: e.rand, Logger: log})
}

// fleet adapts the device registry to what firmware needs.
type fleet struct{ s *devices.Service }

var _ firmware.Fleet = fleet{}

func fleetDevice(d devices.Device) firmware.FleetDevice {
	return firmware.FleetDevice{ID: d.ID, TenantID: d.TenantID, Model: d.Model, Active: d.Status == devices.StatusActive}
}

func (f fleet) Devices(ctx context.Context, tenantID string) ([]firmware.FleetDevice, error) {
	list, err := f.s.List(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	out := make([]firmware.FleetDevice, 0, len(list))
	for _, d := range list {
		out = append(out, fleetDevice(d))
	}
	return out, nil
}

func (f fleet) Device(ctx context.Context, tenantID, id string) (firmware.FleetDevice, error) {
	d, err := f.s.Get(ctx, tenantID, id)
	if err != nil {
		return firmware.FleetDevice{}, firmware.ErrNotFound
	}
	return fleetDevice(d), nil
}

func (f fleet) AuthorizeCert(ctx context.Context, leaf *x509.Certificate) (firmware.FleetDevice, error) {
	d, err := f.s.AuthorizeCert(ctx, leaf)
	if err != nil {
		return firmware.FleetDevice{}, err
	}
	return fleetDevice(d), nil
}

// fileBlobs stores images as DATA/firmware/TENANT/IMAGE (0600), written
// through a temporary file and renamed only after the bytes verified.
type fileBlobs struct{ dir string }

var safeName = regexp.MustCompile(`^[a-z0-9_]{1,64}$`)

func (b fileBlobs) path(tenantID, imageID string) (string, error) {
	if !safeName.MatchString(tenantID) || !safeName.MatchString(imageID) {
		return "", errors.New("firmware blob: unexpected tenant or image ID")
	}
	return filepath.Join(b.dir, tenantID, imageID), nil
}

type fileBlobWriter struct {
	f    *os.File
	dest string
}

func (w *fileBlobWriter) Write(p []byte) (int, error) { return w.f.Write(p) }

func (w *fileBlobWriter) Commit() error {
	if err := w.f.Sync(); err != nil {
		w.Abort()
		return err
	}
	if err := w.f.Close(); err != nil {
		os.Remove(w.f.Name())
		return err
	}
	return os.Rename(w.f.Name(), w.dest)
}

func (w *fileBlobWriter) Abort() error {
	w.f.Close()
	return os.Remove(w.f.Name())
}

func (b fileBlobs) Create(tenantID, imageID string) (firmware.BlobWriter, error) {
	p, err := b.path(tenantID, imageID)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(filepath.Dir(p), "."+imageID+".tmp*")
	if err != nil {
		return nil, err
	}
	return &fileBlobWriter{f: f, dest: p}, nil
}

func (b fileBlobs) Open(tenantID, imageID string) (firmware.Blob, error) {
	p, err := b.path(tenantID, imageID)
	if err != nil {
		return nil, err
	}
	return os.Open(p)
}
