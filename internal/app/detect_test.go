package app

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/devicesim"
	"github.com/rampart-iot/rampart/internal/posture"
	"github.com/rampart-iot/rampart/sdk"
)

// A device that turns into a bot mid-run is flagged within a window and
// quarantined by the automatic rule, while the normal devices publishing
// over the same period raise nothing.
func TestBotIsQuarantinedAndNormalDevicesAreNot(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Detect.Window = 1_000_000_000 // 1 s
	h := startHub(t, cfg)
	owner := h.setupAndLogin()
	const normal = 40
	type dev struct {
		id string
		c  paho.Client
	}
	var devs []dev
	for i := 0; i <= normal; i++ {
		d := h.newDevice(owner, api.CreateDeviceRequest{Name: fmt.Sprintf("thermo-%d", i), Model: "t1000"})
		id := h.enrollToken(d.EnrollmentToken, p256(t))
		c, err := h.mqttConnect(id.id, id.tlsCert(), "", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		devs = append(devs, dev{id.id, c})
	}
	bot := devs[normal]
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, d := range devs {
		wg.Add(1)
		go func(i int, d dev) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			for {
				select {
				case <-stop:
					return
				case <-time.After(time.Duration(300+rng.IntN(400)) * time.Millisecond):
					d.c.Publish(fmt.Sprintf("devices/%s/telemetry/temp", d.id), 0, false, fmt.Sprintf(`{"c":%d}`, 20+rng.IntN(3)))
				}
			}
		}(i, d)
	}
	time.Sleep(8 * time.Second) // the baseline: more than six windows
	start := time.Now()
	// The bot: a burst fanned out over many topics, within the broker's quota.
	for i := 0; i < 120; i++ {
		bot.c.Publish(fmt.Sprintf("devices/%s/telemetry/scan-%d", bot.id, i), 0, false, `{"x":1}`)
		time.Sleep(8 * time.Millisecond)
	}
	var flaggedAfter time.Duration
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		r := h.do("GET", "/api/v1/devices/"+bot.id, owner, nil)
		if r.status == http.StatusOK && decodeJSON[api.Device](t, r).Status == "quarantined" {
			flaggedAfter = time.Since(start)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if flaggedAfter == 0 {
		t.Fatal("the bot was not quarantined within 10 s")
	}
	t.Logf("bot quarantined %v after its burst began", flaggedAfter.Round(10*time.Millisecond))
	// Exactly one anomaly, for the bot; no false positive among the others.
	rep := decodeJSON[api.AuditReport](t, h.do("GET", "/api/v1/audit", owner, nil))
	var anomalies []api.AuditFinding
	for _, f := range rep.Findings {
		if f.Check == posture.CheckAnomalies {
			anomalies = append(anomalies, f)
		}
	}
	if len(anomalies) != 1 || anomalies[0].Target != bot.id {
		t.Fatalf("anomaly findings %+v; want exactly one, for %s", anomalies, bot.id)
	}
	list := decodeJSON[api.DeviceList](t, h.do("GET", "/api/v1/devices", owner, nil))
	for _, d := range list.Devices {
		if d.ID != bot.id && d.Status != "active" {
			t.Errorf("normal device %s is %s", d.ID, d.Status)
		}
	}
}

// device-sim's bot mode: one simulated device turns into a bot mid-run and
// is quarantined by the automatic rule; the rest of the fleet raises no
// finding over the same period.
func TestDeviceSimBotModeIsQuarantined(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Detect.Window = 1_000_000_000 // 1 s
	h := startHub(t, cfg)
	owner := h.setupAndLogin()
	const fleetSize = 60
	r := h.do("POST", "/api/v1/claims", owner, api.CreateClaimRequest{Name: "sim", MaxUses: fleetSize, TTL: "1h"})
	claim := decodeJSON[api.Claim](t, r)
	addrs, err := devicesim.ParseAddrs("127.0.0.1-127.0.0.4")
	if err != nil {
		t.Fatal(err)
	}
	sim := devicesim.Config{Hub: h.hubURL(), MQTT: h.mqttAddr, Trust: sdk.Trust{CABundle: h.caPEM()}, SourceAddrs: addrs,
		Count: fleetSize, Claim: claim.Token, StateDir: t.TempDir(), Rate: 1, BotAfter: 9 * time.Second, BotDevices: []int{0}, BotBurst: 40}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fleet, err := devicesim.Enroll(ctx, sim)
	if err != nil {
		t.Fatal(err)
	}
	fleet.Start(ctx)
	defer fleet.Close()
	ids := fleet.Devices()
	turn := time.Now().Add(9 * time.Second)
	var quarantinedAt time.Time
	for time.Now().Before(turn.Add(10 * time.Second)) {
		r := h.do("GET", "/api/v1/devices/"+ids[0], owner, nil)
		if r.status == http.StatusOK && decodeJSON[api.Device](t, r).Status == "quarantined" {
			quarantinedAt = time.Now()
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if quarantinedAt.IsZero() {
		t.Fatal("the bot was not quarantined within 10 s of turning")
	}
	if quarantinedAt.Before(turn.Add(-time.Second)) {
		t.Fatalf("device 0 was quarantined before it turned into a bot (at %v, turn at %v)", quarantinedAt, turn)
	}
	t.Logf("bot quarantined %v after it turned", quarantinedAt.Sub(turn).Round(10*time.Millisecond))
	rep := decodeJSON[api.AuditReport](t, h.do("GET", "/api/v1/audit", owner, nil))
	for _, f := range rep.Findings {
		if f.Check == posture.CheckAnomalies && f.Target != ids[0] {
			t.Errorf("false positive: %+v", f)
		}
	}
}

// A device whose SDK reports a listening port or a destination it never
// used before (a recruited bot opening telnet, or calling a C2 server) is
// flagged once its baseline exists.
func TestSDKNetworkReportFlagsNewListeningPort(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Detect.Window = 1_000_000_000 // 1 s
	h := startHub(t, cfg)
	owner := h.setupAndLogin()
	d := h.sdkEnroll(owner, "camera", t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := sdk.Connect(ctx, d, sdk.Options{DisableAutoRenew: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	normal := sdk.NetworkReport{Destinations: []string{"hub.example.com:8883", "ntp.example.com:123"}, Listening: []int{}}
	for i := 0; i < 8; i++ { // the baseline: eight windows of the usual
		if err := c.ReportNetwork(normal); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
	}
	status := func() string {
		return decodeJSON[api.Device](t, h.do("GET", "/api/v1/devices/"+d.ID(), owner, nil)).Status
	}
	if s := status(); s != "active" {
		t.Fatalf("a device reporting its usual network use is %s", s)
	}
	if err := c.ReportNetwork(sdk.NetworkReport{Destinations: normal.Destinations, Listening: []int{23}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "quarantine after a new listening port", 10*time.Second, func() bool { return status() == "quarantined" })
}
