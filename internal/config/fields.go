package config

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// field is one setting: its dotted key, its environment variable and where
// it lives in a Config.
type field struct {
	key string
	env string
	ptr func(*Config) any // *string, *int, *int64, *Duration or *[]string
}

// fields lists every setting, in the file's order. Each has an environment
// variable: RAMPART_ and the key in capitals with "_" for ".", except
// data_dir, whose RAMPART_DATA matches the --data flag.
var fields = []field{
	{"data_dir", "RAMPART_DATA", func(c *Config) any { return &c.DataDir }},
	{"https.addr", "RAMPART_HTTPS_ADDR", func(c *Config) any { return &c.HTTPS.Addr }},
	{"https.hostnames", "RAMPART_HTTPS_HOSTNAMES", func(c *Config) any { return &c.HTTPS.Hostnames }},
	{"https.max_body_bytes", "RAMPART_HTTPS_MAX_BODY_BYTES", func(c *Config) any { return &c.HTTPS.MaxBodyBytes }},
	{"https.read_header_timeout", "RAMPART_HTTPS_READ_HEADER_TIMEOUT", func(c *Config) any { return &c.HTTPS.ReadHeaderTimeout }},
	{"mqtt.addr", "RAMPART_MQTT_ADDR", func(c *Config) any { return &c.MQTT.Addr }},
	{"mqtt.max_packet_bytes", "RAMPART_MQTT_MAX_PACKET_BYTES", func(c *Config) any { return &c.MQTT.MaxPacketBytes }},
	{"mqtt.publish_per_sec", "RAMPART_MQTT_PUBLISH_PER_SEC", func(c *Config) any { return &c.MQTT.PublishPerSec }},
	{"mqtt.publish_burst", "RAMPART_MQTT_PUBLISH_BURST", func(c *Config) any { return &c.MQTT.PublishBurst }},
	{"mqtt.bytes_per_sec", "RAMPART_MQTT_BYTES_PER_SEC", func(c *Config) any { return &c.MQTT.BytesPerSec }},
	{"mqtt.max_subscriptions", "RAMPART_MQTT_MAX_SUBSCRIPTIONS", func(c *Config) any { return &c.MQTT.MaxSubscriptions }},
	{"mqtt.max_conns_per_ip", "RAMPART_MQTT_MAX_CONNS_PER_IP", func(c *Config) any { return &c.MQTT.MaxConnsPerIP }},
	{"mqtt.new_conns_per_ip_per_sec", "RAMPART_MQTT_NEW_CONNS_PER_IP_PER_SEC", func(c *Config) any { return &c.MQTT.NewConnsPerIPPerSec }},
	{"mqtt.max_conns", "RAMPART_MQTT_MAX_CONNS", func(c *Config) any { return &c.MQTT.MaxConns }},
	{"tls.min_version", "RAMPART_TLS_MIN_VERSION", func(c *Config) any { return &c.TLS.MinVersion }},
	{"log.level", "RAMPART_LOG_LEVEL", func(c *Config) any { return &c.Log.Level }},
	{"log.format", "RAMPART_LOG_FORMAT", func(c *Config) any { return &c.Log.Format }},
	{"master_key.file", "RAMPART_MASTER_KEY_FILE", func(c *Config) any { return &c.MasterKey.File }},
	{"master_key.passphrase_file", "RAMPART_MASTER_PASSPHRASE_FILE", func(c *Config) any { return &c.MasterKey.PassphraseFile }},
	{"setup.code_ttl", "RAMPART_SETUP_CODE_TTL", func(c *Config) any { return &c.Setup.CodeTTL }},
	{"sessions.ttl", "RAMPART_SESSIONS_TTL", func(c *Config) any { return &c.Sessions.TTL }},
	{"sessions.idle_ttl", "RAMPART_SESSIONS_IDLE_TTL", func(c *Config) any { return &c.Sessions.IdleTTL }},
	{"accounts.open_signup", "RAMPART_ACCOUNTS_OPEN_SIGNUP", func(c *Config) any { return &c.Accounts.OpenSignup }},
	{"accounts.invite_ttl", "RAMPART_ACCOUNTS_INVITE_TTL", func(c *Config) any { return &c.Accounts.InviteTTL }},
	{"accounts.reset_ttl", "RAMPART_ACCOUNTS_RESET_TTL", func(c *Config) any { return &c.Accounts.ResetTTL }},
	{"passwords.argon2_memory_kib", "RAMPART_PASSWORDS_ARGON2_MEMORY_KIB", func(c *Config) any { return &c.Passwords.Argon2MemoryKiB }},
	{"passwords.argon2_time", "RAMPART_PASSWORDS_ARGON2_TIME", func(c *Config) any { return &c.Passwords.Argon2Time }},
	{"passwords.argon2_threads", "RAMPART_PASSWORDS_ARGON2_THREADS", func(c *Config) any { return &c.Passwords.Argon2Threads }},
	{"journal.checkpoint_every", "RAMPART_JOURNAL_CHECKPOINT_EVERY", func(c *Config) any { return &c.Journal.CheckpointEvery }},
	{"journal.checkpoint_interval", "RAMPART_JOURNAL_CHECKPOINT_INTERVAL", func(c *Config) any { return &c.Journal.CheckpointInterval }},
	{"devices.cert_lifetime", "RAMPART_DEVICES_CERT_LIFETIME", func(c *Config) any { return &c.Devices.CertLifetime }},
	{"devices.token_ttl", "RAMPART_DEVICES_TOKEN_TTL", func(c *Config) any { return &c.Devices.TokenTTL }},
	{"devices.clone_policy", "RAMPART_DEVICES_CLONE_POLICY", func(c *Config) any { return &c.Devices.ClonePolicy }},
	{"devices.clone_window", "RAMPART_DEVICES_CLONE_WINDOW", func(c *Config) any { return &c.Devices.CloneWindow }},
	{"detect.enabled", "RAMPART_DETECT_ENABLED", func(c *Config) any { return &c.Detect.Enabled }},
	{"detect.window", "RAMPART_DETECT_WINDOW", func(c *Config) any { return &c.Detect.Window }},
	{"detect.baseline_action", "RAMPART_DETECT_BASELINE_ACTION", func(c *Config) any { return &c.Detect.BaselineAction }},
	{"detect.webhook_url", "RAMPART_DETECT_WEBHOOK_URL", func(c *Config) any { return &c.Detect.WebhookURL }},
	{"detect.webhook_secret_file", "RAMPART_DETECT_WEBHOOK_SECRET_FILE", func(c *Config) any { return &c.Detect.WebhookSecretFile }},
	{"detect.webhook_ca_file", "RAMPART_DETECT_WEBHOOK_CA_FILE", func(c *Config) any { return &c.Detect.WebhookCAFile }},
}

