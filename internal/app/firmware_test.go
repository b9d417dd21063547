package app

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/api"
	sdkfw "github.com/rampart-iot/rampart/sdk/firmware"
)

// fwKeys is one tenant's offline firmware signing keys (tests only).
type fwKeys struct{ root, fw ed25519.PrivateKey }

func newFWKeys(t testing.TB) fwKeys {
	_, r, _ := ed25519.GenerateKey(rand.Reader)
	_, f, _ := ed25519.GenerateKey(rand.Reader)
	return fwKeys{root: r, fw: f}
}

func (k fwKeys) rootEnv(t testing.TB, v uint64, expires time.Time) string {
	t.Helper()
	rp, fp := k.root.Public().(ed25519.PublicKey), k.fw.Public().(ed25519.PublicKey)
	e, err := sdkfw.NewRootEnvelope(sdkfw.Root{Version: v, Expires: expires,
		Keys:     map[string]sdkfw.Key{sdkfw.KeyID(rp): sdkfw.KeyFor(rp), sdkfw.KeyID(fp): sdkfw.KeyFor(fp)},
		RootRole: sdkfw.Role{KeyIDs: []string{sdkfw.KeyID(rp)}, Threshold: 1},
		Firmware: sdkfw.Role{KeyIDs: []string{sdkfw.KeyID(fp)}, Threshold: 1}})
	if err != nil {
		t.Fatal(err)
	}
	_ = e.Sign(k.root)
	return string(e.Marshal())
}

