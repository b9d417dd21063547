package api

import "encoding/json"

// TelemetryMessage is one stored device message. JSON payloads come as
// JSON in "json"; anything else as base64 in "payload".
type TelemetryMessage struct {
	Topic       string          `json:"topic"`
	ContentType string          `json:"content_type"`
	ReceivedAt  string          `json:"received_at"` // RFC 3339
	JSON        json.RawMessage `json:"json,omitempty"`
	Payload     []byte          `json:"payload,omitempty"`
}

// TelemetryList is returned by GET /api/v1/devices/{id}/telemetry,
// newest last.
type TelemetryList struct {
	DeviceID string             `json:"device_id"`
	Messages []TelemetryMessage `json:"messages"`
}
