package gateway

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/gateway/plcsim"
	"github.com/rampart-iot/rampart/sdk"
	"github.com/rampart-iot/rampart/sdk/safety"
)

const validYAML = `name: gw-1
hub: {url: "https://127.0.0.1:8443", mqtt: "127.0.0.1:8883", ca_file: ca.pem, command_key_file: ck.json}
state: {dir: state, key_file: state.key}
plcs:
  - name: pump-1
    address: 127.0.0.1:5020
    scada_unit_id: 1
    registers:
      - {name: speed, function: holding, address: 100, type: uint16, unit: rpm}
      - {name: temp, function: input, address: 0, type: int16, scale: 0.1}
secure:
  cert_file: s.crt
  key_file: s.key
  client_ca_file: ca.pem
  roles:
    operator: [{plc: pump-1, functions: [3, 6], ranges: ["100-101"]}]
`

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		name, from, to, want string
	}{
		{"ok/valid", "", "", ""},
		{"fail/unknown-field", "    scada_unit_id: 1", "    scada_unit: 1", "field scada_unit not found"},
		{"fail/bad-type", "type: int16", "type: int12", "gw.yaml:10:57: plcs.0.registers.1.type: \"int12\""},
		{"fail/plaintext-hub", "https://127", "http://127", "gw.yaml:2:12: hub.url"},
		{"fail/bool-holding", "type: uint16", "type: bool", "plcs.0.registers.0.type"},
		{"fail/past-65535", "address: 100, type: uint16", "address: 65535, type: uint32", "runs past 65535"},
		{"fail/write-input", "scale: 0.1}", "scale: 0.1, write: {command: c, param: p}}", "only holding registers and coils"},
		{"fail/write-needs-model", "unit: rpm}", "unit: rpm, write: {command: set_speed, param: rpm}}", "plcs.0.model_file: required"},
		{"fail/no-address", "    address: 127.0.0.1:5020\n", "", "plcs.0.address"},
		{"fail/bad-range", `"100-101"`, `"101-100"`, "secure.roles.operator.0.ranges"},
		{"fail/bad-function", "functions: [3, 6]", "functions: [3, 8]", "supported function codes"},
		{"fail/unexposed-plc", "    scada_unit_id: 1\n", "", "has no scada_unit_id"},
		{"fail/weak-tls", "  client_ca_file: ca.pem\n", "  client_ca_file: ca.pem\n  min_tls: \"1.1\"\n", "secure.min_tls"},
		{"fail/zero-timeout", "    scada_unit_id: 1\n", "    scada_unit_id: 1\n    timeout: 1ms\n", "plcs.0.timeout: at least"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			y := strings.Replace(validYAML, tc.from, tc.to, 1)
			c, err := Parse([]byte(y), "gw.yaml")
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.PLCs[0].Registers[1].Scale != 0.1 || time.Duration(c.PLCs[0].Timeout) != DefaultTimeout || c.Secure.MinTLS != "1.2" {
					t.Fatalf("defaults: %+v", c.PLCs[0])
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want an error with %q, got %v", tc.want, err)
			}
		})
	}
}

func TestRegisterCodec(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reg   Register
		value float64
		raw   []uint16
		err   bool
	}{
		{"ok/uint16", Register{Type: "uint16", Scale: 1}, 500, []uint16{500}, false},
		{"ok/int16-scaled", Register{Type: "int16", Scale: 0.1}, -21.5, []uint16{uint16(0x10000 - 215)}, false},
		{"ok/uint32", Register{Type: "uint32", Scale: 1}, 70000, []uint16{1, 4464}, false},
		{"ok/int32", Register{Type: "int32", Scale: 1}, -2, []uint16{0xFFFF, 0xFFFE}, false},
		{"ok/float32", Register{Type: "float32", Scale: 1}, 1.5, []uint16{0x3FC0, 0}, false},
		{"fail/uint16-negative", Register{Type: "uint16", Scale: 1}, -1, nil, true},
		{"fail/uint16-overflow", Register{Type: "uint16", Scale: 1}, 65536, nil, true},
		{"fail/not-whole", Register{Type: "uint16", Scale: 1}, 1.5, nil, true},
		{"fail/scaled-overflow", Register{Type: "int16", Scale: 0.1}, 3276.8, nil, true},
		{"fail/nan", Register{Type: "float32", Scale: 1}, math.NaN(), nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := tc.reg.encode(tc.value, false)
			if tc.err {
				if err == nil {
					t.Fatalf("encoded %v as %v", tc.value, raw)
				}
				return
			}
			if err != nil || fmt.Sprint(raw) != fmt.Sprint(tc.raw) {
				t.Fatalf("encode %v: %v %v, want %v", tc.value, raw, err, tc.raw)
			}
			v, err := tc.reg.decode(raw, false)
			if err != nil || math.Abs(v-tc.value) > 1e-9 {
				t.Fatalf("decode: %v %v", v, err)
			}
		})
	}
}