func (k fwKeys) manifest(t testing.TB, img []byte, model string, seq uint64, expires time.Time, signer ed25519.PrivateKey) string {
	t.Helper()
	h := sha256.Sum256(img)
	e, err := sdkfw.NewManifestEnvelope(sdkfw.Manifest{Vendor: "acme", Model: model, Version: "v" + strings.Repeat("1", int(seq%5)+1), Sequence: seq,
		Length: int64(len(img)), SHA256: hex.EncodeToString(h[:]), Expires: expires, Created: expires.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	_ = e.Sign(signer)
	return string(e.Marshal())
}

// putBlob uploads image bytes (application/octet-stream).
func (h *testHub) putBlob(token, id string, img []byte) reply {
	h.t.Helper()
	req, _ := http.NewRequest("PUT", "https://"+h.addr+"/api/v1/firmware/images/"+id+"/blob", bytes.NewReader(img))
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := h.client.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

// fwDevice creates and enrolls a device of model, returning its identity.
func (h *testHub) fwDevice(token, name, model string) enrolled {
	h.t.Helper()
	r := h.do("POST", "/api/v1/devices", token, api.CreateDeviceRequest{Name: name, Model: model})
	h.expect(r, http.StatusCreated, "", "create device")
	return h.enrollToken(decodeJSON[api.Device](h.t, r).EnrollmentToken, p256(h.t))
}

// publishFirmware sets the root, uploads a signed image and starts a
// rollout of it to model; it returns the image and rollout IDs.
func (h *testHub) publishFirmware(token string, k fwKeys, img []byte, model string, seq uint64, now time.Time) (string, string) {
	h.t.Helper()
	r := h.do("GET", "/api/v1/firmware/root", token, nil)
	if r.status == http.StatusNotFound {
		h.expect(h.do("PUT", "/api/v1/firmware/root", token, api.FirmwareRootRequest{Root: k.rootEnv(h.t, 1, now.Add(365*24*time.Hour))}), http.StatusOK, "", "set root")
	}
	r = h.do("POST", "/api/v1/firmware/images", token, api.FirmwareImageRequest{Manifest: k.manifest(h.t, img, model, seq, now.Add(30*24*time.Hour), k.fw)})
	h.expect(r, http.StatusCreated, "", "upload manifest")
	id := decodeJSON[api.FirmwareImage](h.t, r).ID
	h.expect(h.putBlob(token, id, img), http.StatusOK, "", "upload image")
	r = h.do("POST", "/api/v1/firmware/rollouts", token, api.RolloutRequest{ImageID: id})
	h.expect(r, http.StatusCreated, "", "create rollout")
	return id, decodeJSON[api.Rollout](h.t, r).ID
}

// makeFirmwareB gives tenant B a firmware image and a rollout for the
// cross-tenant walk.
func makeFirmwareB(h *acctHub, tok string) (imageID, rolloutID string) {
	h.fwDevice(tok, "b-thermo", "b-thermo")
	return h.publishFirmware(tok, newFWKeys(h.t), []byte("beta firmware image"), "b-thermo", 3, h.clock.Now())
}

// TestFirmwareEndToEnd: a signed image goes from the offline key through
// the hub to a real mutual-TLS device running sdk/firmware, which resumes
// a download with a range request, installs to its inactive slot and
// reports; a viewer cannot upload; bytes that are not the signed ones are
// refused; another device of the tenant (other model) is offered nothing;
// every step is journaled.
func TestFirmwareEndToEnd(t *testing.T) {
	h := startAccountsHub(t, nil)
	tok := h.setupAndLogin()
	now := h.clock.Now()
	k := newFWKeys(t)
	dev := h.fwDevice(tok, "thermo-1", "thermo")
	other := h.fwDevice(tok, "pump-1", "pump")
	img := bytes.Repeat([]byte("thermo firmware 2.0 "), 5000)

	// A viewer may read but not upload; the refusal is journaled.
	viewer := h.addUser(tok, "vic@example.com", "viewer", "quiet river lantern stone")
	vtok := h.login(viewer.Email, "quiet river lantern stone")
	h.expect(h.do("POST", "/api/v1/firmware/images", vtok, api.FirmwareImageRequest{Manifest: "x"}), http.StatusForbidden, api.CodeForbidden, "viewer upload")
	// No root yet: nothing can be uploaded.
	h.expect(h.do("POST", "/api/v1/firmware/images", tok, api.FirmwareImageRequest{Manifest: k.manifest(t, img, "thermo", 9, now.Add(time.Hour), k.fw)}),
		http.StatusConflict, api.CodeConflict, "manifest before root")

	imageID, rolloutID := h.publishFirmware(tok, k, img, "thermo", 9, now)

	// A manifest signed by a key the root does not name is refused.
	h.expect(h.do("POST", "/api/v1/firmware/images", tok, api.FirmwareImageRequest{Manifest: k.manifest(t, img, "thermo", 10, now.Add(time.Hour), k.root)}),
		http.StatusBadRequest, api.CodeInvalid, "manifest by the root key")
	// Bytes that are not the signed image are refused.
	r := h.do("POST", "/api/v1/firmware/images", tok, api.FirmwareImageRequest{Manifest: k.manifest(t, img, "thermo", 11, now.Add(time.Hour), k.fw)})
	h.expect(r, http.StatusCreated, "", "manifest 11")
	evil := bytes.Clone(img)
	evil[7] ^= 0x20
	h.expect(h.putBlob(tok, decodeJSON[api.FirmwareImage](t, r).ID, evil), http.StatusBadRequest, api.CodeInvalid, "tampered upload")

	// Without a client certificate the device routes refuse.
	h.expect(h.do("GET", "/api/v1/firmware/offer", "", nil), http.StatusUnauthorized, api.CodeUnauthenticated, "offer without mTLS")
	// The pump (other model) is offered nothing and cannot download the thermo image.
	pumpHub := &sdkfw.HTTPHub{Client: h.mtls(other.tlsCert()), BaseURL: "https://" + h.addr}
	if o, err := pumpHub.Offer(t.Context()); err != nil || o != nil {
		t.Fatalf("pump offer: %+v %v", o, err)
	}
	if _, err := pumpHub.Download(t.Context(), &api.FirmwareOffer{URL: "/api/v1/firmware/images/" + imageID + "/download"}, 0); err == nil {
		t.Fatal("pump downloaded the thermo image")
	}

	// The device: trusts root v1, runs sequence 1, resumes a broken download.
	root := h.do("GET", "/api/v1/firmware/root", tok, nil)
	chain := decodeJSON[api.FirmwareRoot](t, root).Chain
	state := sdkfw.NewMemState([]byte(chain[0]), 1, "v1")
	slots := sdkfw.NewSimSlots([]byte("thermo firmware 1.0"))
	hub := &breakingHub{HTTPHub: &sdkfw.HTTPHub{Client: h.mtls(dev.tlsCert()), BaseURL: "https://" + h.addr}, cut: 30000}
	u, err := sdkfw.NewUpdater(sdkfw.Options{Vendor: "acme", Model: "thermo", State: state, Slots: slots, Hub: hub, Now: h.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	res, err := u.Poll(t.Context())
	if err != nil || !res.Installed {
		t.Fatalf("device update: %v", err)
	}
	if !bytes.Equal(slots.RunningImage(), img) || hub.ranged == 0 {
		t.Fatalf("installed image differs or no range request (ranged %d)", hub.ranged)
	}
	if st, _ := state.Load(); st.Sequence != 9 {
		t.Fatalf("counter %d, want 9", st.Sequence)
	}
	ro := decodeJSON[api.Rollout](t, h.do("GET", "/api/v1/firmware/rollouts/"+rolloutID, tok, nil))
	if ro.Status != "completed" || ro.Counts["succeeded"] != 1 || len(ro.Devices) != 1 || ro.Devices[0].DeviceID != dev.id {
		t.Fatalf("rollout after the device: %+v", ro)
	}
	// Nothing more to offer; a second poll is a no-op.
	if res, err := u.Poll(t.Context()); err != nil || res.Installed {
		t.Fatalf("second poll: %+v %v", res, err)
	}
	wantActions(t, h.journalActions(), "firmware.root_set/success", "firmware.manifest_uploaded/success", "firmware.image_uploaded/success",
		"firmware.manifest_uploaded/denied", "firmware.image_uploaded/denied", "firmware.rollout_created/success",
		"firmware.device_updated/success", "firmware.rollout_completed/success")
}

// breakingHub cuts the first download after cut bytes, so the updater
// must resume with a Range request.
type breakingHub struct {
	*sdkfw.HTTPHub
	cut    int64
	ranged int
}

func (b *breakingHub) Download(ctx context.Context, o *api.FirmwareOffer, offset int64) (io.ReadCloser, error) {
	if offset > 0 {
		b.ranged++
	}
	rc, err := b.HTTPHub.Download(ctx, o, offset)
	if err != nil || b.cut == 0 {
		return rc, err
	}
	cut := b.cut
	b.cut = 0
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(io.LimitReader(rc, cut), errorReader{}), rc}, nil
}

type errorReader struct{}

func (errorReader) Read([]byte) (int, error) { return 0, errors.New("connection reset by test") }
