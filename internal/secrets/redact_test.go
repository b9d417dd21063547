package secrets

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

const secretValue = "hunter2-s3cr3t"

func TestRedactedTypesPrintRedacted(t *testing.T) {
	text := Text(secretValue)
	byts := Bytes(secretValue)
	type holder struct {
		T  Text
		B  Bytes
		PT *Text
	}
	h := holder{T: text, B: byts, PT: &text}
	hexSecret := fmt.Sprintf("%x", secretValue)

	var outputs []struct{ name, out string }
	add := func(name, out string) { outputs = append(outputs, struct{ name, out string }{name, out}) }

	for _, v := range []any{text, byts} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10s", "%-20v", "%T"} {
			out := fmt.Sprintf(verb, v)
			if verb == "%T" {
				continue // the type name is fine
			}
			if out != Redacted {
				t.Errorf("fmt %s of %T = %q, want %q", verb, v, out, Redacted)
			}
			add(fmt.Sprintf("fmt %s %T", verb, v), out)
		}
	}
	add("String", text.String()+byts.String())
	add("GoString", text.GoString()+byts.GoString())
	add("Sprint", fmt.Sprint(text, byts))
	add("Println", fmt.Sprintln(text, byts))
	add("struct %+v", fmt.Sprintf("%+v", h))
	add("struct %#v", fmt.Sprintf("%#v", h))
	add("slice", fmt.Sprintf("%v %x", []Text{text}, []Bytes{byts}))

	j, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"T":"[REDACTED]","B":"[REDACTED]","PT":"[REDACTED]"}`; string(j) != want {
		t.Errorf("json = %s, want %s", j, want)
	}
	add("json", string(j))
	tm, _ := text.MarshalText()
	bm, _ := byts.MarshalText()
	if string(tm) != Redacted || string(bm) != Redacted {
		t.Errorf("MarshalText = %q, %q", tm, bm)
	}

	for _, handler := range []struct {
		name string
		new  func(*bytes.Buffer) slog.Handler
	}{
		{"text", func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) }},
		{"json", func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) }},
	} {
		var buf bytes.Buffer
		log := slog.New(handler.new(&buf))
		log.Info("login", "password", text, "key", byts, "holder", h, slog.Any("ptr", &text), slog.Group("g", "t", text))
		out := buf.String()
		if strings.Count(out, Redacted) < 5 {
			t.Errorf("slog %s: %q, want [REDACTED] for each attribute", handler.name, out)
		}
		add("slog "+handler.name, out)
	}

	for _, o := range outputs {
		if strings.Contains(o.out, secretValue) || strings.Contains(o.out, hexSecret) ||
			strings.Contains(o.out, strings.ToUpper(hexSecret)) || strings.Contains(o.out, fmt.Sprint([]byte(secretValue))) {
			t.Errorf("%s leaks the secret: %q", o.name, o.out)
		}
	}
}

func TestRedactedTypesRevealAndEqual(t *testing.T) {
	tests := []struct {
		name string
		a, b string
		want bool
	}{
		{"ok/equal", "abc", "abc", true},
		{"ok/both-empty", "", "", true},
		{"fail/different", "abc", "abd", false},
		{"fail/prefix", "abc", "abcd", false},
		{"fail/empty-vs-value", "", "a", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Text(tt.a).Equal(Text(tt.b)); got != tt.want {
				t.Errorf("Text.Equal = %v", got)
			}
			if got := Bytes(tt.a).Equal(Bytes(tt.b)); got != tt.want {
				t.Errorf("Bytes.Equal = %v", got)
			}
		})
	}
	if Text(secretValue).Reveal() != secretValue || string(Bytes(secretValue).Reveal()) != secretValue {
		t.Fatal("Reveal does not return the value")
	}
	var cfg struct {
		Token Text
		Seed  Bytes
	}
	if err := json.Unmarshal([]byte(`{"Token":"tok","Seed":"seed"}`), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Token.Reveal() != "tok" || string(cfg.Seed.Reveal()) != "seed" {
		t.Fatalf("decoded %q %q", cfg.Token.Reveal(), cfg.Seed.Reveal())
	}
}
