package gateway

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/gateway/plcsim"
	"github.com/rampart-iot/rampart/sdk"
	"github.com/rampart-iot/rampart/sdk/safety"
)

func benchRunner(b *testing.B) (*plcRunner, *plcsim.PLC) {
	plc, err := plcsim.Start("127.0.0.1:0", 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(plc.Stop)
	y := strings.Replace(validYAML, "address: 127.0.0.1:5020", "address: "+plc.Addr()+"\n    model_file: m.json", 1)
	y = strings.Replace(y, "unit: rpm}", "unit: rpm, write: {command: set_speed, param: rpm}}", 1)
	cfg, err := Parse([]byte(y), "gw.yaml")
	if err != nil {
		b.Fatal(err)
	}
	max := 1e6
	if err := cfg.SetModel("pump-1", api.DeviceModel{Name: "pump", Commands: []api.CommandSpec{
		{Name: "set_speed", Params: []api.ParamSpec{{Name: "rpm", Type: api.ParamNumber, Min: new(float64), Max: &max}}}}}); err != nil {
		b.Fatal(err)
	}
	r, err := newPLCRunner(&cfg.PLCs[0], "dev_plc", &fakeUplink{}, benchKey.Public().(ed25519.PublicKey), time.Now, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(r.close)
	return r, plc
}

var benchKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))

// BenchmarkPoll reads a two-register map from a PLC on loopback; the
// figure is registers read per second by one gateway from one PLC (PLCs
// are polled in parallel, one link each).
func BenchmarkPoll(b *testing.B) {
	r, _ := benchRunner(b)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if _, err := r.poll(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(r.reads.Load())/b.Elapsed().Seconds(), "registers/s")
}

// BenchmarkCommandWrite is what the gateway adds to a command: parse, the
// allow-list, the Guard (Ed25519 verify, freshness, sequence, policy),
// encoding and the Modbus write on loopback.
func BenchmarkCommandWrite(b *testing.B) {
	r, plc := benchRunner(b)
	ctx := context.Background()
	cmds := make([]*sdk.Command, b.N+1)
	now := time.Now()
	for i := range cmds {
		env := api.CommandEnvelope{ID: fmt.Sprint("cmd_", i+1), DeviceID: "dev_plc", Name: "set_speed", Params: []byte(fmt.Sprintf(`{"rpm":%d}`, i%60000)),
			Seq: uint64(i + 1), Nonce: fmt.Sprint("n", i), IssuedAt: now.Format(safety.TimeFormat), ExpiresAt: now.Add(time.Hour).Format(safety.TimeFormat)}
		raw, _ := safety.Sign(benchKey, &env)
		cmds[i] = &sdk.Command{ID: env.ID, Name: env.Name, Raw: raw}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := r.HandleCommand(ctx, cmds[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if plc.Writes() < b.N {
		b.Fatalf("%d writes for %d commands", plc.Writes(), b.N)
	}
}
