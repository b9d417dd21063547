// Package config holds Rampart's configuration: the schema, its defaults, the
// layered loading and the validation.
//
// Settings come from four layers, lowest to highest: the built-in defaults
// (see defaults.go), a YAML file, RAMPART_* environment variables, and
// overrides given as data (the command line's flags, which cmd parses). Every
// setting has a dotted key ("https.addr") that names it in all layers; one
// setter per key serves the environment and the flags alike.
//
// Loading is strict: an unknown key, a wrong type, a duplicated key, a second
// YAML document, an anchor or alias, or an unknown RAMPART_* variable is an
// error. Validation reports every problem at once, each as a *FieldError that
// says where the value came from (file, line and column; or the environment
// variable; or the flag), what is wrong with it and what to do:
//
//	rampart.yaml:7:9: https.addr: "8443" is not HOST:PORT (example: 127.0.0.1:8443)
//	environment RAMPART_TLS_MIN_VERSION: tls.min_version: TLS 1.1 is refused: ...
//
// Nothing in a Config is a secret: the master key and its passphrase are only
// named by file path.
package config

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is Rampart's configuration. Get one from Default or Load, change it
// if needed, then call Validate. A Config remembers where each value came
// from (see Source); a copy shares that record with the original.
type Config struct {
	// DataDir holds the database, the CA and, by default, the master key.
	DataDir   string    `yaml:"data_dir"`
	HTTPS     HTTPS     `yaml:"https"`
	MQTT      MQTT      `yaml:"mqtt"`
	TLS       TLS       `yaml:"tls"`
	Log       Log       `yaml:"log"`
	MasterKey MasterKey `yaml:"master_key"`
	Setup     Setup     `yaml:"setup"`
	Sessions  Sessions  `yaml:"sessions"`
	Accounts  Accounts  `yaml:"accounts"`
	Passwords Passwords `yaml:"passwords"`
	Journal   Journal   `yaml:"journal"`
	Devices   Devices   `yaml:"devices"`
	Detect    Detect    `yaml:"detect"`

	// origins records where each key's value came from, for error messages
	// and for YAML's comments. Keys absent from it hold their default.
	origins map[string]origin
}

// HTTPS configures the API and dashboard listener.
type HTTPS struct {
	// Addr is HOST:PORT to listen on; port 0 picks a free port.
	Addr string `yaml:"addr"`
	// Hostnames are extra subject alternative names (DNS names or IP
	// literals) for the hub's TLS certificate.
	Hostnames         []string `yaml:"hostnames"`
	MaxBodyBytes      int64    `yaml:"max_body_bytes"`
	ReadHeaderTimeout Duration `yaml:"read_header_timeout"`
}

// MQTT configures the MQTT over TLS listener.
type MQTT struct {
	// Addr is HOST:PORT to listen on; port 0 picks a free port.
	Addr string `yaml:"addr"`
	// Quotas, per client unless named otherwise.
	MaxPacketBytes      int `yaml:"max_packet_bytes"`
	PublishPerSec       int `yaml:"publish_per_sec"`
	PublishBurst        int `yaml:"publish_burst"`
	BytesPerSec         int `yaml:"bytes_per_sec"`
	MaxSubscriptions    int `yaml:"max_subscriptions"`
	MaxConnsPerIP       int `yaml:"max_conns_per_ip"`
	NewConnsPerIPPerSec int `yaml:"new_conns_per_ip_per_sec"`
	MaxConns            int `yaml:"max_conns"`
}

// TLS configures every TLS listener.
type TLS struct {
	// MinVersion is "1.3" or "1.2"; nothing lower can be written.
	MinVersion string `yaml:"min_version"`
}

// Log configures the hub's log.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn or error
	Format string `yaml:"format"` // text or json
}

// MasterKey says where the master key comes from: a key file, or a
// passphrase file from which the key is derived (argon2id). At most one is
// set; with neither, the key file is DataDir/master.key.
type MasterKey struct {
	File           string `yaml:"file"`
	PassphraseFile string `yaml:"passphrase_file"`
}

// Setup configures first-run setup.
type Setup struct {
	// CodeTTL is how long the one-time setup code printed at first run works.
	CodeTTL Duration `yaml:"code_ttl"`
}

// Sessions configures operator sessions.
type Sessions struct {
	TTL     Duration `yaml:"ttl"`      // absolute expiry
	IdleTTL Duration `yaml:"idle_ttl"` // ends a session unused this long
}

// Accounts configures registration and single-use links.
type Accounts struct {
	// OpenSignup lets anyone create a new tenant over the API. Off by
	// default: accounts come from invitations.
	OpenSignup bool     `yaml:"open_signup"`
	InviteTTL  Duration `yaml:"invite_ttl"`
	ResetTTL   Duration `yaml:"reset_ttl"`
}

// Passwords configures password hashing (argon2id, RFC 9106). A change
// takes effect for each user at their next login (rehash).
type Passwords struct {
	Argon2MemoryKiB int `yaml:"argon2_memory_kib"`
	Argon2Time      int `yaml:"argon2_time"`
	Argon2Threads   int `yaml:"argon2_threads"`
}

// Journal configures the event journal's signed checkpoints.
type Journal struct {
	CheckpointEvery    int      `yaml:"checkpoint_every"`
	CheckpointInterval Duration `yaml:"checkpoint_interval"`
}

