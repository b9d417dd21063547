package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/sdk/safety"
)

// Config is gw.yaml. See the README's "Edge gateway" section for an
// annotated example.
type Config struct {
	// Name is the gateway's own identity (its keystore and, with a claim,
	// its serial number).
	Name   string       `yaml:"name"`
	Hub    HubConfig    `yaml:"hub"`
	State  StateConfig  `yaml:"state"`
	Enroll EnrollConfig `yaml:"enroll"`
	PLCs   []PLC        `yaml:"plcs"`
	Secure *Secure      `yaml:"secure"` // nil: no Modbus/TCP Security server

	file string
	root *yaml.Node
}

// HubConfig says where the hub is and how it is authenticated.
type HubConfig struct {
	URL  string `yaml:"url"`  // https://HOST:PORT
	MQTT string `yaml:"mqtt"` // HOST:PORT
	// CAFile is the hub's root (DATA/ca.pem); the system roots are never used.
	CAFile string `yaml:"ca_file"`
	// CommandKeyFile holds the hub's command key (GET /pki/command-key,
	// the JSON as served or the base64 public key), pinned by the operator.
	CommandKeyFile string `yaml:"command_key_file"`
}

// StateConfig is where identities live.
type StateConfig struct {
	Dir     string `yaml:"dir"`      // one keystore per identity, NAME.keystore
	KeyFile string `yaml:"key_file"` // 32-byte key (0600) wrapping every keystore
}

// EnrollConfig: how identities not yet in the state folder are enrolled.
type EnrollConfig struct {
	// ClaimFile: a claim token (POST /api/v1/claims) used for every
	// identity, the serial number being the identity's name.
	ClaimFile string `yaml:"claim_file"`
	// TokenFiles: name -> file holding that identity's enrollment token.
	TokenFiles map[string]string `yaml:"token_files"`
}

// PLC is one southbound device.
type PLC struct {
	Name string `yaml:"name"`
	// Address is HOST:PORT for Modbus/TCP; or RTU for a serial line.
	Address string `yaml:"address"`
	RTU     *RTU   `yaml:"rtu"`
	UnitID  uint8  `yaml:"unit_id"`
	// ModelFile is the PLC's device model (the JSON posted to
	// /api/v1/models): the gateway's own copy of its safety policy.
	// Required when any register is writable.
	ModelFile    string     `yaml:"model_file"`
	PollInterval Duration   `yaml:"poll_interval"`
	Timeout      Duration   `yaml:"timeout"`
	Retries      *int       `yaml:"retries"`
	BackoffMax   Duration   `yaml:"backoff_max"`
	WordOrder    string     `yaml:"word_order"` // high_first (default) | low_first, for 32-bit types
	Registers    []Register `yaml:"registers"`
	// SCADAUnitID exposes this PLC on the secure server under that unit ID
	// (0: not exposed).
	SCADAUnitID uint8 `yaml:"scada_unit_id"`

	model *api.DeviceModel
}

// RTU is a serial line (Modbus RTU).
type RTU struct {
	Device   string `yaml:"device"`
	Baud     uint   `yaml:"baud"`
	DataBits uint   `yaml:"data_bits"`
	Parity   string `yaml:"parity"` // none | even | odd
	StopBits uint   `yaml:"stop_bits"`
}

// Register is one entry of a register map.
type Register struct {
	Name     string  `yaml:"name"`
	Function string  `yaml:"function"` // holding | input | coil | discrete
	Address  uint16  `yaml:"address"`
	Type     string  `yaml:"type"`  // uint16 int16 uint32 int32 float32 bool
	Scale    float64 `yaml:"scale"` // engineering value = raw * scale (default 1)
	Unit     string  `yaml:"unit"`
	// Write puts the register on the write allow-list: command Command's
	// parameter Param is written to it. Absent: read-only.
	Write *WriteSpec `yaml:"write"`
}

