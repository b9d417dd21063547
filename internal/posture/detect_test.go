package posture

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/testkit"
)

func detector(clock *testkit.Clock, rules ...Rule) *Detector {
	return NewDetector(DetectOptions{Window: 10 * time.Second, Now: clock.Now, Rules: rules,
		BaselineActions: []Action{ActionQuarantine}})
}

// normalWindow is an honest thermostat: 3-8 readings on two topics.
func normalWindow(d *Detector, id string, rng *rand.Rand) {
	n := 3 + rng.IntN(6)
	for i := 0; i < n; i++ {
		d.Observe(Sample{Kind: SamplePublish, DeviceID: id, TenantID: "t", Model: "thermo", Topic: fmt.Sprintf("devices/%s/telemetry/%d", id, i%2), Bytes: 40 + rng.IntN(20)})
	}
	if rng.IntN(50) == 0 { // an occasional reconnect
		d.Observe(Sample{Kind: SampleConnect, DeviceID: id, TenantID: "t", Remote: "10.0.0.1:5000"})
	}
}

func TestNormalFleetRaisesNothing(t *testing.T) {
	clock := testkit.NewClock(now)
	d := detector(clock)
	rng := rand.New(rand.NewPCG(1, 2))
	for w := 0; w < 60; w++ {
		for i := 0; i < 1000; i++ {
			normalWindow(d, fmt.Sprintf("d%d", i), rng)
		}
		clock.Advance(10 * time.Second)
		if got := d.Tick(); len(got) != 0 {
			t.Fatalf("window %d: %d false positives, first %+v", w, len(got), got[0])
		}
	}
}

func TestBotIsFlaggedInTheFirstWindow(t *testing.T) {
	clock := testkit.NewClock(now)
	var got []Anomaly
	d := detector(clock)
	d.o.OnAnomaly = func(a Anomaly) { got = append(got, a) }
	rng := rand.New(rand.NewPCG(3, 4))
	for w := 0; w < 10; w++ {
		normalWindow(d, "bot", rng)
		normalWindow(d, "honest", rng)
		clock.Advance(10 * time.Second)
		d.Tick()
	}
	if len(got) != 0 {
		t.Fatalf("flagged during the baseline: %+v", got)
	}
	// The device turns into a bot: a burst fanned out over many topics.
	for i := 0; i < 150; i++ {
		d.Observe(Sample{Kind: SamplePublish, DeviceID: "bot", TenantID: "t", Topic: fmt.Sprintf("devices/bot/telemetry/x%d", i), Bytes: 512})
	}
	normalWindow(d, "honest", rng)
	clock.Advance(10 * time.Second)
	d.Tick()
	if len(got) != 1 || got[0].DeviceID != "bot" || got[0].Rule != "baseline" || got[0].Actions[0] != ActionQuarantine {
		t.Fatalf("anomalies %+v; want one baseline anomaly for the bot with quarantine", got)
	}
	// Still misbehaving in the next window: within the cooldown, not raised again.
	for i := 0; i < 150; i++ {
		d.Observe(Sample{Kind: SamplePublish, DeviceID: "bot", TenantID: "t", Topic: "devices/bot/telemetry/y", Bytes: 512})
	}
	clock.Advance(10 * time.Second)
	d.Tick()
	if len(got) != 1 {
		t.Fatalf("raised again within the cooldown: %+v", got)
	}
	if r := d.Recent("t"); len(r) != 1 || len(d.Recent("other")) != 0 {
		t.Fatalf("recent: %+v", r)
	}
}

