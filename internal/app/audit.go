package app

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/accounts"
	"github.com/rampart-iot/rampart/internal/config"
	"github.com/rampart-iot/rampart/internal/journal"
	"github.com/rampart-iot/rampart/internal/pki"
	"github.com/rampart-iot/rampart/internal/posture"
	"github.com/rampart-iot/rampart/internal/tlsconf"
)

// hubAudit adapts the posture Auditor for the API: it gathers the hub-wide
// facts (master key location, TLS profile, CA expiry, journal integrity)
// and probes the hub's own listeners from loopback without credentials.
type hubAudit struct {
	a          *posture.Auditor
	cfg        *config.Config
	d          *data
	root       *pki.CA
	dca        *pki.DeviceCA
	isOperator func(context.Context, accounts.Principal) bool
	mu         sync.Mutex
	anomalies  interface {
		Recent(tenantID string) []posture.Anomaly
	}
	httpsURL string
	mqtt     string
}

func (h *hubAudit) setAnomalies(src interface {
	Recent(tenantID string) []posture.Anomaly
}) {
	h.mu.Lock()
	h.anomalies = src
	h.mu.Unlock()
}

func (h *hubAudit) setAddrs(https, mqtt string) {
	h.mu.Lock()
	h.httpsURL, h.mqtt = https, mqtt
	h.mu.Unlock()
}

func (h *hubAudit) Audit(ctx context.Context, p accounts.Principal) (*posture.Report, error) {
	// The hub's own checks (master key, TLS, journal, listeners) are for
	// the operator tenant; other tenants get their fleet's checks only.
	var hub *posture.Hub
	if h.isOperator != nil && h.isOperator(ctx, p) {
		var err error
		if hub, err = h.facts(ctx); err != nil {
			return nil, err
		}
	}
	rep, err := h.a.Audit(ctx, p, hub)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	src := h.anomalies
	h.mu.Unlock()
	if src != nil {
		rep.Checks = append(rep.Checks, posture.CheckAnomalies)
		rep.Findings = append(rep.Findings, posture.AnomalyFindings(src.Recent(p.TenantID))...)
		posture.SortFindings(rep.Findings)
	}
	return rep, nil
}

func (h *hubAudit) facts(ctx context.Context) (*posture.Hub, error) {
	hub := &posture.Hub{TLSMinVersion: h.cfg.TLS.MinVersion, RootNotAfter: h.root.Cert.NotAfter}
	if h.dca != nil {
		hub.DeviceCANotAfter = h.dca.Cert.NotAfter
	}
	if h.cfg.MasterKey.PassphraseFile == "" {
		hub.MasterKeyPath = h.cfg.MasterKeyFile()
		hub.MasterKeyBesideData = within(h.cfg.DataDir, hub.MasterKeyPath)
	}
	signer, mac, err := h.d.journalKeys(ctx, defaultEnv(), false)
	if err != nil {
		return nil, err
	}
	rep, err := journal.Verify(ctx, h.d.db.Journal(), journal.VerifyKeys{Public: signer.Public().(ed25519.PublicKey), MACKey: mac})
	if err != nil {
		return nil, err
	}
	hub.JournalChecked = true
	if !rep.OK() {
		hub.JournalProblem = rep.Problem.Error()
	}
	h.mu.Lock()
	https, mqtt := h.httpsURL, h.mqtt
	h.mu.Unlock()
	hub.Probes = probeListeners(ctx, h.root.Pool(), https, mqtt)
	return hub, nil
}

