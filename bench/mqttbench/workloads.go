package main

import (
	"encoding/binary"
	"fmt"
	"math"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// plan is the sizes and timing of one run.
type plan struct {
	reps       int           // measured repetitions
	window     time.Duration // one repetition
	warmup     time.Duration // excluded before the first repetition
	dialers    []int         // concurrent handshake dialers
	publishers int           // throughput publishers (one subscriber)
	scale      []int         // fan-in device counts
	fanWindow  time.Duration // one fan-in repetition (>= the publish period)
	period     time.Duration // each fan-in device publishes once per period
	idle       time.Duration // connected and idle before RSS is read
}

// sample holds one figure's repetitions.
type sample []float64

func (s sample) stats() (med, lo, hi float64) {
	if len(s) == 0 {
		return math.NaN(), math.NaN(), math.NaN()
	}
	c := append(sample(nil), s...)
	sort.Float64s(c)
	return c[len(c)/2], c[0], c[len(c)-1]
}

// measure runs warm-up then reps windows, returning each window's count
// delta divided by its length (per second).
func (pl plan) measure(count func() int64, window time.Duration, each func(r int)) sample {
	time.Sleep(pl.warmup)
	var out sample
	for r := 0; r < pl.reps; r++ {
		if each != nil {
			each(r)
		}
		c0, t0 := count(), time.Now()
		time.Sleep(window)
		out = append(out, float64(count()-c0)/time.Since(t0).Seconds())
	}
	if each != nil {
		each(-1)
	}
	return out
}

// handshakes: dialers loop TCP connect + TLS 1.3 with a P-256 client
// certificate + CONNECT/CONNACK + DISCONNECT, each time as the next device
// identity. Returns handshakes/s per repetition and the broker's CPU time
// per handshake.
func handshakes(s *server, p *pkiSet, pl plan, dialers int) (sample, sample, error) {
	var done, fails atomic.Int64
	var next atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for w := 0; w < dialers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				i := int(next.Add(1)) % len(p.devices)
				c, err := dial(s.addr, p.clientTLS(&p.devices[i]), deviceID(i), "", "", 60)
				if err != nil {
					fails.Add(1)
					firstErr.CompareAndSwap(nil, err)
					time.Sleep(10 * time.Millisecond)
					continue
				}
				c.disconnect()
				done.Add(1)
			}
		}()
	}
	var cpu sample
	var cpu0 time.Duration
	var n0 int64
	rates := pl.measure(done.Load, pl.window, func(r int) {
		if r > 0 || r == -1 {
			cpu = append(cpu, float64(s.cpuTime()-cpu0)/float64(time.Microsecond)/float64(done.Load()-n0))
		}
		cpu0, n0 = s.cpuTime(), done.Load()
	})
	stop.Store(true)
	wg.Wait()
	time.Sleep(500 * time.Millisecond) // let the broker close the last sessions
	if f := fails.Load(); f > 0 {
		return rates, cpu, fmt.Errorf("%d failed handshakes, first: %v", f, firstErr.Load())
	}
	return rates, cpu, nil
}

func dialSubscriber(s *server, p *pkiSet) (*conn, error) {
	if s.subCert {
		return dial(s.addr, p.clientTLS(&p.app), "app", "", "", 300)
	}
	// A fresh client ID per phase (the hub binds none for applications):
	// reusing "app" right after the last phase's DISCONNECT sometimes left
	// the new session without its subscription (see docs/performance.md).
	return dial(s.addr, p.clientTLS(nil), fmt.Sprintf("app-%d", subSeq.Add(1)), s.subUser, s.subPass, 300)
}

var subSeq atomic.Int64

