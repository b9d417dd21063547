package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDeviceSimRefusesUnsafeInput(t *testing.T) {
	dir := t.TempDir()
	loose := filepath.Join(dir, "claim")
	if err := os.WriteFile(loose, []byte("rpc_x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"fail/no-trust-anchor", []string{"--claim-file", loose}, "never trusted on the system roots"},
		{"fail/readable-claim-file", []string{"--ca", ca, "--claim-file", loose}, "chmod 600"},
		{"fail/bad-source-addrs", []string{"--ca", ca, "--source-addrs", "localhost"}, "not an IPv4 address"},
		{"fail/bad-ca", []string{"--ca", ca, "--state", filepath.Join(dir, "s"), "--count", "1"}, "CA bundle"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(append([]string{"device-sim"}, tc.args...), &out, &errb)
			if code == 0 || !strings.Contains(errb.String(), tc.want) {
				t.Fatalf("exit %d, stderr %q; want a refusal mentioning %q", code, errb.String(), tc.want)
			}
		})
	}
}
