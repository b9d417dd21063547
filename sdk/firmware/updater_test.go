package firmware_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/sdk/firmware"
)

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func key(seed string) ed25519.PrivateKey {
	s := sha256.Sum256([]byte(seed))
	return ed25519.NewKeyFromSeed(s[:])
}

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// rootEnv builds a root of version v with the given role keys, signed by
// signers.
func rootEnv(t testing.TB, v uint64, rootKeys []ed25519.PrivateKey, rootK int, fwKeys []ed25519.PrivateKey, fwK int, signers ...ed25519.PrivateKey) []byte {
	t.Helper()
	r := firmware.Root{Version: v, Expires: t0.Add(365 * 24 * time.Hour), Keys: map[string]firmware.Key{},
		RootRole: firmware.Role{Threshold: rootK}, Firmware: firmware.Role{Threshold: fwK}}
	for _, k := range rootKeys {
		id := firmware.KeyID(pub(k))
		r.Keys[id] = firmware.KeyFor(pub(k))
		r.RootRole.KeyIDs = append(r.RootRole.KeyIDs, id)
	}
	for _, k := range fwKeys {
		id := firmware.KeyID(pub(k))
		r.Keys[id] = firmware.KeyFor(pub(k))
		r.Firmware.KeyIDs = append(r.Firmware.KeyIDs, id)
	}
	e, err := firmware.NewRootEnvelope(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range signers {
		if err := e.Sign(s); err != nil {
			t.Fatal(err)
		}
	}
	return e.Marshal()
}

func manifestEnv(t testing.TB, m firmware.Manifest, signers ...ed25519.PrivateKey) []byte {
	t.Helper()
	e, err := firmware.NewManifestEnvelope(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range signers {
		if err := e.Sign(s); err != nil {
			t.Fatal(err)
		}
	}
	return e.Marshal()
}

func manifestFor(image []byte, model string, seq uint64) firmware.Manifest {
	h := sha256.Sum256(image)
	return firmware.Manifest{Vendor: "acme", Model: model, Version: "1." + strings.Repeat("0", int(seq%3)) + "x", Sequence: seq,
		Length: int64(len(image)), SHA256: hex.EncodeToString(h[:]), Expires: t0.Add(30 * 24 * time.Hour), Created: t0}
}

// fakeHub serves one offer and whatever image bytes it is told to (a
// compromised hub may serve anything).
type fakeHub struct {
	mu        sync.Mutex
	offer     *api.FirmwareOffer
	image     func(offset int64) io.Reader
	breakOnce int64 // first download stops after this many bytes
	reports   []api.FirmwareReport
	read      int64 // bytes handed to the device
}

func (h *fakeHub) Offer(ctx context.Context) (*api.FirmwareOffer, error) { return h.offer, nil }

type countingReader struct {
	r io.Reader
	h *fakeHub
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.h.mu.Lock()
	c.h.read += int64(n)
	c.h.mu.Unlock()
	return n, err
}

func (h *fakeHub) Download(ctx context.Context, o *api.FirmwareOffer, offset int64) (io.ReadCloser, error) {
	r := h.image(offset)
	if h.breakOnce > 0 {
		r = io.MultiReader(io.LimitReader(r, h.breakOnce), errReader{})
		h.breakOnce = 0
	}
	return io.NopCloser(countingReader{r, h}), nil
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func (h *fakeHub) Report(ctx context.Context, r api.FirmwareReport) error {
	h.mu.Lock()
	h.reports = append(h.reports, r)
	h.mu.Unlock()
	return nil
}

func (h *fakeHub) last() api.FirmwareReport { return h.reports[len(h.reports)-1] }

func serve(img []byte) func(int64) io.Reader {
	return func(off int64) io.Reader { return bytes.NewReader(img[off:]) }
}

type device struct {
	state *firmware.MemState
	slots *firmware.SimSlots
	hub   *fakeHub
	u     *firmware.Updater
}

var (
	rootKey1, rootKey2 = key("root-1"), key("root-2")
	fwKey1, fwKey2     = key("fw-1"), key("fw-2")
	oldImage           = []byte("firmware 1.0 for acme thermo")
	newImage           = bytes.Repeat([]byte("firmware 2.0 "), 1000)
)

// newDevice: root v1 (root 1-of-1, firmware 1-of-2 unless k says), installed sequence 5.
func newDevice(t testing.TB, fwK int, maxBytes int64) *device {
	root := rootEnv(t, 1, []ed25519.PrivateKey{rootKey1}, 1, []ed25519.PrivateKey{fwKey1, fwKey2}, fwK, rootKey1)
	d := &device{state: firmware.NewMemState(root, 5, "1.0"), slots: firmware.NewSimSlots(oldImage), hub: &fakeHub{}}
	u, err := firmware.NewUpdater(firmware.Options{Vendor: "acme", Model: "thermo", State: d.state, Slots: d.slots, Hub: d.hub,
		MaxImageBytes: maxBytes, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	d.u = u
	return d
}

func (d *device) offer(manifest []byte, roots ...[]byte) *api.FirmwareOffer {
	o := &api.FirmwareOffer{RolloutID: "rol_1", ImageID: "fwi_1", Manifest: string(manifest), URL: "/api/v1/firmware/images/fwi_1/download"}
	for _, r := range roots {
		o.Roots = append(o.Roots, string(r))
	}
	return o
}

// unchanged asserts the device still runs what it ran and reported why.
func (d *device) unchanged(t *testing.T, want error, err error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error %v, want %v", err, want)
	}
	st, _ := d.state.Load()
	if st.Sequence != 5 || st.Version != "1.0" {
		t.Errorf("counter moved: %+v", st)
	}
	if !bytes.Equal(d.slots.RunningImage(), oldImage) || d.slots.Running != 0 {
		t.Errorf("running slot changed")
	}
	if r := d.hub.last(); r.Status != "failed" || r.Reason == "" || r.Sequence != 5 {
		t.Errorf("last report %+v, want failed with a reason", r)
	}
}

func TestUpdater(t *testing.T) {
	ctx := context.Background()
	goodM := manifestFor(newImage, "thermo", 6)
	for _, tc := range []struct {
		name     string
		fwK      int
		maxBytes int64
		setup    func(t *testing.T, d *device) *api.FirmwareOffer
		want     error
	}{
		{name: "ok/install", setup: func(t *testing.T, d *device) *api.FirmwareOffer {
			d.hub.image = serve(newImage)
			return d.offer(manifestEnv(t, goodM, fwKey1))
		}},
		{name: "ok/resumes-broken-download", setup: func(t *testing.T, d *device) *api.FirmwareOffer {
			d.hub.image, d.hub.breakOnce = serve(newImage), 4000
			return d.offer(manifestEnv(t, goodM, fwKey1))
		}},
		{name: "ok/two-of-two", fwK: 2, setup: func(t *testing.T, d *device) *api.FirmwareOffer {
			d.hub.image = serve(newImage)
			return d.offer(manifestEnv(t, goodM, fwKey1, fwKey2))
		}},
		{name: "fail/tampered-image", want: firmware.ErrHashMismatch, setup: func(t *testing.T, d *device) *api.FirmwareOffer {
			evil := bytes.Clone(newImage)
			evil[100] ^= 1
			d.hub.image = serve(evil)
			return d.offer(manifestEnv(t, goodM, fwKey1))
		}},
		{name: "fail/compromised-hub-rewrites-manifest", want: firmware.ErrThreshold, setup: func(t *testing.T, d *device) *api.FirmwareOffer {
			// The hub swaps in the hash of its own image, keeping the signature.
			evil := []byte("backdoored firmware")
			m := manifestFor(evil, "thermo", 6)
			env := manifestEnv(t, goodM, fwKey1)
			forged := manifestEnv(t, m)
			e, _, _ := firmware.ParseEnvelope(env)
			f, _, _ := firmware.ParseEnvelope(forged)
			f.Signatures = e.Signatures
			d.hub.image = serve(evil)
			return d.offer(f.Marshal())
		}},
		{name: "fail/unknown-key", want: firmware.ErrThreshold, setup: func(t *testing.T, d *device) *api.FirmwareOffer {
			d.hub.image = serve(newImage)
			return d.offer(manifestEnv(t, goodM, key("attacker")))
		}},
		{name: "fail/root-key-signs-manifest", want: firmware.ErrThreshold, setup: func(t *testing.T, d *device) *api.FirmwareOffer {
			d.hub.image = serve(newImage)
			return d.offer(manifestEnv(t, goodM, rootKey1))
		}},
		{name: "fail/too-few-signatures", fwK: 2, want: firmware.ErrThreshold, setup: func(t *testing.T, d *device) *api.FirmwareOffer {
			d.hub.image = serve(newImage)
			return d.offer(manifestEnv(t, goodM, fwKey1))
		}},
		{name: "fail/same-key-twice-counts-once", fwK: 2, want: firmware.ErrThreshold, setup: func(t *testing.T, d *device) *api.FirmwareOffer {
			e, _, _ := firmware.ParseEnvelope(manifestEnv(t, goodM, fwKey1))
			e.Signatures = append(e.Signatures, e.Signatures[0])
			d.hub.image = serve(newImage)
			return d.offer(e.Marshal())
		}},
		{name: "fail/rollback-older-signed-version", want: firmware.ErrRollback, setup: func(t *testing.T, d *device) *api.FirmwareOffer {
			m := manifestFor(newImage, "thermo", 4)
			d.hub.image = serve(newImage)
			return d.offer(manifestEnv(t, m, fwKey1))
		}},
		{name: "fail/replay-installed-version", want: firmware.ErrRollback, setup: func(t *testing.T, d *device) *api.FirmwareOffer {
			m := manifestFor(oldImage, "thermo", 5)
			d.hub.image = serve(oldImage)
			return d.offer(manifestEnv(t, m, fwKey1))
		}},
		{name: "fail/mix-and-match-other-model", want: firmware.ErrIncompatible, setup: func(t *testing.T, d *device) *api.FirmwareOffer {
			m := manifestFor(newImage, "pump", 9)
			d.hub.image = serve(newImage)
			return d.offer(manifestEnv(t, m, fwKey1))
		}},
		{name: "fail/other-vendor", want: firmware.ErrIncompatible, setup: func(t *testing.T, d *device) *api.FirmwareOffer {
			m := manifestFor(newImage, "thermo", 9)
			m.Vendor = "globex"
			d.hub.image = serve(newImage)
			return d.offer(manifestEnv(t, m, fwKey1))
		}},
		{name: "fail/freeze-expired-manifest", want: firmware.ErrExpired, setup: func(t *testing.T, d *device) *api.FirmwareOffer {
			m := goodM
			m.Expires = t0.Add(-time.Second)
			d.hub.image = serve(newImage)
			return d.offer(manifestEnv(t, m, fwKey1))
		}},
		{name: "fail/endless-data", want: firmware.ErrTooLarge, setup: func(t *testing.T, d *device) *api.FirmwareOffer {
			d.hub.image = func(off int64) io.Reader { return io.MultiReader(bytes.NewReader(newImage[off:]), zeros{}) }
			return d.offer(manifestEnv(t, goodM, fwKey1))
		}},
		{name: "fail/short-image", want: firmware.ErrTooShort, setup: func(t *testing.T, d *device) *api.FirmwareOffer {
			d.hub.image = serve(newImage[:len(newImage)-1])
			return d.offer(manifestEnv(t, goodM, fwKey1))
		}},
		{name: "fail/signed-length-over-device-cap", maxBytes: 1024, want: firmware.ErrImageLimit, setup: func(t *testing.T, d *device) *api.FirmwareOffer {
			d.hub.image = serve(newImage)
			return d.offer(manifestEnv(t, goodM, fwKey1))
		}},
		{name: "fail/root-offered-as-manifest", want: firmware.ErrWrongType, setup: func(t *testing.T, d *device) *api.FirmwareOffer {
			d.hub.image = serve(newImage)
			return d.offer(rootEnv(t, 2, []ed25519.PrivateKey{fwKey1}, 1, []ed25519.PrivateKey{fwKey1}, 1, fwKey1))
		}},
		{name: "fail/garbage-manifest", want: firmware.ErrMalformed, setup: func(t *testing.T, d *device) *api.FirmwareOffer {
			d.hub.image = serve(newImage)
			return d.offer([]byte(`{"payload_type":"x","payload":"!!","signatures":[]}`))
		}},
		{name: "fail/health-check", want: firmware.ErrHealthCheck, setup: func(t *testing.T, d *device) *api.FirmwareOffer {
			d.hub.image = serve(newImage)
			d.slots.HealthCheck = func([]byte) error { return errors.New("watchdog: app did not start") }
			return d.offer(manifestEnv(t, goodM, fwKey1))
		}},
		{name: "ok/root-rotation", setup: func(t *testing.T, d *device) *api.FirmwareOffer {
			newRoot, newFw := key("root-new"), key("fw-new")
			r2 := rootEnv(t, 2, []ed25519.PrivateKey{newRoot}, 1, []ed25519.PrivateKey{newFw}, 1, rootKey1, newRoot)
			d.hub.image = serve(newImage)
			return d.offer(manifestEnv(t, goodM, newFw), r2)
		}},
		{name: "fail/rotated-away-key", want: firmware.ErrThreshold, setup: func(t *testing.T, d *device) *api.FirmwareOffer {
			newRoot, newFw := key("root-new"), key("fw-new")
			r2 := rootEnv(t, 2, []ed25519.PrivateKey{newRoot}, 1, []ed25519.PrivateKey{newFw}, 1, rootKey1, newRoot)
			d.hub.image = serve(newImage)
			return d.offer(manifestEnv(t, goodM, fwKey1), r2)
		}},
		{name: "fail/root-rotation-skips-version", want: firmware.ErrRootVersion, setup: func(t *testing.T, d *device) *api.FirmwareOffer {
			newRoot, newFw := key("root-new"), key("fw-new")
			r3 := rootEnv(t, 3, []ed25519.PrivateKey{newRoot}, 1, []ed25519.PrivateKey{newFw}, 1, rootKey1, newRoot)
			d.hub.image = serve(newImage)
			return d.offer(manifestEnv(t, goodM, newFw), r3)
		}},
		{name: "fail/new-root-without-old-threshold", want: firmware.ErrThreshold, setup: func(t *testing.T, d *device) *api.FirmwareOffer {
			newRoot, newFw := key("root-new"), key("fw-new")
			r2 := rootEnv(t, 2, []ed25519.PrivateKey{newRoot}, 1, []ed25519.PrivateKey{newFw}, 1, newRoot)
			d.hub.image = serve(newImage)
			return d.offer(manifestEnv(t, goodM, newFw), r2)
		}},
		{name: "fail/new-root-without-own-threshold", want: firmware.ErrThreshold, setup: func(t *testing.T, d *device) *api.FirmwareOffer {
			newRoot, newFw := key("root-new"), key("fw-new")
			r2 := rootEnv(t, 2, []ed25519.PrivateKey{newRoot}, 1, []ed25519.PrivateKey{newFw}, 1, rootKey1)
			d.hub.image = serve(newImage)
			return d.offer(manifestEnv(t, goodM, newFw), r2)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fwK := tc.fwK
			if fwK == 0 {
				fwK = 1
			}
			d := newDevice(t, fwK, tc.maxBytes)
			o := tc.setup(t, d)
			res, err := d.u.Apply(ctx, o)
			if tc.want != nil {
				d.unchanged(t, tc.want, err)
				if res.Installed {
					t.Error("result says installed")
				}
				if d.hub.read > int64(len(newImage))+64<<10 {
					t.Errorf("device read %d bytes for a %d-byte image", d.hub.read, len(newImage))
				}
				return
			}
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			st, _ := d.state.Load()
			if st.Sequence != 6 || !bytes.Equal(d.slots.RunningImage(), newImage) || d.hub.last().Status != "succeeded" || d.hub.last().Sequence != 6 {
				t.Fatalf("not installed: seq %d, report %+v", st.Sequence, d.hub.last())
			}
			// Replaying the same offer now is a rollback.
			_, err = d.u.Apply(ctx, o)
			if !errors.Is(err, firmware.ErrRollback) {
				t.Fatalf("replay after install: %v", err)
			}
		})
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestRootChainMultiStep(t *testing.T) {
	k2, k3 := key("r2"), key("r3")
	r1 := rootEnv(t, 1, []ed25519.PrivateKey{rootKey1, rootKey2}, 2, []ed25519.PrivateKey{fwKey1}, 1, rootKey1, rootKey2)
	r2 := rootEnv(t, 2, []ed25519.PrivateKey{k2}, 1, []ed25519.PrivateKey{fwKey1}, 1, rootKey1, rootKey2, k2)
	r3 := rootEnv(t, 3, []ed25519.PrivateKey{k3}, 1, []ed25519.PrivateKey{fwKey2}, 1, k2, k3)
	trusted, err := firmware.ParseRootUnverified(r1)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := firmware.UpdateRoot(trusted, r1, [][]byte{r1, r2, r3}, t0)
	if err != nil || got.Version != 3 {
		t.Fatalf("chain: %v %v", got, err)
	}
	// One signature short of the old 2-of-2 threshold.
	bad := rootEnv(t, 2, []ed25519.PrivateKey{k2}, 1, []ed25519.PrivateKey{fwKey1}, 1, rootKey1, k2)
	if _, _, err := firmware.UpdateRoot(trusted, r1, [][]byte{bad}, t0); !errors.Is(err, firmware.ErrThreshold) {
		t.Fatalf("old threshold not met: %v", err)
	}
	// Expired final root.
	if _, _, err := firmware.UpdateRoot(trusted, r1, [][]byte{r2, r3}, t0.Add(400*24*time.Hour)); !errors.Is(err, firmware.ErrExpired) {
		t.Fatalf("expired root: %v", err)
	}
}

func FuzzVerifyManifest(f *testing.F) {
	root := rootEnv(f, 1, []ed25519.PrivateKey{rootKey1}, 1, []ed25519.PrivateKey{fwKey1}, 1, rootKey1)
	r, err := firmware.ParseRootUnverified(root)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(manifestEnv(f, manifestFor(newImage, "thermo", 6), fwKey1))
	f.Add(root)
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = firmware.VerifyManifest(r, b, t0)
		_, _ = firmware.ParseRootUnverified(b)
		_, _ = firmware.NextRoot(r, b)
	})
}

// BenchmarkVerify16MiB measures device-side verification of a 16 MiB
// image: manifest signature check plus SHA-256 over the image.
func BenchmarkVerify16MiB(b *testing.B) {
	img := bytes.Repeat([]byte{0xA5}, 16<<20)
	root := rootEnv(b, 1, []ed25519.PrivateKey{rootKey1}, 1, []ed25519.PrivateKey{fwKey1}, 1, rootKey1)
	r, _ := firmware.ParseRootUnverified(root)
	env := manifestEnv(b, manifestFor(img, "thermo", 6), fwKey1)
	b.SetBytes(int64(len(img)))
	for b.Loop() {
		m, err := firmware.VerifyManifest(r, env, t0)
		if err != nil {
			b.Fatal(err)
		}
		h := sha256.Sum256(img)
		if hex.EncodeToString(h[:]) != m.SHA256 {
			b.Fatal("hash")
		}
	}
}

// BenchmarkVerifyManifest measures signature verification alone.
func BenchmarkVerifyManifest(b *testing.B) {
	root := rootEnv(b, 1, []ed25519.PrivateKey{rootKey1}, 1, []ed25519.PrivateKey{fwKey1}, 1, rootKey1)
	r, _ := firmware.ParseRootUnverified(root)
	env := manifestEnv(b, manifestFor(newImage, "thermo", 6), fwKey1)
	for b.Loop() {
		if _, err := firmware.VerifyManifest(r, env, t0); err != nil {
			b.Fatal(err)
		}
	}
}
