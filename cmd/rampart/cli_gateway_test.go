package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGatewayCheck: `rampart gateway --check` accepts a valid gw.yaml
// (reading the model it names) and refuses a bad one with file:line:column
// and the field.
func TestGatewayCheck(t *testing.T) {
	dir := t.TempDir()
	model := `{"name":"pump-plc","commands":[{"name":"set_speed","params":[{"name":"rpm","type":"number","min":0,"max":1000}]}]}`
	if err := os.WriteFile(filepath.Join(dir, "pump.json"), []byte(model), 0o600); err != nil {
		t.Fatal(err)
	}
	good := `name: gw-1
hub: {url: "https://127.0.0.1:8443", mqtt: "127.0.0.1:8883", ca_file: ca.pem, command_key_file: ck.json}
state: {dir: state, key_file: state.key}
plcs:
  - name: pump-1
    address: 10.0.0.5:502
    model_file: pump.json
    registers:
      - {name: speed, function: holding, address: 100, type: uint16, unit: rpm, write: {command: set_speed, param: rpm}}
`
	for _, tc := range []struct {
		name, yaml, want string
		code             int
	}{
		{"ok/valid", good, "configuration is valid (1 PLCs)", 0},
		{"fail/unknown-command", strings.Replace(good, "command: set_speed", "command: set_sped", 1), "model \"pump-plc\" does not declare", 1},
		{"fail/bad-address", strings.Replace(good, "10.0.0.5:502", "10.0.0.5", 1), "gw.yaml:6:14: plcs.0.address", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "gw.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			var out, errb bytes.Buffer
			code := run([]string{"gateway", "--config", path, "--check"}, &out, &errb)
			if code != tc.code || !strings.Contains(out.String()+errb.String(), tc.want) {
				t.Fatalf("exit %d, out %q err %q; want %d and %q", code, out.String(), errb.String(), tc.code, tc.want)
			}
		})
	}
}
