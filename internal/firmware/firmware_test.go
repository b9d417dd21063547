package firmware_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/firmware"
	"github.com/rampart-iot/rampart/internal/journal"
	"github.com/rampart-iot/rampart/internal/store/sqlite"
	"github.com/rampart-iot/rampart/internal/testkit"
	sdkfw "github.com/rampart-iot/rampart/sdk/firmware"
)

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func key(seed string) ed25519.PrivateKey {
	s := sha256.Sum256([]byte(seed))
	return ed25519.NewKeyFromSeed(s[:])
}

var (
	rootKey, fwKey = key("root"), key("fw")
)

func rootEnv(t testing.TB, v uint64, rk, fk ed25519.PrivateKey, signers ...ed25519.PrivateKey) []byte {
	t.Helper()
	rp, fp := rk.Public().(ed25519.PublicKey), fk.Public().(ed25519.PublicKey)
	r := sdkfw.Root{Version: v, Expires: t0.Add(365 * 24 * time.Hour),
		Keys:     map[string]sdkfw.Key{sdkfw.KeyID(rp): sdkfw.KeyFor(rp), sdkfw.KeyID(fp): sdkfw.KeyFor(fp)},
		RootRole: sdkfw.Role{KeyIDs: []string{sdkfw.KeyID(rp)}, Threshold: 1},
		Firmware: sdkfw.Role{KeyIDs: []string{sdkfw.KeyID(fp)}, Threshold: 1}}
	e, err := sdkfw.NewRootEnvelope(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range signers {
		_ = e.Sign(s)
	}
	return e.Marshal()
}

func manifestEnv(t testing.TB, image []byte, model string, seq uint64, signers ...ed25519.PrivateKey) []byte {
	t.Helper()
	h := sha256.Sum256(image)
	e, err := sdkfw.NewManifestEnvelope(sdkfw.Manifest{Vendor: "acme", Model: model, Version: fmt.Sprintf("2.%d", seq), Sequence: seq,
		Length: int64(len(image)), SHA256: hex.EncodeToString(h[:]), Expires: t0.Add(90 * 24 * time.Hour), Created: t0})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range signers {
		_ = e.Sign(s)
	}
	return e.Marshal()
}

type fleet struct{ devs []firmware.FleetDevice }

func (f *fleet) Devices(ctx context.Context, tenantID string) ([]firmware.FleetDevice, error) {
	var out []firmware.FleetDevice
	for _, d := range f.devs {
		if d.TenantID == tenantID {
			out = append(out, d)
		}
	}
	return out, nil
}

func (f *fleet) Device(ctx context.Context, tenantID, id string) (firmware.FleetDevice, error) {
	for _, d := range f.devs {
		if d.TenantID == tenantID && d.ID == id {
			return d, nil
		}
	}
	return firmware.FleetDevice{}, firmware.ErrNotFound
}

func (f *fleet) AuthorizeCert(ctx context.Context, leaf *x509.Certificate) (firmware.FleetDevice, error) {
	return firmware.FleetDevice{}, errors.New("not in unit tests")
}

type blobs struct {
	mu sync.Mutex
	m  map[string][]byte
}

type blobW struct {
	b   *blobs
	k   string
	buf bytes.Buffer
}

func (w *blobW) Write(p []byte) (int, error) { return w.buf.Write(p) }
func (w *blobW) Commit() error {
	w.b.mu.Lock()
	defer w.b.mu.Unlock()
	w.b.m[w.k] = w.buf.Bytes()
	return nil
}
func (w *blobW) Abort() error { return nil }

type nopSeekCloser struct{ *bytes.Reader }

func (nopSeekCloser) Close() error { return nil }

func (b *blobs) Create(tenantID, id string) (firmware.BlobWriter, error) {
	return &blobW{b: b, k: tenantID + "/" + id}, nil
}

func (b *blobs) Open(tenantID, id string) (firmware.Blob, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	v, ok := b.m[tenantID+"/"+id]
	if !ok {
		return nil, firmware.ErrNotFound
	}
	return nopSeekCloser{bytes.NewReader(v)}, nil
}

type recorder struct {
	mu  sync.Mutex
	evs []journal.Event
}

func (r *recorder) Record(ctx context.Context, e journal.Event) error {
	r.mu.Lock()
	r.evs = append(r.evs, e)
	r.mu.Unlock()
	return nil
}

func (r *recorder) has(action, outcome string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.evs {
		if e.Action == action && (outcome == "" || e.Outcome == outcome) {
			return true
		}
	}
	return false
}

type fixture struct {
	svc   *firmware.Service
	fleet *fleet
	j     *recorder
	clock *testkit.Clock
}

func newFixture(t testing.TB, devices int) *fixture {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f := &fixture{fleet: &fleet{}, j: &recorder{}, clock: testkit.NewClock(t0)}
	for i := range devices {
		f.fleet.devs = append(f.fleet.devs, firmware.FleetDevice{ID: fmt.Sprintf("dev_%04d", i), TenantID: "ten_a", Model: "thermo", Active: true})
	}
	f.fleet.devs = append(f.fleet.devs, firmware.FleetDevice{ID: "dev_pump", TenantID: "ten_a", Model: "pump", Active: true},
		firmware.FleetDevice{ID: "dev_other", TenantID: "ten_b", Model: "thermo", Active: true})
	f.svc, err = firmware.New(firmware.Options{Store: db.Firmware(), Blobs: &blobs{m: map[string][]byte{}}, Fleet: f.fleet, Journal: f.j,
		Now: f.clock.Now, Rand: testkit.NewRand(t.Name())})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

var image = bytes.Repeat([]byte("thermo firmware 2 "), 100)

// ready sets the root and uploads a verified image.
func (f *fixture) ready(t testing.TB) firmware.Image {
	t.Helper()
	ctx := context.Background()
	if _, err := f.svc.SetRoot(ctx, "ten_a", "user:o", rootEnv(t, 1, rootKey, fwKey, rootKey)); err != nil {
		t.Fatal(err)
	}
	img, err := f.svc.UploadManifest(ctx, "ten_a", "user:o", manifestEnv(t, image, "thermo", 7, fwKey))
	if err != nil {
		t.Fatal(err)
	}
	if img, err = f.svc.PutImage(ctx, "ten_a", "user:o", img.ID, bytes.NewReader(image)); err != nil {
		t.Fatal(err)
	}
	return img
}

func code(err error) api.Code { return api.ErrorCode(err) }

func TestHubRefusesWhatItCannotVerify(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 1)
	if _, err := f.svc.UploadManifest(ctx, "ten_a", "user:o", manifestEnv(t, image, "thermo", 7, fwKey)); code(err) != api.CodeConflict {
		t.Fatalf("manifest before any root: %v", err)
	}
	if _, err := f.svc.SetRoot(ctx, "ten_a", "user:o", rootEnv(t, 1, rootKey, fwKey)); code(err) != api.CodeInvalid {
		t.Fatalf("unsigned first root: %v", err)
	}
	f.ready(t)
	for _, tc := range []struct {
		name string
		raw  []byte
	}{
		{"fail/unknown-key", manifestEnv(t, image, "thermo", 8, key("attacker"))},
		{"fail/root-key-not-firmware-role", manifestEnv(t, image, "thermo", 8, rootKey)},
		{"fail/unsigned", manifestEnv(t, image, "thermo", 8)},
		{"fail/garbage", []byte("{\"payload\":1}")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := f.svc.UploadManifest(ctx, "ten_a", "user:o", tc.raw); code(err) != api.CodeInvalid {
				t.Fatalf("got %v", err)
			}
		})
	}
	if !f.j.has("firmware.manifest_uploaded", journal.OutcomeDenied) {
		t.Error("refused manifest not journaled")
	}
	// Another tenant's root does not verify for tenant B (B has none).
	if _, err := f.svc.UploadManifest(ctx, "ten_b", "user:b", manifestEnv(t, image, "thermo", 9, fwKey)); code(err) != api.CodeConflict {
		t.Fatalf("tenant B without a root: %v", err)
	}
	// Image bytes that are not the signed ones.
	img, err := f.svc.UploadManifest(ctx, "ten_a", "user:o", manifestEnv(t, image, "thermo", 8, fwKey))
	if err != nil {
		t.Fatal(err)
	}
	evil := bytes.Clone(image)
	evil[0] ^= 1
	if _, err := f.svc.PutImage(ctx, "ten_a", "user:o", img.ID, bytes.NewReader(evil)); code(err) != api.CodeInvalid {
		t.Fatalf("tampered image: %v", err)
	}
	if _, err := f.svc.PutImage(ctx, "ten_a", "user:o", img.ID, io.MultiReader(bytes.NewReader(image), strings.NewReader("more"))); code(err) != api.CodeInvalid {
		t.Fatalf("overlong image: %v", err)
	}
	if got, _ := f.svc.Image(ctx, "ten_a", img.ID); got.Status != firmware.ImageAwaiting {
		t.Fatalf("refused bytes changed the image: %s", got.Status)
	}
	if _, err := f.svc.Image(ctx, "ten_b", img.ID); code(err) != api.CodeNotFound {
		t.Fatalf("tenant B sees A's image: %v", err)
	}
	// Root rotation: skip a version, then the right next version.
	k2 := key("root-2")
	if _, err := f.svc.SetRoot(ctx, "ten_a", "user:o", rootEnv(t, 3, k2, fwKey, rootKey, k2)); code(err) != api.CodeInvalid {
		t.Fatalf("root skipping a version: %v", err)
	}
	if _, err := f.svc.SetRoot(ctx, "ten_a", "user:o", rootEnv(t, 2, k2, fwKey, k2)); code(err) != api.CodeInvalid {
		t.Fatalf("root v2 without the old threshold: %v", err)
	}
	if r, err := f.svc.SetRoot(ctx, "ten_a", "user:o", rootEnv(t, 2, k2, fwKey, rootKey, k2)); err != nil || r.Version != 2 {
		t.Fatalf("rotation: %v", err)
	}
}