// WriteSpec maps a command parameter to a register.
type WriteSpec struct {
	Command string `yaml:"command"`
	Param   string `yaml:"param"`
}

// Secure is the Modbus/TCP Security server for SCADA/HMI clients.
type Secure struct {
	Addr         string `yaml:"addr"`
	CertFile     string `yaml:"cert_file"` // the server's certificate chain (PEM)
	KeyFile      string `yaml:"key_file"`  // its key (PEM, mode 0600)
	ClientCAFile string `yaml:"client_ca_file"`
	MinTLS       string `yaml:"min_tls"` // "1.2" (default, MBAPS R-01) or "1.3"
	MaxClients   int    `yaml:"max_clients"`
	// Roles: role (from the client certificate) -> what it may do.
	// A role not listed, a certificate without a role or with two, may
	// do nothing.
	Roles map[string][]Rule `yaml:"roles"`
}

// Rule allows function codes on ranges of one PLC's registers.
type Rule struct {
	PLC       string   `yaml:"plc"`
	Functions []int    `yaml:"functions"` // 1 2 3 4 5 6 15 16
	Ranges    []string `yaml:"ranges"`    // "100-109" or "7"

	ranges [][2]int
}

// Duration is a time.Duration written as "500ms", "1s".
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: %q is not a duration (example: 500ms, 2s)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// Load reads and validates gw.yaml.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := Parse(b, path)
	if err != nil {
		return nil, err
	}
	if err := c.loadFiles(); err != nil {
		return nil, err
	}
	return c, nil
}

// Parse decodes and validates a configuration (file names the source in
// errors). Files it names (models) are not read: Load does that.
func Parse(b []byte, file string) (*Config, error) {
	if len(b) > maxConfigBytes {
		return nil, fmt.Errorf("%s: %d bytes is over the %d-byte limit", file, len(b), maxConfigBytes)
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var root yaml.Node
	_ = yaml.Unmarshal(b, &root)
	c.file, c.root = file, &root
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// ConfigError names the file, line and field of a bad setting.
type ConfigError struct {
	File         string
	Line, Column int
	Field        string
	Msg          string
}

func (e *ConfigError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d:%d: %s: %s", e.File, e.Line, e.Column, e.Field, e.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", e.File, e.Field, e.Msg)
}

// errAt builds a ConfigError for a dotted path such as plcs.0.registers.2.type.
func (c *Config) errAt(path string, format string, args ...any) error {
	e := &ConfigError{File: c.file, Field: path, Msg: fmt.Sprintf(format, args...)}
	if n := find(c.root, strings.Split(path, ".")); n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	return e
}

// find walks a YAML document by path, returning the deepest node found.
func find(n *yaml.Node, path []string) *yaml.Node {
	if n == nil {
		return nil
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		return find(n.Content[0], path)
	}
	if len(path) == 0 {
		return n
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == path[0] {
				if r := find(n.Content[i+1], path[1:]); r != nil {
					return r
				}
				return n.Content[i]
			}
		}
	case yaml.SequenceNode:
		if i, err := strconv.Atoi(path[0]); err == nil && i >= 0 && i < len(n.Content) {
			return find(n.Content[i], path[1:])
		}
	}
	return n
}

var registerTypes = map[string]int{"uint16": 1, "int16": 1, "uint32": 2, "int32": 2, "float32": 2, "bool": 1}

func validHostPort(s string) bool {
	h, p, err := net.SplitHostPort(s)
	if err != nil || h == "" {
		return false
	}
	n, err := strconv.Atoi(p)
	return err == nil && n >= 0 && n <= 65535
}

