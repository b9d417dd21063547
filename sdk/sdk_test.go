package sdk

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
)

func TestQueueDropsOldestAndCounts(t *testing.T) {
	q := newQueue(3)
	for i := 0; i < 5; i++ {
		q.push("t", []byte{byte(i)})
	}
	n, dropped := q.stats()
	if n != 3 || dropped != 2 {
		t.Fatalf("queued %d dropped %d; want 3 and 2", n, dropped)
	}
	got := q.peek(10)
	if len(got) != 3 || got[0].payload[0] != 2 || got[2].payload[0] != 4 {
		t.Fatalf("peek: %+v", got)
	}
	q.ack(got[1].seq)
	if rest := q.peek(10); len(rest) != 1 || rest[0].payload[0] != 4 {
		t.Fatalf("after ack: %+v", rest)
	}
	// Acknowledging messages that were dropped meanwhile removes nothing else.
	for i := 5; i < 9; i++ {
		q.push("t", []byte{byte(i)})
	}
	q.ack(got[2].seq) // already dropped by the overflow
	if rest := q.peek(10); len(rest) != 3 || rest[0].payload[0] != 6 {
		t.Fatalf("after stale ack: %+v", rest)
	}
}

func TestBackoffIsFullJitter(t *testing.T) {
	base, maxWait := 100*time.Millisecond, 2*time.Second
	c := &Client{o: Options{Rand: nil}}
	c.o.Rand = rand.Reader
	for n := 0; n < 40; n++ {
		ceil := min(base<<min(n, 20), maxWait)
		var lo, hi time.Duration = ceil, 0
		for i := 0; i < 200; i++ {
			d := Backoff(n, base, maxWait, c.jitter)
			if d < 0 || d >= ceil {
				t.Fatalf("attempt %d: wait %v outside [0, %v)", n, d, ceil)
			}
			lo, hi = min(lo, d), max(hi, d)
		}
		if hi-lo < ceil/2 { // spread over the whole range, not a fixed step
			t.Fatalf("attempt %d: waits %v..%v are not spread over [0, %v)", n, lo, hi, ceil)
		}
	}
}

func TestCommandChain(t *testing.T) {
	var order []string
	mw := func(name string) Middleware {
		return func(next Handler) Handler {
			return HandlerFunc(func(ctx context.Context, cmd *Command) (any, error) {
				order = append(order, name)
				return next.HandleCommand(ctx, cmd)
			})
		}
	}
	h := Chain(HandlerFunc(func(context.Context, *Command) (any, error) {
		order = append(order, "handler")
		return map[string]int{"ok": 1}, nil
	}), mw("first"), mw("second"))
	ack := runCommand(context.Background(), h, &Command{ID: "c1", Name: "x"})
	if ack.Status != AckDone || string(ack.Result) != `{"ok":1}` || len(order) != 3 || order[0] != "first" || order[2] != "handler" {
		t.Fatalf("ack %+v order %v", ack, order)
	}

	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	deny := Verify(VerifierFunc(func(_ context.Context, cmd *Command) error {
		if cmd.Signature == "" {
			return errors.New("unsigned")
		}
		return nil
	}))
	ran := false
	h = Chain(HandlerFunc(func(context.Context, *Command) (any, error) { ran = true; return nil, nil }), RejectExpired(func() time.Time { return now }), deny)
	cases := []struct {
		name string
		cmd  Command
		want string
		code string
	}{
		{"fail/unsigned", Command{ID: "a", Name: "x"}, AckRejected, "unverified"},
		{"fail/expired", Command{ID: "b", Name: "x", Signature: "s", ExpiresAt: now.Add(-time.Second)}, AckRejected, "expired"},
		{"ok/signed", Command{ID: "c", Name: "x", Signature: "s", ExpiresAt: now.Add(time.Minute)}, AckDone, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ran = false
			ack := runCommand(context.Background(), h, &tc.cmd)
			if ack.Status != tc.want || ack.Code != tc.code || ran != (tc.want == AckDone) {
				t.Fatalf("ack %+v ran %v", ack, ran)
			}
		})
	}
	if ack := runCommand(context.Background(), HandlerFunc(func(context.Context, *Command) (any, error) { return nil, errors.New("valve stuck") }), &Command{ID: "d"}); ack.Status != AckFailed {
		t.Fatalf("failing handler: %+v", ack)
	}
}