// Devices configures device identity: certificate lifetime, enrollment
// token expiry and what a cloned identity gets.
// Detect configures anomaly detection on device behaviour.
type Detect struct {
	Enabled bool     `yaml:"enabled"`
	Window  Duration `yaml:"window"`
	// BaselineAction is taken automatically when a device leaves its
	// learned baseline: quarantine, suspend, revoke, notify or none.
	BaselineAction string `yaml:"baseline_action"`
	// WebhookURL (https) receives every anomaly, signed with the secret in
	// WebhookSecretFile (0600); WebhookCAFile pins the receiver's CA.
	WebhookURL        string `yaml:"webhook_url"`
	WebhookSecretFile string `yaml:"webhook_secret_file"`
	WebhookCAFile     string `yaml:"webhook_ca_file"`
}

type Devices struct {
	CertLifetime Duration `yaml:"cert_lifetime"`
	TokenTTL     Duration `yaml:"token_ttl"`
	// ClonePolicy is "refuse" (the new connection of a live identity is
	// refused) or "replace" (the old session is closed); both raise a finding.
	ClonePolicy string   `yaml:"clone_policy"`
	CloneWindow Duration `yaml:"clone_window"`
}

// Default returns the built-in configuration. It passes Validate.
func Default() *Config {
	return &Config{
		DataDir: defaultDataDir,
		HTTPS: HTTPS{
			Addr:              defaultHTTPSAddr,
			Hostnames:         []string{},
			MaxBodyBytes:      defaultMaxBodyBytes,
			ReadHeaderTimeout: Duration(defaultReadHeaderTimeout),
		},
		MQTT: MQTT{Addr: defaultMQTTAddr, MaxPacketBytes: defaultMQTTMaxPacketBytes, PublishPerSec: defaultMQTTPublishPerSec,
			PublishBurst: defaultMQTTPublishBurst, BytesPerSec: defaultMQTTBytesPerSec, MaxSubscriptions: defaultMQTTMaxSubscriptions,
			MaxConnsPerIP: defaultMQTTMaxConnsPerIP, NewConnsPerIPPerSec: defaultMQTTNewConnsPerIPPerSec, MaxConns: defaultMQTTMaxConns},
		TLS:       TLS{MinVersion: defaultTLSMinVersion},
		Log:       Log{Level: defaultLogLevel, Format: defaultLogFormat},
		Setup:     Setup{CodeTTL: Duration(defaultSetupCodeTTL)},
		Sessions:  Sessions{TTL: Duration(defaultSessionTTL), IdleTTL: Duration(defaultSessionIdleTTL)},
		Accounts:  Accounts{InviteTTL: Duration(defaultInviteTTL), ResetTTL: Duration(defaultResetTTL)},
		Passwords: Passwords{Argon2MemoryKiB: defaultArgon2MemoryKiB, Argon2Time: defaultArgon2Time, Argon2Threads: defaultArgon2Threads},
		Journal: Journal{
			CheckpointEvery:    defaultCheckpointEvery,
			CheckpointInterval: Duration(defaultCheckpointInterval),
		},
		Devices: Devices{
			CertLifetime: Duration(defaultDeviceCertLifetime),
			TokenTTL:     Duration(defaultDeviceTokenTTL),
			ClonePolicy:  defaultClonePolicy,
			CloneWindow:  Duration(defaultCloneWindow),
		},
		Detect: Detect{Enabled: true, Window: Duration(defaultDetectWindow), BaselineAction: defaultBaselineAction},
	}
}

// MasterKeyFile is the key file to use when MasterKey.PassphraseFile is
// empty: MasterKey.File, or DataDir/master.key when that is empty.
func (c *Config) MasterKeyFile() string {
	if c.MasterKey.File != "" {
		return c.MasterKey.File
	}
	return filepath.Join(c.DataDir, "master.key")
}

// Source says where the value of key (a dotted key such as "https.addr")
// came from: "default", "file rampart.yaml:7:9", "environment
// RAMPART_HTTPS_ADDR" or an override's Source.
func (c *Config) Source(key string) string {
	o, ok := c.origins[key]
	if !ok {
		return "default"
	}
	return o.String()
}

// YAML returns the configuration as YAML, in the file's format, with a
// comment beside each value that does not come from the defaults saying
// where it came from. Loading the output gives the same configuration.
func (c *Config) YAML() ([]byte, error) {
	var doc yaml.Node
	if err := doc.Encode(c); err != nil {
		return nil, fmt.Errorf("encoding configuration: %w", err)
	}
	c.annotate(&doc, "")
	var b strings.Builder
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("encoding configuration: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encoding configuration: %w", err)
	}
	return []byte(b.String()), nil
}

// annotate adds a line comment naming the origin of every non-default value.
func (c *Config) annotate(n *yaml.Node, prefix string) {
	if n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := prefix + k.Value
		if v.Kind == yaml.MappingNode {
			c.annotate(v, key+".")
			continue
		}
		if o, ok := c.origins[key]; ok {
			if v.Kind == yaml.SequenceNode {
				v.Style = yaml.FlowStyle // keeps the comment on the key's line
			}
			v.LineComment = "# " + o.String()
		}
	}
}

// setOrigin records where key's value came from.
func (c *Config) setOrigin(key string, o origin) {
	if c.origins == nil {
		c.origins = make(map[string]origin)
	}
	c.origins[key] = o
}

// Duration is a time.Duration written as Go writes durations: "90s", "15m",
// "12h", "1h30m".
type Duration time.Duration

// String returns the duration in its shortest form: "1h", not "1h0m0s".
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := parseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// parseDuration parses a Go duration, with a message that says how to write
// one.
func parseDuration(s string) (Duration, error) {
	v, err := time.ParseDuration(s)
	if err == nil {
		return Duration(v), nil
	}
	if strings.ContainsAny(s, "dD") {
		return 0, fmt.Errorf("%q is not a duration: days are not a unit here; write hours (168h is 7 days)", s)
	}
	return 0, fmt.Errorf("%q is not a duration; write a number with a unit, like 90s, 15m or 12h", s)
}
