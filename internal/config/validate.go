package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Validate checks every setting and reports every problem, joined, each a
// *FieldError placed where its value came from. Load calls it; call it again
// after changing a Config in code.
func (c *Config) Validate() error {
	return errors.Join(c.validate()...)
}

func (c *Config) validate() []error {
	v := validator{c: c}

	switch {
	case strings.TrimSpace(c.DataDir) == "":
		v.fail("data_dir", "is empty; name the folder that holds the hub's data (default: "+defaultDataDir+")")
	default:
		v.path("data_dir", c.DataDir)
	}

	v.addr("https.addr", c.HTTPS.Addr, defaultHTTPSAddr)
	for i, h := range c.HTTPS.Hostnames {
		if msg := checkHostname(h); msg != "" {
			v.failItem("https.hostnames", i, msg)
		}
	}
	v.intRange("https.max_body_bytes", c.HTTPS.MaxBodyBytes, maxBodyBytesBounds)
	v.intRange("mqtt.max_packet_bytes", int64(c.MQTT.MaxPacketBytes), mqttPacketBounds)
	v.intRange("mqtt.publish_per_sec", int64(c.MQTT.PublishPerSec), mqttRateBounds)
	v.intRange("mqtt.publish_burst", int64(c.MQTT.PublishBurst), mqttBurstBounds)
	v.intRange("mqtt.bytes_per_sec", int64(c.MQTT.BytesPerSec), mqttByteRateBounds)
	v.intRange("mqtt.max_subscriptions", int64(c.MQTT.MaxSubscriptions), mqttSubsBounds)
	v.intRange("mqtt.max_conns_per_ip", int64(c.MQTT.MaxConnsPerIP), mqttConnsIPBounds)
	v.intRange("mqtt.new_conns_per_ip_per_sec", int64(c.MQTT.NewConnsPerIPPerSec), mqttRateBounds)
	v.intRange("mqtt.max_conns", int64(c.MQTT.MaxConns), mqttConnsBounds)
	v.durRange("https.read_header_timeout", c.HTTPS.ReadHeaderTimeout, readHeaderTimeoutBounds)

	v.addr("mqtt.addr", c.MQTT.Addr, defaultMQTTAddr)

	if msg := checkTLSVersion(c.TLS.MinVersion); msg != "" {
		v.fail("tls.min_version", msg)
	}

	v.enum("log.level", c.Log.Level, "a log level", logLevels)
	v.enum("log.format", c.Log.Format, "a log format", logFormats)

	v.path("master_key.file", c.MasterKey.File)
	v.path("master_key.passphrase_file", c.MasterKey.PassphraseFile)
	if c.MasterKey.File != "" && c.MasterKey.PassphraseFile != "" {
		other := "master_key.file"
		if o, ok := c.origins[other]; ok {
			other += " (" + o.String() + ")"
		}
		v.fail("master_key.passphrase_file",
			"is set, and so is "+other+"; the master key comes from a key file or from a passphrase, not both: unset one")
	}

	v.durRange("setup.code_ttl", c.Setup.CodeTTL, setupCodeTTLBounds)
	v.durRange("sessions.ttl", c.Sessions.TTL, sessionTTLBounds)
	v.durRange("sessions.idle_ttl", c.Sessions.IdleTTL, sessionIdleTTLBounds)
	v.durRange("accounts.invite_ttl", c.Accounts.InviteTTL, inviteTTLBounds)
	v.durRange("accounts.reset_ttl", c.Accounts.ResetTTL, resetTTLBounds)
	v.intRange("passwords.argon2_memory_kib", int64(c.Passwords.Argon2MemoryKiB), argon2MemoryBounds)
	v.intRange("passwords.argon2_time", int64(c.Passwords.Argon2Time), argon2TimeBounds)
	v.intRange("passwords.argon2_threads", int64(c.Passwords.Argon2Threads), argon2ThreadsBounds)
	v.intRange("journal.checkpoint_every", int64(c.Journal.CheckpointEvery), checkpointEveryBounds)
	v.durRange("journal.checkpoint_interval", c.Journal.CheckpointInterval, checkpointIntervalBounds)
	v.durRange("devices.cert_lifetime", c.Devices.CertLifetime, deviceCertLifetimeBounds)
	v.durRange("devices.token_ttl", c.Devices.TokenTTL, deviceTokenTTLBounds)
	v.enum("devices.clone_policy", c.Devices.ClonePolicy, "a clone policy", clonePolicies)
	v.durRange("devices.clone_window", c.Devices.CloneWindow, cloneWindowBounds)
	v.durRange("detect.window", c.Detect.Window, detectWindowBounds)
	v.enum("detect.baseline_action", c.Detect.BaselineAction, "a mitigation", detectActions)
	if u := c.Detect.WebhookURL; u != "" {
		if !strings.HasPrefix(u, "https://") || strings.ContainsAny(u, " \t\n") {
			v.fail("detect.webhook_url", fmt.Sprintf("%q is not an https:// URL; alerts leave the hub only over TLS", u))
		}
		if c.Detect.WebhookSecretFile == "" {
			v.fail("detect.webhook_secret_file", "is required with detect.webhook_url: receivers check the signature made with it")
		}
	}
	return v.errs
}

