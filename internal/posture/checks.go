package posture

import (
	"fmt"
	"slices"
	"time"

	"github.com/rampart-iot/rampart/internal/accounts"
	"github.com/rampart-iot/rampart/internal/devices"
	"github.com/rampart-iot/rampart/internal/firmware"
)

// Check IDs.
const (
	CheckDeviceCertExpiry  = "device-cert-expiry"
	CheckSecretNotRotated  = "secret-not-rotated"
	CheckClaims            = "claims"
	CheckIdentityFindings  = "identity-findings"
	CheckAPITokens         = "api-tokens"
	CheckMasterKeyLocation = "master-key-location"
	CheckTLSProfile        = "tls-profile"
	CheckCAExpiry          = "ca-expiry"
	CheckJournal           = "journal-integrity"
	CheckListeners         = "listeners-refuse-anonymous"
	CheckFirmwareMinimum   = "firmware-below-minimum"
	CheckAnomalies         = "behaviour-anomalies"
)

// Provisions, named once.
const (
	etsiNoDefaultPasswords = "ETSI EN 303 645 5.1-1"
	etsiUniquePasswords    = "ETSI EN 303 645 5.1-2"
	etsiSecureStorage      = "ETSI EN 303 645 5.4-1"
	etsiSecureComms        = "ETSI EN 303 645 5.5-1"
	etsiBestPracticeCrypto = "ETSI EN 303 645 5.5-2"
	etsiCredentialsMgmt    = "ETSI EN 303 645 5.5-8"
	etsiMinimiseSurface    = "ETSI EN 303 645 5.6-1"
	etsiUpdates            = "ETSI EN 303 645 5.3-2"
	etsiIntegrity          = "ETSI EN 303 645 5.7-1"
	etsiExamineTelemetry   = "ETSI EN 303 645 5.13-1"
	owaspWeakPasswords     = "OWASP IoT I1"
	owaspInsecureServices  = "OWASP IoT I2"
	owaspInsecureEcosystem = "OWASP IoT I3"
	owaspInsecureStorage   = "OWASP IoT I7"
	owaspDeviceManagement  = "OWASP IoT I8"
	owaspNoSecureUpdate    = "OWASP IoT I4"
)

func (a *Auditor) certExpiry(devs []devices.Device) []Finding {
	now := a.o.Now()
	var out []Finding
	for _, d := range devs {
		if d.Status != devices.StatusActive && d.Status != devices.StatusQuarantined || d.CertNotAfter.IsZero() {
			continue
		}
		left := d.CertNotAfter.Sub(now)
		switch {
		case left <= 0:
			out = append(out, Finding{Check: CheckDeviceCertExpiry, Severity: High, Target: d.ID,
				Title:      "device certificate has expired",
				Evidence:   fmt.Sprintf("certificate %s expired at %s", d.CertSerial, d.CertNotAfter.UTC().Format(time.RFC3339)),
				Fix:        "the device must re-enroll (its certificate can no longer renew); check why it stopped renewing",
				Provisions: []string{etsiCredentialsMgmt, owaspDeviceManagement}})
		case left < a.o.CertExpiryWarn:
			out = append(out, Finding{Check: CheckDeviceCertExpiry, Severity: Medium, Target: d.ID,
				Title:      "device certificate expires soon",
				Evidence:   fmt.Sprintf("certificate %s expires in %s", d.CertSerial, left.Round(time.Hour)),
				Fix:        "devices renew at 2/3 of the lifetime; one this close to expiry is not renewing: check it is online and its clock",
				Provisions: []string{etsiCredentialsMgmt, owaspDeviceManagement}})
		}
		// The certificate's age: issued CertLifetime before NotAfter is not
		// stored, so use the device's last update as the issue time bound.
		if !d.UpdatedAt.IsZero() && now.Sub(d.UpdatedAt) > a.o.MaxCertAge {
			out = append(out, Finding{Check: CheckDeviceCertExpiry, Severity: Low, Target: d.ID,
				Title:      "device identity not renewed for a long time",
				Evidence:   fmt.Sprintf("last identity change %s ago", now.Sub(d.UpdatedAt).Round(24*time.Hour)),
				Fix:        "make sure the device renews its certificate; an identity that never rotates lives as long as a leak",
				Provisions: []string{etsiCredentialsMgmt}})
		}
	}
	return out
}

func (a *Auditor) secretsNotRotated(devs []devices.Device) []Finding {
	now := a.o.Now()
	var out []Finding
	for _, d := range devs {
		if d.Method != devices.MethodSecret || !d.MustRotate || d.Status == devices.StatusRevoked || d.Status == devices.StatusDecommissioned {
			continue
		}
		if age := now.Sub(d.CreatedAt); age > a.o.SecretRotateWithin {
			out = append(out, Finding{Check: CheckSecretNotRotated, Severity: Medium, Target: d.ID,
				Title:      "device secret was never changed from the one issued",
				Evidence:   fmt.Sprintf("issued %s ago and still in must_rotate", age.Round(time.Hour)),
				Fix:        "provision the device so it sets its own secret at first connect, or decommission it",
				Provisions: []string{etsiUniquePasswords, owaspWeakPasswords}})
		}
	}
	return out
}

