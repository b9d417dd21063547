// Package firmware is the device side of Rampart's signed firmware updates,
// and the one definition of the signed metadata that the signing tool, the
// hub and the device share.
//
// # Format
//
// Signed metadata is a small Ed25519 envelope (in the spirit of DSSE): the
// payload is an opaque byte string, and each signature covers
//
//	"RAMPART-FW-1" SP len(type) SP type SP len(payload) SP payload
//
// so a signature over a manifest can never be replayed as a root (or the
// other way round). Verify checks a k-of-n threshold of distinct keys over
// those exact bytes before the payload is parsed at all; only then is the
// payload decoded (strictly: unknown fields, trailing data and oversize
// input are refused).
//
// A Root names the keys and thresholds of two roles: "root" (signs the next
// root) and "firmware" (signs manifests). A new root must carry version
// n+1 and be signed by the threshold of the current root AND by its own
// threshold, so a rotation is a signed chain that a device walks one link
// at a time (UpdateRoot). A Manifest names vendor, model, a monotonic
// sequence number, the image's SHA-256 and length, and an expiry.
//
// # Device updates
//
// Updater takes an Offer from the hub and applies it: root chain, manifest
// signatures, compatibility, anti-rollback (sequence above the installed
// counter), expiry, a download capped at the signed length, hash check,
// install to the inactive slot, health check, commit, counter raise and a
// report. Any failure leaves the running slot in place and reports why.
// The device's persistent state (State) and its slots (Slots) are
// interfaces so the SDK keystore and real A/B partitions plug in.
package firmware

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// Payload types (bound into every signature).
const (
	TypeRoot     = "application/vnd.rampart.firmware-root+json"
	TypeManifest = "application/vnd.rampart.firmware-manifest+json"
)

// Hard limits, with their reason.
const (
	// MaxEnvelopeBytes bounds a root or manifest envelope: a manifest is a
	// few hundred bytes; a root with MaxKeys keys stays far below this.
	MaxEnvelopeBytes = 64 << 10
	// MaxSignatures bounds the work one envelope can cause (each is an
	// Ed25519 verification).
	MaxSignatures = 16
	// MaxKeys bounds a root's key table.
	MaxKeys = 32
	// MaxRootChain bounds how many root versions one update walks.
	MaxRootChain = 64
	// maxField bounds vendor, model and version strings.
	maxField = 128
)

// Errors that callers (and the hub's reports) test with errors.Is.
var (
	ErrMalformed        = errors.New("malformed signed metadata")
	ErrThreshold        = errors.New("signature threshold not met")
	ErrWrongType        = errors.New("signed metadata of the wrong type")
	ErrExpired          = errors.New("signed metadata expired")
	ErrRootVersion      = errors.New("root version is not the next one")
	ErrRollback         = errors.New("sequence is not above the installed one")
	ErrIncompatible     = errors.New("manifest is for another vendor or model")
	ErrTooLarge         = errors.New("image longer than the signed length")
	ErrTooShort         = errors.New("image shorter than the signed length")
	ErrHashMismatch     = errors.New("image hash does not match the manifest")
	ErrImageLimit       = errors.New("signed length exceeds the device's limit")
	ErrHealthCheck      = errors.New("new firmware failed its health check")
	ErrInstall          = errors.New("installing to the inactive slot failed")
	ErrDownload         = errors.New("downloading the image failed")
	ErrNoRoot           = errors.New("no trusted firmware root")
	ErrManifestMismatch = errors.New("offer does not match its manifest")
)

// Signature is one key's signature over an envelope's payload.
type Signature struct {
	KeyID string `json:"keyid"`
	Sig   string `json:"sig"` // base64 (std) of the Ed25519 signature
}

// Envelope is signed metadata as it travels and is stored.
type Envelope struct {
	PayloadType string      `json:"payload_type"`
	Payload     string      `json:"payload"` // base64 (std) of the exact signed bytes
	Signatures  []Signature `json:"signatures"`
}

// Key is a public key in a root's key table.
type Key struct {
	Type   string `json:"type"`   // "ed25519"
	Public string `json:"public"` // hex
}

// Role is the keys and threshold of one role.
type Role struct {
	KeyIDs    []string `json:"keyids"`
	Threshold int      `json:"threshold"`
}