func TestRoleOf(t *testing.T) {
	ext := func(v []byte) pkix.Extension { return pkix.Extension{Id: RoleOID, Value: v} }
	utf8 := func(s string) []byte { b, _ := asn1.MarshalWithParams(s, "utf8"); return b }
	ia5, _ := asn1.MarshalWithParams("operator", "ia5")
	for _, tc := range []struct {
		name string
		exts []pkix.Extension
		want string
		err  error
	}{
		{"ok/one-role", []pkix.Extension{ext(utf8("operator"))}, "operator", nil},
		{"fail/none", nil, "", errNoRole},
		{"fail/two", []pkix.Extension{ext(utf8("operator")), ext(utf8("viewer"))}, "", errManyRoles},
		{"fail/not-utf8", []pkix.Extension{ext(ia5)}, "", errBadRole},
		{"fail/empty", []pkix.Extension{ext(utf8(""))}, "", errBadRole},
		{"fail/trailing", []pkix.Extension{ext(append(utf8("operator"), 0))}, "", errBadRole},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := RoleOf(&x509.Certificate{Extensions: tc.exts})
			if got != tc.want || !errors.Is(err, tc.err) {
				t.Fatalf("RoleOf: %q %v, want %q %v", got, err, tc.want, tc.err)
			}
		})
	}
}

func TestAuthorize(t *testing.T) {
	rules := []Rule{{PLC: "p", Functions: []int{3, 6}, ranges: [][2]int{{100, 109}}}}
	for _, tc := range []struct {
		name string
		plc  string
		q    request
		want byte
	}{
		{"ok/read-inside", "p", request{Function: 3, Addr: 100, Qty: 10}, 0},
		{"ok/write-inside", "p", request{Function: 6, Addr: 109, Qty: 1}, 0},
		{"fail/straddles-end", "p", request{Function: 3, Addr: 105, Qty: 10}, exIllegalAddress},
		{"fail/below", "p", request{Function: 3, Addr: 99, Qty: 1}, exIllegalAddress},
		{"fail/function", "p", request{Function: 16, Addr: 100, Qty: 1}, exIllegalFunction},
		{"fail/other-plc", "q", request{Function: 3, Addr: 100, Qty: 1}, exIllegalFunction},
		{"fail/no-rules", "p", request{Function: 3, Addr: 100, Qty: 1}, exIllegalFunction},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := rules
			if tc.name == "fail/no-rules" {
				rs = nil
			}
			if got := authorize(rs, tc.plc, tc.q); got != tc.want {
				t.Fatalf("authorize: %#x, want %#x", got, tc.want)
			}
		})
	}
}

// fakeUplink records what a PLC runner publishes.
type fakeUplink struct {
	mu     sync.Mutex
	events []string
}

func (f *fakeUplink) Telemetry(string, any) error { return nil }
func (f *fakeUplink) Event(name string, v any) error {
	b, _ := json.Marshal(v)
	f.mu.Lock()
	f.events = append(f.events, name+" "+string(b))
	f.mu.Unlock()
	return nil
}