func (a *Auditor) claims(cs []devices.Claim) []Finding {
	now := a.o.Now()
	var out []Finding
	for _, c := range cs {
		if c.Revoked || (!c.ExpiresAt.IsZero() && now.After(c.ExpiresAt)) || (c.MaxUses > 0 && c.Uses >= c.MaxUses) {
			continue
		}
		if len(c.Serials) == 0 && c.MaxUses > a.o.BroadClaimUses {
			out = append(out, Finding{Check: CheckClaims, Severity: Medium, Target: c.ID,
				Title:      "claim is over-broad",
				Evidence:   fmt.Sprintf("claim %q allows %d uses (%d used) with no serial-number allow-list", c.Name, c.MaxUses, c.Uses),
				Fix:        "limit the claim to the batch size and add the batch's serial numbers, or revoke it when the batch is done",
				Provisions: []string{etsiCredentialsMgmt, owaspInsecureEcosystem}})
		}
		if c.Uses == 0 && now.Sub(c.CreatedAt) > a.o.ClaimUnusedAfter {
			out = append(out, Finding{Check: CheckClaims, Severity: Low, Target: c.ID,
				Title:      "claim unused",
				Evidence:   fmt.Sprintf("claim %q created %s ago and never used", c.Name, now.Sub(c.CreatedAt).Round(24*time.Hour)),
				Fix:        "revoke claims that are not needed: each is a live credential",
				Provisions: []string{etsiCredentialsMgmt}})
		}
	}
	return out
}

func identityFindings(fs []devices.Finding) []Finding {
	var out []Finding
	for _, f := range fs {
		if f.Resolved {
			continue
		}
		sev, title := Medium, f.Kind
		switch f.Kind {
		case devices.FindingPossibleClone:
			sev, title = High, "factory identity enrolled twice (possible clone or counterfeit)"
		case devices.FindingCloneConnection:
			sev, title = High, "identity used by several sessions or addresses (shared or cloned certificate)"
		case devices.FindingRevokedReconnect:
			sev, title = Medium, "revoked identity still trying to connect"
		}
		out = append(out, Finding{Check: CheckIdentityFindings, Severity: sev, Target: f.DeviceID, Title: title,
			Evidence:   f.Detail,
			Fix:        "inspect the device; revoke or quarantine it, then resolve the finding (POST /api/v1/findings/" + f.ID + "/resolve)",
			Provisions: []string{etsiUniquePasswords, etsiExamineTelemetry, owaspDeviceManagement}})
	}
	return out
}

func (a *Auditor) tokens(ts []accounts.APIToken) []Finding {
	now := a.o.Now()
	all := accounts.TokenScopes
	var out []Finding
	for _, t := range ts {
		if t.Revoked || (!t.ExpiresAt.IsZero() && now.After(t.ExpiresAt)) {
			continue
		}
		if t.ExpiresAt.IsZero() {
			out = append(out, Finding{Check: CheckAPITokens, Severity: Medium, Target: t.ID,
				Title:      "API token never expires",
				Evidence:   fmt.Sprintf("token %q was created with never_expires", t.Name),
				Fix:        "replace it with an expiring token and rotate it on a schedule",
				Provisions: []string{etsiCredentialsMgmt, owaspInsecureEcosystem}})
		}
		if len(all) > 0 && len(t.Scopes) >= len(all) && containsAll(t.Scopes, all) {
			out = append(out, Finding{Check: CheckAPITokens, Severity: Medium, Target: t.ID,
				Title:      "API token has every scope",
				Evidence:   fmt.Sprintf("token %q holds all %d scopes", t.Name, len(all)),
				Fix:        "give each automation only the scopes it uses",
				Provisions: []string{owaspInsecureEcosystem}})
		}
		if t.LastUsed.IsZero() && now.Sub(t.CreatedAt) > 30*24*time.Hour {
			out = append(out, Finding{Check: CheckAPITokens, Severity: Low, Target: t.ID,
				Title:      "API token never used",
				Evidence:   fmt.Sprintf("token %q created %s ago, never used", t.Name, now.Sub(t.CreatedAt).Round(24*time.Hour)),
				Fix:        "revoke tokens nobody uses",
				Provisions: []string{etsiCredentialsMgmt}})
		}
	}
	return out
}

func containsAll(have, want []accounts.Permission) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