func (c *Config) validate() error {
	if !safety.ValidName(c.Name) {
		return c.errAt("name", "%q: the gateway needs a name (letters, digits, '-', '_', '.')", c.Name)
	}
	if !strings.HasPrefix(c.Hub.URL, "https://") {
		return c.errAt("hub.url", "%q: want https://HOST:PORT (the hub speaks only TLS)", c.Hub.URL)
	}
	if !validHostPort(c.Hub.MQTT) {
		return c.errAt("hub.mqtt", "%q is not HOST:PORT (example: hub.example:8883)", c.Hub.MQTT)
	}
	if c.Hub.CAFile == "" {
		return c.errAt("hub.ca_file", "required: the hub's root certificate (DATA/ca.pem); the system roots are never used")
	}
	if c.State.Dir == "" || c.State.KeyFile == "" {
		return c.errAt("state", "dir and key_file are required (the keystores and the 0600 key that wraps them)")
	}
	if len(c.PLCs) == 0 || len(c.PLCs) > maxPLCs {
		return c.errAt("plcs", "want 1 to %d PLCs, got %d", maxPLCs, len(c.PLCs))
	}
	names := map[string]bool{c.Name: true}
	scada := map[uint8]bool{}
	writable := false
	for i := range c.PLCs {
		p := &c.PLCs[i]
		at := func(f string) string { return fmt.Sprintf("plcs.%d.%s", i, f) }
		if !safety.ValidName(p.Name) || names[p.Name] {
			return c.errAt(at("name"), "%q: every PLC needs a unique name (letters, digits, '-', '_', '.'), other than the gateway's", p.Name)
		}
		names[p.Name] = true
		switch {
		case (p.Address == "") == (p.RTU == nil):
			return c.errAt(at("address"), "give exactly one of address (Modbus/TCP HOST:PORT) or rtu (serial line)")
		case p.RTU == nil && !validHostPort(p.Address):
			return c.errAt(at("address"), "%q is not HOST:PORT (example: 10.0.0.5:502)", p.Address)
		case p.RTU != nil && p.RTU.Device == "":
			return c.errAt(at("rtu.device"), "required: the serial device, e.g. /dev/ttyUSB0")
		case p.RTU != nil && p.RTU.Parity != "" && p.RTU.Parity != "none" && p.RTU.Parity != "even" && p.RTU.Parity != "odd":
			return c.errAt(at("rtu.parity"), "%q: want none, even or odd", p.RTU.Parity)
		}
		if p.PollInterval == 0 {
			p.PollInterval = Duration(DefaultPollInterval)
		}
		if p.Timeout == 0 {
			p.Timeout = Duration(DefaultTimeout)
		}
		if p.BackoffMax == 0 {
			p.BackoffMax = Duration(DefaultBackoffMax)
		}
		if p.Retries == nil {
			r := DefaultRetries
			p.Retries = &r
		}
		switch {
		case time.Duration(p.PollInterval) < minPollInterval:
			return c.errAt(at("poll_interval"), "at least %v", minPollInterval)
		case time.Duration(p.Timeout) < minTimeout:
			return c.errAt(at("timeout"), "at least %v", minTimeout)
		case *p.Retries < 0 || *p.Retries > maxRetries:
			return c.errAt(at("retries"), "0 to %d", maxRetries)
		case p.BackoffMax < p.PollInterval:
			return c.errAt(at("backoff_max"), "must not be below poll_interval")
		case p.WordOrder != "" && p.WordOrder != "high_first" && p.WordOrder != "low_first":
			return c.errAt(at("word_order"), "%q: want high_first or low_first", p.WordOrder)
		}
		if p.SCADAUnitID != 0 {
			if scada[p.SCADAUnitID] {
				return c.errAt(at("scada_unit_id"), "unit %d is already used by another PLC", p.SCADAUnitID)
			}
			scada[p.SCADAUnitID] = true
		}
		if len(p.Registers) == 0 || len(p.Registers) > maxRegisters {
			return c.errAt(at("registers"), "want 1 to %d registers", maxRegisters)
		}
		regNames, params := map[string]bool{}, map[string]bool{}
		for k := range p.Registers {
			r := &p.Registers[k]
			rat := func(f string) string { return at(fmt.Sprintf("registers.%d.%s", k, f)) }
			if !safety.ValidName(r.Name) || regNames[r.Name] {
				return c.errAt(rat("name"), "%q: every register of a PLC needs a unique name", r.Name)
			}
			regNames[r.Name] = true
			n, ok := registerTypes[r.Type]
			if !ok {
				return c.errAt(rat("type"), "%q: want uint16, int16, uint32, int32, float32 or bool", r.Type)
			}
			switch r.Function {
			case "holding", "input":
				if r.Type == "bool" {
					return c.errAt(rat("type"), "a %s register holds a number; bool is for coil and discrete", r.Function)
				}
			case "coil", "discrete":
				if r.Type != "bool" {
					return c.errAt(rat("type"), "%q: a %s is a bool", r.Type, r.Function)
				}
			default:
				return c.errAt(rat("function"), "%q: want holding, input, coil or discrete", r.Function)
			}
			if int(r.Address)+n > 65536 {
				return c.errAt(rat("address"), "%d plus %d register(s) runs past 65535", r.Address, n)
			}
			if r.Scale == 0 {
				r.Scale = 1
			}
			if math.IsNaN(r.Scale) || math.IsInf(r.Scale, 0) || (r.Type == "bool" && r.Scale != 1) {
				return c.errAt(rat("scale"), "%v: a finite, non-zero number (1 for bool)", r.Scale)
			}
			if r.Write != nil {
				if r.Function != "holding" && r.Function != "coil" {
					return c.errAt(rat("write"), "only holding registers and coils can be written")
				}
				if !safety.ValidName(r.Write.Command) || !safety.ValidName(r.Write.Param) {
					return c.errAt(rat("write"), "command and param are required")
				}
				if params[r.Write.Command+"."+r.Write.Param] {
					return c.errAt(rat("write"), "%s.%s is written to two registers", r.Write.Command, r.Write.Param)
				}
				params[r.Write.Command+"."+r.Write.Param] = true
				writable = true
			}
		}
		if writable && p.ModelFile == "" {
			return c.errAt(at("model_file"), "required for a PLC with writable registers: the gateway evaluates the safety policy again")
		}
		writable = false
	}
	if c.Enroll.ClaimFile != "" && len(c.Enroll.TokenFiles) > 0 {
		return c.errAt("enroll", "give claim_file or token_files, not both")
	}
	for name := range c.Enroll.TokenFiles {
		if !names[name] {
			return c.errAt("enroll.token_files."+name, "%q is neither the gateway nor a PLC", name)
		}
	}
	if s := c.Secure; s != nil {
		if s.Addr == "" {
			s.Addr = DefaultSecureAddr
		}
		if s.MaxClients == 0 {
			s.MaxClients = DefaultMaxClients
		}
		if s.MinTLS == "" {
			s.MinTLS = "1.2"
		}
		switch {
		case !validHostPort(s.Addr):
			return c.errAt("secure.addr", "%q is not HOST:PORT (example: 0.0.0.0:802)", s.Addr)
		case s.CertFile == "" || s.KeyFile == "" || s.ClientCAFile == "":
			return c.errAt("secure", "cert_file, key_file and client_ca_file are required: client certificates are always required")
		case s.MinTLS != "1.2" && s.MinTLS != "1.3":
			return c.errAt("secure.min_tls", "%q: want \"1.2\" or \"1.3\"", s.MinTLS)
		case s.MaxClients < 1 || s.MaxClients > 1024:
			return c.errAt("secure.max_clients", "1 to 1024")
		}
		for role, rules := range s.Roles {
			if role == "" || len(role) > 128 {
				return c.errAt("secure.roles", "a role name is 1 to 128 characters")
			}
			for i := range rules {
				r := &rules[i]
				at := fmt.Sprintf("secure.roles.%s.%d.", role, i)
				p := c.plc(r.PLC)
				if p == nil {
					return c.errAt(at+"plc", "%q is not a PLC of this gateway", r.PLC)
				}
				if p.SCADAUnitID == 0 {
					return c.errAt(at+"plc", "PLC %q has no scada_unit_id: it is not exposed to SCADA clients", r.PLC)
				}
				if len(r.Functions) == 0 {
					return c.errAt(at+"functions", "list the function codes this role may use")
				}
				for _, f := range r.Functions {
					if tableOf(byte(f)) == "" || f > 255 || f < 0 {
						return c.errAt(at+"functions", "%d: supported function codes are 1, 2, 3, 4, 5, 6, 15 and 16", f)
					}
				}
				if len(r.Ranges) == 0 {
					return c.errAt(at+"ranges", "list the register ranges (\"100-109\") this rule covers")
				}
				for _, s := range r.Ranges {
					rg, ok := parseRange(s)
					if !ok {
						return c.errAt(at+"ranges", "%q: want FIRST-LAST or one address, 0 to 65535", s)
					}
					r.ranges = append(r.ranges, rg)
				}
			}
		}
	}
	return nil
}