// TestCommandGate drives a PLC runner's command handler with envelopes
// signed by a test hub key: only a genuine, fresh, allowed, in-policy,
// representable command writes the register; each refusal is reported
// and leaves the PLC unchanged.
func TestCommandGate(t *testing.T) {
	plc, err := plcsim.Start("127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer plc.Stop()
	hubKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	forged := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{8}, 32))
	max := 1000.0
	model := api.DeviceModel{Name: "pump", Commands: []api.CommandSpec{
		{Name: "set_speed", Params: []api.ParamSpec{{Name: "rpm", Type: api.ParamNumber, Min: new(float64), Max: &max}}},
		{Name: "set_ratio", Params: []api.ParamSpec{{Name: "r", Type: api.ParamNumber, Min: new(float64), Max: &max}}},
		{Name: "set_mode", Params: []api.ParamSpec{{Name: "mode", Type: api.ParamInteger, Min: new(float64), Max: &max}}},
	}}
	y := strings.Replace(validYAML, "address: 127.0.0.1:5020", "address: "+plc.Addr()+"\n    timeout: 200ms", 1)
	y = strings.Replace(y, "unit: rpm}", "unit: rpm, write: {command: set_speed, param: rpm}}", 1)
	y = strings.Replace(y, "    registers:\n", "    model_file: m.json\n    registers:\n      - {name: ratio, function: holding, address: 102, type: uint16, scale: 10, write: {command: set_ratio, param: r}}\n", 1)
	cfg, err := Parse([]byte(y), "gw.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.SetModel("pump-1", model); err != nil {
		t.Fatal(err)
	}
	up := &fakeUplink{}
	r, err := newPLCRunner(&cfg.PLCs[0], "dev_plc", up, hubKey.Public().(ed25519.PublicKey), time.Now, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	seq := uint64(0)
	cmd := func(key ed25519.PrivateKey, name, params string, unsigned bool) *sdk.Command {
		seq++
		now := time.Now()
		env := api.CommandEnvelope{ID: fmt.Sprint("cmd_", seq), DeviceID: "dev_plc", Name: name, Params: []byte(params), Seq: seq,
			Nonce: fmt.Sprint("n", seq), IssuedAt: now.Format(safety.TimeFormat), ExpiresAt: now.Add(time.Minute).Format(safety.TimeFormat)}
		b, _ := safety.Sign(key, &env)
		if unsigned {
			env.Signature = ""
			b, _ = json.Marshal(env)
		}
		return &sdk.Command{ID: env.ID, Name: name, Raw: b}
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		cmd  *sdk.Command
		code string
	}{
		{"fail/unsigned", cmd(hubKey, "set_speed", `{"rpm":10}`, true), safety.CodeBadSignature},
		{"fail/forged", cmd(forged, "set_speed", `{"rpm":10}`, false), safety.CodeBadSignature},
		{"fail/not-on-allow-list", cmd(hubKey, "set_mode", `{"mode":1}`, false), "not_allowed"},
		{"fail/out-of-bounds", cmd(hubKey, "set_speed", `{"rpm":1001}`, false), safety.CodePolicy},
		{"fail/not-representable", cmd(hubKey, "set_ratio", `{"r":15}`, false), "out_of_range"},
		{"ok/written", cmd(hubKey, "set_speed", `{"rpm":321}`, false), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			writes := plc.Writes()
			res, err := r.HandleCommand(ctx, tc.cmd)
			if tc.code == "" {
				if err != nil || plc.Holding(100) != 321 {
					t.Fatalf("%v %v; register %d", res, err, plc.Holding(100))
				}
				return
			}
			var re *sdk.RejectError
			if !errors.As(err, &re) || re.Code != tc.code {
				t.Fatalf("want rejection %s, got %v", tc.code, err)
			}
			if plc.Writes() != writes || plc.Holding(100) != 0 {
				t.Fatal("a refused command reached the PLC")
			}
		})
	}
	// A replay of the written command is refused too.
	if _, err := r.HandleCommand(ctx, &sdk.Command{ID: "x", Name: "set_speed", Raw: cmd(hubKey, "set_speed", `{"rpm":5}`, false).Raw}); err != nil {
		t.Fatal(err)
	}
	up.mu.Lock()
	all := strings.Join(up.events, "\n")
	up.mu.Unlock()
	for _, want := range []string{`"kind":"refused","command_id":"cmd_1","code":"bad_signature"`, `"code":"not_allowed"`, `"code":"policy"`,
		`"code":"out_of_range"`, `"kind":"write"`} {
		if !strings.Contains(all, want) {
			t.Errorf("events lack %s:\n%s", want, all)
		}
	}
}
