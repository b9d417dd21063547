// Command mqttbench measures the hub's MQTT broker side by side with
// Mosquitto 2 on this machine, in one run: mTLS handshakes/s, delivered
// throughput, fan-in at scale with latency, resident memory per idle mTLS
// connection, and the crypto-only limit of a handshake. It starts both
// brokers itself on 127.0.0.1 with client certificates from one throwaway
// CA, and prints a table with the ratio hub/Mosquitto.
//
//	go run ./bench/mqttbench            # default sizes, < 5 minutes
//	go run ./bench/mqttbench -quick     # < 60 s
//	go run ./bench/mqttbench -only hub -profile /tmp/prof   # pprof of the hub under the same load
//
// See docs/performance.md for what each figure means and the results.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "hub" {
		if err := runHub(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "mqttbench hub:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "mqttbench:", err)
		os.Exit(1)
	}
}

type options struct {
	quick     bool
	only      string
	phases    string
	profile   string
	mosquitto string
	scale     string
	reps      int
	window    time.Duration
	x25519    bool
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("mqttbench", flag.ContinueOnError)
	var o options
	fs.BoolVar(&o.quick, "quick", false, "small sizes and short windows (< 60 s)")
	fs.StringVar(&o.only, "only", "", "run one broker: hub or mosquitto (default both)")
	fs.StringVar(&o.phases, "phases", "crypto,handshake,throughput,fanin", "which figures to measure")
	fs.StringVar(&o.profile, "profile", "", "directory for the hub's pprof profiles (cpu, allocs, mutex, block, heap)")
	fs.StringVar(&o.mosquitto, "mosquitto", "", "path of the mosquitto binary (default: PATH, then /usr/sbin/mosquitto)")
	fs.StringVar(&o.scale, "scale", "", "fan-in device counts, comma-separated (default 1000,10000; -quick 1000)")
	fs.DurationVar(&o.window, "window", 0, "length of one repetition (default 2s; -quick 500ms); warm-up is half of it")
	fs.IntVar(&o.reps, "reps", 0, "repetitions per figure (default 5; -quick 3)")
	fs.Func("fanin-qos", "QoS of the fan-in publishes and subscription (default 1)", func(v string) error {
		if v != "0" && v != "1" {
			return fmt.Errorf("0 or 1")
		}
		fanQoS = v[0] - '0'
		return nil
	})
	fs.BoolVar(&hubNoTelemetry, "hub-no-telemetry", false, "run the hub without telemetry storage, to attribute its cost (not the hub as shipped)")
	fs.BoolVar(&o.x25519, "x25519", false, "clients offer only X25519 (no post-quantum hybrid) to both brokers")
	if err := fs.Parse(args); err != nil {
		return err
	}
	pl := plan{reps: 5, window: 2 * time.Second, warmup: time.Second, dialers: []int{1, 8}, publishers: 8,
		scale: []int{1000, 10000}, fanWindow: 2 * time.Second, period: time.Second, idle: 3 * time.Second}
	if o.quick {
		pl = plan{reps: 3, window: 500 * time.Millisecond, warmup: 300 * time.Millisecond, dialers: []int{1, 8}, publishers: 8,
			scale: []int{1000}, fanWindow: time.Second, period: time.Second, idle: time.Second}
	}
	if o.reps > 0 {
		pl.reps = o.reps
	}
	if o.window > 0 {
		pl.window, pl.warmup = o.window, o.window/2
	}
	if o.scale != "" {
		pl.scale = nil
		for _, s := range strings.Split(o.scale, ",") {
			var n int
			if _, err := fmt.Sscan(s, &n); err != nil || n <= 0 {
				return fmt.Errorf("-scale: %q is not a count", s)
			}
			pl.scale = append(pl.scale, n)
		}
	}
	if o.x25519 {
		curvePrefs = []tls.CurveID{tls.X25519}
	}
	has := func(phase string) bool { return strings.Contains(","+o.phases+",", ","+phase+",") }
	brokers := []string{"hub", "mosquitto"}
	if o.only != "" {
		brokers = []string{o.only}
	}
	mosq := ""
	if o.only != "hub" {
		var err error
		if mosq, err = findMosquitto(o.mosquitto); err != nil {
			return err
		}
	}
	if err := raiseNoFile(); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "mqttbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil { // mosquitto may drop privileges
		return err
	}
	devices := pl.publishers
	for _, n := range pl.scale {
		devices = max(devices, n)
	}
	devices = max(devices, 2000) // handshake identities cycle through at least this many
	t0 := time.Now()
	p, err := newPKI(dir, devices)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "mqttbench: %d device certificates in %s\n", devices, time.Since(t0).Round(time.Millisecond))

	t := newTable()
	header(out, o, pl, mosq)

	if has("crypto") {
		f := newCryptoFixture(p)
		for _, hybrid := range []bool{false, true} {
			name := "X25519"
			if hybrid {
				name = "X25519MLKEM768"
			}
			srv := testing.Benchmark(func(b *testing.B) { f.server(b, hybrid) })
			cli := testing.Benchmark(func(b *testing.B) { f.client(b, hybrid) })
			sus, cus := float64(srv.NsPerOp())/1e3, float64(cli.NsPerOp())/1e3
			t.crypto = append(t.crypto, cryptoRow{group: name, server: sus, client: cus,
				serverOnly: float64(runtime.NumCPU()) * 1e6 / sus, shared: float64(runtime.NumCPU()) * 1e6 / (sus + cus)})
		}
	}

	start := func(name, prof string) (*server, error) {
		if name == "hub" {
			return startHub(dir, prof)
		}
		return startMosquitto(mosq, dir)
	}
	// Figure by figure, each broker in turn, so that both see the same
	// conditions on the machine (other processes, thermal state).
	if has("handshake") || has("throughput") {
		srv := map[string]*server{}
		defer func() {
			for _, s := range srv {
				s.stop()
			}
		}()
		for _, name := range brokers {
			prof := ""
			if name == "hub" {
				prof = o.profile
			}
			s, err := start(name, prof)
			if err != nil {
				return err
			}
			srv[name] = s
			t.groups[name] = negotiated(s, p)
		}
		if has("handshake") {
			for _, d := range pl.dialers {
				for _, name := range brokers {
					rates, cpu, err := handshakes(srv[name], p, pl, d)
					if err != nil {
						fmt.Fprintf(os.Stderr, "mqttbench: %s handshakes (%d dialers): %v\n", name, d, err)
					}
					t.add(fmt.Sprintf("mTLS handshakes/s, %d dialer(s)", d), name, rates, true)
					t.add(fmt.Sprintf("broker CPU µs per handshake, %d dialer(s)", d), name, cpu, false)
				}
			}
		}
		if has("throughput") {
			base := 0
			for _, qos := range []byte{0, 1} {
				for _, size := range []int{64, 1024} {
					for _, name := range brokers {
						rates, err := throughput(srv[name], p, pl, qos, size, base)
						if err != nil {
							return fmt.Errorf("%s throughput: %w", name, err)
						}
						t.add(fmt.Sprintf("delivered msg/s, %d→1, QoS %d, %d B", pl.publishers, qos, size), name, rates, true)
					}
					base += pl.publishers // fresh identities: the last ones may still be closing
				}
			}
		}
		for name, s := range srv {
			s.stop()
			delete(srv, name)
		}
	}
	if has("fanin") {
		for _, n := range pl.scale {
			for _, name := range brokers {
				// A fresh broker process per size: its RSS before is a
				// clean baseline, not the leftovers of the last run.
				prof := ""
				if name == "hub" {
					prof = profileSub(o.profile, fmt.Sprintf("fanin%d", n))
				}
				s, err := start(name, prof)
				if err != nil {
					return err
				}
				r, err := fanIn(s, p, pl, n, o.profile != "")
				s.stop()
				if err != nil {
					return fmt.Errorf("%s fan-in %d: %w", name, n, err)
				}
				t.add(fmt.Sprintf("fan-in %d devices × %.0f/s: delivered msg/s", n, 1/pl.period.Seconds()), name, r.rate, true)
				t.add(fmt.Sprintf("fan-in %d: latency p50 ms", n), name, r.p50, false)
				t.add(fmt.Sprintf("fan-in %d: latency p99 ms", n), name, r.p99, false)
				t.add(fmt.Sprintf("fan-in %d: latency p99.9 ms", n), name, r.p999, false)
				t.add(fmt.Sprintf("RSS KiB per idle mTLS connection at %d", n), name, sample{r.rssPerConn / 1024}, false)
				t.notes = append(t.notes, fmt.Sprintf("%s at %d connections: VmRSS %.1f MiB before, %.1f MiB after (%d connected in %.1f s); load average %s",
					name, n, float64(r.rssBefore)/(1<<20), float64(r.rssAfter)/(1<<20), n, r.connectSecs, loadavg()))
			}
		}
	}
	t.notes = append(t.notes, "load average at the end: "+loadavg())
	t.print(out, pl)
	fmt.Fprintf(os.Stderr, "mqttbench: done in %s\n", time.Since(t0).Round(time.Second))
	return nil
}

