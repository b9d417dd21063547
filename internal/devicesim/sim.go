// Package devicesim runs a fleet of simulated thermostats and valves
// against a hub, through the public device SDK only (sdk, sdk/keystore,
// api): each simulated device has its own keystore, enrolls with a token
// or a claim, connects over mutual TLS, publishes plausible readings at a
// chosen rate and answers commands. It is the engine behind
// `rampart device-sim`, the README walkthrough and the fleet benchmarks.
package devicesim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/rampart-iot/rampart/sdk"
	"github.com/rampart-iot/rampart/sdk/keystore"
)

// Config describes a simulated fleet.
type Config struct {
	Hub   string    // https://HOST:PORT
	MQTT  string    // HOST:PORT
	Trust sdk.Trust // the hub's CA bundle or fingerprint

	Count  int      // devices
	Tokens []string // one enrollment token per device, or
	Claim  string   // a claim token for all of them (serials SerialPrefix0001...)

	SerialPrefix string        // default "SIM-"
	Rate         float64       // readings per second per device (default 0.2)
	StateDir     string        // keystores live here (required)
	SourceAddrs  []net.IP      // MQTT source addresses, round-robin (models a fleet behind several NATs)
	Encoding     sdk.Encoding  // JSON or CBOR
	Enrollers    int           // concurrent enrollments (default 8)
	BackoffBase  time.Duration // 0: the SDK default
	BackoffMax   time.Duration // 0: the SDK default
	QueueSize    int           // 0: the SDK default
	Seed         uint64        // physics randomness (0: time-based)

	// Bot mode (for detection demos and tests): BotAfter after Start, the
	// devices whose index is in BotDevices turn into bots: every interval
	// they publish BotBurst readings, each to a new topic (a burst fanned
	// out like a scanner or a DDoS participant), still within their
	// credentials, so only behaviour monitoring can tell.
	BotAfter   time.Duration
	BotDevices []int
	BotBurst   int // default 40
}

// Fleet is a running simulated fleet.
type Fleet struct {
	cfg     Config
	devices []*simDevice
	started time.Time

	mu         sync.Mutex
	reconnects []Reconnect

	heapBefore, heapAfter uint64
	goroutines            int
}

type simDevice struct {
	attempts []time.Time // connection attempts, for the restart figures
	name     string
	model    model
	dev      *sdk.Device
	client   *sdk.Client
	sent     atomic.Uint64

	mu     sync.Mutex
	up     int
	lostAt time.Time
}

// Reconnect is one device coming back after losing its session.
type Reconnect struct {
	Device         string
	LostAt, BackAt time.Time
}

// Counts are a fleet's totals.
type Counts struct {
	Devices, Online              int
	Sent, Acked, Dropped, Queued uint64
	Connects, Attempts, Commands uint64
	Reconnects                   int
	HeapPerDeviceBytes           float64
	GoroutinesPerDevice          float64
}

func (c *Config) defaults() error {
	if c.BotBurst <= 0 {
		c.BotBurst = 40
	}
	if c.Count <= 0 {
		return errors.New("count must be at least 1")
	}
	if c.StateDir == "" {
		return errors.New("a state folder for the keystores is required")
	}
	if err := c.Trust.Validate(); err != nil {
		return err
	}
	if len(c.Tokens) > 0 && len(c.Tokens) < c.Count && c.Claim == "" {
		return fmt.Errorf("%d devices but only %d enrollment tokens", c.Count, len(c.Tokens))
	}
	if c.SerialPrefix == "" {
		c.SerialPrefix = "SIM-"
	}
	if c.Rate <= 0 {
		c.Rate = 0.2
	}
	if c.Enrollers <= 0 {
		c.Enrollers = 8
	}
	if c.Seed == 0 {
		c.Seed = uint64(time.Now().UnixNano())
	}
	return nil
}

