package api

// CreateDeviceRequest is the body of POST /api/v1/devices. Credential is
// "token" (default: the device enrolls with a CSR) or "secret" (a device
// that cannot do X.509 gets an MQTT password it must rotate first).
type CreateDeviceRequest struct {
	Name       string `json:"name"`
	Model      string `json:"model,omitempty"`
	Credential string `json:"credential,omitempty"`
}

// Device is a registered device. EnrollmentToken (and its expiry) or
// Secret appear once, in the reply that creates them.
type Device struct {
	ID                 string `json:"id"`
	Name               string `json:"name"`
	Model              string `json:"model,omitempty"`
	Status             string `json:"status"` // pending, active, suspended, quarantined, revoked, decommissioned
	Method             string `json:"method"` // token, claim, attestation, secret
	SerialNumber       string `json:"serial_number,omitempty"`
	CertificateSerial  string `json:"certificate_serial,omitempty"`
	CertificateExpires string `json:"certificate_expires_at,omitempty"` // RFC 3339
	MustRotate         bool   `json:"must_rotate,omitempty"`
	CreatedAt          string `json:"created_at"`
	UpdatedAt          string `json:"updated_at"`

	EnrollmentToken string `json:"enrollment_token,omitempty"`
	TokenExpiresAt  string `json:"token_expires_at,omitempty"`
	Secret          string `json:"secret,omitempty"`
}

// DeviceList is returned by GET /api/v1/devices.
type DeviceList struct {
	Devices []Device `json:"devices"`
}

// RevokeRequest is the optional body of POST /api/v1/devices/{id}/revoke.
type RevokeRequest struct {
	Reason string `json:"reason,omitempty"`
}

// EnrollRequest is the body of POST /api/v1/enroll: an enrollment token or
// a claim, with a CSR in PEM. SerialNumber and Name apply to claims.
type EnrollRequest struct {
	Token        string `json:"token,omitempty"`
	Claim        string `json:"claim,omitempty"`
	CSR          string `json:"csr"`
	SerialNumber string `json:"serial_number,omitempty"`
	Name         string `json:"name,omitempty"`
}

// EnrollResponse carries the device's certificate chain in PEM (leaf,
// device intermediate, root).
type EnrollResponse struct {
	DeviceID    string `json:"device_id"`
	Certificate string `json:"certificate"`
	ExpiresAt   string `json:"expires_at"` // RFC 3339
	// CommandKey is the hub's command-signing public key, for the device
	// to pin at enrollment (also at GET /pki/command-key).
	CommandKey *CommandKey `json:"command_key,omitempty"`
}

// CSRRequest is the body of POST /api/v1/renew and POST
// /api/v1/enroll/attest (both over mutual TLS).
type CSRRequest struct {
	CSR  string `json:"csr"`
	Name string `json:"name,omitempty"`
}

// RotateSecretRequest is the body of POST /api/v1/device-secret: a secret
// device proves its current secret and sets a new one.
type RotateSecretRequest struct {
	DeviceID  string `json:"device_id"`
	Secret    string `json:"secret"`
	NewSecret string `json:"new_secret"`
}

// CreateClaimRequest is the body of POST /api/v1/claims. TTL is a Go
// duration ("72h").
type CreateClaimRequest struct {
	Name    string   `json:"name"`
	Model   string   `json:"model,omitempty"`
	MaxUses int      `json:"max_uses"`
	TTL     string   `json:"ttl"`
	Serials []string `json:"serials,omitempty"`
}

// Claim is a batch claim; Token appears once, at creation.
type Claim struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Model     string `json:"model,omitempty"`
	MaxUses   int    `json:"max_uses"`
	Uses      int    `json:"uses"`
	Serials   int    `json:"serials"` // size of the allow-list
	ExpiresAt string `json:"expires_at"`
	Revoked   bool   `json:"revoked"`
	Token     string `json:"token,omitempty"`
}

// ClaimList is returned by GET /api/v1/claims.
type ClaimList struct {
	Claims []Claim `json:"claims"`
}

// CreateManufacturerRequest registers a manufacturer CA (PEM) for a model.
type CreateManufacturerRequest struct {
	Name  string `json:"name"`
	Model string `json:"model"`
	CAPEM string `json:"ca_pem"`
}

// Manufacturer is a registered manufacturer CA.
type Manufacturer struct {
	ID           string   `json:"id"`
	Name         string   `json:"name"`
	Model        string   `json:"model"`
	Fingerprints []string `json:"ca_fingerprints"`
	CreatedAt    string   `json:"created_at"`
}

// ManufacturerList is returned by GET /api/v1/manufacturers.
type ManufacturerList struct {
	Manufacturers []Manufacturer `json:"manufacturers"`
}

// Finding is something about a device an admin should look at.
type Finding struct {
	ID        string `json:"id"`
	DeviceID  string `json:"device_id"`
	Kind      string `json:"kind"` // possible_clone, clone_connection, revoked_identity_seen
	Detail    string `json:"detail"`
	Resolved  bool   `json:"resolved"`
	CreatedAt string `json:"created_at"`
}

// FindingList is returned by GET /api/v1/findings.
type FindingList struct {
	Findings []Finding `json:"findings"`
}
