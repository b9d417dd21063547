package safety

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/rampart-iot/rampart/api"
)

// MaxEnvelopeBytes bounds a command envelope (parameters plus a few
// hundred bytes of header).
const MaxEnvelopeBytes = MaxParamsBytes + 2048

// signingContext separates command signatures from anything else the key
// might ever sign.
const signingContext = "rampart-command-v1"

// Envelope is a parsed, not yet verified, command envelope.
type Envelope struct {
	api.CommandEnvelope
	IssuedAt, ExpiresAt time.Time
	Sig                 []byte
}

// KeyID names a command key: the first 8 bytes of SHA-256 of the public
// key, in hex.
func KeyID(pub ed25519.PublicKey) string {
	s := sha256.Sum256(pub)
	return hex.EncodeToString(s[:8])
}

// SigningBytes is what the signature covers: a context string, then every
// field length-prefixed (so no two envelopes share signing bytes), with
// params exactly as they appear in the payload.
func SigningBytes(e *api.CommandEnvelope) []byte {
	var b bytes.Buffer
	field := func(s []byte) {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(s)))
		b.Write(n[:])
		b.Write(s)
	}
	field([]byte(signingContext))
	field([]byte(strconv.Itoa(e.V)))
	field([]byte(e.DeviceID))
	field([]byte(e.ID))
	field([]byte(e.Name))
	field(e.Params)
	field([]byte(strconv.FormatUint(e.Seq, 10)))
	field([]byte(e.Nonce))
	field([]byte(e.IssuedAt))
	field([]byte(e.ExpiresAt))
	field([]byte(strconv.Itoa(e.ModelVersion)))
	field([]byte(e.KeyID))
	return b.Bytes()
}

// Sign fills e's key ID and signature and returns the payload to publish.
func Sign(key ed25519.PrivateKey, e *api.CommandEnvelope) ([]byte, error) {
	e.V = 1
	e.KeyID = KeyID(key.Public().(ed25519.PublicKey))
	e.Signature = ""
	if len(e.Params) > 0 {
		// The payload carries params compacted (as encoding/json writes a
		// RawMessage); sign exactly those bytes.
		var c bytes.Buffer
		if err := json.Compact(&c, e.Params); err != nil {
			return nil, fmt.Errorf("params are not valid JSON: %w", err)
		}
		e.Params = c.Bytes()
	}
	e.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(key, SigningBytes(e)))
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(out.Bytes(), []byte("\n")), nil
}

// TimeFormat is the envelope's time format.
const TimeFormat = time.RFC3339Nano

// ParseEnvelope decodes a payload strictly (size, JSON, fields, times,
// base64). It does not verify the signature: Guard.Admit does.
func ParseEnvelope(payload []byte) (*Envelope, error) {
	if len(payload) > MaxEnvelopeBytes {
		return nil, fmt.Errorf("envelope of %d bytes is over the %d-byte limit", len(payload), MaxEnvelopeBytes)
	}
	var e Envelope
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e.CommandEnvelope); err != nil {
		return nil, fmt.Errorf("envelope is not valid JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("trailing data after the envelope")
	}
	if e.V != 1 {
		return nil, fmt.Errorf("envelope version %d is not 1", e.V)
	}
	if !ValidName(e.ID) || !ValidName(e.Name) || e.DeviceID == "" || len(e.DeviceID) > 128 || e.Nonce == "" || len(e.Nonce) > 64 || e.Seq == 0 || len(e.KeyID) > 64 {
		return nil, errors.New("envelope needs id, name, device_id, seq > 0 and nonce")
	}
	var err error
	if e.IssuedAt, err = time.Parse(TimeFormat, e.CommandEnvelope.IssuedAt); err != nil {
		return nil, errors.New("issued_at is not RFC 3339")
	}
	if e.ExpiresAt, err = time.Parse(TimeFormat, e.CommandEnvelope.ExpiresAt); err != nil {
		return nil, errors.New("expires_at is not RFC 3339")
	}
	// A missing or malformed signature is not a parse error: Verify
	// refuses it (bad_signature), so an unsigned command is reported as such.
	if sig, err := base64.StdEncoding.DecodeString(e.Signature); err == nil && len(sig) == ed25519.SignatureSize {
		e.Sig = sig
	}
	return &e, nil
}

// Verify checks the signature with pub.
func (e *Envelope) Verify(pub ed25519.PublicKey) bool {
	if len(pub) != ed25519.PublicKeySize || len(e.Sig) != ed25519.SignatureSize || e.KeyID != KeyID(pub) {
		return false
	}
	return ed25519.Verify(pub, SigningBytes(&e.CommandEnvelope), e.Sig)
}
