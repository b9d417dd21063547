package posture

import (
	"math"
	"sort"
	"sync"
	"time"
)

// SampleKind is what happened.
type SampleKind int

// Sample kinds the broker reports.
const (
	SamplePublish     SampleKind = iota + 1 // a message the device published (accepted)
	SampleConnect                           // a CONNECT by the device (accepted or not)
	SampleAuthFailure                       // a refused CONNECT naming the device
	SampleACLDenied                         // a publish or subscribe the ACL refused
	SampleDestination                       // an outbound destination the SDK reported (host:port)
	SampleListenPort                        // a listening port the SDK reported
)

// Sample is one observation of a device's behaviour.
type Sample struct {
	Kind     SampleKind
	DeviceID string
	TenantID string
	Model    string
	Topic    string // publishes
	Bytes    int    // publishes
	Remote   string // connects: source address; destinations: host:port
}

// Metric names, used by rules and in anomalies.
const (
	MetricMessages     = "messages"      // publishes per window
	MetricBytes        = "bytes"         // bytes published per window
	MetricTopics       = "topics"        // distinct topics per window (fan-out)
	MetricConnects     = "connects"      // CONNECTs per window
	MetricAuthFailures = "auth_failures" // refused CONNECTs per window
	MetricACLDenied    = "acl_denied"    // ACL refusals per window
	MetricSources      = "sources"       // distinct source addresses per window
	MetricNewDests     = "new_destinations"
	MetricNewPorts     = "new_listening_ports"
)

var metricNames = []string{MetricMessages, MetricBytes, MetricTopics, MetricConnects, MetricAuthFailures, MetricACLDenied, MetricSources, MetricNewDests, MetricNewPorts}

// Action is a mitigation.
type Action string

// Mitigations a rule may take automatically.
const (
	ActionNone       Action = ""
	ActionQuarantine Action = "quarantine"
	ActionSuspend    Action = "suspend"
	ActionRevoke     Action = "revoke"
	ActionNotify     Action = "notify"
)

// Rule is a static threshold: Metric over Threshold in one window.
type Rule struct {
	Name      string
	Model     string // "" applies to every model
	Metric    string
	Threshold float64
	Actions   []Action
}

// Anomaly is a device acting outside its rules or its own baseline.
type Anomaly struct {
	DeviceID string
	TenantID string
	Model    string
	Rule     string // rule name, or "baseline"
	Metric   string
	Value    float64
	Baseline float64 // learned mean (baseline anomalies)
	Z        float64 // robust distance from the baseline
	At       time.Time
	Actions  []Action
}

// DetectOptions configure a Detector.
type DetectOptions struct {
	Window     time.Duration // metrics are counted per window
	Rules      []Rule
	Z          float64 // baseline: flag when the value is this many deviations above the mean
	Factor     float64 // ... and at least this many times the mean
	Floor      map[string]float64
	MinHistory int // windows of history before a baseline is trusted
	Alpha      float64
	// BaselineActions are taken for baseline anomalies.
	BaselineActions []Action
	Now             func() time.Time
	// OnAnomaly receives each anomaly once per device per cooldown.
	OnAnomaly func(Anomaly)
	Cooldown  time.Duration
	MaxRecent int // anomalies kept for the audit
}

// Detector learns each device's behaviour and flags what looks like a bot:
// bursts, fan-out, new destinations, scanning-like connection patterns.
// Observe is cheap (a map lookup and counters under one lock); Tick closes
// windows and evaluates them.
type Detector struct {
	o       DetectOptions
	mu      sync.Mutex
	devs    map[string]*devState
	recent  []Anomaly
	ticking sync.Mutex
}

type window struct {
	counts  map[string]float64
	topics  map[string]struct{}
	sources map[string]struct{}
}

type devState struct {
	tenant, model string
	start         time.Time
	cur           window
	mean, vari    map[string]float64
	n             int
	knownDests    map[string]struct{}
	knownPorts    map[string]struct{}
	lastFlag      time.Time
}

func newWindow() window {
	return window{counts: map[string]float64{}, topics: map[string]struct{}{}, sources: map[string]struct{}{}}
}

// NewDetector returns a Detector with defaults filled in.
func NewDetector(o DetectOptions) *Detector {
	if o.Window <= 0 {
		o.Window = DefaultDetectWindow
	}
	if o.Z <= 0 {
		o.Z = defaultZ
	}
	if o.Factor <= 0 {
		o.Factor = defaultFactor
	}
	if o.MinHistory <= 0 {
		o.MinHistory = defaultMinHistory
	}
	if o.Alpha <= 0 || o.Alpha >= 1 {
		o.Alpha = defaultAlpha
	}
	if o.Floor == nil {
		o.Floor = defaultFloors()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Cooldown <= 0 {
		o.Cooldown = 10 * o.Window
	}
	if o.MaxRecent <= 0 {
		o.MaxRecent = defaultMaxRecent
	}
	return &Detector{o: o, devs: map[string]*devState{}}
}

// Observe records one sample.
func (d *Detector) Observe(s Sample) {
	if s.DeviceID == "" {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.devs[s.DeviceID]
	if st == nil {
		if len(d.devs) >= maxTrackedDevices {
			return
		}
		st = &devState{tenant: s.TenantID, model: s.Model, start: d.o.Now(), cur: newWindow(),
			mean: map[string]float64{}, vari: map[string]float64{}, knownDests: map[string]struct{}{}, knownPorts: map[string]struct{}{}}
		d.devs[s.DeviceID] = st
	}
	if s.TenantID != "" {
		st.tenant = s.TenantID
	}
	if s.Model != "" {
		st.model = s.Model
	}
	c := st.cur.counts
	switch s.Kind {
	case SamplePublish:
		c[MetricMessages]++
		c[MetricBytes] += float64(s.Bytes)
		if len(st.cur.topics) < maxTopicsPerWindow {
			st.cur.topics[s.Topic] = struct{}{}
		}
	case SampleConnect:
		c[MetricConnects]++
		if len(st.cur.sources) < maxTopicsPerWindow {
			st.cur.sources[hostOnly(s.Remote)] = struct{}{}
		}
	case SampleAuthFailure:
		c[MetricAuthFailures]++
	case SampleACLDenied:
		c[MetricACLDenied]++
	case SampleDestination:
		if _, ok := st.knownDests[s.Remote]; !ok && len(st.knownDests) < maxDestinations {
			if st.n >= d.o.MinHistory {
				c[MetricNewDests]++
			}
			st.knownDests[s.Remote] = struct{}{}
		}
	case SampleListenPort:
		if _, ok := st.knownPorts[s.Remote]; !ok && len(st.knownPorts) < maxDestinations {
			if st.n >= d.o.MinHistory {
				c[MetricNewPorts]++
			}
			st.knownPorts[s.Remote] = struct{}{}
		}
	}
}

func hostOnly(addr string) string {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			return addr[:i]
		}
	}
	return addr
}

