package config

import (
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// writeConfig writes content as rampart.yaml in a fresh working directory,
// so that messages name the file as an operator would.
func writeConfig(t *testing.T, content string) string {
	t.Helper()
	t.Chdir(t.TempDir())
	if err := os.WriteFile("rampart.yaml", []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return "rampart.yaml"
}

// errLines splits a joined error into one line per problem.
func errLines(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

func TestDefault(t *testing.T) {
	c := Default()
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"ok/data_dir", c.DataDir, "./rampart-data"},
		{"ok/https.addr", c.HTTPS.Addr, "127.0.0.1:8443"},
		{"ok/https.hostnames", c.HTTPS.Hostnames, []string{}},
		{"ok/https.max_body_bytes", c.HTTPS.MaxBodyBytes, int64(1 << 20)},
		{"ok/https.read_header_timeout", c.HTTPS.ReadHeaderTimeout, Duration(10 * time.Second)},
		{"ok/mqtt.addr", c.MQTT.Addr, "127.0.0.1:8883"},
		{"ok/mqtt.max_packet_bytes", c.MQTT.MaxPacketBytes, 256 << 10},
		{"ok/mqtt.publish_per_sec", c.MQTT.PublishPerSec, 50},
		{"ok/mqtt.publish_burst", c.MQTT.PublishBurst, 200},
		{"ok/mqtt.bytes_per_sec", c.MQTT.BytesPerSec, 256 << 10},
		{"ok/mqtt.max_subscriptions", c.MQTT.MaxSubscriptions, 32},
		{"ok/mqtt.max_conns_per_ip", c.MQTT.MaxConnsPerIP, 256},
		{"ok/mqtt.new_conns_per_ip_per_sec", c.MQTT.NewConnsPerIPPerSec, 20},
		{"ok/mqtt.max_conns", c.MQTT.MaxConns, 50_000},
		{"ok/tls.min_version", c.TLS.MinVersion, "1.3"},
		{"ok/log.level", c.Log.Level, "info"},
		{"ok/log.format", c.Log.Format, "text"},
		{"ok/master_key.file", c.MasterKey.File, ""},
		{"ok/master_key.passphrase_file", c.MasterKey.PassphraseFile, ""},
		{"ok/master_key_file_in_data_dir", c.MasterKeyFile(), filepath.Join("rampart-data", "master.key")},
		{"ok/setup.code_ttl", c.Setup.CodeTTL, Duration(time.Hour)},
		{"ok/sessions.ttl", c.Sessions.TTL, Duration(12 * time.Hour)},
		{"ok/sessions.idle_ttl", c.Sessions.IdleTTL, Duration(time.Hour)},
		{"ok/accounts.open_signup", c.Accounts.OpenSignup, false},
		{"ok/accounts.invite_ttl", c.Accounts.InviteTTL, Duration(72 * time.Hour)},
		{"ok/accounts.reset_ttl", c.Accounts.ResetTTL, Duration(time.Hour)},
		{"ok/passwords.argon2_memory_kib", c.Passwords.Argon2MemoryKiB, 64 * 1024},
		{"ok/passwords.argon2_time", c.Passwords.Argon2Time, 3},
		{"ok/passwords.argon2_threads", c.Passwords.Argon2Threads, 4},
		{"ok/journal.checkpoint_every", c.Journal.CheckpointEvery, 1000},
		{"ok/journal.checkpoint_interval", c.Journal.CheckpointInterval, Duration(time.Minute)},
		{"ok/devices.cert_lifetime", c.Devices.CertLifetime, Duration(30 * 24 * time.Hour)},
		{"ok/devices.token_ttl", c.Devices.TokenTTL, Duration(24 * time.Hour)},
		{"ok/devices.clone_policy", c.Devices.ClonePolicy, "refuse"},
		{"ok/devices.clone_window", c.Devices.CloneWindow, Duration(5 * time.Second)},
		{"ok/detect.enabled", c.Detect.Enabled, true},
		{"ok/detect.window", c.Detect.Window, Duration(10 * time.Second)},
		{"ok/detect.baseline_action", c.Detect.BaselineAction, "quarantine"},
		{"ok/detect.webhook_url", c.Detect.WebhookURL, ""},
		{"ok/detect.webhook_secret_file", c.Detect.WebhookSecretFile, ""},
		{"ok/detect.webhook_ca_file", c.Detect.WebhookCAFile, ""},
	}
	if len(tests)-1 != len(fields) {
		t.Fatalf("%d default cases for %d settings; test every default", len(tests)-1, len(fields))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !reflect.DeepEqual(tt.got, tt.want) {
				t.Errorf("got %#v, want %#v", tt.got, tt.want)
			}
		})
	}
	t.Run("ok/validates", func(t *testing.T) {
		if err := Default().Validate(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ok/load_nothing_is_default", func(t *testing.T) {
		c, err := Load(LoadOptions{Env: []string{"HOME=/root", "PATH=/bin"}})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(c, Default()) {
			t.Errorf("got %+v, want the defaults", c)
		}
		for _, k := range Keys() {
			if got := c.Source(k); got != "default" {
				t.Errorf("Source(%q) = %q, want default", k, got)
			}
		}
	})
}

