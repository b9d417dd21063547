package secrets

import (
	"crypto/subtle"
	"fmt"
	"io"
	"log/slog"
)

// Redacted is what Text and Bytes print instead of their value.
const Redacted = "[REDACTED]"

var redactedJSON = []byte(`"` + Redacted + `"`)

// Text is a secret string (a password, a token, a passphrase). It prints as
// [REDACTED] through fmt (every verb), encoding/json, encoding.TextMarshaler
// and log/slog; Reveal returns the value. Do not use it as a map key in JSON:
// encoding/json writes string-kind keys verbatim.
type Text string

// Reveal returns the secret value. Call it only where the value is used.
func (t Text) Reveal() string { return string(t) }

// Equal compares in constant time (for equal lengths).
func (t Text) Equal(other Text) bool {
	return subtle.ConstantTimeCompare([]byte(t), []byte(other)) == 1
}

// IsZero reports whether the secret is empty.
func (t Text) IsZero() bool { return t == "" }

// String returns [REDACTED].
func (t Text) String() string { return Redacted }

// GoString returns [REDACTED].
func (t Text) GoString() string { return Redacted }

// Format writes [REDACTED] for every verb and flag.
func (t Text) Format(f fmt.State, _ rune) { io.WriteString(f, Redacted) }

// MarshalJSON returns "[REDACTED]".
func (t Text) MarshalJSON() ([]byte, error) { return append([]byte(nil), redactedJSON...), nil }

// MarshalText returns [REDACTED].
func (t Text) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// UnmarshalText sets the secret, so configuration decoders can fill a Text.
func (t *Text) UnmarshalText(b []byte) error { *t = Text(b); return nil }

// LogValue returns [REDACTED].
func (t Text) LogValue() slog.Value { return slog.StringValue(Redacted) }

// Bytes is a secret byte string (a key, a seed). It prints as [REDACTED]
// through fmt (every verb, %x included), encoding/json,
// encoding.TextMarshaler and log/slog; Reveal returns the value.
type Bytes []byte

// Reveal returns the secret value (not a copy).
func (b Bytes) Reveal() []byte { return b }

// Equal compares in constant time (for equal lengths).
func (b Bytes) Equal(other Bytes) bool { return subtle.ConstantTimeCompare(b, other) == 1 }

// IsZero reports whether the secret is empty.
func (b Bytes) IsZero() bool { return len(b) == 0 }

// String returns [REDACTED].
func (b Bytes) String() string { return Redacted }

// GoString returns [REDACTED].
func (b Bytes) GoString() string { return Redacted }

// Format writes [REDACTED] for every verb and flag.
func (b Bytes) Format(f fmt.State, _ rune) { io.WriteString(f, Redacted) }

// MarshalJSON returns "[REDACTED]".
func (b Bytes) MarshalJSON() ([]byte, error) { return append([]byte(nil), redactedJSON...), nil }

// MarshalText returns [REDACTED].
func (b Bytes) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// UnmarshalText sets the secret to a copy of text.
func (b *Bytes) UnmarshalText(text []byte) error { *b = append(Bytes(nil), text...); return nil }

// LogValue returns [REDACTED].
func (b Bytes) LogValue() slog.Value { return slog.StringValue(Redacted) }