func TestParseCommand(t *testing.T) {
	for _, tc := range []struct {
		name, payload string
		ok            bool
	}{
		{"ok/minimal", `{"id":"c-1","name":"set_point","params":{"celsius":21}}`, true},
		{"fail/no-id", `{"name":"x"}`, false},
		{"fail/bad-id", `{"id":"../x","name":"x"}`, false},
		{"fail/not-json", `set_point 21`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseCommand("devices/d/commands", []byte(tc.payload))
			if (err == nil) != tc.ok {
				t.Fatalf("err %v", err)
			}
		})
	}
}

func FuzzParseCommand(f *testing.F) {
	f.Add([]byte(`{"id":"c-1","name":"set_point","params":{"celsius":21}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		cmd, err := parseCommand("devices/d/commands", b)
		if err == nil && (cmd.ID == "" || cmd.Name == "") {
			t.Fatal("accepted a command without id or name")
		}
	})
}

func TestEncodings(t *testing.T) {
	type r struct {
		Celsius float64 `json:"celsius" cbor:"celsius"`
	}
	b, err := CBOR.marshal(r{Celsius: 21.5})
	if err != nil || b[0]>>5 != 5 { // a CBOR map, which the hub detects
		t.Fatalf("cbor %x %v", b, err)
	}
	var back r
	if err := cbor.Unmarshal(b, &back); err != nil || back.Celsius != 21.5 {
		t.Fatal(err)
	}
	if b, _ := JSON.marshal(r{Celsius: 21.5}); string(b) != `{"celsius":21.5}` {
		t.Fatalf("json %s", b)
	}
	for _, bad := range []string{"", "a//b", "a/+", "#", "x y"} {
		if validName(bad) == nil {
			t.Errorf("name %q accepted", bad)
		}
	}
}

func TestTrustNeverSystemRoots(t *testing.T) {
	if _, err := newAnchor(Trust{}); !errors.Is(err, ErrNoTrust) {
		t.Fatalf("empty trust: %v", err)
	}
	if _, err := newAnchor(Trust{Fingerprint: "sha256:abcd"}); err == nil {
		t.Fatal("a short fingerprint was accepted")
	}
	a, err := newAnchor(Trust{Fingerprint: "sha256:" + string(make([]byte, 0)) + "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := a.tlsConfig("hub.example", time.Now, nil)
	if cfg.VerifyConnection == nil || cfg.RootCAs != nil {
		t.Fatal("fingerprint trust has no verifier")
	}
	// A chain without the fingerprinted CA is refused.
	if err := a.verify(tls.ConnectionState{PeerCertificates: []*x509.Certificate{{}}}, "hub.example", time.Now()); err == nil {
		t.Fatal("verified a chain without the pinned CA")
	}
	if _, err := hostOf("http://hub.example:8443"); err == nil {
		t.Fatal("a plaintext hub URL was accepted")
	}
}

func TestQueueGrowsToCapacity(t *testing.T) {
	q := newQueue(100)
	for i := 0; i < 250; i++ {
		q.push("t", []byte{byte(i)})
		if i == 40 {
			q.ack(q.peek(5)[4].seq) // remove five from the front mid-growth
		}
	}
	n, dropped := q.stats()
	if n != 100 || dropped != 250-5-100 || len(q.buf) != 100 {
		t.Fatalf("queued %d dropped %d buf %d", n, dropped, len(q.buf))
	}
	got := q.peek(100)
	for i, m := range got {
		if m.payload[0] != byte(150+i) {
			t.Fatalf("order broken at %d: %d", i, m.payload[0])
		}
	}
}
