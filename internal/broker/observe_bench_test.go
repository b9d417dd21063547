package broker

import (
	"fmt"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/rampart-iot/rampart/internal/posture"
)

// detectObserver feeds the broker's observations to a real detector, as
// internal/app does.
type detectObserver struct{ d *posture.Detector }

func (o detectObserver) ObserveMQTT(ev Observation) {
	if ev.Kind == ObservedPublish {
		o.d.Observe(posture.Sample{Kind: posture.SamplePublish, DeviceID: ev.DeviceID, TenantID: ev.TenantID, Topic: ev.Topic, Bytes: ev.Bytes})
	}
}

// BenchmarkDetectOverhead measures delivered QoS 0 throughput with anomaly
// detection off and on, side by side in one run (compare the ratio).
func BenchmarkDetectOverhead(b *testing.B) {
	for _, on := range []bool{false, true, false, true} {
		b.Run(fmt.Sprintf("detect=%v", on), func(b *testing.B) {
			const devices = 20
			e := newEnv(b, Limits{PublishPerSec: 1e9, PublishBurst: 1 << 30, BytesPerSec: 1e12, NewConnsPerIPPerSec: 1e9, NewConnsBurst: 1 << 30})
			if on {
				det := posture.NewDetector(posture.DetectOptions{Window: time.Second})
				stop := make(chan struct{})
				go det.Run(stop)
				defer close(stop)
				e.b.o.Observer = detectObserver{d: det}
			}
			e.app("app", "t", "tok")
			got := make(chan struct{}, 1<<16)
			app := e.paho("app", nil, "app", "tok")
			app.Subscribe("devices/#", 0, func(paho.Client, paho.Message) { got <- struct{}{} }).WaitTimeout(5 * time.Second)
			clients := make([]paho.Client, devices)
			for i := range clients {
				id := fmt.Sprintf("d%d", i)
				leaf := e.device(id, "t")
				clients[i] = e.paho(id, &leaf.TLS, "", "")
			}
			b.ResetTimer()
			per := b.N/devices + 1
			var wg sync.WaitGroup
			for i, c := range clients {
				wg.Add(1)
				go func(i int, c paho.Client) {
					defer wg.Done()
					topic := fmt.Sprintf("devices/d%d/telemetry/t", i)
					for j := 0; j < per; j++ {
						c.Publish(topic, 0, false, `{"t":21.5}`)
					}
				}(i, c)
			}
			wg.Wait()
			n, want := 0, per*devices
			timeout := time.After(30 * time.Second)
		loop:
			for n < want {
				select {
				case <-got:
					n++
				case <-timeout:
					break loop
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "delivered/s")
		})
	}
}