// sim reports for every device offered in the current wave; fail decides
// which fail.
func (f *fixture) sim(t testing.TB, fail func(dev string) bool) (offers int) {
	ctx := context.Background()
	for progress := true; progress; {
		progress = false
		for _, d := range f.fleet.devs {
			o, ok, err := f.svc.Offer(ctx, d)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				continue
			}
			offers++
			progress = true
			rep := api.FirmwareReport{RolloutID: o.Rollout.ID, Status: "succeeded", Version: o.Image.Manifest.Version, Sequence: o.Image.Manifest.Sequence}
			if fail(d.ID) {
				rep = api.FirmwareReport{RolloutID: o.Rollout.ID, Status: "failed", Reason: "health check failed", Sequence: 5}
			}
			if err := f.svc.Report(ctx, d, rep); err != nil {
				t.Fatal(err)
			}
		}
	}
	return offers
}

func TestStagedRolloutHaltsOnInjectedFailure(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 200)
	img := f.ready(t)
	r, err := f.svc.CreateRollout(ctx, "ten_a", "user:o", firmware.RolloutSpec{ImageID: img.ID})
	if err != nil {
		t.Fatal(err)
	}
	_, targets, _ := f.svc.Rollout(ctx, "ten_a", r.ID)
	if len(targets) != 200 {
		t.Fatalf("cohort of %d; want the 200 thermo devices of tenant A only", len(targets))
	}
	// Wave 1 (1% = 2 devices) and 2 (10% = 20) succeed; then every device fails.
	var succeeded int
	offers := f.sim(t, func(dev string) bool {
		if succeeded < 20 {
			succeeded++
			return false
		}
		return true
	})
	r, targets, _ = f.svc.Rollout(ctx, "ten_a", r.ID)
	if r.Status != firmware.RolloutHalted {
		t.Fatalf("status %s after failures; want halted", r.Status)
	}
	c := firmware.Counts(targets)
	// Wave 3 covers 100 devices; halting past 10% failed means at most 11 failures.
	if c["failed"] > 11 || c["pending"] < 100 || offers > 35 {
		t.Fatalf("halt too late: %v, %d offers, reason %q", c, offers, r.Reason)
	}
	if !f.j.has("firmware.rollout_halted", journal.OutcomeFailure) || !f.j.has("firmware.device_failed", journal.OutcomeFailure) {
		t.Error("halt or failures not journaled")
	}
	// Halted: nothing more is offered; resume refused; abort works.
	if f.sim(t, func(string) bool { return false }) != 0 {
		t.Fatal("a halted rollout still offers")
	}
	if _, err := f.svc.Act(ctx, "ten_a", "user:o", r.ID, firmware.ActionResume); code(err) != api.CodeConflict {
		t.Fatalf("resume halted: %v", err)
	}
	if r, err = f.svc.Act(ctx, "ten_a", "user:o", r.ID, firmware.ActionAbort); err != nil || r.Status != firmware.RolloutAborted {
		t.Fatalf("abort: %v", err)
	}
}