func profileSub(dir, name string) string {
	if dir == "" {
		return ""
	}
	d := dir + "/" + name
	os.MkdirAll(d, 0o755)
	return d
}

func findMosquitto(flagPath string) (string, error) {
	if flagPath != "" {
		return flagPath, nil
	}
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/mosquitto"); err == nil {
		return "/usr/sbin/mosquitto", nil
	}
	return "", fmt.Errorf("mosquitto (the server) is not installed: apt-get install mosquitto, or -only hub")
}

// raiseNoFile lifts the open-files limit to its hard maximum; the broker
// processes inherit it.
func raiseNoFile() error {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return err
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			return fmt.Errorf("raising the open-files limit: %w", err)
		}
	}
	if l.Cur < 12_000 {
		fmt.Fprintf(os.Stderr, "mqttbench: open-files limit is %d; the 10,000-connection figures need about 11,000 (ulimit -Hn)\n", l.Cur)
	}
	return nil
}

func negotiated(s *server, p *pkiSet) string {
	c, err := dial(s.addr, p.clientTLS(&p.devices[0]), deviceID(0), "", "", 60)
	if err != nil {
		return "?"
	}
	defer c.disconnect()
	st := c.c.ConnectionState()
	return fmt.Sprintf("%s %s", tls.VersionName(st.Version), st.CurveID)
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return "?"
}

func header(out io.Writer, o options, pl plan, mosq string) {
	ver := "-"
	if mosq != "" {
		b, _ := exec.Command(mosq, "-h").CombinedOutput()
		ver = strings.SplitN(string(b), "\n", 2)[0]
	}
	fmt.Fprintf(out, "# mqttbench %s\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(out, "# cores: %d (%s), %s %s/%s, GOMAXPROCS %d\n", runtime.NumCPU(), cpuModel(), runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0))
	fmt.Fprintf(out, "# mosquitto: %s\n", ver)
	fmt.Fprintf(out, "# args: %s\n", strings.Join(os.Args[1:], " "))
	if hubNoTelemetry {
		fmt.Fprintln(out, "# WARNING: the hub runs WITHOUT telemetry storage (-hub-no-telemetry): not the hub as shipped")
	}
	fmt.Fprintf(out, "# load average at start: %s (other processes on these cores perturb every figure)\n", loadavg())
	fmt.Fprintf(out, "# %d repetitions of %s (fan-in %s) after %s warm-up; median [min–max]; load generator on the same cores\n",
		pl.reps, pl.window, pl.fanWindow, pl.warmup)
}