type validator struct {
	c    *Config
	errs []error
}

func (v *validator) fail(key, msg string) {
	o := v.c.origins[key] // the zero origin for a default or a value set in code
	v.errs = append(v.errs, o.fieldError(key, msg))
}

// failItem reports a problem with item i of the list key.
func (v *validator) failItem(key string, i int, msg string) {
	o := v.c.origins[key]
	if i < len(o.items) {
		o = o.items[i]
	}
	v.errs = append(v.errs, o.fieldError(fmt.Sprintf("%s[%d]", key, i), msg))
}

func (v *validator) path(key, p string) {
	if strings.IndexByte(p, 0) >= 0 {
		v.fail(key, fmt.Sprintf("%q holds a NUL byte, which no file path can; fix the path", p))
	}
}

func (v *validator) addr(key, s, example string) {
	if msg := checkAddr(s, example); msg != "" {
		v.fail(key, msg)
	}
}

func (v *validator) enum(key, s, what string, allowed []string) {
	for _, a := range allowed {
		if s == a {
			return
		}
	}
	msg := fmt.Sprintf("%q is not %s; use one of %s", s, what, strings.Join(allowed, ", "))
	if lower := strings.ToLower(strings.TrimSpace(s)); lower != s {
		for _, a := range allowed {
			if lower == a {
				msg = fmt.Sprintf("%q is not %s; write it as %q", s, what, a)
			}
		}
	}
	v.fail(key, msg)
}

func (v *validator) intRange(key string, n int64, b intBounds) {
	if n < b.min || n > b.max {
		v.fail(key, fmt.Sprintf("%d is out of range; use from %d to %d %s", n, b.min, b.max, b.unit))
	}
}

func (v *validator) durRange(key string, d Duration, b durBounds) {
	switch {
	case time.Duration(d) < b.min:
		v.fail(key, fmt.Sprintf("%s is too short; use from %s to %s", d, Duration(b.min), Duration(b.max)))
	case time.Duration(d) > b.max:
		v.fail(key, fmt.Sprintf("%s is too long; use from %s to %s", d, Duration(b.min), Duration(b.max)))
	}
}