// subscriber reads PUBLISHes, acknowledges QoS 1 in batches and calls
// onMsg with each payload.
func runSubscriber(c *conn, onMsg func([]byte)) {
	var acks []byte
	for {
		typ, body, err := c.read()
		if err != nil {
			return
		}
		if typ>>4 != 3 {
			continue
		}
		payload, id, ok := parsePublish(typ, body)
		if !ok {
			continue
		}
		onMsg(payload)
		if (typ>>1)&3 > 0 {
			acks = append(acks, 0x40, 2, byte(id>>8), byte(id))
		}
		if len(acks) > 0 && (c.r.Buffered() == 0 || len(acks) > 4096) {
			if c.write(acks) != nil {
				return
			}
			acks = acks[:0]
		}
	}
}

// throughput: M devices publish flat out to devices/ID/telemetry/t, one
// application subscribes to devices/#; counted as delivered to it.
func throughput(s *server, p *pkiSet, pl plan, qos byte, size, base int) (sample, error) {
	sub, err := dialSubscriber(s, p)
	if err != nil {
		return nil, fmt.Errorf("subscriber: %w", err)
	}
	if err := sub.subscribe("devices/#", qos); err != nil {
		return nil, err
	}
	var delivered atomic.Int64
	go runSubscriber(sub, func([]byte) { delivered.Add(1) })
	var stop atomic.Bool
	var wg sync.WaitGroup
	var pubs []*conn
	done := make(chan struct{})
	defer func() {
		stop.Store(true)
		close(done)
		for _, c := range pubs {
			c.c.Close()
		}
		wg.Wait()
		sub.disconnect()
	}()
	for i := base; i < base+pl.publishers; i++ {
		c, err := dial(s.addr, p.clientTLS(&p.devices[i]), deviceID(i), "", "", 300)
		if err != nil {
			return nil, fmt.Errorf("publisher %d: %w", i, err)
		}
		pubs = append(pubs, c)
		topic := "devices/" + deviceID(i) + "/telemetry/t"
		payload := make([]byte, size)
		for k := 8; k < size; k++ {
			payload[k] = 'x'
		}
		window := make(chan struct{}, 64) // QoS 1: at most 64 in flight (the hub's receive maximum)
		if qos > 0 {
			go func() {
				for {
					typ, _, err := c.read()
					if err != nil {
						return
					}
					if typ>>4 == 4 {
						select {
						case <-window:
						default:
						}
					}
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var id uint16
			buf := make([]byte, 0, 16*(size+len(topic)+8))
			for !stop.Load() {
				buf = buf[:0]
				// Up to 8 messages per write for QoS 0 (a pipelining
				// client); for QoS 1, as many as the window allows.
				for k := 0; k < 8; k++ {
					if qos > 0 {
						if k == 0 {
							select {
							case window <- struct{}{}:
							case <-done:
								return
							}
						} else {
							select {
							case window <- struct{}{}:
							default:
								k = 8
								continue
							}
						}
						id++
						if id == 0 {
							id = 1
						}
					}
					stamp(payload)
					buf = append(buf, publishPacket(topic, qos, id, payload)...)
				}
				if err := c.write(buf); err != nil {
					return
				}
				// Leave the CPU to the subscriber's reader in this process
				// too: flat-out publishers would starve it, and the figure
				// would measure the load generator's scheduling.
				runtime.Gosched()
			}
		}()
	}
	return pl.measure(delivered.Load, pl.window, nil), nil
}

// fanResult is one fan-in run.
type fanResult struct {
	rate, p50, p99, p999 sample // per repetition; latencies in ms
	rssPerConn           float64
	rssBefore, rssAfter  int64
	connectSecs          float64
}

// fanIn connects n devices (recording the broker's RSS before and after,
// idle), then has each publish a QoS 1 message every period, spread evenly;
// one application subscribed to devices/# receives them.
func fanIn(s *server, p *pkiSet, pl plan, n int, dumpHeap bool) (*fanResult, error) {
	res := &fanResult{}
	sub, err := dialSubscriber(s, p)
	if err != nil {
		return nil, fmt.Errorf("subscriber: %w", err)
	}
	defer sub.disconnect()
	if err := sub.subscribe("devices/#", fanQoS); err != nil {
		return nil, err
	}
	var mu sync.Mutex
	var lats []float64
	var delivered atomic.Int64
	recording := false
	go runSubscriber(sub, func(pl []byte) {
		d := float64(time.Now().UnixNano()-int64(binary.BigEndian.Uint64(pl))) / 1e6
		delivered.Add(1)
		mu.Lock()
		if recording {
			lats = append(lats, d)
		}
		mu.Unlock()
	})
	time.Sleep(500 * time.Millisecond)
	if res.rssBefore, err = s.rss(); err != nil {
		return nil, err
	}
	idle := pl.idle // let the handshakes' garbage be collected; then read RSS idle
	if n < 1000 {
		idle = 300 * time.Millisecond
	}
	conns := make([]*conn, n)
	t0 := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				c, err := dial(s.addr, p.clientTLS(&p.devices[i]), deviceID(i), "", "", 300)
				if err != nil {
					firstErr.CompareAndSwap(nil, fmt.Errorf("device %d: %w", i, err))
					return
				}
				conns[i] = c
				go func() { // drain PUBACKs
					for {
						if _, _, err := c.read(); err != nil {
							return
						}
					}
				}()
			}
		}()
	}
	wg.Wait()
	defer func() {
		var cw sync.WaitGroup
		for k := 0; k < 16; k++ {
			cw.Add(1)
			go func(k int) {
				defer cw.Done()
				for i := k; i < n; i += 16 {
					if conns[i] != nil {
						conns[i].disconnect()
					}
				}
			}(k)
		}
		cw.Wait()
		time.Sleep(idle) // let the broker release them
	}()
	if e := firstErr.Load(); e != nil {
		return nil, e.(error)
	}
	res.connectSecs = time.Since(t0).Seconds()
	time.Sleep(idle)
	if res.rssAfter, err = s.rss(); err != nil {
		return nil, err
	}
	res.rssPerConn = float64(res.rssAfter-res.rssBefore) / float64(n)
	if dumpHeap && s.name == "hub" {
		s.cmd.Process.Signal(syscall.SIGUSR1) // the hub writes heap-idle.pprof and its MemStats
		time.Sleep(time.Second)
	}

	// Publishing: 16 shards, device i at offset i/n of the period.
	var stop atomic.Bool
	var pw sync.WaitGroup
	start := time.Now()
	for k := 0; k < 16; k++ {
		pw.Add(1)
		go func(k int) {
			defer pw.Done()
			payload := make([]byte, 64)
			ids := map[int]uint16{}
			for round := 0; !stop.Load(); round++ {
				for i := k; i < n && !stop.Load(); i += 16 {
					at := start.Add(time.Duration(round)*pl.period + pl.period*time.Duration(i)/time.Duration(n))
					if d := time.Until(at); d > 0 {
						time.Sleep(d)
					}
					ids[i]++
					if ids[i] == 0 {
						ids[i] = 1
					}
					stamp(payload)
					_ = conns[i].write(publishPacket("devices/"+deviceID(i)+"/telemetry/t", fanQoS, ids[i], payload))
				}
			}
		}(k)
	}
	res.rate = pl.measure(delivered.Load, pl.fanWindow, func(r int) {
		mu.Lock()
		defer mu.Unlock()
		if len(lats) > 0 {
			sort.Float64s(lats)
			q := func(f float64) float64 { return lats[min(len(lats)-1, int(f*float64(len(lats))))] }
			res.p50 = append(res.p50, q(0.50))
			res.p99 = append(res.p99, q(0.99))
			res.p999 = append(res.p999, q(0.999))
		}
		lats = lats[:0]
		recording = r >= 0
	})
	stop.Store(true)
	pw.Wait()
	return res, nil
}

// fanQoS is the QoS of fan-in publishes and of the subscription.
var fanQoS byte = 1