// Tick closes every window that has ended and evaluates it. Call it at
// least once per window (Run does).
func (d *Detector) Tick() []Anomaly {
	d.ticking.Lock()
	defer d.ticking.Unlock()
	now := d.o.Now()
	var found []Anomaly
	d.mu.Lock()
	for id, st := range d.devs {
		if now.Sub(st.start) < d.o.Window {
			continue
		}
		vals := st.cur.counts
		vals[MetricTopics] = float64(len(st.cur.topics))
		vals[MetricSources] = float64(len(st.cur.sources))
		found = append(found, d.evaluate(id, st, vals, now)...)
		d.learn(st, vals)
		st.cur = newWindow()
		st.start = now
	}
	d.mu.Unlock()
	sort.Slice(found, func(i, j int) bool { return found[i].DeviceID < found[j].DeviceID })
	var emitted []Anomaly
	for _, a := range found {
		d.mu.Lock()
		st := d.devs[a.DeviceID]
		cool := st != nil && !st.lastFlag.IsZero() && now.Sub(st.lastFlag) < d.o.Cooldown
		if st != nil && !cool {
			st.lastFlag = now
		}
		if !cool {
			d.recent = append(d.recent, a)
			if len(d.recent) > d.o.MaxRecent {
				d.recent = d.recent[len(d.recent)-d.o.MaxRecent:]
			}
		}
		d.mu.Unlock()
		if cool {
			continue
		}
		emitted = append(emitted, a)
		if d.o.OnAnomaly != nil {
			d.o.OnAnomaly(a)
		}
	}
	return emitted
}

// evaluate applies the rules and the baseline; it returns at most one
// anomaly per device (the strongest), so one bot is one finding.
func (d *Detector) evaluate(id string, st *devState, vals map[string]float64, now time.Time) []Anomaly {
	for _, r := range d.o.Rules {
		if r.Model != "" && r.Model != st.model {
			continue
		}
		if v := vals[r.Metric]; v > r.Threshold {
			return []Anomaly{{DeviceID: id, TenantID: st.tenant, Model: st.model, Rule: r.Name, Metric: r.Metric, Value: v, At: now, Actions: r.Actions}}
		}
	}
	for _, m := range []string{MetricNewDests, MetricNewPorts} {
		if vals[m] > 0 {
			return []Anomaly{{DeviceID: id, TenantID: st.tenant, Model: st.model, Rule: "baseline", Metric: m,
				Value: vals[m], At: now, Actions: d.o.BaselineActions}}
		}
	}
	if st.n < d.o.MinHistory {
		return nil
	}
	var best *Anomaly
	for _, m := range metricNames {
		v, mean := vals[m], st.mean[m]
		if v < d.o.Floor[m] || v < mean*d.o.Factor {
			continue
		}
		sd := math.Sqrt(st.vari[m])
		// A device whose metric never varied has sd 0; floor the scale so
		// a tiny wobble is not infinitely many deviations.
		scale := math.Max(sd, math.Max(1, 0.1*mean))
		z := (v - mean) / scale
		if z < d.o.Z {
			continue
		}
		if best == nil || z > best.Z {
			best = &Anomaly{DeviceID: id, TenantID: st.tenant, Model: st.model, Rule: "baseline", Metric: m, Value: v,
				Baseline: mean, Z: z, At: now, Actions: d.o.BaselineActions}
		}
	}
	if best == nil {
		return nil
	}
	return []Anomaly{*best}
}

// learn folds a finished window into the EWMA mean and variance.
func (d *Detector) learn(st *devState, vals map[string]float64) {
	a := d.o.Alpha
	for _, m := range metricNames {
		v := vals[m]
		if st.n == 0 {
			st.mean[m], st.vari[m] = v, 0
			continue
		}
		diff := v - st.mean[m]
		st.mean[m] += a * diff
		st.vari[m] = (1 - a) * (st.vari[m] + a*diff*diff)
	}
	st.n++
}

// Run ticks every tenth of a window until stop is closed.
func (d *Detector) Run(stop <-chan struct{}) {
	t := time.NewTicker(d.o.Window / 10)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			d.Tick()
		}
	}
}

// Recent returns the tenant's recent anomalies, newest last.
func (d *Detector) Recent(tenantID string) []Anomaly {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []Anomaly
	for _, a := range d.recent {
		if a.TenantID == tenantID {
			out = append(out, a)
		}
	}
	return out
}

// Forget drops a device's state (decommissioned).
func (d *Detector) Forget(deviceID string) {
	d.mu.Lock()
	delete(d.devs, deviceID)
	d.mu.Unlock()
}