func TestStaticRuleAndScanningPattern(t *testing.T) {
	clock := testkit.NewClock(now)
	d := detector(clock, Rule{Name: "connect-storm", Metric: MetricConnects, Threshold: 5, Actions: []Action{ActionSuspend, ActionNotify}})
	for i := 0; i < 4; i++ {
		d.Observe(Sample{Kind: SampleConnect, DeviceID: "ok", Remote: "10.0.0.1:1"})
	}
	for i := 0; i < 9; i++ {
		d.Observe(Sample{Kind: SampleConnect, DeviceID: "scanner", Remote: fmt.Sprintf("10.0.0.%d:1", i)})
	}
	clock.Advance(10 * time.Second)
	got := d.Tick()
	if len(got) != 1 || got[0].DeviceID != "scanner" || got[0].Rule != "connect-storm" || got[0].Actions[1] != ActionNotify {
		t.Fatalf("anomalies %+v", got)
	}
}

func TestNewDestinationAfterBaseline(t *testing.T) {
	clock := testkit.NewClock(now)
	d := detector(clock)
	rng := rand.New(rand.NewPCG(5, 6))
	d.Observe(Sample{Kind: SampleDestination, DeviceID: "cam", Remote: "hub.example.com:8883"})
	for w := 0; w < 8; w++ {
		normalWindow(d, "cam", rng)
		d.Observe(Sample{Kind: SampleDestination, DeviceID: "cam", Remote: "hub.example.com:8883"})
		clock.Advance(10 * time.Second)
		if got := d.Tick(); len(got) != 0 {
			t.Fatalf("known destination flagged: %+v", got)
		}
	}
	d.Observe(Sample{Kind: SampleDestination, DeviceID: "cam", Remote: "203.0.113.9:23"})
	clock.Advance(10 * time.Second)
	got := d.Tick()
	if len(got) != 1 || got[0].Metric != MetricNewDests {
		t.Fatalf("new destination: %+v", got)
	}
}

func BenchmarkObserve(b *testing.B) {
	d := NewDetector(DetectOptions{})
	s := Sample{Kind: SamplePublish, DeviceID: "d1", TenantID: "t", Topic: "devices/d1/telemetry/t", Bytes: 64}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		d.Observe(s)
	}
}

func TestNotifierSignsAndRetries(t *testing.T) {
	secret := []byte("webhook secret for the test")
	var calls int
	var gotSig, gotTS string
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		if calls == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		gotSig, gotTS = r.Header.Get("X-Rampart-Signature"), r.Header.Get("X-Rampart-Timestamp")
		body, _ = io.ReadAll(r.Body)
	}))
	defer srv.Close()
	n := &Notifier{URL: srv.URL, Secret: secret, Client: srv.Client(), Backoff: time.Millisecond}
	if err := n.Notify(context.Background(), Anomaly{DeviceID: "bot", TenantID: "t", Metric: MetricTopics, At: now}); err != nil {
		t.Fatal(err)
	}
	ts, _ := strconv.ParseInt(gotTS, 10, 64)
	if calls != 2 || gotSig != Sign(secret, ts, body) || !strings.Contains(string(body), `"device_id":"bot"`) {
		t.Fatalf("calls %d sig %s body %s", calls, gotSig, body)
	}
	if Sign([]byte("other"), ts, body) == gotSig {
		t.Fatal("signature does not depend on the secret")
	}
}

func TestNewListeningPortAfterBaseline(t *testing.T) {
	clock := testkit.NewClock(now)
	d := detector(clock)
	d.Observe(Sample{Kind: SampleListenPort, DeviceID: "cam", Remote: "80"})
	for w := 0; w < 7; w++ {
		d.Observe(Sample{Kind: SampleListenPort, DeviceID: "cam", Remote: "80"})
		clock.Advance(10 * time.Second)
		if got := d.Tick(); len(got) != 0 {
			t.Fatalf("known port flagged: %+v", got)
		}
	}
	d.Observe(Sample{Kind: SampleListenPort, DeviceID: "cam", Remote: "23"})
	clock.Advance(10 * time.Second)
	if got := d.Tick(); len(got) != 1 || got[0].Metric != MetricNewPorts {
		t.Fatalf("new listening port: %+v", got)
	}
}
