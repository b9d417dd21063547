package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/telemetry"
	"github.com/rampart-iot/rampart/internal/testkit"
)

func TestTelemetryIngestBatchesListsAndExpires(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	clock := testkit.NewClock(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC))
	g, err := telemetry.New(telemetry.Options{Store: db.Telemetry(), Now: clock.Now, BatchSize: 100, FlushEvery: 20 * time.Millisecond, Retention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	g.Start()
	for i := 0; i < 1200; i++ {
		g.Ingest(telemetry.Message{TenantID: "tA", DeviceID: "d1", Topic: "devices/d1/telemetry/t", Payload: []byte(fmt.Sprintf(`{"n":%d}`, i)), Received: clock.Now()})
	}
	g.Ingest(telemetry.Message{TenantID: "tA", DeviceID: "d1", Topic: "devices/d1/telemetry/cbor", Payload: []byte{0xa1, 0x61, 0x6e, 0x01}, Received: clock.Now()})
	g.Ingest(telemetry.Message{TenantID: "tA", DeviceID: "d1", Topic: "devices/d1/telemetry/raw", Payload: []byte{0x00, 0xff}, Received: clock.Now()})
	g.Close()

	msgs, err := g.List(ctx, "tA", "d1", 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 5 || msgs[2].ContentType != "application/json" || msgs[3].ContentType != "application/cbor" || msgs[4].ContentType != "application/octet-stream" {
		t.Fatalf("newest five: %+v", msgs)
	}
	if string(msgs[2].Payload) != `{"n":1199}` || !(msgs[0].Seq < msgs[4].Seq) {
		t.Fatalf("order: %s first seq %d last seq %d", msgs[2].Payload, msgs[0].Seq, msgs[4].Seq)
	}
	all, _ := g.List(ctx, "tA", "d1", 0)
	if len(all) != telemetry.MaxListLimit {
		t.Fatalf("unbounded list returned %d", len(all))
	}
	if other, _ := g.List(ctx, "tB", "d1", 10); len(other) != 0 {
		t.Fatalf("another tenant read %d messages of d1", len(other))
	}
	clock.Advance(2 * time.Hour)
	if n, err := g.Sweep(ctx); err != nil || n != 1202 {
		t.Fatalf("retention sweep deleted %d (%v), want 1202", n, err)
	}
}

func BenchmarkTelemetryInsertBatch(b *testing.B) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(b.TempDir(), "t.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	batch := make([]telemetry.Message, 500)
	for i := range batch {
		batch[i] = telemetry.Message{TenantID: "t", DeviceID: "d", Topic: "devices/d/telemetry/t", Payload: []byte(`{"temp":21.5,"hum":40}`), ContentType: "application/json", Received: time.Now()}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := db.Telemetry().InsertBatch(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "msgs/s")
}