func TestRolloutCompletesPauseResumeAndApproval(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 50)
	img := f.ready(t)
	yes := true
	if _, err := f.svc.UpdateSettings(ctx, "ten_a", "user:o", &yes, map[string]uint64{"thermo": 7}); err != nil {
		t.Fatal(err)
	}
	if below, _ := f.svc.BelowMinimum(ctx, "ten_a"); len(below) != 50 {
		t.Fatalf("below minimum before the rollout: %d, want 50", len(below))
	}
	r, err := f.svc.CreateRollout(ctx, "ten_a", "user:o", firmware.RolloutSpec{ImageID: img.ID, Waves: []int{10, 100}})
	if err != nil || r.Status != firmware.RolloutAwaitingApproval {
		t.Fatalf("create: %v %s", err, r.Status)
	}
	if f.sim(t, func(string) bool { return false }) != 0 {
		t.Fatal("offered before approval")
	}
	if _, err := f.svc.Act(ctx, "ten_a", "user:o", r.ID, firmware.ActionApprove); code(err) != api.CodeForbidden {
		t.Fatalf("creator approving: %v", err)
	}
	if _, err := f.svc.Act(ctx, "ten_b", "user:b", r.ID, firmware.ActionApprove); code(err) != api.CodeNotFound {
		t.Fatalf("another tenant approving: %v", err)
	}
	if r, err = f.svc.Act(ctx, "ten_a", "user:second", r.ID, firmware.ActionApprove); err != nil || r.Status != firmware.RolloutRunning {
		t.Fatalf("approve: %v", err)
	}
	if _, err := f.svc.Act(ctx, "ten_a", "user:o", r.ID, firmware.ActionPause); err != nil {
		t.Fatal(err)
	}
	if f.sim(t, func(string) bool { return false }) != 0 {
		t.Fatal("offered while paused")
	}
	if _, err := f.svc.Act(ctx, "ten_a", "user:o", r.ID, firmware.ActionResume); err != nil {
		t.Fatal(err)
	}
	if n := f.sim(t, func(string) bool { return false }); n != 50 {
		t.Fatalf("%d offers, want 50", n)
	}
	r, _, _ = f.svc.Rollout(ctx, "ten_a", r.ID)
	if r.Status != firmware.RolloutCompleted {
		t.Fatalf("status %s, want completed", r.Status)
	}
	if below, _ := f.svc.BelowMinimum(ctx, "ten_a"); len(below) != 1 || below[0].DeviceID != "dev_pump" && below[0].Model != "thermo" {
		// dev_pump has no minimum; every thermo now runs 7.
		if len(below) != 0 {
			t.Fatalf("below minimum after the rollout: %+v", below)
		}
	}
	// The pump never got the thermo image.
	if _, ok, _ := f.svc.Offer(ctx, firmware.FleetDevice{ID: "dev_pump", TenantID: "ten_a", Model: "pump"}); ok {
		t.Fatal("pump offered thermo firmware")
	}
	if _, _, err := f.svc.OpenImage(ctx, firmware.FleetDevice{ID: "dev_pump", TenantID: "ten_a", Model: "pump"}, img.ID); code(err) != api.CodeNotFound {
		t.Fatalf("pump downloading thermo image: %v", err)
	}
}