// checkAddr returns what is wrong with a listen address, or "".
func checkAddr(s, example string) string {
	ex := " (example: " + example + ")"
	switch {
	case s == "":
		return "is empty; write HOST:PORT" + ex
	case strings.Contains(s, "://"):
		scheme, _, _ := strings.Cut(s, "://")
		return fmt.Sprintf("%q is not HOST:PORT: remove the scheme %q%s", s, scheme+"://", ex)
	case strings.Contains(s, "/"):
		return fmt.Sprintf("%q is not HOST:PORT: remove the path%s", s, ex)
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if strings.Count(s, ":") > 1 && !strings.HasPrefix(s, "[") {
			return fmt.Sprintf("%q is not HOST:PORT: put an IPv6 address in brackets, like [::1]:8443", s)
		}
		return fmt.Sprintf("%q is not HOST:PORT%s", s, ex)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 || len(port) > 5 {
		return fmt.Sprintf("%q: the port %q is not a number from 0 to 65535 (0 picks a free port)", s, port)
	}
	if host == "" {
		return fmt.Sprintf("%q has no host; name the address to listen on: 127.0.0.1 for this machine only, 0.0.0.0 or [::] for every interface", s)
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return ""
	}
	if msg := checkDNSName(host); msg != "" {
		return fmt.Sprintf("%q: the host %q is not an IP address or a DNS name: %s", s, host, msg)
	}
	return ""
}

// checkHostname returns what is wrong with a certificate name, or "".
func checkHostname(s string) string {
	switch {
	case strings.Contains(s, "://"):
		return fmt.Sprintf("%q is not a DNS name or an IP address: write the bare name, without a scheme", s)
	case strings.Contains(s, "/"):
		return fmt.Sprintf("%q is not a DNS name or an IP address: write the bare name, without a path", s)
	}
	if ip, err := netip.ParseAddr(s); err == nil {
		if ip.Zone() != "" {
			return fmt.Sprintf("%q: a certificate cannot name an IPv6 zone; remove %q", s, "%"+ip.Zone())
		}
		return ""
	}
	if strings.Contains(s, ":") {
		if _, _, err := net.SplitHostPort(s); err == nil {
			return fmt.Sprintf("%q is not a DNS name or an IP address: write it without the port", s)
		}
	}
	if msg := checkDNSName(s); msg != "" {
		return fmt.Sprintf("%q is not a DNS name or an IP address: %s", s, msg)
	}
	return ""
}

// checkDNSName returns what keeps s from being a DNS host name (RFC 1123),
// or "".
func checkDNSName(s string) string {
	switch {
	case s == "":
		return "it is empty"
	case strings.HasPrefix(s, "*."):
		return "wildcards are not allowed; list each name"
	case strings.HasSuffix(s, "."):
		return "remove the trailing dot"
	case len(s) > maxNameLen:
		return fmt.Sprintf("it is %d characters long; the limit is %d", len(s), maxNameLen)
	}
	labels := strings.Split(s, ".")
	for _, label := range labels {
		switch {
		case label == "":
			return "it has an empty label (\"..\" or a leading dot)"
		case len(label) > maxLabelLen:
			return fmt.Sprintf("the label %.16q... is %d characters long; the limit is %d", label, len(label), maxLabelLen)
		case label[0] == '-' || label[len(label)-1] == '-':
			return fmt.Sprintf("the label %q starts or ends with '-'", label)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Sprintf("%q is not allowed in a DNS name (letters, digits and '-' only; write international names in their xn-- form)", r)
			}
		}
	}
	last := labels[len(labels)-1]
	if strings.Trim(last, "0123456789") == "" {
		return "it is not a valid IP address, and a DNS name cannot end in a number"
	}
	return ""
}

// checkTLSVersion returns why s is refused as tls.min_version, or "".
func checkTLSVersion(s string) string {
	if s == tls13 || s == tls12 {
		return ""
	}
	use := fmt.Sprintf("use %q (recommended) or %q", tls13, tls12)
	norm := strings.ToLower(strings.TrimSpace(s))
	if strings.HasPrefix(norm, "ssl") {
		return fmt.Sprintf("%q is refused: SSL is broken (POODLE, RFC 7568) and no longer TLS; %s", s, use)
	}
	norm = strings.TrimPrefix(norm, "tls")
	norm = strings.TrimPrefix(norm, "v")
	norm = strings.TrimSpace(norm)
	switch norm {
	case tls13, tls12:
		return fmt.Sprintf("%q: write just %q", s, norm)
	case "1.1", "1.0", "1", "1.00":
		return fmt.Sprintf("TLS %s is refused: it is deprecated (RFC 8996) and lacks AEAD ciphers and modern key exchange; %s", norm, use)
	}
	return fmt.Sprintf("%q is not a TLS version Rampart accepts; %s", s, use)
}