// Enroll opens or creates every device's keystore under StateDir
// (protected by StateDir/keystore.key, made on first use) and enrolls the
// devices that are not enrolled yet. It returns a fleet ready to Start.
func Enroll(ctx context.Context, cfg Config) (*Fleet, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, err
	}
	keyPath := filepath.Join(cfg.StateDir, "keystore.key")
	if _, err := os.Stat(keyPath); errors.Is(err, os.ErrNotExist) {
		if err := keystore.NewKeyFile(keyPath, nil); err != nil {
			return nil, err
		}
	}
	prot := &keystore.KeyFile{Path: keyPath}
	f := &Fleet{cfg: cfg, devices: make([]*simDevice, cfg.Count)}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(cfg.Enrollers)
	for i := range f.devices {
		rng := rand.New(rand.NewPCG(cfg.Seed, uint64(i)))
		sd := &simDevice{}
		if i%2 == 0 {
			sd.model, sd.name = newThermostat(rng), fmt.Sprintf("sim-thermostat-%04d", i)
		} else {
			sd.model, sd.name = newValve(rng), fmt.Sprintf("sim-valve-%04d", i)
		}
		f.devices[i] = sd
		g.Go(func() error {
			d, err := enrollOne(gctx, cfg, prot, i, sd.name)
			if err != nil {
				return fmt.Errorf("%s: %w", sd.name, err)
			}
			sd.dev = d
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return f, nil
}

func enrollOne(ctx context.Context, cfg Config, prot keystore.KeyProtector, i int, name string) (*sdk.Device, error) {
	path := filepath.Join(cfg.StateDir, name+".keystore")
	ks, err := keystore.Open(path, prot)
	switch {
	case err == nil:
		if d, err := sdk.Load(ks); err == nil {
			return d, nil // enrolled on an earlier run
		}
	case errors.Is(err, os.ErrNotExist):
		if ks, err = keystore.Create(path, prot); err != nil {
			return nil, err
		}
	default:
		return nil, err
	}
	e := sdk.Enrollment{Hub: cfg.Hub, MQTT: cfg.MQTT, Trust: cfg.Trust, Name: name}
	switch {
	case i < len(cfg.Tokens):
		e.Token = keystore.NewSecret(cfg.Tokens[i])
	case cfg.Claim != "":
		e.Claim = keystore.NewSecret(cfg.Claim)
		e.SerialNumber = fmt.Sprintf("%s%04d", cfg.SerialPrefix, i)
	default:
		return nil, errors.New("not enrolled and no token or claim for it")
	}
	return sdk.Enroll(ctx, ks, e)
}

// Start connects every device (without waiting) and starts its local
// loop: a reading every 1/Rate seconds, whether the hub is reachable or not.
func (f *Fleet) Start(ctx context.Context) {
	f.heapBefore = heapInUse()
	g0 := runtime.NumGoroutine()
	f.started = time.Now()
	interval := time.Duration(float64(time.Second) / f.cfg.Rate)
	for i, sd := range f.devices {
		o := sdk.Options{Commands: sdk.Chain(sd.model, sdk.RejectExpired(nil)), Encoding: f.cfg.Encoding,
			BackoffBase: f.cfg.BackoffBase, BackoffMax: f.cfg.BackoffMax, QueueSize: f.cfg.QueueSize, DisableAutoRenew: false}
		if n := len(f.cfg.SourceAddrs); n > 0 {
			o.LocalAddr = &net.TCPAddr{IP: f.cfg.SourceAddrs[i%n]}
		}
		o.OnConnect = func() {
			sd.mu.Lock()
			sd.up++
			lost, up := sd.lostAt, sd.up
			sd.mu.Unlock()
			if up > 1 {
				f.mu.Lock()
				f.reconnects = append(f.reconnects, Reconnect{Device: sd.name, LostAt: lost, BackAt: time.Now()})
				f.mu.Unlock()
			}
		}
		o.OnAttempt = func() {
			sd.mu.Lock()
			sd.attempts = append(sd.attempts, time.Now())
			sd.mu.Unlock()
		}
		o.OnDisconnect = func(error) {
			sd.mu.Lock()
			sd.lostAt = time.Now()
			sd.mu.Unlock()
		}
		sd.client = sdk.Start(sd.dev, o)
		if f.isBot(i) {
			go sd.botLoop(ctx, interval, f.started.Add(f.cfg.BotAfter), max(f.cfg.BotBurst, 1))
		}
		go sd.loop(ctx, interval, i)
	}
	f.goroutines = runtime.NumGoroutine() - g0
}

func (sd *simDevice) loop(ctx context.Context, interval time.Duration, i int) {
	// Spread the first reading over one interval so the fleet does not tick in step.
	first := time.Duration(uint64(i) * 7919 % uint64(max(interval, time.Millisecond)))
	t := time.NewTimer(first)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			r := sd.model.step(now.Sub(last))
			last = now
			if sd.client.Telemetry(sd.model.kind(), r) == nil {
				sd.sent.Add(1)
			}
			t.Reset(interval)
		}
	}
}

func (f *Fleet) isBot(i int) bool {
	if f.cfg.BotAfter <= 0 {
		return false
	}
	for _, b := range f.cfg.BotDevices {
		if b == i {
			return true
		}
	}
	return false
}