func TestPrecedence(t *testing.T) {
	file := writeConfig(t, "https:\n  addr: 127.0.0.1:1001\nmqtt:\n  addr: 127.0.0.1:2001\nlog:\n  level: debug\n")
	env := []string{"RAMPART_HTTPS_ADDR=127.0.0.1:1002", "RAMPART_MQTT_ADDR=127.0.0.1:2002"}
	flags := []Override{{Key: "https.addr", Value: "127.0.0.1:1003", Source: "flag --https-addr"}}
	tests := []struct {
		name       string
		opts       LoadOptions
		https      string
		httpsFrom  string
		mqtt       string
		level      string
		levelFrom  string
		formatFrom string
	}{
		{"ok/file_over_default", LoadOptions{File: file},
			"127.0.0.1:1001", "file rampart.yaml:2:9", "127.0.0.1:2001", "debug", "file rampart.yaml:6:10", "default"},
		{"ok/env_over_file", LoadOptions{File: file, Env: env},
			"127.0.0.1:1002", "environment RAMPART_HTTPS_ADDR", "127.0.0.1:2002", "debug", "file rampart.yaml:6:10", "default"},
		{"ok/flag_over_env", LoadOptions{File: file, Env: env, Overrides: flags},
			"127.0.0.1:1003", "flag --https-addr", "127.0.0.1:2002", "debug", "file rampart.yaml:6:10", "default"},
		{"ok/flag_over_default", LoadOptions{Overrides: flags},
			"127.0.0.1:1003", "flag --https-addr", "127.0.0.1:8883", "info", "default", "default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if c.HTTPS.Addr != tt.https || c.MQTT.Addr != tt.mqtt || c.Log.Level != tt.level {
				t.Errorf("got https %s mqtt %s level %s, want %s %s %s", c.HTTPS.Addr, c.MQTT.Addr, c.Log.Level, tt.https, tt.mqtt, tt.level)
			}
			if got := c.Source("https.addr"); got != tt.httpsFrom {
				t.Errorf("https.addr from %q, want %q", got, tt.httpsFrom)
			}
			if got := c.Source("log.level"); got != tt.levelFrom {
				t.Errorf("log.level from %q, want %q", got, tt.levelFrom)
			}
			if got := c.Source("log.format"); got != tt.formatFrom {
				t.Errorf("log.format from %q, want %q", got, tt.formatFrom)
			}
		})
	}
}

// TestEveryKey sets every setting through each layer and checks that it
// arrives, so no key is forgotten by the file walker, the environment or the
// overrides.
func TestEveryKey(t *testing.T) {
	values := map[string]string{
		"data_dir":                      "/var/lib/rampart",
		"https.addr":                    "0.0.0.0:443",
		"https.hostnames":               "hub.example.com, 192.0.2.7",
		"https.max_body_bytes":          "2048",
		"https.read_header_timeout":     "30s",
		"mqtt.addr":                     "[::]:8883",
		"mqtt.max_packet_bytes":         "65536",
		"mqtt.publish_per_sec":          "10",
		"mqtt.publish_burst":            "20",
		"mqtt.bytes_per_sec":            "8192",
		"mqtt.max_subscriptions":        "8",
		"mqtt.max_conns_per_ip":         "100",
		"mqtt.new_conns_per_ip_per_sec": "5",
		"mqtt.max_conns":                "1000",
		"tls.min_version":               "1.2",
		"log.level":                     "warn",
		"log.format":                    "json",
		"master_key.file":               "",
		"master_key.passphrase_file":    "/etc/rampart/passphrase",
		"setup.code_ttl":                "15m",
		"sessions.ttl":                  "168h",
		"sessions.idle_ttl":             "2h",
		"accounts.open_signup":          "true",
		"accounts.invite_ttl":           "24h",
		"accounts.reset_ttl":            "30m",
		"passwords.argon2_memory_kib":   "131072",
		"passwords.argon2_time":         "2",
		"passwords.argon2_threads":      "2",
		"journal.checkpoint_every":      "1000000",
		"journal.checkpoint_interval":   "1h",
		"devices.cert_lifetime":         "720h",
		"devices.token_ttl":             "1h",
		"devices.clone_policy":          "replace",
		"devices.clone_window":          "30s",
		"detect.enabled":                "false",
		"detect.window":                 "30s",
		"detect.baseline_action":        "notify",
		"detect.webhook_url":            "https://alerts.example.com/rampart",
		"detect.webhook_secret_file":    "/etc/rampart/webhook.secret",
		"detect.webhook_ca_file":        "/etc/rampart/webhook-ca.pem",
	}
	want := Default()
	want.DataDir = "/var/lib/rampart"
	want.HTTPS = HTTPS{Addr: "0.0.0.0:443", Hostnames: []string{"hub.example.com", "192.0.2.7"},
		MaxBodyBytes: 2048, ReadHeaderTimeout: Duration(30 * time.Second)}
	want.MQTT = MQTT{Addr: "[::]:8883", MaxPacketBytes: 65536, PublishPerSec: 10, PublishBurst: 20, BytesPerSec: 8192,
		MaxSubscriptions: 8, MaxConnsPerIP: 100, NewConnsPerIPPerSec: 5, MaxConns: 1000}
	want.TLS.MinVersion = "1.2"
	want.Log = Log{Level: "warn", Format: "json"}
	want.MasterKey.PassphraseFile = "/etc/rampart/passphrase"
	want.Setup.CodeTTL = Duration(15 * time.Minute)
	want.Sessions = Sessions{TTL: Duration(168 * time.Hour), IdleTTL: Duration(2 * time.Hour)}
	want.Accounts = Accounts{OpenSignup: true, InviteTTL: Duration(24 * time.Hour), ResetTTL: Duration(30 * time.Minute)}
	want.Passwords = Passwords{Argon2MemoryKiB: 128 * 1024, Argon2Time: 2, Argon2Threads: 2}
	want.Journal = Journal{CheckpointEvery: 1_000_000, CheckpointInterval: Duration(time.Hour)}
	want.Devices = Devices{CertLifetime: Duration(720 * time.Hour), TokenTTL: Duration(time.Hour), ClonePolicy: "replace", CloneWindow: Duration(30 * time.Second)}
	want.Detect = Detect{Enabled: false, Window: Duration(30 * time.Second), BaselineAction: "notify", WebhookURL: "https://alerts.example.com/rampart",
		WebhookSecretFile: "/etc/rampart/webhook.secret", WebhookCAFile: "/etc/rampart/webhook-ca.pem"}

	var env []string
	var overrides []Override
	var file strings.Builder
	section := ""
	for _, k := range Keys() {
		v, ok := values[k]
		if !ok {
			t.Fatalf("no test value for %s", k)
		}
		env = append(env, EnvVar(k)+"="+v)
		overrides = append(overrides, Override{Key: k, Value: v, Source: "flag --" + k})
		sec, name, nested := strings.Cut(k, ".")
		if !nested {
			file.WriteString(k + ": " + quote(v) + "\n")
			continue
		}
		if sec != section {
			file.WriteString(sec + ":\n")
			section = sec
		}
		if k == "https.hostnames" {
			v = "[" + v + "]"
		} else {
			v = quote(v)
		}
		file.WriteString("  " + name + ": " + v + "\n")
	}
	name := writeConfig(t, file.String())
	for _, tt := range []struct {
		name string
		opts LoadOptions
	}{
		{"ok/file", LoadOptions{File: name}},
		{"ok/env", LoadOptions{Env: env}},
		{"ok/overrides", LoadOptions{Overrides: overrides}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			c.origins = nil
			want.origins = nil
			if !reflect.DeepEqual(c, want) {
				t.Errorf("got  %+v\nwant %+v", c, want)
			}
		})
	}
}

