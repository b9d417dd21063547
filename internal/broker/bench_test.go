package broker

import (
	"crypto/tls"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// BenchmarkMTLSConnect measures full device connections (TCP, TLS 1.3
// handshake with a P-256 client certificate, CONNECT/CONNACK) per second,
// with 1 and 8 concurrent dialers.
func BenchmarkMTLSConnect(b *testing.B) {
	for _, dialers := range []int{1, 8} {
		b.Run(fmt.Sprintf("dialers=%d", dialers), func(b *testing.B) {
			e := newEnv(b, Limits{NewConnsPerIPPerSec: 1e9, NewConnsBurst: 1 << 30, MaxConnsPerIP: 1 << 20, FlapMaxConnects: 1 << 30})
			leaves := make([]tls.Certificate, dialers)
			for i := range leaves {
				leaves[i] = e.device(fmt.Sprintf("d%d", i), "t").TLS
			}
			b.ResetTimer()
			var wg sync.WaitGroup
			per := b.N/dialers + 1
			for w := 0; w < dialers; w++ {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					for i := 0; i < per; i++ {
						c, err := tls.Dial("tcp", e.addr, e.tlsConfig(&leaves[w]))
						if err != nil {
							b.Error(err)
							return
						}
						r := &raw{t: b, c: c}
						r.r = newReader(c)
						if code := r.connack(connectPacket(4, fmt.Sprintf("d%d", w))); code != 0 {
							b.Errorf("connack 0x%x", code)
						}
						c.Close()
					}
				}(w)
			}
			wg.Wait()
			b.ReportMetric(float64(per*dialers)/b.Elapsed().Seconds(), "connects/s")
		})
	}
}

// BenchmarkThroughput: M devices publish to their telemetry topics, one
// application subscribes to devices/#; counted as messages delivered to the
// subscriber; latency from publish to delivery.
func BenchmarkThroughput(b *testing.B) {
	for _, qos := range []byte{0, 1} {
		b.Run(fmt.Sprintf("qos=%d", qos), func(b *testing.B) {
			const devices = 50
			e := newEnv(b, Limits{PublishPerSec: 1e9, PublishBurst: 1 << 30, BytesPerSec: 1e12, NewConnsPerIPPerSec: 1e9, NewConnsBurst: 1 << 30})
			e.app("app", "t", "tok")
			var mu sync.Mutex
			var lat []time.Duration
			got := make(chan struct{}, 1<<16)
			app := e.paho("app", nil, "app", "tok")
			app.Subscribe("devices/#", qos, func(_ paho.Client, m paho.Message) {
				var ns int64
				fmt.Sscanf(string(m.Payload()), "%d", &ns)
				mu.Lock()
				lat = append(lat, time.Since(time.Unix(0, ns)))
				mu.Unlock()
				got <- struct{}{}
			}).WaitTimeout(5 * time.Second)
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
						tok := c.Publish(topic, qos, false, fmt.Sprint(time.Now().UnixNano()))
						if qos > 0 {
							tok.Wait()
						}
					}
				}(i, c)
			}
			wg.Wait()
			want := per * devices
			timeout := time.After(30 * time.Second)
			n := 0
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
			b.ReportMetric(float64(n)/float64(want), "delivered_ratio")
			mu.Lock()
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			if len(lat) > 0 {
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50_us")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99_us")
			}
			mu.Unlock()
		})
	}
}