// Root is the trust anchor for one tenant's firmware.
type Root struct {
	Type     string         `json:"type"` // "root"
	Version  uint64         `json:"version"`
	Expires  time.Time      `json:"expires"`
	Keys     map[string]Key `json:"keys"`
	RootRole Role           `json:"root"`
	Firmware Role           `json:"firmware"`
}

// Manifest describes one signed firmware image.
type Manifest struct {
	Type     string    `json:"type"` // "manifest"
	Vendor   string    `json:"vendor"`
	Model    string    `json:"model"`
	Version  string    `json:"version"`  // for people
	Sequence uint64    `json:"sequence"` // monotonic; anti-rollback counter
	Length   int64     `json:"length"`
	SHA256   string    `json:"sha256"` // hex
	Expires  time.Time `json:"expires"`
	Created  time.Time `json:"created"`
}

// KeyID is the hex SHA-256 of an Ed25519 public key.
func KeyID(pub ed25519.PublicKey) string {
	s := sha256.Sum256(pub)
	return hex.EncodeToString(s[:])
}

// KeyFor builds the root key-table entry for pub.
func KeyFor(pub ed25519.PublicKey) Key {
	return Key{Type: "ed25519", Public: hex.EncodeToString(pub)}
}

// pae is the byte string each signature covers.
func pae(typ string, payload []byte) []byte {
	var b bytes.Buffer
	b.WriteString("RAMPART-FW-1 ")
	b.WriteString(strconv.Itoa(len(typ)))
	b.WriteByte(' ')
	b.WriteString(typ)
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(len(payload)))
	b.WriteByte(' ')
	b.Write(payload)
	return b.Bytes()
}

// NewEnvelope wraps payload unsigned; Sign adds signatures.
func NewEnvelope(typ string, payload []byte) *Envelope {
	return &Envelope{PayloadType: typ, Payload: base64.StdEncoding.EncodeToString(payload), Signatures: []Signature{}}
}

// Sign adds key's signature over the exact payload bytes; a second
// signature by the same key replaces the first.
func (e *Envelope) Sign(key ed25519.PrivateKey) error {
	payload, err := base64.StdEncoding.DecodeString(e.Payload)
	if err != nil {
		return fmt.Errorf("%w: payload is not base64", ErrMalformed)
	}
	id := KeyID(key.Public().(ed25519.PublicKey))
	sig := Signature{KeyID: id, Sig: base64.StdEncoding.EncodeToString(ed25519.Sign(key, pae(e.PayloadType, payload)))}
	for i := range e.Signatures {
		if e.Signatures[i].KeyID == id {
			e.Signatures[i] = sig
			return nil
		}
	}
	e.Signatures = append(e.Signatures, sig)
	return nil
}

// Marshal encodes the envelope.
func (e *Envelope) Marshal() []byte {
	b, _ := json.MarshalIndent(e, "", "  ")
	return append(b, '\n')
}

// ParseEnvelope decodes an envelope's framing only (never its payload).
func ParseEnvelope(raw []byte) (*Envelope, []byte, error) {
	if len(raw) > MaxEnvelopeBytes {
		return nil, nil, fmt.Errorf("%w: %d bytes, limit %d", ErrMalformed, len(raw), MaxEnvelopeBytes)
	}
	var e Envelope
	if err := strictJSON(raw, &e); err != nil {
		return nil, nil, fmt.Errorf("%w: envelope: %v", ErrMalformed, err)
	}
	if len(e.Signatures) > MaxSignatures {
		return nil, nil, fmt.Errorf("%w: %d signatures, limit %d", ErrMalformed, len(e.Signatures), MaxSignatures)
	}
	payload, err := base64.StdEncoding.DecodeString(e.Payload)
	if err != nil || len(payload) == 0 {
		return nil, nil, fmt.Errorf("%w: payload is not base64", ErrMalformed)
	}
	return &e, payload, nil
}

func strictJSON(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data")
	}
	return nil
}