func parseRange(s string) ([2]int, bool) {
	a, b, found := strings.Cut(strings.TrimSpace(s), "-")
	lo, err1 := strconv.Atoi(strings.TrimSpace(a))
	hi, err2 := lo, error(nil)
	if found {
		hi, err2 = strconv.Atoi(strings.TrimSpace(b))
	}
	if err1 != nil || err2 != nil || lo < 0 || hi > 65535 || lo > hi {
		return [2]int{}, false
	}
	return [2]int{lo, hi}, true
}

func (c *Config) plc(name string) *PLC {
	for i := range c.PLCs {
		if c.PLCs[i].Name == name {
			return &c.PLCs[i]
		}
	}
	return nil
}

// resolve makes a path relative to the config file's folder.
func (c *Config) resolve(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(c.file), p)
}

// loadFiles reads the models and checks every write allow-list entry
// against its PLC's model.
func (c *Config) loadFiles() error {
	for i := range c.PLCs {
		p := &c.PLCs[i]
		if p.ModelFile == "" {
			continue
		}
		b, err := os.ReadFile(c.resolve(p.ModelFile))
		if err != nil {
			return c.errAt(fmt.Sprintf("plcs.%d.model_file", i), "%v", err)
		}
		var m api.DeviceModel
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&m); err != nil {
			return c.errAt(fmt.Sprintf("plcs.%d.model_file", i), "not a device model: %v", err)
		}
		if err := p.setModel(m); err != nil {
			return c.errAt(fmt.Sprintf("plcs.%d.model_file", i), "%v", err)
		}
	}
	return nil
}

// setModel checks that every writable register's command and parameter
// exist in the model.
func (p *PLC) setModel(m api.DeviceModel) error {
	pol, err := safety.Compile(m)
	if err != nil {
		return err
	}
	for _, r := range p.Registers {
		if r.Write == nil {
			continue
		}
		cmd := pol.Commands[r.Write.Command]
		if cmd == nil {
			return fmt.Errorf("register %s is written by command %q, which model %q does not declare", r.Name, r.Write.Command, m.Name)
		}
		found := false
		for _, pr := range cmd.Spec.Params {
			found = found || pr.Name == r.Write.Param
		}
		if !found {
			return fmt.Errorf("register %s is written from %s.%s, which model %q does not declare", r.Name, r.Write.Command, r.Write.Param, m.Name)
		}
	}
	p.model = &m
	return nil
}

// SetModel gives a PLC its model without a file (tests, embedding).
func (c *Config) SetModel(plc string, m api.DeviceModel) error {
	p := c.plc(plc)
	if p == nil {
		return errors.New("no such PLC: " + plc)
	}
	return p.setModel(m)
}
