package config

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzLoad feeds arbitrary bytes as the config file. Loading never panics,
// and any file it accepts gives a config that passes Validate and comes back
// unchanged through YAML.
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.yaml")
	for _, s := range seeds {
		if b, err := os.ReadFile(s); err == nil {
			f.Add(b)
		}
	}
	for _, s := range []string{
		"", "---\n", "~\n", "https:\n  addr: 127.0.0.1:0\n", "tls:\n  min_version: 1.2\n",
		"https:\n  hostnames: [a.example, 192.0.2.1, \"::1\"]\n",
		"a: &a [x, x]\nb: [*a, *a]\n", "https: {addr: \"[::1]:1\"}\n", "log:\n  level: info\n---\n",
		"journal:\n  checkpoint_every: 0x10\n", "setup:\n  code_ttl: 1h30m\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFileBytes {
			return
		}
		c := Default()
		if errs := c.loadYAML("fuzz.yaml", data); len(errs) > 0 {
			return
		}
		if err := c.Validate(); err != nil {
			return
		}
		out, err := c.YAML()
		if err != nil {
			t.Fatalf("YAML of an accepted config: %v", err)
		}
		back := Default()
		if errs := back.loadYAML("out.yaml", out); len(errs) > 0 {
			t.Fatalf("YAML output does not load: %v\n%s", errs, out)
		}
		if err := back.Validate(); err != nil {
			t.Fatalf("YAML output does not validate: %v\n%s", err, out)
		}
		back.origins, c.origins = nil, nil
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("round trip changed the config:\n got  %+v\n want %+v\n%s", back, c, out)
		}
	})
}