// verifyPayload checks that role's threshold of distinct keys of keys
// signed the envelope's exact payload bytes, and returns those bytes. It
// parses nothing inside the payload.
func verifyPayload(raw []byte, typ string, keys map[string]Key, role Role) ([]byte, error) {
	e, payload, err := ParseEnvelope(raw)
	if err != nil {
		return nil, err
	}
	if e.PayloadType != typ {
		return nil, fmt.Errorf("%w: %q, want %q", ErrWrongType, e.PayloadType, typ)
	}
	if role.Threshold < 1 {
		return nil, fmt.Errorf("%w: role has threshold %d", ErrThreshold, role.Threshold)
	}
	allowed := make(map[string]bool, len(role.KeyIDs))
	for _, id := range role.KeyIDs {
		allowed[id] = true
	}
	msg := pae(typ, payload)
	valid := map[string]bool{}
	for _, s := range e.Signatures {
		if !allowed[s.KeyID] || valid[s.KeyID] {
			continue
		}
		k, ok := keys[s.KeyID]
		if !ok || k.Type != "ed25519" {
			continue
		}
		pub, err := hex.DecodeString(k.Public)
		if err != nil || len(pub) != ed25519.PublicKeySize {
			continue
		}
		sig, err := base64.StdEncoding.DecodeString(s.Sig)
		if err != nil || len(sig) != ed25519.SignatureSize {
			continue
		}
		if ed25519.Verify(pub, msg, sig) {
			valid[s.KeyID] = true
		}
	}
	if len(valid) < role.Threshold {
		return nil, fmt.Errorf("%w: %d valid of %d needed", ErrThreshold, len(valid), role.Threshold)
	}
	return payload, nil
}

// Validate checks a root's own consistency.
func (r *Root) Validate() error {
	if r.Type != "root" {
		return fmt.Errorf("%w: type %q, want root", ErrMalformed, r.Type)
	}
	if r.Version < 1 {
		return fmt.Errorf("%w: root version must be 1 or more", ErrMalformed)
	}
	if r.Expires.IsZero() {
		return fmt.Errorf("%w: root has no expiry", ErrMalformed)
	}
	if len(r.Keys) == 0 || len(r.Keys) > MaxKeys {
		return fmt.Errorf("%w: root has %d keys (1..%d)", ErrMalformed, len(r.Keys), MaxKeys)
	}
	for id, k := range r.Keys {
		pub, err := hex.DecodeString(k.Public)
		if k.Type != "ed25519" || err != nil || len(pub) != ed25519.PublicKeySize || KeyID(pub) != id {
			return fmt.Errorf("%w: key %.16s is not an ed25519 key under its own ID", ErrMalformed, id)
		}
	}
	for name, role := range map[string]Role{"root": r.RootRole, "firmware": r.Firmware} {
		seen := map[string]bool{}
		for _, id := range role.KeyIDs {
			if _, ok := r.Keys[id]; !ok || seen[id] {
				return fmt.Errorf("%w: %s role names unknown or repeated key %.16s", ErrMalformed, name, id)
			}
			seen[id] = true
		}
		if role.Threshold < 1 || role.Threshold > len(role.KeyIDs) {
			return fmt.Errorf("%w: %s threshold %d with %d keys", ErrMalformed, name, role.Threshold, len(role.KeyIDs))
		}
	}
	return nil
}

