package posture

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Notifier posts anomalies to a webhook with a signed body:
//
//	X-Rampart-Timestamp: unix seconds
//	X-Rampart-Signature: sha256=HEX(HMAC-SHA256(secret, timestamp + "." + body))
//
// so the receiver can check origin and freshness. Failed posts are retried
// with backoff.
type Notifier struct {
	URL     string
	Secret  []byte
	Client  *http.Client
	Now     func() time.Time
	Retries int
	Backoff time.Duration
}

// Sign returns the signature header value for body at ts.
func Sign(secret []byte, ts int64, body []byte) string {
	m := hmac.New(sha256.New, secret)
	fmt.Fprintf(m, "%d.", ts)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Notify posts a, retrying on failure; it returns the last error.
func (n *Notifier) Notify(ctx context.Context, a Anomaly) error {
	body, err := json.Marshal(map[string]any{
		"type": "rampart.anomaly", "device_id": a.DeviceID, "tenant_id": a.TenantID, "model": a.Model,
		"rule": a.Rule, "metric": a.Metric, "value": a.Value, "baseline": a.Baseline, "at": a.At.UTC().Format(time.RFC3339),
		"actions": a.Actions,
	})
	if err != nil {
		return err
	}
	now := time.Now
	if n.Now != nil {
		now = n.Now
	}
	retries, backoff := n.Retries, n.Backoff
	if retries <= 0 {
		retries = defaultWebhookRetries
	}
	if backoff <= 0 {
		backoff = defaultWebhookBackoff
	}
	var last error
	for attempt := 0; attempt <= retries; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(backoff << (attempt - 1)):
			}
		}
		ts := now().Unix()
		req, err := http.NewRequestWithContext(ctx, "POST", n.URL, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Rampart-Timestamp", strconv.FormatInt(ts, 10))
		req.Header.Set("X-Rampart-Signature", Sign(n.Secret, ts, body))
		resp, err := n.Client.Do(req)
		if err != nil {
			last = err
			continue
		}
		resp.Body.Close()
		if resp.StatusCode/100 == 2 {
			return nil
		}
		last = fmt.Errorf("webhook answered %d", resp.StatusCode)
	}
	return last
}
