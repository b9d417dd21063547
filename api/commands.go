package api

import "encoding/json"

// CodePolicyViolation: a command the safety policy refused; the answer's
// "command.verdict" names every rule that failed.
const CodePolicyViolation Code = "policy_violation"

// DeviceModel is a device model: the commands its devices take and the
// safety policy the hub (and the device, with its own copy) enforces.
// PUT /api/v1/models/{name} stores a new version; Version is assigned by
// the hub (1, 2, ...) and never reused.
type DeviceModel struct {
	Name      string        `json:"name"`
	Version   int           `json:"version,omitempty"`
	Commands  []CommandSpec `json:"commands"`
	SafeState *SafeState    `json:"safe_state,omitempty"`
	// FailsafeTimeout: the device enters SafeState when it has heard
	// nothing from the hub this long (Go duration, "30s"; "" = no failsafe).
	FailsafeTimeout string `json:"failsafe_timeout,omitempty"`
	// CommandTTL: a command expires this long after it is signed (default 30s).
	CommandTTL string `json:"command_ttl,omitempty"`
	// AckTimeout: a sent command not acknowledged this long after it was
	// sent is failed (default: CommandTTL).
	AckTimeout string `json:"ack_timeout,omitempty"`
	// MQTTQuota overrides the broker's per-client quotas for devices of
	// this model (a camera needs more than a thermostat); omitted fields
	// keep the hub's defaults (mqtt.* in the configuration).
	MQTTQuota *MQTTQuota `json:"mqtt_quota,omitempty"`
	CreatedAt string     `json:"created_at,omitempty"`
	CreatedBy string     `json:"created_by,omitempty"`
}

// Hazard classes.
const (
	HazardNone      = "none"
	HazardLow       = "low"
	HazardHazardous = "hazardous"
)

// Approval modes for hazardous commands (select-before-operate).
const (
	ApprovalConfirm      = "confirm"       // the issuer confirms within ConfirmTimeout
	ApprovalSecondPerson = "second_person" // another user with commands:approve approves within ConfirmTimeout
)

// CommandSpec declares one command and the rules it is held to.
type CommandSpec struct {
	Name   string      `json:"name"`
	Params []ParamSpec `json:"params,omitempty"`
	// Hazard: none (default), low, hazardous. Hazardous commands need
	// Approval.
	Hazard         string `json:"hazard,omitempty"`
	Approval       string `json:"approval,omitempty"`
	ConfirmTimeout string `json:"confirm_timeout,omitempty"` // default 60s
	// MinInterval between two accepted commands of this name ("2s").
	MinInterval string `json:"min_interval,omitempty"`
	// Interlocks: the command is refused while any of them holds.
	Interlocks []Interlock `json:"interlocks,omitempty"`
	// Windows: when non-empty, the command is accepted only inside one.
	Windows []TimeWindow `json:"windows,omitempty"`
	// EmergencyStop: always goes through at once (no approval, quota,
	// interval, window or interlock); the device latches stopped until
	// re-armed. Takes no parameters.
	EmergencyStop bool `json:"emergency_stop,omitempty"`
	// Rearm clears the device's emergency-stop latch.
	Rearm bool `json:"rearm,omitempty"`
}

// Parameter types.
const (
	ParamNumber  = "number"
	ParamInteger = "integer"
	ParamBool    = "boolean"
)

// ParamSpec declares one parameter. Every parameter is required. Values
// outside [Min, Max] are refused (never clamped).
type ParamSpec struct {
	Name string   `json:"name"`
	Type string   `json:"type"` // number, integer, boolean
	Unit string   `json:"unit,omitempty"`
	Min  *float64 `json:"min,omitempty"`
	Max  *float64 `json:"max,omitempty"`
	// Output names the physical output this parameter drives (default:
	// the parameter's name); rates and safe values are per output.
	Output string `json:"output,omitempty"`
	// MaxRate: the largest change of the output per second (units/s); 0 = none.
	MaxRate float64 `json:"max_rate,omitempty"`
}

// Interlock refuses a command while Fact Op Value holds on the latest
// telemetry (the hub) or the device's local state (the SDK). A fact that
// is missing, of the wrong type, or older than MaxAge counts as holding:
// unknown state blocks.
type Interlock struct {
	Name   string `json:"name"`
	Fact   string `json:"fact"`
	Op     string `json:"op"` // eq, ne, lt, le, gt, ge
	Value  any    `json:"value"`
	MaxAge string `json:"max_age,omitempty"`
}

// TimeWindow is a daily window [Start, End) in UTC ("06:00", "22:00"); an
// End before Start spans midnight. Days empty = every day ("mon".."sun").
type TimeWindow struct {
	Days  []string `json:"days,omitempty"`
	Start string   `json:"start"`
	End   string   `json:"end"`
}

// SafeState is what the device does when it loses the hub or is
// emergency-stopped: the output values it goes to.
type SafeState struct {
	Outputs map[string]float64 `json:"outputs"`
}

// ModelList is GET /api/v1/models.
type ModelList struct {
	Models []DeviceModel `json:"models"`
}

// CommandRequest is the body of POST /api/v1/devices/{id}/commands.
type CommandRequest struct {
	Name   string          `json:"name"`
	Params json.RawMessage `json:"params,omitempty"`
}