// ParseRootUnverified parses a root that the caller trusts out of band (the
// first root, installed at manufacture or by an administrator). It still
// requires the root to be signed by its own root threshold.
func ParseRootUnverified(raw []byte) (*Root, error) {
	_, payload, err := ParseEnvelope(raw)
	if err != nil {
		return nil, err
	}
	var r Root
	if err := strictJSON(payload, &r); err != nil {
		return nil, fmt.Errorf("%w: root: %v", ErrMalformed, err)
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	if _, err := verifyPayload(raw, TypeRoot, r.Keys, r.RootRole); err != nil {
		return nil, fmt.Errorf("root is not signed by its own threshold: %w", err)
	}
	return &r, nil
}

// NextRoot verifies raw as the successor of trusted: signed by trusted's
// root threshold over the exact bytes first, then parsed, then signed by
// its own threshold, with version exactly trusted.Version+1. Expiry is not
// checked here (a chain may pass through expired roots); check the last.
func NextRoot(trusted *Root, raw []byte) (*Root, error) {
	payload, err := verifyPayload(raw, TypeRoot, trusted.Keys, trusted.RootRole)
	if err != nil {
		return nil, fmt.Errorf("new root not signed by the current root's threshold: %w", err)
	}
	var r Root
	if err := strictJSON(payload, &r); err != nil {
		return nil, fmt.Errorf("%w: root: %v", ErrMalformed, err)
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	if r.Version != trusted.Version+1 {
		return nil, fmt.Errorf("%w: got %d after %d", ErrRootVersion, r.Version, trusted.Version)
	}
	if _, err := verifyPayload(raw, TypeRoot, r.Keys, r.RootRole); err != nil {
		return nil, fmt.Errorf("new root not signed by its own threshold: %w", err)
	}
	return &r, nil
}

// UpdateRoot walks chain (root envelopes in version order; versions at or
// below trusted's are skipped) and returns the newest root reached and its
// envelope. The final root must not be expired at now.
func UpdateRoot(trusted *Root, trustedRaw []byte, chain [][]byte, now time.Time) (*Root, []byte, error) {
	if len(chain) > MaxRootChain {
		return nil, nil, fmt.Errorf("%w: root chain of %d, limit %d", ErrMalformed, len(chain), MaxRootChain)
	}
	cur, curRaw := trusted, trustedRaw
	for _, raw := range chain {
		_, payload, err := ParseEnvelope(raw)
		if err != nil {
			return nil, nil, err
		}
		// Peek at the version only to skip links already trusted; the
		// link is fully verified by NextRoot before it is used.
		var v struct {
			Version uint64 `json:"version"`
		}
		if json.Unmarshal(payload, &v) == nil && v.Version <= cur.Version {
			continue
		}
		next, err := NextRoot(cur, raw)
		if err != nil {
			return nil, nil, err
		}
		cur, curRaw = next, raw
	}
	if !now.Before(cur.Expires) {
		return nil, nil, fmt.Errorf("%w: root version %d expired at %s", ErrExpired, cur.Version, cur.Expires.UTC().Format(time.RFC3339))
	}
	return cur, curRaw, nil
}

// VerifyManifest checks that root's firmware threshold signed raw's exact
// payload bytes, then parses the manifest and checks it is well formed and
// unexpired at now. Compatibility and anti-rollback are the caller's.
func VerifyManifest(root *Root, raw []byte, now time.Time) (*Manifest, error) {
	if root == nil {
		return nil, ErrNoRoot
	}
	payload, err := verifyPayload(raw, TypeManifest, root.Keys, root.Firmware)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := strictJSON(payload, &m); err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrMalformed, err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if !now.Before(m.Expires) {
		return nil, fmt.Errorf("%w: manifest for %s %s expired at %s", ErrExpired, m.Model, m.Version, m.Expires.UTC().Format(time.RFC3339))
	}
	return &m, nil
}

// Validate checks a manifest's fields.
func (m *Manifest) Validate() error {
	switch {
	case m.Type != "manifest":
		return fmt.Errorf("%w: type %q, want manifest", ErrMalformed, m.Type)
	case m.Vendor == "" || len(m.Vendor) > maxField, m.Model == "" || len(m.Model) > maxField,
		m.Version == "" || len(m.Version) > maxField:
		return fmt.Errorf("%w: vendor, model and version must be 1..%d bytes", ErrMalformed, maxField)
	case m.Sequence == 0:
		return fmt.Errorf("%w: sequence must be 1 or more", ErrMalformed)
	case m.Length <= 0:
		return fmt.Errorf("%w: length must be positive", ErrMalformed)
	case m.Expires.IsZero():
		return fmt.Errorf("%w: manifest has no expiry", ErrMalformed)
	}
	if h, err := hex.DecodeString(m.SHA256); err != nil || len(h) != sha256.Size {
		return fmt.Errorf("%w: sha256 must be 64 hex digits", ErrMalformed)
	}
	return nil
}

// NewManifestEnvelope encodes m as an unsigned envelope.
func NewManifestEnvelope(m Manifest) (*Envelope, error) {
	m.Type = "manifest"
	if err := m.Validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return NewEnvelope(TypeManifest, b), nil
}

// NewRootEnvelope encodes r as an unsigned envelope.
func NewRootEnvelope(r Root) (*Envelope, error) {
	r.Type = "root"
	if err := r.Validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	return NewEnvelope(TypeRoot, b), nil
}