func quote(s string) string { return `"` + s + `"` }

func TestLoad(t *testing.T) {
	tests := []struct {
		name      string
		file      string // "" = no file
		env       []string
		overrides []Override
		want      []string // every error line, in order; nil = success
	}{
		// Files that load.
		{name: "ok/empty_file", file: "\n"},
		{name: "ok/comments_only", file: "# nothing yet\n# https:\n#   addr: 0.0.0.0:8443\n"},
		{name: "ok/document_marker_only", file: "---\n"},
		{name: "ok/empty_sections", file: "https:\nmqtt:\nmaster_key:\n"},
		{name: "ok/port_0", file: "https:\n  addr: 127.0.0.1:0\nmqtt:\n  addr: localhost:0\n"},
		{name: "ok/ipv6_any", file: "https:\n  addr: \"[::]:8443\"\n"},
		{name: "ok/dns_host", file: "https:\n  addr: hub.example.com:8443\n"},
		{name: "ok/tls_1.2_unquoted", file: "tls:\n  min_version: 1.2\n"},
		{name: "ok/hostnames_ips_and_names", file: "https:\n  hostnames:\n    - hub.example.com\n    - 192.0.2.1\n    - 2001:db8::1\n    - localhost\n"},
		{name: "ok/hostnames_null", file: "https:\n  hostnames:\n"},
		{name: "ok/bounds_low", file: "https:\n  max_body_bytes: 1024\n  read_header_timeout: 1s\nsetup:\n  code_ttl: 1m\nsessions:\n  ttl: 5m\njournal:\n  checkpoint_every: 1\n  checkpoint_interval: 1s\n"},
		{name: "ok/bounds_high", file: "https:\n  max_body_bytes: 67108864\n  read_header_timeout: 2m\nsetup:\n  code_ttl: 24h\nsessions:\n  ttl: 168h\njournal:\n  checkpoint_every: 1000000\n  checkpoint_interval: 1h\n"},
		{name: "ok/passphrase_file_alone", file: "master_key:\n  passphrase_file: /etc/rampart/pass\n"},
		{name: "ok/other_env_ignored", env: []string{"HOME=/root", "RAMPART_CONFIG=/etc/rampart.yaml", "NOEQUALS"}},
		{name: "ok/env_port_0", env: []string{"RAMPART_HTTPS_ADDR=127.0.0.1:0", "RAMPART_MQTT_ADDR=[::1]:0"}},

		// The file's structure.
		{name: "fail/unknown_key", file: "https:\n  addr: 127.0.0.1:8443\n  adr: 127.0.0.1:1\n",
			want: []string{`rampart.yaml:3:3: https.adr: unknown key; did you mean "addr"?`}},
		{name: "fail/unknown_top_level_key", file: "listen: 0.0.0.0:80\n",
			want: []string{`rampart.yaml:1:1: listen: unknown key; the keys at the top level are data_dir, https, mqtt, tls, log, master_key, setup, sessions, accounts, passwords, journal, devices, detect`}},
		{name: "fail/duplicate_key", file: "log:\n  level: info\n  level: debug\n",
			want: []string{`rampart.yaml:3:3: log.level: is set twice (first on line 2); keep one`}},
		{name: "fail/wrong_type_int", file: "https:\n  max_body_bytes: lots\n",
			want: []string{`rampart.yaml:2:19: https.max_body_bytes: "lots" is not a whole number; write decimal digits only (example: 1048576)`}},
		{name: "fail/wrong_type_float", file: "journal:\n  checkpoint_every: 1.5\n",
			want: []string{`rampart.yaml:2:21: journal.checkpoint_every: "1.5" is not a whole number; write decimal digits only (example: 1000)`}},
		{name: "fail/wrong_type_huge_int", file: "journal:\n  checkpoint_every: 99999999999999999999\n",
			want: []string{`rampart.yaml:2:21: journal.checkpoint_every: 99999999999999999999 is far out of range (example: 1000)`}},
		{name: "fail/wrong_type_list_for_scalar", file: "https:\n  addr: [127.0.0.1, 8443]\n",
			want: []string{`rampart.yaml:2:9: https.addr: must be a single value, not a list`}},
		{name: "fail/wrong_type_scalar_for_list", file: "https:\n  hostnames: hub.example.com\n",
			want: []string{`rampart.yaml:2:14: https.hostnames: must be a list, like [example.com, 192.0.2.1], not "hub.example.com"`}},
		{name: "fail/wrong_type_scalar_for_section", file: "https: 0.0.0.0:8443\n",
			want: []string{`rampart.yaml:1:8: https: must be a mapping of settings (addr, hostnames, max_body_bytes, read_header_timeout), not "0.0.0.0:8443"`}},
		{name: "fail/wrong_type_duration_without_unit", file: "setup:\n  code_ttl: 3600\n",
			want: []string{`rampart.yaml:2:13: setup.code_ttl: "3600" is not a duration; write a number with a unit, like 90s, 15m or 12h`}},
		{name: "fail/duration_in_days", file: "sessions:\n  ttl: 7d\n",
			want: []string{`rampart.yaml:2:8: sessions.ttl: "7d" is not a duration: days are not a unit here; write hours (168h is 7 days)`}},
		{name: "fail/null_value", file: "log:\n  level:\n",
			want: []string{`rampart.yaml:2:9: log.level: has no value; write one (default: "info") or remove the key`}},
		{name: "fail/top_level_list", file: "- https\n- mqtt\n",
			want: []string{`rampart.yaml:1:1: the file must be a mapping of settings (key: value), not a list`}},
		{name: "fail/top_level_scalar", file: "hello\n",
			want: []string{`rampart.yaml:1:1: the file must be a mapping of settings (key: value), not "hello"`}},
		{name: "fail/two_documents", file: "log:\n  level: info\n---\nlog:\n  level: debug\n",
			want: []string{`rampart.yaml:3:1: a second YAML document starts here; a config file holds one (remove the "---" and what follows, or merge them)`}},
		{name: "fail/syntax", file: "https:\n  addr: 127.0.0.1:8443\n addr: x\n",
			want: []string{`rampart.yaml:2: not valid YAML: did not find expected key`}}, // the line where the parser's context starts
		{name: "fail/tabs", file: "https:\n\taddr: x\n",
			want: []string{`rampart.yaml:2: not valid YAML: found character that cannot start any token`}},
		{name: "fail/anchor", file: "https:\n  addr: &a 127.0.0.1:1\nmqtt:\n  addr: *a\n",
			want: []string{
				`rampart.yaml:2:9: https.addr: anchors (&a) are not supported in a config file; remove it`,
				`rampart.yaml:4:9: mqtt.addr: aliases (*a) are not supported in a config file; write the value out`}},
		{name: "fail/alias_bomb", file: "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n",
			want: []string{
				`rampart.yaml:1:1: a: unknown key; the keys at the top level are data_dir, https, mqtt, tls, log, master_key, setup, sessions, accounts, passwords, journal, devices, detect`,
				`rampart.yaml:2:1: b: unknown key; the keys at the top level are data_dir, https, mqtt, tls, log, master_key, setup, sessions, accounts, passwords, journal, devices, detect`,
				`rampart.yaml:3:1: c: unknown key; the keys at the top level are data_dir, https, mqtt, tls, log, master_key, setup, sessions, accounts, passwords, journal, devices, detect`,
				`rampart.yaml:4:1: d: unknown key; the keys at the top level are data_dir, https, mqtt, tls, log, master_key, setup, sessions, accounts, passwords, journal, devices, detect`}},
		{name: "fail/alias_bomb_in_list", file: "x: &x [a, a, a, a, a, a, a, a]\nhttps:\n  hostnames: [*x, *x, *x, *x, *x, *x, *x, *x]\n",
			want: []string{
				`rampart.yaml:1:1: x: unknown key; the keys at the top level are data_dir, https, mqtt, tls, log, master_key, setup, sessions, accounts, passwords, journal, devices, detect`,
				`rampart.yaml:3:15: https.hostnames: aliases (*x) are not supported in a config file; write the value out`}},
		{name: "fail/merge_key", file: "https:\n  <<: {addr: 0.0.0.0:1}\n",
			want: []string{`rampart.yaml:2:3: https: merge keys (<<) are not supported in a config file; write the settings out`}},
		{name: "fail/binary_tag", file: "data_dir: !!binary L2V0Yw==\n",
			want: []string{`rampart.yaml:1:11: data_dir: the YAML tag !!binary is not supported in a config file; write the value plainly`}},
		{name: "fail/complex_key", file: "? [a, b]\n: c\n",
			want: []string{`rampart.yaml:1:3: a key must be a name, not a list`}},

		// Each validation rule, with the file's position.
		{name: "fail/addr_port_only", file: "https:\n  addr: \"8443\"\n",
			want: []string{`rampart.yaml:2:9: https.addr: "8443" is not HOST:PORT (example: 127.0.0.1:8443)`}},
		{name: "fail/addr_scheme", file: "mqtt:\n  addr: mqtts://0.0.0.0:8883\n",
			want: []string{`rampart.yaml:2:9: mqtt.addr: "mqtts://0.0.0.0:8883" is not HOST:PORT: remove the scheme "mqtts://" (example: 127.0.0.1:8883)`}},
		{name: "fail/addr_path", file: "https:\n  addr: 0.0.0.0:8443/api\n",
			want: []string{`rampart.yaml:2:9: https.addr: "0.0.0.0:8443/api" is not HOST:PORT: remove the path (example: 127.0.0.1:8443)`}},
		{name: "fail/addr_port_range", file: "https:\n  addr: 127.0.0.1:65536\n",
			want: []string{`rampart.yaml:2:9: https.addr: "127.0.0.1:65536": the port "65536" is not a number from 0 to 65535 (0 picks a free port)`}},
		{name: "fail/addr_port_name", file: "https:\n  addr: 127.0.0.1:https\n",
			want: []string{`rampart.yaml:2:9: https.addr: "127.0.0.1:https": the port "https" is not a number from 0 to 65535 (0 picks a free port)`}},
		{name: "fail/addr_port_negative", file: "https:\n  addr: 127.0.0.1:-1\n",
			want: []string{`rampart.yaml:2:9: https.addr: "127.0.0.1:-1": the port "-1" is not a number from 0 to 65535 (0 picks a free port)`}},
		{name: "fail/addr_no_host", file: "https:\n  addr: \":8443\"\n",
			want: []string{`rampart.yaml:2:9: https.addr: ":8443" has no host; name the address to listen on: 127.0.0.1 for this machine only, 0.0.0.0 or [::] for every interface`}},
		{name: "fail/addr_ipv6_unbracketed", file: "https:\n  addr: \"::1:8443\"\n",
			want: []string{`rampart.yaml:2:9: https.addr: "::1:8443" is not HOST:PORT: put an IPv6 address in brackets, like [::1]:8443`}},
		{name: "fail/addr_bad_host", file: "https:\n  addr: hub_1.local:8443\n",
			want: []string{`rampart.yaml:2:9: https.addr: "hub_1.local:8443": the host "hub_1.local" is not an IP address or a DNS name: '_' is not allowed in a DNS name (letters, digits and '-' only; write international names in their xn-- form)`}},
		{name: "fail/addr_bad_ip", file: "https:\n  addr: 10.0.0.256:8443\n",
			want: []string{`rampart.yaml:2:9: https.addr: "10.0.0.256:8443": the host "10.0.0.256" is not an IP address or a DNS name: it is not a valid IP address, and a DNS name cannot end in a number`}},
		{name: "fail/addr_empty", file: "https:\n  addr: \"\"\n",
			want: []string{`rampart.yaml:2:9: https.addr: is empty; write HOST:PORT (example: 127.0.0.1:8443)`}},
		{name: "fail/hostname_wildcard", file: "https:\n  hostnames:\n    - hub.example.com\n    - \"*.example.com\"\n",
			want: []string{`rampart.yaml:4:7: https.hostnames[1]: "*.example.com" is not a DNS name or an IP address: wildcards are not allowed; list each name`}},
		{name: "fail/hostname_label_too_long", file: "https:\n  hostnames: [" + strings.Repeat("a", 64) + ".example.com]\n",
			want: []string{`rampart.yaml:2:15: https.hostnames[0]: "` + strings.Repeat("a", 64) + `.example.com" is not a DNS name or an IP address: the label "aaaaaaaaaaaaaaaa"... is 64 characters long; the limit is 63`}},
		{name: "fail/hostname_too_long", file: "https:\n  hostnames: [" + strings.Repeat("a.", 127) + "ab]\n",
			want: []string{`rampart.yaml:2:15: https.hostnames[0]: "` + strings.Repeat("a.", 127) + `ab" is not a DNS name or an IP address: it is 256 characters long; the limit is 253`}},
		{name: "fail/hostname_hyphen", file: "https:\n  hostnames: [-hub.example.com]\n",
			want: []string{`rampart.yaml:2:15: https.hostnames[0]: "-hub.example.com" is not a DNS name or an IP address: the label "-hub" starts or ends with '-'`}},
		{name: "fail/hostname_empty_label", file: "https:\n  hostnames: [hub..example.com]\n",
			want: []string{`rampart.yaml:2:15: https.hostnames[0]: "hub..example.com" is not a DNS name or an IP address: it has an empty label (".." or a leading dot)`}},
		{name: "fail/hostname_trailing_dot", file: "https:\n  hostnames: [hub.example.com.]\n",
			want: []string{`rampart.yaml:2:15: https.hostnames[0]: "hub.example.com." is not a DNS name or an IP address: remove the trailing dot`}},
		{name: "fail/hostname_url", file: "https:\n  hostnames: [\"https://hub.example.com\"]\n",
			want: []string{`rampart.yaml:2:15: https.hostnames[0]: "https://hub.example.com" is not a DNS name or an IP address: write the bare name, without a scheme`}},
		{name: "fail/hostname_port", file: "https:\n  hostnames: [\"hub.example.com:8443\"]\n",
			want: []string{`rampart.yaml:2:15: https.hostnames[0]: "hub.example.com:8443" is not a DNS name or an IP address: write it without the port`}},
		{name: "fail/hostname_zone", file: "https:\n  hostnames: [\"fe80::1%eth0\"]\n",
			want: []string{`rampart.yaml:2:15: https.hostnames[0]: "fe80::1%eth0": a certificate cannot name an IPv6 zone; remove "%eth0"`}},
		{name: "fail/max_body_bytes_low", file: "https:\n  max_body_bytes: 1023\n",
			want: []string{`rampart.yaml:2:19: https.max_body_bytes: 1023 is out of range; use from 1024 to 67108864 bytes`}},
		{name: "fail/max_body_bytes_high", file: "https:\n  max_body_bytes: 67108865\n",
			want: []string{`rampart.yaml:2:19: https.max_body_bytes: 67108865 is out of range; use from 1024 to 67108864 bytes`}},
		{name: "fail/read_header_timeout_low", file: "https:\n  read_header_timeout: 500ms\n",
			want: []string{`rampart.yaml:2:24: https.read_header_timeout: 500ms is too short; use from 1s to 2m`}},
		{name: "fail/read_header_timeout_high", file: "https:\n  read_header_timeout: 121s\n",
			want: []string{`rampart.yaml:2:24: https.read_header_timeout: 2m1s is too long; use from 1s to 2m`}},
		{name: "fail/tls_1.1", file: "tls:\n  min_version: 1.1\n",
			want: []string{`rampart.yaml:2:16: tls.min_version: TLS 1.1 is refused: it is deprecated (RFC 8996) and lacks AEAD ciphers and modern key exchange; use "1.3" (recommended) or "1.2"`}},
		{name: "fail/tls_1.0", file: "tls:\n  min_version: \"1.0\"\n",
			want: []string{`rampart.yaml:2:16: tls.min_version: TLS 1.0 is refused: it is deprecated (RFC 8996) and lacks AEAD ciphers and modern key exchange; use "1.3" (recommended) or "1.2"`}},
		{name: "fail/tls_ssl3", file: "tls:\n  min_version: SSLv3\n",
			want: []string{`rampart.yaml:2:16: tls.min_version: "SSLv3" is refused: SSL is broken (POODLE, RFC 7568) and no longer TLS; use "1.3" (recommended) or "1.2"`}},
		{name: "fail/tls_prefixed", file: "tls:\n  min_version: TLSv1.3\n",
			want: []string{`rampart.yaml:2:16: tls.min_version: "TLSv1.3": write just "1.3"`}},
		{name: "fail/tls_unknown", file: "tls:\n  min_version: 1.4\n",
			want: []string{`rampart.yaml:2:16: tls.min_version: "1.4" is not a TLS version Rampart accepts; use "1.3" (recommended) or "1.2"`}},
		{name: "fail/log_level", file: "log:\n  level: verbose\n",
			want: []string{`rampart.yaml:2:10: log.level: "verbose" is not a log level; use one of debug, info, warn, error`}},
		{name: "fail/log_level_case", file: "log:\n  level: DEBUG\n",
			want: []string{`rampart.yaml:2:10: log.level: "DEBUG" is not a log level; write it as "debug"`}},
		{name: "fail/log_format", file: "log:\n  format: xml\n",
			want: []string{`rampart.yaml:2:11: log.format: "xml" is not a log format; use one of text, json`}},
		{name: "fail/data_dir_empty", file: "data_dir: \"\"\n",
			want: []string{`rampart.yaml:1:11: data_dir: is empty; name the folder that holds the hub's data (default: ./rampart-data)`}},
		{name: "fail/data_dir_nul", file: "data_dir: \"a\\0b\"\n",
			want: []string{`rampart.yaml:1:11: data_dir: "a\x00b" holds a NUL byte, which no file path can; fix the path`}},
		{name: "fail/master_key_both", file: "master_key:\n  file: /etc/rampart/master.key\n  passphrase_file: /etc/rampart/pass\n",
			want: []string{`rampart.yaml:3:20: master_key.passphrase_file: is set, and so is master_key.file (file rampart.yaml:2:9); the master key comes from a key file or from a passphrase, not both: unset one`}},
		{name: "fail/code_ttl_low", file: "setup:\n  code_ttl: 59s\n",
			want: []string{`rampart.yaml:2:13: setup.code_ttl: 59s is too short; use from 1m to 24h`}},
		{name: "fail/code_ttl_high", file: "setup:\n  code_ttl: 25h\n",
			want: []string{`rampart.yaml:2:13: setup.code_ttl: 25h is too long; use from 1m to 24h`}},
		{name: "fail/session_ttl_low", file: "sessions:\n  ttl: 4m\n",
			want: []string{`rampart.yaml:2:8: sessions.ttl: 4m is too short; use from 5m to 168h`}},
		{name: "fail/session_ttl_high", file: "sessions:\n  ttl: 169h\n",
			want: []string{`rampart.yaml:2:8: sessions.ttl: 169h is too long; use from 5m to 168h`}},
		{name: "fail/session_ttl_negative", file: "sessions:\n  ttl: -1h\n",
			want: []string{`rampart.yaml:2:8: sessions.ttl: -1h is too short; use from 5m to 168h`}},
		{name: "fail/checkpoint_every_zero", file: "journal:\n  checkpoint_every: 0\n",
			want: []string{`rampart.yaml:2:21: journal.checkpoint_every: 0 is out of range; use from 1 to 1000000 entries`}},
		{name: "fail/checkpoint_every_high", file: "journal:\n  checkpoint_every: 1000001\n",
			want: []string{`rampart.yaml:2:21: journal.checkpoint_every: 1000001 is out of range; use from 1 to 1000000 entries`}},
		{name: "fail/checkpoint_interval_low", file: "journal:\n  checkpoint_interval: 0s\n",
			want: []string{`rampart.yaml:2:24: journal.checkpoint_interval: 0s is too short; use from 1s to 1h`}},
		{name: "fail/checkpoint_interval_high", file: "journal:\n  checkpoint_interval: 61m\n",
			want: []string{`rampart.yaml:2:24: journal.checkpoint_interval: 1h1m is too long; use from 1s to 1h`}},

		// Values from the environment and flags name their source.
		{name: "fail/env_addr", env: []string{"RAMPART_HTTPS_ADDR=8443"},
			want: []string{`environment RAMPART_HTTPS_ADDR: https.addr: "8443" is not HOST:PORT (example: 127.0.0.1:8443)`}},
		{name: "fail/env_tls_1.1", env: []string{"RAMPART_TLS_MIN_VERSION=1.1"},
			want: []string{`environment RAMPART_TLS_MIN_VERSION: tls.min_version: TLS 1.1 is refused: it is deprecated (RFC 8996) and lacks AEAD ciphers and modern key exchange; use "1.3" (recommended) or "1.2"`}},
		{name: "fail/env_bad_int", env: []string{"RAMPART_JOURNAL_CHECKPOINT_EVERY=1e3"},
			want: []string{`environment RAMPART_JOURNAL_CHECKPOINT_EVERY: journal.checkpoint_every: "1e3" is not a whole number; write decimal digits only (example: 1000)`}},
		{name: "fail/env_empty_data", env: []string{"RAMPART_DATA="},
			want: []string{`environment RAMPART_DATA: data_dir: is empty; name the folder that holds the hub's data (default: ./rampart-data)`}},
		{name: "fail/env_unknown_typo", env: []string{"RAMPART_HTTPS_ADRR=127.0.0.1:1"},
			want: []string{`environment RAMPART_HTTPS_ADRR: is not a Rampart setting; did you mean RAMPART_HTTPS_ADDR?`}},
		{name: "fail/env_data_dir_alias", env: []string{"RAMPART_DATA_DIR=/srv"},
			want: []string{`environment RAMPART_DATA_DIR: is not a Rampart setting; did you mean RAMPART_DATA?`}},
		{name: "fail/env_hostname_item", env: []string{"RAMPART_HTTPS_HOSTNAMES=ok.example,bad_name"},
			want: []string{`environment RAMPART_HTTPS_HOSTNAMES: https.hostnames[1]: "bad_name" is not a DNS name or an IP address: '_' is not allowed in a DNS name (letters, digits and '-' only; write international names in their xn-- form)`}},
		{name: "fail/flag_addr", overrides: []Override{{Key: "https.addr", Value: "localhost", Source: "flag --https-addr"}},
			want: []string{`flag --https-addr: https.addr: "localhost" is not HOST:PORT (example: 127.0.0.1:8443)`}},
		{name: "fail/flag_tls_1.0", overrides: []Override{{Key: "tls.min_version", Value: "1.0", Source: "flag --tls-min-version"}},
			want: []string{`flag --tls-min-version: tls.min_version: TLS 1.0 is refused: it is deprecated (RFC 8996) and lacks AEAD ciphers and modern key exchange; use "1.3" (recommended) or "1.2"`}},
		{name: "fail/flag_unknown_key", overrides: []Override{{Key: "https.port", Value: "1", Source: "flag --https-port"}},
			want: []string{`flag --https-port: https.port: is not a setting; settings: data_dir, https.addr, https.hostnames, https.max_body_bytes, https.read_header_timeout, mqtt.addr, mqtt.max_packet_bytes, mqtt.publish_per_sec, mqtt.publish_burst, mqtt.bytes_per_sec, mqtt.max_subscriptions, mqtt.max_conns_per_ip, mqtt.new_conns_per_ip_per_sec, mqtt.max_conns, tls.min_version, log.level, log.format, master_key.file, master_key.passphrase_file, setup.code_ttl, sessions.ttl, sessions.idle_ttl, accounts.open_signup, accounts.invite_ttl, accounts.reset_ttl, passwords.argon2_memory_kib, passwords.argon2_time, passwords.argon2_threads, journal.checkpoint_every, journal.checkpoint_interval, devices.cert_lifetime, devices.token_ttl, devices.clone_policy, devices.clone_window, detect.enabled, detect.window, detect.baseline_action, detect.webhook_url, detect.webhook_secret_file, detect.webhook_ca_file`}},
		{name: "fail/master_key_file_and_env_passphrase",
			file: "master_key:\n  file: /k\n", env: []string{"RAMPART_MASTER_PASSPHRASE_FILE=/p"},
			want: []string{`environment RAMPART_MASTER_PASSPHRASE_FILE: master_key.passphrase_file: is set, and so is master_key.file (file rampart.yaml:2:9); the master key comes from a key file or from a passphrase, not both: unset one`}},
		{name: "ok/flag_fixes_bad_file_value", file: "https:\n  addr: \"8443\"\n",
			overrides: []Override{{Key: "https.addr", Value: "127.0.0.1:8443", Source: "flag --https-addr"}}},
		{name: "fail/error_points_at_winning_layer", file: "https:\n  addr: 127.0.0.1:1\n", env: []string{"RAMPART_HTTPS_ADDR=127.0.0.1:99999"},
			want: []string{`environment RAMPART_HTTPS_ADDR: https.addr: "127.0.0.1:99999": the port "99999" is not a number from 0 to 65535 (0 picks a free port)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := LoadOptions{Env: tt.env, Overrides: tt.overrides}
			if tt.file != "" {
				opts.File = writeConfig(t, tt.file)
			}
			c, err := Load(opts)
			if got := errLines(err); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("errors:\n got  %q\n want %q", got, tt.want)
			}
			if err != nil {
				if c != nil {
					t.Error("Load returned a config with an error")
				}
				for _, e := range unjoin(err) {
					var fe *FieldError
					if !errors.As(e, &fe) {
						t.Errorf("%v is a %T, want *FieldError", e, e)
					}
				}
				return
			}
			if err := c.Validate(); err != nil {
				t.Errorf("Load accepted a config that Validate refuses: %v", err)
			}
		})
	}
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func TestLoadFileErrors(t *testing.T) {
	t.Run("fail/not_found", func(t *testing.T) {
		_, err := Load(LoadOptions{File: filepath.Join(t.TempDir(), "missing.yaml")})
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("got %v, want fs.ErrNotExist", err)
		}
	})
	t.Run("fail/directory", func(t *testing.T) {
		t.Chdir(t.TempDir())
		os.Mkdir("conf", 0o700)
		_, err := Load(LoadOptions{File: "conf"})
		if want := "conf: is not a regular file; name the YAML config file"; err == nil || err.Error() != want {
			t.Fatalf("got %v, want %s", err, want)
		}
	})
	t.Run("fail/too_large", func(t *testing.T) {
		// Valid YAML, just too much of it: the cap applies before parsing.
		name := writeConfig(t, "# "+strings.Repeat("x", maxFileBytes)+"\n")
		_, err := Load(LoadOptions{File: name})
		if want := "rampart.yaml: is larger than 1048576 bytes (1 MiB), the limit for a config file; is it the right file?"; err == nil || err.Error() != want {
			t.Fatalf("got %v, want %s", err, want)
		}
	})
	t.Run("ok/at_the_limit", func(t *testing.T) {
		name := writeConfig(t, "#"+strings.Repeat("x", maxFileBytes-2)+"\n")
		if _, err := Load(LoadOptions{File: name}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestFieldError(t *testing.T) {
	tests := []struct {
		name string
		err  FieldError
		want string
	}{
		{"ok/file_line_column", FieldError{File: "rampart.yaml", Line: 7, Column: 9, Field: "https.addr", Msg: "m"}, "rampart.yaml:7:9: https.addr: m"},
		{"ok/file_line", FieldError{File: "rampart.yaml", Line: 3, Msg: "m"}, "rampart.yaml:3: m"},
		{"ok/file_only", FieldError{File: "rampart.yaml", Msg: "m"}, "rampart.yaml: m"},
		{"ok/source", FieldError{Source: "flag --https-addr", Field: "https.addr", Msg: "m"}, "flag --https-addr: https.addr: m"},
		{"ok/field_only", FieldError{Field: "https.addr", Msg: "m"}, "https.addr: m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestValidateInCode checks values set in code, which have no origin.
func TestValidateInCode(t *testing.T) {
	c := Default()
	c.HTTPS.Addr = "nope"
	c.Journal.CheckpointEvery = 0
	want := []string{
		`https.addr: "nope" is not HOST:PORT (example: 127.0.0.1:8443)`,
		`journal.checkpoint_every: 0 is out of range; use from 1 to 1000000 entries`,
	}
	if got := errLines(c.Validate()); !reflect.DeepEqual(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{time.Hour, "1h"}, {90 * time.Second, "1m30s"}, {168 * time.Hour, "168h"},
		{time.Hour + 30*time.Minute, "1h30m"}, {10 * time.Second, "10s"}, {500 * time.Millisecond, "500ms"},
		{time.Hour + time.Second, "1h0m1s"}, {0, "0s"},
	}
	for _, tt := range tests {
		t.Run("ok/"+tt.want, func(t *testing.T) {
			d := Duration(tt.in)
			if got := d.String(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			var back Duration
			if err := back.UnmarshalText([]byte(d.String())); err != nil || back != d {
				t.Errorf("round trip: %v, %v", back, err)
			}
		})
	}
}

// TestGolden keeps two whole outputs an operator sees: every error of a bad
// file at once, and `rampart config check`'s view of a layered config.
func TestGolden(t *testing.T) {
	t.Run("fail/many_errors", func(t *testing.T) {
		bad, err := os.ReadFile("testdata/bad.yaml")
		if err != nil {
			t.Fatal(err)
		}
		wd, _ := os.Getwd()
		golden := filepath.Join(wd, "testdata", "bad.golden")
		name := writeConfig(t, string(bad))
		_, err = Load(LoadOptions{File: name,
			Env:       []string{"RAMPART_TLS_MIN_VERSION=1.0", "RAMPART_LOG_LEVL=debug"},
			Overrides: []Override{{Key: "mqtt.addr", Value: "0.0.0.0", Source: "flag --mqtt-addr"}}})
		if err == nil {
			t.Fatal("bad.yaml loaded")
		}
		checkGolden(t, golden, []byte(err.Error()+"\n"))
	})
	t.Run("ok/effective_yaml", func(t *testing.T) {
		good, err := os.ReadFile("testdata/good.yaml")
		if err != nil {
			t.Fatal(err)
		}
		wd, _ := os.Getwd()
		golden := filepath.Join(wd, "testdata", "good.golden")
		name := writeConfig(t, string(good))
		c, err := Load(LoadOptions{File: name,
			Env:       []string{"RAMPART_LOG_FORMAT=json", "RAMPART_HTTPS_HOSTNAMES=hub.example.com,192.0.2.10"},
			Overrides: []Override{{Key: "https.addr", Value: "0.0.0.0:8443", Source: "flag --https-addr"}}})
		if err != nil {
			t.Fatal(err)
		}
		out, err := c.YAML()
		if err != nil {
			t.Fatal(err)
		}
		checkGolden(t, golden, out)
		// The output loads back to the same configuration.
		os.WriteFile("effective.yaml", out, 0o600)
		back, err := Load(LoadOptions{File: "effective.yaml"})
		if err != nil {
			t.Fatal(err)
		}
		back.origins, c.origins = nil, nil
		if !reflect.DeepEqual(back, c) {
			t.Errorf("round trip:\n got  %+v\n want %+v", back, c)
		}
	})
}

func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("output differs from %s (run go test -update if the change is right):\n got:\n%s\nwant:\n%s", path, got, want)
	}
}

func TestMasterKeyExclusiveInCode(t *testing.T) {
	c := Default()
	c.MasterKey = MasterKey{File: "/k", PassphraseFile: "/p"}
	want := "master_key.passphrase_file: is set, and so is master_key.file; the master key comes from a key file or from a passphrase, not both: unset one"
	if err := c.Validate(); err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
	if got := c.MasterKeyFile(); got != "/k" {
		t.Errorf("MasterKeyFile = %q, want /k", got)
	}
}

func TestDetectWebhookValidation(t *testing.T) {
	for _, tc := range []struct {
		name, url, secret, want string
	}{
		{"fail/plain http", "http://alerts.example.com/x", "/s", "detect.webhook_url"},
		{"fail/no secret", "https://alerts.example.com/x", "", "detect.webhook_secret_file"},
		{"ok/https with secret", "https://alerts.example.com/x", "/s", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			c.Detect.WebhookURL, c.Detect.WebhookSecretFile = tc.url, tc.secret
			err := c.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate: %v; want %q", err, tc.want)
			}
		})
	}
	c := Default()
	c.Detect.BaselineAction = "explode"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "detect.baseline_action") {
		t.Fatalf("unknown action: %v", err)
	}
}