// Failure is one rule a command failed.
type Failure struct {
	Rule    string `json:"rule"` // schema, bounds, rate, min_interval, interlock, window, estopped, quota, approval
	Target  string `json:"target,omitempty"`
	Message string `json:"message"`
}

// Verdict is the outcome of the policy for one command.
type Verdict struct {
	Allowed       bool      `json:"allowed"`
	ModelVersion  int       `json:"model_version"`
	Hazard        string    `json:"hazard"`
	Approval      string    `json:"approval,omitempty"`
	EmergencyStop bool      `json:"emergency_stop,omitempty"`
	Failures      []Failure `json:"failures,omitempty"`
}

// Command statuses.
const (
	CommandRefused              = "refused"               // the policy said no
	CommandAwaitingConfirmation = "awaiting_confirmation" // selected; the issuer confirms
	CommandAwaitingApproval     = "awaiting_approval"     // selected; a second person approves
	CommandSent                 = "sent"                  // signed and published; waiting for the ack
	CommandExecuted             = "executed"              // the device acknowledged "done"
	CommandRejected             = "rejected"              // the device refused it
	CommandFailed               = "failed"                // the device reported failure, or no ack before the deadline
	CommandExpired              = "expired"               // not confirmed/approved in time
	CommandCancelled            = "cancelled"             // superseded (an emergency stop) or withdrawn
)

// Command is a command's record.
type Command struct {
	ID         string          `json:"id"`
	DeviceID   string          `json:"device_id"`
	Name       string          `json:"name"`
	Params     json.RawMessage `json:"params,omitempty"`
	Status     string          `json:"status"`
	Verdict    Verdict         `json:"verdict"`
	IssuedBy   string          `json:"issued_by"`
	ApprovedBy string          `json:"approved_by,omitempty"`
	Seq        uint64          `json:"seq,omitempty"`
	CreatedAt  string          `json:"created_at"`
	SelectExp  string          `json:"select_expires_at,omitempty"`
	SentAt     string          `json:"sent_at,omitempty"`
	ExpiresAt  string          `json:"expires_at,omitempty"`
	Deadline   string          `json:"ack_deadline,omitempty"`
	AckedAt    string          `json:"acked_at,omitempty"`
	AckCode    string          `json:"ack_code,omitempty"`
	AckMessage string          `json:"ack_message,omitempty"`
}

// CommandList is GET /api/v1/devices/{id}/commands.
type CommandList struct {
	Commands []Command `json:"commands"`
}

// CommandRefusal is the 422 answer to a command the policy refused.
type CommandRefusal struct {
	Error   Error   `json:"error"`
	Command Command `json:"command"`
}

// CommandKey is GET /pki/command-key: the hub's Ed25519 command-signing
// public key, which a device pins at enrollment.
type CommandKey struct {
	Algorithm string `json:"algorithm"`  // "Ed25519"
	KeyID     string `json:"key_id"`     // first 8 bytes of SHA-256(public key), hex
	PublicKey string `json:"public_key"` // base64 (standard, padded) of the 32-byte key
}

// MQTTQuota is a device model's broker quota.
type MQTTQuota struct {
	PublishPerSec    int `json:"publish_per_sec,omitempty"`
	PublishBurst     int `json:"publish_burst,omitempty"`
	BytesPerSec      int `json:"bytes_per_sec,omitempty"`
	MaxSubscriptions int `json:"max_subscriptions,omitempty"`
}

// CommandEnvelope is what the hub publishes on devices/{id}/commands (QoS 1).
// Signature is Ed25519 over SigningBytes (see sdk/safety), base64.
// The fields id, name, params, issued_at, expires_at match sdk.Command.
type CommandEnvelope struct {
	V            int             `json:"v"` // 1
	ID           string          `json:"id"`
	DeviceID     string          `json:"device_id"`
	Name         string          `json:"name"`
	Params       json.RawMessage `json:"params,omitempty"`
	Seq          uint64          `json:"seq"`
	Nonce        string          `json:"nonce"`
	IssuedAt     string          `json:"issued_at"`  // RFC 3339 with nanoseconds, UTC
	ExpiresAt    string          `json:"expires_at"` // RFC 3339 with nanoseconds, UTC
	ModelVersion int             `json:"model_version"`
	KeyID        string          `json:"key_id"`
	Signature    string          `json:"signature"`
}

// CommandAck is what a device publishes on devices/{id}/acks/{command id}
// (the same JSON as sdk.Ack).
type CommandAck struct {
	ID      string          `json:"id"`
	Status  string          `json:"status"` // done, rejected, failed
	Code    string          `json:"code,omitempty"`
	Message string          `json:"message,omitempty"`
	Result  json.RawMessage `json:"result,omitempty"`
}

// SafetyEvent is what a device publishes on devices/{id}/events/safety
// when its Guard refuses a command, enters the failsafe, stops or is
// re-armed; the hub journals it as safety.device_{kind}.
type SafetyEvent struct {
	Kind      string `json:"kind"` // refused, failsafe, emergency_stop, rearmed
	CommandID string `json:"command_id,omitempty"`
	Code      string `json:"code,omitempty"`
	Message   string `json:"message,omitempty"`
	At        string `json:"at,omitempty"` // RFC 3339, the device's clock
}