// within reports whether path lies inside dir.
func within(dir, path string) bool {
	ad, err1 := filepath.Abs(dir)
	ap, err2 := filepath.Abs(path)
	if err1 != nil || err2 != nil {
		return false
	}
	rel, err := filepath.Rel(ad, ap)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// probeListeners plays an anonymous client against each listener: every
// one must refuse.
func probeListeners(ctx context.Context, roots *x509.CertPool, https, mqtt string) []posture.Probe {
	var out []posture.Probe
	cfg, err := tlsconf.Client(tlsconf.ClientOptions{RootCAs: roots, ServerName: "localhost"})
	if err != nil {
		return []posture.Probe{{Listener: "https", Address: https, Detail: "cannot build a TLS client: " + err.Error()}}
	}
	if https != "" {
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 5 * time.Second}
		defer client.CloseIdleConnections()
		for _, path := range []string{"/api/v1/me", "/api/v1/devices", "/metrics"} {
			p := posture.Probe{Listener: "https", Address: https + path}
			req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+https+path, nil)
			resp, err := client.Do(req)
			switch {
			case err != nil:
				p.Refused, p.Detail = true, "connection failed: "+err.Error()
			default:
				resp.Body.Close()
				p.Refused = resp.StatusCode == http.StatusUnauthorized
				p.Detail = fmt.Sprintf("answered %d without a credential", resp.StatusCode)
			}
			if path == "/metrics" {
				p.Listener = "metrics"
			}
			out = append(out, p)
		}
		out = append(out, probePlaintext(https))
	}
	if mqtt != "" {
		out = append(out, probeMQTT(cfg, mqtt))
	}
	return out
}

func probePlaintext(addr string) posture.Probe {
	p := posture.Probe{Listener: "https (plaintext)", Address: addr}
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		p.Refused, p.Detail = true, err.Error()
		return p
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /api/v1/me HTTP/1.0\r\nHost: %s\r\n\r\n", addr)
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	b, _ := io.ReadAll(io.LimitReader(c, 512))
	p.Refused = len(b) == 0
	p.Detail = fmt.Sprintf("plaintext HTTP got %d bytes back", len(b))
	return p
}

// probeMQTT connects over TLS without a client certificate and sends a
// CONNECT without credentials; the CONNACK must refuse.
func probeMQTT(cfg *tls.Config, addr string) posture.Probe {
	p := posture.Probe{Listener: "mqtt", Address: addr}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		p.Refused, p.Detail = true, "TLS refused: "+err.Error()
		return p
	}
	defer c.Close()
	// MQTT 3.1.1 CONNECT, clean session, keepalive 30, client ID "rampart-probe".
	id := "rampart-probe"
	body := append([]byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 30, 0, byte(len(id))}, id...)
	c.Write(append([]byte{0x10, byte(len(body))}, body...))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	ack := make([]byte, 4)
	if _, err := io.ReadFull(r, ack); err != nil {
		p.Refused, p.Detail = true, "closed without CONNACK"
		return p
	}
	p.Refused = ack[0]>>4 == 2 && ack[3] != 0
	p.Detail = fmt.Sprintf("CONNACK return code %d to an anonymous CONNECT", ack[3])
	return p
}

// AuditCommand runs `rampart audit`: the audit of the logged-in user's
// tenant and of the hub, from a running hub's API. format "" prints a
// table of findings; "json" and "html" write the compliance report.
func AuditCommand(ctx context.Context, sessionFile, format string, out io.Writer) error {
	c, err := loadSession(sessionFile)
	if err != nil {
		return err
	}
	var rep api.AuditReport
	if err := c.call(ctx, "GET", "/api/v1/audit", nil, &rep); err != nil {
		return err
	}
	fs := make([]posture.Finding, 0, len(rep.Findings))
	for _, f := range rep.Findings {
		fs = append(fs, posture.Finding{Check: f.Check, Severity: posture.Severity(f.Severity), Target: f.Target,
			Title: f.Title, Evidence: f.Evidence, Fix: f.Fix, Provisions: f.Provisions})
	}
	cr := posture.ComplianceReport{TenantID: rep.TenantID, At: rep.At, Provisions: posture.Compliance(fs), Findings: fs}
	switch format {
	case "json":
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(cr)
	case "html":
		return cr.WriteHTML(out)
	case "":
		fmt.Fprintf(out, "audit of tenant %s at %s: %d checks, %d findings\n", rep.TenantID, rep.At, len(rep.Checks), len(rep.Findings))
		for _, f := range rep.Findings {
			fmt.Fprintf(out, "%-8s %-26s %-20s %s: %s\n         fix: %s\n", f.Severity, f.Check, f.Target, f.Title, f.Evidence, f.Fix)
		}
		return nil
	default:
		return fmt.Errorf("unknown report format %q; use json or html", format)
	}
}
