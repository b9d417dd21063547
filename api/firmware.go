package api

// FirmwareRootRequest is the body of PUT /api/v1/firmware/root: a root
// envelope (JSON text as produced by `rampart firmware root`). The first
// root of a tenant is trusted as given (it must be signed by its own
// threshold); every later one must be the next version, signed by the
// current root's threshold and its own.
type FirmwareRootRequest struct {
	Root string `json:"root"`
}

// FirmwareRoot describes the tenant's current firmware root.
type FirmwareRoot struct {
	Version   uint64   `json:"version"`
	ExpiresAt string   `json:"expires_at"`
	KeyIDs    []string `json:"key_ids"`
	Threshold int      `json:"threshold"`          // root role
	Firmware  int      `json:"firmware_threshold"` // firmware role
	Chain     []string `json:"chain,omitempty"`    // every stored root envelope, oldest first
}

// FirmwareImageRequest is the body of POST /api/v1/firmware/images: a
// signed manifest envelope. The image bytes follow with PUT
// /api/v1/firmware/images/{id}/blob (Content-Type application/octet-stream).
type FirmwareImageRequest struct {
	Manifest string `json:"manifest"`
}

// FirmwareImage is a stored, verified manifest and the state of its image.
type FirmwareImage struct {
	ID        string `json:"id"`
	Vendor    string `json:"vendor"`
	Model     string `json:"model"`
	Version   string `json:"version"`
	Sequence  uint64 `json:"sequence"`
	Length    int64  `json:"length"`
	SHA256    string `json:"sha256"`
	ExpiresAt string `json:"expires_at"`
	Status    string `json:"status"` // awaiting_image, ready
	CreatedAt string `json:"created_at"`
}

// FirmwareImageList is returned by GET /api/v1/firmware/images.
type FirmwareImageList struct {
	Images []FirmwareImage `json:"images"`
}

// RolloutRequest is the body of POST /api/v1/firmware/rollouts.
type RolloutRequest struct {
	ImageID string   `json:"image_id"`
	Tags    []string `json:"tags,omitempty"`    // cohort: devices with every tag
	Percent int      `json:"percent,omitempty"` // cohort: this share of the model's devices (1..100; 0 = 100)
	// Waves are cumulative percentages of the cohort, ascending, ending at
	// 100 (default 1, 10, 50, 100).
	Waves []int `json:"waves,omitempty"`
	// SuccessRate (0..1, default 0.95): a wave starts when the previous
	// wave is done and this share of it succeeded.
	SuccessRate float64 `json:"success_rate,omitempty"`
	// FailureThreshold (0..1, default 0.1): the rollout halts when the
	// failed share of reported devices passes it.
	FailureThreshold float64 `json:"failure_threshold,omitempty"`
}

// Rollout is a staged rollout and its progress.
type Rollout struct {
	ID               string          `json:"id"`
	ImageID          string          `json:"image_id"`
	Model            string          `json:"model"`
	Version          string          `json:"version"`
	Status           string          `json:"status"` // awaiting_approval, running, paused, halted, aborted, completed
	Reason           string          `json:"reason,omitempty"`
	Wave             int             `json:"wave"` // index into Waves of the wave now offered
	Waves            []int           `json:"waves"`
	SuccessRate      float64         `json:"success_rate"`
	FailureThreshold float64         `json:"failure_threshold"`
	Tags             []string        `json:"tags,omitempty"`
	Percent          int             `json:"percent"`
	CreatedBy        string          `json:"created_by"`
	ApprovedBy       string          `json:"approved_by,omitempty"`
	Counts           map[string]int  `json:"counts"` // per device status
	Devices          []RolloutDevice `json:"devices,omitempty"`
	CreatedAt        string          `json:"created_at"`
	UpdatedAt        string          `json:"updated_at"`
}

// RolloutDevice is one device's status in a rollout.
type RolloutDevice struct {
	DeviceID  string `json:"device_id"`
	Wave      int    `json:"wave"`
	Status    string `json:"status"` // pending, offered, downloading, installing, succeeded, failed
	Reason    string `json:"reason,omitempty"`
	UpdatedAt string `json:"updated_at"`
}

// RolloutList is returned by GET /api/v1/firmware/rollouts.
type RolloutList struct {
	Rollouts []Rollout `json:"rollouts"`
}

// FirmwareSettings are a tenant's firmware settings.
type FirmwareSettings struct {
	RequireApproval bool              `json:"require_approval"`
	MinVersions     map[string]uint64 `json:"min_sequences"` // model -> lowest acceptable sequence
}

// FirmwareSettingsRequest is the body of PATCH /api/v1/firmware/settings.
type FirmwareSettingsRequest struct {
	RequireApproval *bool             `json:"require_approval,omitempty"`
	MinVersions     map[string]uint64 `json:"min_sequences,omitempty"` // a 0 removes the model's minimum
}

// DeviceTagsRequest is the body of PUT /api/v1/firmware/devices/{id}/tags.
type DeviceTagsRequest struct {
	Tags []string `json:"tags"`
}

// FirmwareDevice is what the hub knows of a device's firmware.
type FirmwareDevice struct {
	DeviceID  string   `json:"device_id"`
	Model     string   `json:"model,omitempty"`
	Version   string   `json:"version,omitempty"`
	Sequence  uint64   `json:"sequence"`
	Tags      []string `json:"tags,omitempty"`
	UpdatedAt string   `json:"updated_at,omitempty"`
}

// FirmwareDeviceList is returned by GET /api/v1/firmware/below-minimum.
type FirmwareDeviceList struct {
	Devices []FirmwareDevice `json:"devices"`
}

// FirmwareOffer is what GET /api/v1/firmware/offer returns to a device
// (mutual TLS) that has an update waiting; 204 when none.
type FirmwareOffer struct {
	RolloutID string   `json:"rollout_id"`
	ImageID   string   `json:"image_id"`
	Manifest  string   `json:"manifest"` // signed envelope; the device verifies it
	Roots     []string `json:"roots"`    // root chain, oldest first; the device walks it from its trusted version
	URL       string   `json:"url"`      // image download path (range requests supported)
}

// FirmwareReport is the body of POST /api/v1/firmware/report (mutual TLS).
type FirmwareReport struct {
	RolloutID string `json:"rollout_id,omitempty"`
	Status    string `json:"status"` // downloading, installing, succeeded, failed
	Reason    string `json:"reason,omitempty"`
	Version   string `json:"version,omitempty"`  // running version after this step
	Sequence  uint64 `json:"sequence,omitempty"` // running (installed) sequence
}
