package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Command is a command the hub sent on devices/{id}/commands. Its wire
// form is JSON:
//
//	{"id":"...","name":"set_point","params":{...},"issued_at":"RFC 3339",
//	 "expires_at":"RFC 3339","signature":"..."}
//
// Signature is carried for a Verifier (the hub's command signing arrives
// with the safety issue); Raw is the exact payload it covers.
type Command struct {
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Params    json.RawMessage `json:"params,omitempty"`
	IssuedAt  time.Time       `json:"issued_at,omitzero"`
	ExpiresAt time.Time       `json:"expires_at,omitzero"`
	Signature string          `json:"signature,omitempty"`

	Raw   []byte `json:"-"`
	Topic string `json:"-"`
}

// Ack is what the device answers on devices/{id}/acks/{command id}.
type Ack struct {
	ID      string          `json:"id"`
	Status  string          `json:"status"` // done, rejected, failed
	Code    string          `json:"code,omitempty"`
	Message string          `json:"message,omitempty"`
	Result  json.RawMessage `json:"result,omitempty"`
}

// Ack statuses.
const (
	AckDone     = "done"
	AckRejected = "rejected" // refused before running: bad signature, outside limits, expired
	AckFailed   = "failed"   // ran and failed
)

// Handler runs a command and returns its result (any JSON value, or nil).
type Handler interface {
	HandleCommand(ctx context.Context, cmd *Command) (result any, err error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, cmd *Command) (any, error)

// HandleCommand implements Handler.
func (f HandlerFunc) HandleCommand(ctx context.Context, cmd *Command) (any, error) {
	return f(ctx, cmd)
}

// Middleware wraps a Handler: a check before it (signature verification,
// local safety limits, rate limits) or around it (logging).
type Middleware func(Handler) Handler

// Chain wraps h with mw; the first middleware runs first.
func Chain(h Handler, mw ...Middleware) Handler {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}

// RejectError refuses a command before it runs; the ack says "rejected"
// with Code. A Verifier or a limit returns one.
type RejectError struct {
	Code    string // e.g. bad_signature, out_of_bounds, expired, busy
	Message string
}

func (e *RejectError) Error() string {
	return fmt.Sprintf("command rejected (%s): %s", e.Code, e.Message)
}

// Reject returns a *RejectError.
func Reject(code, format string, args ...any) error {
	return &RejectError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Verifier decides whether a command may run at all (its signature, its
// issuer, its freshness). A nil error lets it through.
type Verifier interface {
	VerifyCommand(ctx context.Context, cmd *Command) error
}

// VerifierFunc adapts a function to Verifier.
type VerifierFunc func(ctx context.Context, cmd *Command) error

// VerifyCommand implements Verifier.
func (f VerifierFunc) VerifyCommand(ctx context.Context, cmd *Command) error { return f(ctx, cmd) }

// Verify is the middleware that runs v before the handler; a failure is
// a rejection (a plain error becomes code "unverified").
func Verify(v Verifier) Middleware {
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, cmd *Command) (any, error) {
			if err := v.VerifyCommand(ctx, cmd); err != nil {
				var re *RejectError
				if !errors.As(err, &re) {
					err = &RejectError{Code: "unverified", Message: err.Error()}
				}
				return nil, err
			}
			return next.HandleCommand(ctx, cmd)
		})
	}
}

// RejectExpired refuses a command whose expires_at has passed by the
// device's clock (now nil: time.Now).
func RejectExpired(now func() time.Time) Middleware {
	if now == nil {
		now = time.Now
	}
	return Verify(VerifierFunc(func(_ context.Context, cmd *Command) error {
		if !cmd.ExpiresAt.IsZero() && now().After(cmd.ExpiresAt) {
			return Reject("expired", "command %s expired at %s", cmd.ID, cmd.ExpiresAt.Format(time.RFC3339))
		}
		return nil
	}))
}

// run calls h and turns its outcome into an Ack.
func runCommand(ctx context.Context, h Handler, cmd *Command) Ack {
	res, err := h.HandleCommand(ctx, cmd)
	ack := Ack{ID: cmd.ID, Status: AckDone}
	var re *RejectError
	switch {
	case errors.As(err, &re):
		ack.Status, ack.Code, ack.Message = AckRejected, re.Code, re.Message
	case err != nil:
		ack.Status, ack.Code, ack.Message = AckFailed, "failed", err.Error()
	case res != nil:
		if b, err := json.Marshal(res); err == nil {
			ack.Result = b
		}
	}
	return ack
}

// parseCommand decodes a command payload.
func parseCommand(topic string, payload []byte) (*Command, error) {
	if len(payload) > maxCommandBytes {
		return nil, fmt.Errorf("command of %d bytes is over the %d-byte limit", len(payload), maxCommandBytes)
	}
	var cmd Command
	if err := json.Unmarshal(payload, &cmd); err != nil {
		return nil, fmt.Errorf("command is not valid JSON: %w", err)
	}
	if cmd.ID == "" || cmd.Name == "" || len(cmd.ID) > 128 || strings.Contains(cmd.ID, "/") || strings.Trim(cmd.ID, ".") == "" || validName(cmd.ID) != nil {
		return nil, errors.New("command needs an id (letters, digits, '-', '_', '.') and a name")
	}
	cmd.Raw, cmd.Topic = append([]byte(nil), payload...), topic
	return &cmd, nil
}