func firmwareBelow(ds []firmware.DeviceState) []Finding {
	var out []Finding
	for _, d := range ds {
		out = append(out, Finding{Check: CheckFirmwareMinimum, Severity: High, Target: d.DeviceID,
			Title:      "device runs firmware below the minimum",
			Evidence:   fmt.Sprintf("model %s runs %s (sequence %d)", d.Model, d.Version, d.Sequence),
			Fix:        "roll out the current signed firmware to this device (POST /api/v1/firmware/rollouts), or quarantine it",
			Provisions: []string{etsiUpdates, owaspNoSecureUpdate}})
	}
	return out
}

// AnomalyFindings turns the detector's recent anomalies into findings.
func AnomalyFindings(as []Anomaly) []Finding {
	var out []Finding
	for _, a := range as {
		ev := fmt.Sprintf("%s = %.0f in one window", a.Metric, a.Value)
		if a.Rule == "baseline" && a.Metric != MetricNewDests {
			ev += fmt.Sprintf(" against a learned %.1f", a.Baseline)
		} else if a.Rule != "baseline" {
			ev += " (rule " + a.Rule + ")"
		}
		acts := make([]string, 0, len(a.Actions))
		for _, x := range a.Actions {
			acts = append(acts, string(x))
		}
		fix := "inspect the device; reactivate it (POST /api/v1/devices/{id}/reactivate) only once explained"
		if len(acts) > 0 {
			ev += "; automatic action: " + fmt.Sprint(acts)
		}
		out = append(out, Finding{Check: CheckAnomalies, Severity: High, Target: a.DeviceID,
			Title: "device behaves like a bot", Evidence: ev + " at " + a.At.UTC().Format(time.RFC3339), Fix: fix,
			Provisions: []string{etsiExamineTelemetry, owaspDeviceManagement}})
	}
	return out
}

func masterKey(h *Hub) []Finding {
	if !h.MasterKeyBesideData {
		return nil
	}
	return []Finding{{Check: CheckMasterKeyLocation, Severity: Medium, Target: "hub",
		Title:      "master key is stored beside the data it protects",
		Evidence:   fmt.Sprintf("key file %s is inside the data folder", h.MasterKeyPath),
		Fix:        "move it to another disk or secret mount and set master_key.file (RAMPART_MASTER_KEY_FILE), or use master_key.passphrase_file; a copy of the data folder then opens nothing",
		Provisions: []string{etsiSecureStorage, owaspInsecureStorage}}}
}

func tlsProfile(h *Hub) []Finding {
	if h.TLSMinVersion == "1.3" || h.TLSMinVersion == "" {
		return nil
	}
	return []Finding{{Check: CheckTLSProfile, Severity: Low, Target: "hub",
		Title:      "TLS 1.2 is accepted",
		Evidence:   fmt.Sprintf("tls.min_version is %q (ECDHE + AEAD suites only)", h.TLSMinVersion),
		Fix:        "set tls.min_version to \"1.3\" once every device supports it",
		Provisions: []string{etsiBestPracticeCrypto, owaspInsecureServices}}}
}

func (a *Auditor) caExpiry(h *Hub) []Finding {
	now := a.o.Now()
	var out []Finding
	for name, na := range map[string]time.Time{"root CA": h.RootNotAfter, "device CA": h.DeviceCANotAfter} {
		if na.IsZero() {
			continue
		}
		if left := na.Sub(now); left < a.o.CAExpiryWarn {
			sev := High
			if left <= 0 {
				sev = Critical
			}
			out = append(out, Finding{Check: CheckCAExpiry, Severity: sev, Target: "hub",
				Title:      name + " certificate expires soon",
				Evidence:   fmt.Sprintf("%s expires at %s (%s)", name, na.UTC().Format(time.RFC3339), left.Round(time.Hour)),
				Fix:        "plan a CA rotation now: devices must learn the new root before the old one expires",
				Provisions: []string{etsiCredentialsMgmt}})
		}
	}
	sort := func(a, b Finding) int { return cmpString(a.Title, b.Title) }
	slices.SortFunc(out, sort)
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func journalCheck(h *Hub) []Finding {
	if !h.JournalChecked || h.JournalProblem == "" {
		return nil
	}
	return []Finding{{Check: CheckJournal, Severity: Critical, Target: "hub",
		Title:      "the journal fails verification",
		Evidence:   h.JournalProblem,
		Fix:        "treat this as tampering: preserve the data folder, compare with an exported copy, and investigate who had write access",
		Provisions: []string{etsiIntegrity, owaspInsecureStorage}}}
}

func listeners(h *Hub) []Finding {
	var out []Finding
	for _, p := range h.Probes {
		if p.Refused {
			continue
		}
		out = append(out, Finding{Check: CheckListeners, Severity: Critical, Target: p.Listener + " " + p.Address,
			Title:      "a listener answered a client without credentials",
			Evidence:   p.Detail,
			Fix:        "every port must require a credential; this is a bug in Rampart or a proxy in front of it",
			Provisions: []string{etsiMinimiseSurface, etsiSecureComms, owaspInsecureServices}})
	}
	return out
}
