// Package firmware is the hub's side of signed firmware updates: each
// tenant's firmware root (and its signed rotation chain), verified
// manifests and their images, and staged rollouts with waves, automatic
// halts, pause/resume/abort and second-person approval.
//
// The hub never holds a signing key. It refuses any manifest that its
// tenant's root does not verify, and the device verifies everything again
// (sdk/firmware, which holds the one definition of the signed format), so
// a compromised hub can withhold updates but cannot ship firmware.
package firmware

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"time"

	"github.com/rampart-iot/rampart/internal/journal"
	sdkfw "github.com/rampart-iot/rampart/sdk/firmware"
)

// ImageStatus is where an uploaded image is.
type ImageStatus string

// Image statuses.
const (
	ImageAwaiting ImageStatus = "awaiting_image" // manifest verified; bytes not yet uploaded
	ImageReady    ImageStatus = "ready"          // bytes match the manifest
)

// Image is a verified manifest and its image.
type Image struct {
	ID        string
	TenantID  string
	Manifest  sdkfw.Manifest
	Envelope  []byte // the exact signed envelope, served to devices
	Status    ImageStatus
	CreatedBy string
	CreatedAt time.Time
}

// RootRecord is one stored version of a tenant's firmware root.
type RootRecord struct {
	TenantID  string
	Version   uint64
	Envelope  []byte
	CreatedAt time.Time
}

// RolloutStatus is where a rollout is.
type RolloutStatus string

// Rollout statuses.
const (
	RolloutAwaitingApproval RolloutStatus = "awaiting_approval"
	RolloutRunning          RolloutStatus = "running"
	RolloutPaused           RolloutStatus = "paused"
	RolloutHalted           RolloutStatus = "halted" // stopped by the failure threshold or a failed wave
	RolloutAborted          RolloutStatus = "aborted"
	RolloutCompleted        RolloutStatus = "completed"
)

// Rollout is a staged rollout of one image to a cohort of one model.
type Rollout struct {
	ID               string
	TenantID         string
	ImageID          string
	Model            string
	Version          string
	Tags             []string
	Percent          int
	Waves            []int // cumulative percentages, ascending, ending at 100
	SuccessRate      float64
	FailureThreshold float64
	Status           RolloutStatus
	Reason           string
	Wave             int // index of the wave now offered
	CreatedBy        string
	ApprovedBy       string
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

// TargetStatus is one device's status in a rollout.
type TargetStatus string

// Target statuses.
const (
	TargetPending     TargetStatus = "pending"
	TargetOffered     TargetStatus = "offered"
	TargetDownloading TargetStatus = "downloading"
	TargetInstalling  TargetStatus = "installing"
	TargetSucceeded   TargetStatus = "succeeded"
	TargetFailed      TargetStatus = "failed"
)

func (s TargetStatus) terminal() bool { return s == TargetSucceeded || s == TargetFailed }

// Target is one device in a rollout.
type Target struct {
	RolloutID string
	TenantID  string
	DeviceID  string
	Wave      int
	Status    TargetStatus
	Reason    string
	UpdatedAt time.Time
}

// DeviceState is what the hub knows of a device's firmware.
type DeviceState struct {
	TenantID  string
	DeviceID  string
	Model     string
	Version   string
	Sequence  uint64
	Tags      []string
	UpdatedAt time.Time
}

// Settings are a tenant's firmware settings.
type Settings struct {
	TenantID        string
	RequireApproval bool
	MinSequences    map[string]uint64 // model -> lowest acceptable sequence
}

// Errors the store returns.
var (
	ErrNotFound  = errors.New("not found")
	ErrDuplicate = errors.New("duplicate")
)

// Store is the firmware tables.
type Store interface {
	// Update runs fn in one write transaction; fn must not call back into
	// the Store or the journal.
	Update(ctx context.Context, fn func(Tx) error) error
	View(ctx context.Context, fn func(Tx) error) error
}

// Tx is one transaction's view of the firmware tables. Lookups by ID take
// the tenant and return ErrNotFound for another tenant's object.
type Tx interface {
	Roots(tenantID string) ([]RootRecord, error) // oldest first
	AddRoot(r RootRecord) error                  // ErrDuplicate for an existing version
	Image(tenantID, id string) (Image, error)
	Images(tenantID string) ([]Image, error)
	PutImage(i Image) error // ErrDuplicate for a second image of one model and sequence
	Rollout(tenantID, id string) (Rollout, error)
	Rollouts(tenantID string) ([]Rollout, error)
	PutRollout(r Rollout) error
	Targets(rolloutID string) ([]Target, error)
	DeviceTargets(tenantID, deviceID string) ([]Target, error)
	PutTarget(t Target) error
	DeviceState(tenantID, deviceID string) (DeviceState, error)
	DeviceStates(tenantID string) ([]DeviceState, error)
	PutDeviceState(d DeviceState) error
	Settings(tenantID string) (Settings, error) // zero Settings when none stored
	PutSettings(s Settings) error
}

// BlobWriter receives an image's bytes; nothing is visible until Commit.
type BlobWriter interface {
	io.Writer
	Commit() error
	Abort() error
}

// Blob is a stored image opened for reading (with seeking, for ranges).
type Blob interface {
	io.ReadSeekCloser
}

// Blobs stores image bytes per tenant and image ID.
type Blobs interface {
	Create(tenantID, imageID string) (BlobWriter, error)
	Open(tenantID, imageID string) (Blob, error)
}

// FleetDevice is a device as rollouts see it.
type FleetDevice struct {
	ID       string
	TenantID string
	Model    string
	Active   bool // may connect and be updated
}

// Fleet is the device registry as firmware sees it.
type Fleet interface {
	Devices(ctx context.Context, tenantID string) ([]FleetDevice, error)
	Device(ctx context.Context, tenantID, id string) (FleetDevice, error)
	// AuthorizeCert authenticates a device by its TLS client certificate.
	AuthorizeCert(ctx context.Context, leaf *x509.Certificate) (FleetDevice, error)
}

// Recorder is the journal.
type Recorder interface {
	Record(ctx context.Context, e journal.Event) error
}