// botLoop waits until turn, then every interval publishes burst readings,
// each to a topic of its own.
func (sd *simDevice) botLoop(ctx context.Context, interval time.Duration, turn time.Time, burst int) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(time.Until(turn)):
	}
	n := 0
	for {
		for i := 0; i < burst; i++ {
			n++
			if sd.client.Telemetry(fmt.Sprintf("probe-%d", n), map[string]int{"seq": n}) == nil {
				sd.sent.Add(1)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

// MeasureMemory records the heap now (call it once the fleet is online):
// Counts reports (heap now - heap before Start) / devices.
func (f *Fleet) MeasureMemory() { f.heapAfter = heapInUse() }

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

// Online returns how many devices have a live session.
func (f *Fleet) Online() int {
	n := 0
	for _, sd := range f.devices {
		if sd.client != nil && sd.client.Stats().State == sdk.Online {
			n++
		}
	}
	return n
}

// Counts returns the fleet's totals.
func (f *Fleet) Counts() Counts {
	c := Counts{Devices: len(f.devices)}
	for _, sd := range f.devices {
		if sd.client == nil {
			continue
		}
		st := sd.client.Stats()
		if st.State == sdk.Online {
			c.Online++
		}
		c.Sent += sd.sent.Load()
		c.Acked += st.Acked
		c.Dropped += st.Dropped
		c.Queued += uint64(st.Queued)
		c.Connects += st.Connects
		c.Attempts += st.Attempts
		c.Commands += st.Commands
	}
	f.mu.Lock()
	c.Reconnects = len(f.reconnects)
	f.mu.Unlock()
	if f.heapAfter > f.heapBefore {
		c.HeapPerDeviceBytes = float64(f.heapAfter-f.heapBefore) / float64(len(f.devices))
	}
	c.GoroutinesPerDevice = float64(f.goroutines) / float64(len(f.devices))
	return c
}

// Reconnects returns every reconnection so far.
func (f *Fleet) Reconnects() []Reconnect {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Reconnect(nil), f.reconnects...)
}

// FirstAttemptsAfter returns, for every device that tried to connect
// after t, the delay from t to its first attempt: how the fleet's jittered
// backoff spreads its return, before the hub's own queueing.
func (f *Fleet) FirstAttemptsAfter(t time.Time) []time.Duration {
	var out []time.Duration
	for _, sd := range f.devices {
		sd.mu.Lock()
		for _, a := range sd.attempts {
			if a.After(t) {
				out = append(out, a.Sub(t))
				break
			}
		}
		sd.mu.Unlock()
	}
	return out
}

// Devices returns the simulated devices' IDs, in order.
func (f *Fleet) Devices() []string {
	out := make([]string, len(f.devices))
	for i, sd := range f.devices {
		out[i] = sd.dev.ID()
	}
	return out
}

// Flush waits until every device's queue is empty, or ctx ends.
func (f *Fleet) Flush(ctx context.Context) error {
	for _, sd := range f.devices {
		if err := sd.client.Flush(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Close disconnects every device.
func (f *Fleet) Close() {
	var wg sync.WaitGroup
	for _, sd := range f.devices {
		if sd.client != nil {
			wg.Add(1)
			go func() { defer wg.Done(); sd.client.Close() }()
		}
	}
	wg.Wait()
}

// String formats counts for people.
func (c Counts) String() string {
	s := fmt.Sprintf("devices=%d online=%d sent=%d acked=%d queued=%d dropped=%d connects=%d attempts=%d reconnects=%d commands=%d",
		c.Devices, c.Online, c.Sent, c.Acked, c.Queued, c.Dropped, c.Connects, c.Attempts, c.Reconnects, c.Commands)
	if c.HeapPerDeviceBytes > 0 {
		s += fmt.Sprintf(" heap_per_device=%.1fKiB goroutines_per_device=%.1f", c.HeapPerDeviceBytes/1024, c.GoroutinesPerDevice)
	}
	return s
}

// Histogram writes a text histogram of ds (with percentiles) to w.
func Histogram(w io.Writer, title string, ds []time.Duration, bucket time.Duration) {
	if len(ds) == 0 {
		fmt.Fprintf(w, "%s: no samples\n", title)
		return
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	pct := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	fmt.Fprintf(w, "%s: n=%d min=%v p50=%v p90=%v p99=%v max=%v\n", title, len(s),
		s[0].Round(time.Millisecond), pct(.5).Round(time.Millisecond), pct(.9).Round(time.Millisecond),
		pct(.99).Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond))
	counts := map[int]int{}
	top := 0
	for _, d := range s {
		b := int(d / bucket)
		counts[b]++
		top = max(top, b)
	}
	peak := 0
	for _, n := range counts {
		peak = max(peak, n)
	}
	for b := 0; b <= top; b++ {
		bar := strings.Repeat("#", (counts[b]*50+peak-1)/peak)
		fmt.Fprintf(w, "  %7v-%-7v %5d %s\n", (time.Duration(b) * bucket).Round(time.Millisecond), (time.Duration(b+1) * bucket).Round(time.Millisecond), counts[b], bar)
	}
}

// ParseAddrs parses "127.0.0.1,127.0.0.2" or a range "127.0.0.1-127.0.0.8".
func ParseAddrs(s string) ([]net.IP, error) {
	var out []net.IP
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a := net.ParseIP(lo).To4()
		if a == nil {
			return nil, fmt.Errorf("source address %q is not an IPv4 address", lo)
		}
		if !isRange {
			out = append(out, a)
			continue
		}
		b := net.ParseIP(hi).To4()
		if b == nil || string(a[:3]) != string(b[:3]) || b[3] < a[3] {
			return nil, fmt.Errorf("source range %q must be like 127.0.0.1-127.0.0.8", part)
		}
		for x := int(a[3]); x <= int(b[3]); x++ {
			out = append(out, net.IPv4(a[0], a[1], a[2], byte(x)).To4())
		}
	}
	return out, nil
}
