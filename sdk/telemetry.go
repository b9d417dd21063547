package sdk

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/fxamacker/cbor/v2"
)

// Encoding is how telemetry and events are serialised. The hub detects
// both (JSON is stored and served as JSON, CBOR as base64 with content
// type application/cbor).
type Encoding int

// Encodings.
const (
	JSON Encoding = iota
	CBOR
)

func (e Encoding) marshal(v any) ([]byte, error) {
	switch e {
	case CBOR:
		return cborEnc.Marshal(v)
	default:
		return json.Marshal(v)
	}
}

// cborEnc uses Core Deterministic Encoding (RFC 8949 4.2.1): the same value
// always gives the same bytes, which signatures will want later.
var cborEnc, _ = cbor.CoreDetEncOptions().EncMode()

// validName: a telemetry or event name is one or more topic levels of
// letters, digits, '-', '_' and '.', joined by '/'.
func validName(name string) error {
	if name == "" || len(name) > 128 {
		return fmt.Errorf("telemetry name %q: 1 to 128 characters", name)
	}
	for _, lvl := range strings.Split(name, "/") {
		if lvl == "" {
			return fmt.Errorf("telemetry name %q has an empty level", name)
		}
		for _, r := range lvl {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
				return fmt.Errorf("telemetry name %q: only letters, digits, '-', '_', '.' and '/'", name)
			}
		}
	}
	return nil
}

// ErrClosed: the client was closed.
var ErrClosed = errors.New("sdk client is closed")

// Telemetry queues v, encoded with the client's encoding, for
// devices/{id}/telemetry/{name}. It never blocks on the network: offline,
// the message waits in the bounded queue (the oldest is dropped, and
// counted, when it is full).
func (c *Client) Telemetry(name string, v any) error { return c.publish("telemetry", name, v) }

// Event queues v for devices/{id}/events/{name} (alarms, state changes;
// a quarantined device may still send these).
func (c *Client) Event(name string, v any) error { return c.publish("events", name, v) }

func (c *Client) publish(kind, name string, v any) error {
	if err := validName(name); err != nil {
		return err
	}
	b, err := c.o.Encoding.marshal(v)
	if err != nil {
		return fmt.Errorf("encoding %s %s: %w", kind, name, err)
	}
	if len(b) > maxMessageBytes {
		return fmt.Errorf("%s %s is %d bytes; the limit is %d", kind, name, len(b), maxMessageBytes)
	}
	return c.enqueue("devices/"+c.dev.id+"/"+kind+"/"+name, b)
}

// maxMessageBytes: well under the hub's 256 KiB packet cap.
const maxMessageBytes = 128 << 10

// Stream is a typed telemetry or event stream: Send accepts only T.
//
//	temp := sdk.TelemetryStream[Temperature](client, "temperature")
//	temp.Send(Temperature{Celsius: 21.5})
type Stream[T any] struct {
	c          *Client
	kind, name string
}

// TelemetryStream returns a typed stream for devices/{id}/telemetry/{name}.
func TelemetryStream[T any](c *Client, name string) *Stream[T] {
	return &Stream[T]{c: c, kind: "telemetry", name: name}
}

// EventStream returns a typed stream for devices/{id}/events/{name}.
func EventStream[T any](c *Client, name string) *Stream[T] {
	return &Stream[T]{c: c, kind: "events", name: name}
}

// Send queues v.
func (s *Stream[T]) Send(v T) error { return s.c.publish(s.kind, s.name, v) }

// NetworkReport is what a device tells the hub about its own network use,
// for the hub's behaviour monitoring (a device that starts talking to new
// places or opens a port looks like a recruited bot): the outbound
// destinations ("host:port") it contacted since its last report and the
// ports it listens on.
type NetworkReport struct {
	Destinations []string `json:"destinations,omitempty"`
	Listening    []int    `json:"listening,omitempty"`
}

// ReportNetwork queues r for devices/{id}/events/network, always as JSON
// (whatever the telemetry encoding) so the hub can read it.
func (c *Client) ReportNetwork(r NetworkReport) error {
	if len(r.Destinations) > maxNetworkReport || len(r.Listening) > maxNetworkReport {
		return fmt.Errorf("a network report holds at most %d destinations and %d ports", maxNetworkReport, maxNetworkReport)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return c.enqueue("devices/"+c.dev.id+"/events/network", b)
}