func TestCohortByTagsAndPercent(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 100)
	img := f.ready(t)
	for i := range 10 {
		if _, err := f.svc.SetTags(ctx, "ten_a", "user:o", fmt.Sprintf("dev_%04d", i), []string{"beta", "eu"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.svc.SetTags(ctx, "ten_a", "user:o", "dev_other", []string{"beta"}); code(err) != api.CodeNotFound {
		t.Fatalf("tagging another tenant's device: %v", err)
	}
	r, err := f.svc.CreateRollout(ctx, "ten_a", "user:o", firmware.RolloutSpec{ImageID: img.ID, Tags: []string{"beta"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ts, _ := f.svc.Rollout(ctx, "ten_a", r.ID); len(ts) != 10 {
		t.Fatalf("tag cohort %d, want 10", len(ts))
	}
	r, err = f.svc.CreateRollout(ctx, "ten_a", "user:o", firmware.RolloutSpec{ImageID: img.ID, Percent: 30})
	if err != nil {
		t.Fatal(err)
	}
	if _, ts, _ := f.svc.Rollout(ctx, "ten_a", r.ID); len(ts) < 15 || len(ts) > 45 {
		t.Fatalf("30%% cohort has %d of 100", len(ts))
	}
}

// BenchmarkRollout1000 runs a rollout to 1,000 simulated devices with the
// default wave plan, everyone succeeding (time to complete), and with 10%
// of devices failing (where it halts).
func BenchmarkRollout1000(b *testing.B) {
	for _, failPct := range []int{0, 10} {
		b.Run(fmt.Sprintf("fail%dpct", failPct), func(b *testing.B) {
			for b.Loop() {
				f := newFixture(b, 1000)
				img := f.ready(b)
				r, err := f.svc.CreateRollout(context.Background(), "ten_a", "user:o", firmware.RolloutSpec{ImageID: img.ID})
				if err != nil {
					b.Fatal(err)
				}
				offers := f.sim(b, func(dev string) bool {
					h := sha256.Sum256([]byte(dev))
					return int(h[0])%100 < failPct
				})
				r, ts, _ := f.svc.Rollout(context.Background(), "ten_a", r.ID)
				c := firmware.Counts(ts)
				b.ReportMetric(float64(offers), "offers")
				b.ReportMetric(float64(c["failed"]), "failed")
				b.ReportMetric(float64(r.Wave+1), "last_wave")
				if failPct == 0 && r.Status != firmware.RolloutCompleted || failPct > 0 && r.Status != firmware.RolloutHalted {
					b.Fatalf("status %s", r.Status)
				}
			}
		})
	}
}
