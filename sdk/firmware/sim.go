package firmware

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/rampart-iot/rampart/api"
)

// MemState keeps Installed in memory (tests, simulations). A device uses
// its keystore instead.
type MemState struct {
	mu sync.Mutex
	v  Installed
}

// NewMemState starts with the trusted root, a sequence and a version.
func NewMemState(root []byte, seq uint64, version string) *MemState {
	return &MemState{v: Installed{Root: append([]byte(nil), root...), Sequence: seq, Version: version}}
}

// Load implements State.
func (s *MemState) Load() (Installed, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.v
	v.Root = append([]byte(nil), v.Root...)
	return v, nil
}

// Save implements State.
func (s *MemState) Save(v Installed) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	v.Root = append([]byte(nil), v.Root...)
	s.v = v
	return nil
}

// SimSlots simulates A/B slots in memory. Running is the slot the device
// boots; HealthCheck, when set, decides whether a trial image is healthy.
type SimSlots struct {
	mu          sync.Mutex
	Slot        [2][]byte
	Running     int
	trial       bool
	writing     *bytes.Buffer
	HealthCheck func(image []byte) error
}

// NewSimSlots starts with image in slot A, running.
func NewSimSlots(image []byte) *SimSlots {
	return &SimSlots{Slot: [2][]byte{append([]byte(nil), image...), nil}}
}

// RunningImage returns the running slot's contents.
func (s *SimSlots) RunningImage() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Slot[s.Running]
}

type simWriter struct{ s *SimSlots }

func (w simWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	if w.s.writing == nil {
		return 0, errors.New("slot writer closed")
	}
	return w.s.writing.Write(p)
}

func (w simWriter) Abort() error {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	w.s.writing = nil
	w.s.Slot[1-w.s.Running] = nil
	return nil
}

// Open implements Slots.
func (s *SimSlots) Open(ctx context.Context, m *Manifest) (SlotWriter, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writing = &bytes.Buffer{}
	s.Slot[1-s.Running] = nil
	return simWriter{s}, nil
}

// Activate implements Slots: the inactive slot becomes the trial boot.
func (s *SimSlots) Activate(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.writing == nil {
		return errors.New("nothing written to the inactive slot")
	}
	s.Slot[1-s.Running] = s.writing.Bytes()
	s.writing = nil
	s.Running, s.trial = 1-s.Running, true
	return nil
}

// Healthy implements Slots.
func (s *SimSlots) Healthy(ctx context.Context) error {
	s.mu.Lock()
	img, hc := s.Slot[s.Running], s.HealthCheck
	s.mu.Unlock()
	if hc != nil {
		return hc(img)
	}
	return nil
}

// Commit implements Slots.
func (s *SimSlots) Commit(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.trial {
		return errors.New("no trial boot to commit")
	}
	s.trial = false
	return nil
}

// Revert implements Slots: back to the previous slot.
func (s *SimSlots) Revert(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.trial {
		s.Running, s.trial = 1-s.Running, false
	}
	s.writing = nil
	s.Slot[1-s.Running] = nil
	return nil
}

// HTTPHub talks to the hub's firmware routes over HTTPS. Client must
// present the device certificate (mutual TLS) and trust only the hub's
// root; the SDK's device client builds one.
type HTTPHub struct {
	Client  *http.Client
	BaseURL string // https://HOST:PORT
}

func (h *HTTPHub) url(path string) string { return strings.TrimRight(h.BaseURL, "/") + path }

// Offer implements Hub.
func (h *HTTPHub) Offer(ctx context.Context) (*api.FirmwareOffer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url("/api/v1/firmware/offer"), nil)
	if err != nil {
		return nil, err
	}
	resp, err := h.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNoContent {
		return nil, nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4*MaxEnvelopeBytes*(MaxRootChain+1)))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("firmware offer: %s: %s", resp.Status, bytes.TrimSpace(body))
	}
	var o api.FirmwareOffer
	if err := json.Unmarshal(body, &o); err != nil {
		return nil, fmt.Errorf("firmware offer: %w", err)
	}
	return &o, nil
}

// Download implements Hub with a Range request from offset.
func (h *HTTPHub) Download(ctx context.Context, o *api.FirmwareOffer, offset int64) (io.ReadCloser, error) {
	u, err := url.Parse(o.URL)
	if err != nil || u.IsAbs() || !strings.HasPrefix(u.Path, "/api/v1/firmware/") {
		return nil, fmt.Errorf("offer names an unexpected download location")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url(u.Path), nil)
	if err != nil {
		return nil, err
	}
	if offset > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
	}
	resp, err := h.Client.Do(req)
	if err != nil {
		return nil, err
	}
	want := http.StatusOK
	if offset > 0 {
		want = http.StatusPartialContent
	}
	if resp.StatusCode != want {
		resp.Body.Close()
		return nil, fmt.Errorf("firmware download: %s", resp.Status)
	}
	return resp.Body, nil
}

// Report implements Hub.
func (h *HTTPHub) Report(ctx context.Context, r api.FirmwareReport) error {
	if len(r.Reason) > 512 {
		r.Reason = r.Reason[:512]
	}
	b, _ := json.Marshal(r)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url("/api/v1/firmware/report"), bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("firmware report: %s", resp.Status)
	}
	return nil
}