// envConfigFile is the one RAMPART_* variable that is not a setting: cmd may
// use it to name the config file.
const envConfigFile = "RAMPART_CONFIG"

// Keys returns the dotted key of every setting, in the file's order.
func Keys() []string {
	keys := make([]string, len(fields))
	for i, f := range fields {
		keys[i] = f.key
	}
	return keys
}

// EnvVar returns the environment variable that sets key, or "" if key is not
// a setting.
func EnvVar(key string) string {
	if f := lookup(key); f != nil {
		return f.env
	}
	return ""
}

func lookup(key string) *field {
	for i := range fields {
		if fields[i].key == key {
			return &fields[i]
		}
	}
	return nil
}

// isSection reports whether key names a group of settings, such as "https".
func isSection(key string) bool {
	for _, f := range fields {
		if strings.HasPrefix(f.key, key+".") {
			return true
		}
	}
	return false
}

// childKeys lists the names directly under prefix ("" for the top level).
func childKeys(prefix string) []string {
	seen := map[string]bool{}
	var names []string
	for _, f := range fields {
		rest, ok := strings.CutPrefix(f.key, prefix)
		if !ok {
			continue
		}
		name, _, _ := strings.Cut(rest, ".")
		if !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	return names
}

// set parses s, a value from the environment or a flag, into f's setting.
// Lists are comma-separated. The error says what is wrong and what to do.
func (f *field) set(c *Config, s string) error {
	switch p := f.ptr(c).(type) {
	case *string:
		*p = s
	case *int:
		n, err := f.parseInt(s)
		if err != nil {
			return err
		}
		*p = int(n)
	case *int64:
		n, err := f.parseInt(s)
		if err != nil {
			return err
		}
		*p = n
	case *Duration:
		d, err := parseDuration(s)
		if err != nil {
			return err
		}
		*p = d
	case *bool:
		switch s {
		case "true":
			*p = true
		case "false":
			*p = false
		default:
			return fmt.Errorf("%q is not true or false", s)
		}
	case *[]string:
		list := []string{}
		for item := range strings.SplitSeq(s, ",") {
			if item = strings.TrimSpace(item); item != "" {
				list = append(list, item)
			}
		}
		*p = list
	default:
		panic(fmt.Sprintf("config: field %s has unsupported type %T", f.key, p))
	}
	return nil
}

// parseInt parses a whole number written in decimal digits.
func (f *field) parseInt(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err == nil && (n > 1<<31-1 || n < -(1<<31)) || errors.Is(err, strconv.ErrRange) {
		return 0, fmt.Errorf("%s is far out of range (example: %s)", s, f.example())
	}
	if err != nil {
		return 0, fmt.Errorf("%q is not a whole number; write decimal digits only (example: %s)", s, f.example())
	}
	return n, nil
}

// isList reports whether f holds a list.
func (f *field) isList() bool {
	_, ok := f.ptr(&Config{}).(*[]string)
	return ok
}

// example is f's default value, written as a person would write it.
func (f *field) example() string {
	switch p := f.ptr(Default()).(type) {
	case *int:
		return strconv.Itoa(*p)
	case *int64:
		return strconv.FormatInt(*p, 10)
	case *Duration:
		return p.String()
	case *string:
		return *p
	case *bool:
		return strconv.FormatBool(*p)
	}
	return ""
}

// suggest returns the candidate closest to s when it is a plausible typo.
func suggest(s string, candidates []string) string {
	s = strings.ToLower(s)
	best, bestDist := "", 3
	for _, c := range candidates {
		lc := strings.ToLower(c)
		d := editDistance(s, lc)
		if d >= bestDist && min(len(s), len(lc)) >= 3 && (strings.HasPrefix(s, lc) || strings.HasPrefix(lc, s)) {
			d = bestDist - 1 // "address" for "addr", "RAMPART_DATA_DIR" for "RAMPART_DATA"
		}
		if d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// envVars lists every setting's environment variable, sorted.
func envVars() []string {
	vars := make([]string, len(fields))
	for i, f := range fields {
		vars[i] = f.env
	}
	sort.Strings(vars)
	return vars
}
