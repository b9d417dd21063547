package devices

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"time"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/journal"
	"github.com/rampart-iot/rampart/internal/pki"
)

// Authorize decides whether the device deviceID, presenting the certificate
// with this SHA-256 fingerprint (hex, as pki.Fingerprint writes it), may
// connect now. It reads the registry, so a revocation takes effect at the
// next handshake. Active and quarantined devices pass (the caller confines a
// quarantined one: Device.Status says so); the returned Device carries the
// tenant. On refusal the Device (when known) is returned with the error so
// the caller can log it.
func (s *Service) Authorize(ctx context.Context, deviceID, fingerprint string) (Device, error) {
	now := s.o.Now()
	var d Device
	var certs []Cert
	err := s.o.Store.View(ctx, func(tx Tx) error {
		var err error
		if d, err = tx.Device(deviceID); err != nil {
			return err
		}
		certs, err = tx.Certs(deviceID)
		return err
	})
	if err != nil {
		return Device{}, api.Errorf(api.CodeUnauthenticated, "unknown device")
	}
	var cert *Cert
	for i := range certs {
		if certs[i].Fingerprint == fingerprint {
			cert = &certs[i]
		}
	}
	switch {
	case cert == nil:
		return d, s.refuseConn(ctx, d, "certificate is not one the hub issued to this device", api.CodeUnauthenticated)
	case cert.Status == CertRevoked || d.Status == StatusRevoked || d.Status == StatusDecommissioned:
		s.countRevoked(ctx, d)
		return d, s.refuseConn(ctx, d, "certificate or device is revoked", api.CodeUnauthenticated)
	case now.After(cert.NotAfter):
		return d, s.refuseConn(ctx, d, "certificate expired; renew before it does", api.CodeUnauthenticated)
	case cert.Status == CertSuperseded && now.Sub(cert.ChangedAt) > renewGrace:
		return d, s.refuseConn(ctx, d, "certificate was replaced by a renewal; use the new one", api.CodeUnauthenticated)
	case d.Status != StatusActive && d.Status != StatusQuarantined:
		return d, s.refuseConn(ctx, d, fmt.Sprintf("device is %s", d.Status), api.CodeForbidden)
	}
	return d, nil
}

// AuthorizeCert verifies that leaf chains to the device intermediate, names
// a device, and passes Authorize. The broker calls it with the peer
// certificate of a TLS connection.
func (s *Service) AuthorizeCert(ctx context.Context, leaf *x509.Certificate) (Device, error) {
	return s.authorizeCert(ctx, leaf, s.o.Now())
}

func (s *Service) authorizeCert(ctx context.Context, leaf *x509.Certificate, now time.Time) (Device, error) {
	id, err := s.o.CA.VerifyDevice(leaf, now)
	if err != nil {
		return Device{}, api.Errorf(api.CodeUnauthenticated, "%v", err)
	}
	return s.Authorize(ctx, id, pki.Fingerprint(leaf))
}

func (s *Service) refuseConn(ctx context.Context, d Device, why string, code api.Code) error {
	s.record(ctx, journal.Event{Actor: "device:" + d.ID, Tenant: d.TenantID, Action: "device.auth_refused", Target: d.ID,
		Outcome: journal.OutcomeDenied, Detail: map[string]string{"reason": why}})
	return api.Errorf(code, "%s", why)
}

// countRevoked counts attempts by a revoked (or otherwise retired) identity
// and raises a finding at revokedAttemptsFlag and every
// revokedAttemptsEvery after it.
func (s *Service) countRevoked(ctx context.Context, d Device) {
	if d.Status != StatusRevoked && d.Status != StatusDecommissioned {
		return
	}
	s.mu.Lock()
	s.revoked[d.ID]++
	n := s.revoked[d.ID]
	if len(s.revoked) > maxTrackedDevices {
		clear(s.revoked)
	}
	s.mu.Unlock()
	if n == revokedAttemptsFlag || (n > revokedAttemptsFlag && (n-revokedAttemptsFlag)%revokedAttemptsEvery == 0) {
		s.raise(ctx, Finding{TenantID: d.TenantID, DeviceID: d.ID, Kind: FindingRevokedReconnect,
			Detail: fmt.Sprintf("%s identity has tried to connect %d times since it was retired", d.Status, n)})
	}
}

func hostOf(remote string) string {
	if h, _, err := net.SplitHostPort(remote); err == nil {
		return h
	}
	return remote
}

// ConnectionOpened is called by a transport after Authorize succeeds, before
// it admits the session. The same identity connecting while a session of it
// is live, or from another address within the clone window after one
// closed, is a clone: under the refuse policy the new connection is refused
// (allow false); under the replace policy the old sessions are closed
// through the Disconnector and the new one admitted. Either way a finding is
// raised. remoteAddr is HOST:PORT and identifies the session.
func (s *Service) ConnectionOpened(ctx context.Context, deviceID, remoteAddr string) (bool, error) {
	now := s.o.Now()
	host := hostOf(remoteAddr)
	s.mu.Lock()
	sessions := s.live[deviceID]
	var why string
	var old []string
	switch {
	case len(sessions) > 0:
		for addr := range sessions {
			old = append(old, addr)
		}
		why = fmt.Sprintf("connected from %s while a session from %s is live", remoteAddr, old[0])
	default:
		if last, ok := s.lastSeen[deviceID]; ok && last.host != host && now.Sub(last.at) < s.o.CloneWindow {
			why = fmt.Sprintf("connected from %s %s after a session from %s closed", host, now.Sub(last.at).Round(time.Millisecond), last.host)
		}
	}
	allow := why == "" || s.o.ClonePolicy == CloneReplace
	if allow {
		if s.live[deviceID] == nil {
			s.live[deviceID] = map[string]time.Time{}
		}
		s.live[deviceID][remoteAddr] = now
	}
	s.mu.Unlock()
	if why == "" {
		return true, nil
	}
	var tenant string
	_ = s.o.Store.View(ctx, func(tx Tx) error {
		d, err := tx.Device(deviceID)
		tenant = d.TenantID
		return err
	})
	action := "refused"
	if allow {
		action = "replaced the old session"
		for _, addr := range old {
			s.ConnectionClosed(ctx, deviceID, addr)
			s.disconnect(deviceID, addr, "clone: replaced by a newer session")
		}
	}
	s.raise(ctx, Finding{TenantID: tenant, DeviceID: deviceID, Kind: FindingCloneConnection, Detail: why + "; " + action})
	return allow, nil
}

// ConnectionClosed is called by a transport when a session admitted by
// ConnectionOpened ends.
func (s *Service) ConnectionClosed(_ context.Context, deviceID, remoteAddr string) {
	now := s.o.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	sessions := s.live[deviceID]
	if _, ok := sessions[remoteAddr]; !ok {
		return
	}
	delete(sessions, remoteAddr)
	if len(sessions) == 0 {
		delete(s.live, deviceID)
	}
	if len(s.lastSeen) >= maxTrackedDevices {
		for id, v := range s.lastSeen {
			if now.Sub(v.at) > s.o.CloneWindow {
				delete(s.lastSeen, id)
			}
		}
	}
	s.lastSeen[deviceID] = seen{host: hostOf(remoteAddr), at: now}
}
