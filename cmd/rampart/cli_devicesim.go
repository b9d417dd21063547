package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/rampart-iot/rampart/internal/devicesim"
	"github.com/rampart-iot/rampart/sdk"
)

const deviceSimUsage = `
device simulator:
  device-sim --hub https://H:P --ca DATA/ca.pem (--claim-file F | --token-file F) [--count N] [--rate R]
               [--duration D] [--state DIR] [--mqtt H:P] [--source-addrs 127.0.0.1-127.0.0.8] [--cbor]
               [--bot-after D [--bot-burst N]]
                   runs N simulated thermostats and valves through the device SDK; prints counts
`

// runDeviceSim is `rampart device-sim`.
func runDeviceSim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("device-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg                         devicesim.Config
		caFile, fingerprint         string
		claimFile, tokenFile, addrs string
		duration, reportEvery       time.Duration
		useCBOR                     bool
	)
	fs.StringVar(&cfg.Hub, "hub", "https://127.0.0.1:8443", "the hub's HTTPS URL")
	fs.StringVar(&cfg.MQTT, "mqtt", "", "the hub's MQTT/TLS HOST:PORT (default: the hub's host, port 8883)")
	fs.StringVar(&caFile, "ca", "", "the hub's root certificate (DATA/ca.pem); the system roots are never used")
	fs.StringVar(&fingerprint, "ca-fingerprint", "", "instead of --ca: SHA-256 fingerprint of the hub's root (sha256:HEX)")
	fs.StringVar(&claimFile, "claim-file", "", "file holding a claim token (POST /api/v1/claims) for every device")
	fs.StringVar(&tokenFile, "token-file", "", "file holding one enrollment token per line (POST /api/v1/devices)")
	fs.IntVar(&cfg.Count, "count", 0, "number of devices (default: the number of tokens, or 10 with a claim)")
	fs.Float64Var(&cfg.Rate, "rate", 0.2, "readings per second per device")
	fs.DurationVar(&duration, "duration", 0, "stop after this long (0: until interrupted)")
	fs.DurationVar(&cfg.BotAfter, "bot-after", 0, "turn device 0 into a bot this long after start (detection demos; 0: never)")
	fs.IntVar(&cfg.BotBurst, "bot-burst", 40, "with --bot-after: readings per interval, each to a new topic")
	fs.DurationVar(&reportEvery, "report-every", 10*time.Second, "print counts this often")
	fs.StringVar(&cfg.StateDir, "state", "./rampart-sim", "folder for the devices' keystores (reused on the next run)")
	fs.StringVar(&addrs, "source-addrs", "", "MQTT source addresses, round-robin: 127.0.0.1,127.0.0.2 or 127.0.0.1-127.0.0.8")
	fs.StringVar(&cfg.SerialPrefix, "serial-prefix", "SIM-", "serial numbers for claim enrollment: PREFIX0000, PREFIX0001, ...")
	fs.BoolVar(&useCBOR, "cbor", false, "encode readings as CBOR instead of JSON")
	fs.DurationVar(&cfg.BackoffMax, "backoff-max", 0, "cap of the reconnect backoff (default 60s)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	switch {
	case caFile != "":
		b, err := os.ReadFile(caFile)
		if err != nil {
			return fmt.Errorf("--ca: %w", err)
		}
		cfg.Trust.CABundle = b
	case fingerprint == "":
		return errors.New("give --ca DATA/ca.pem or --ca-fingerprint sha256:HEX: the hub is never trusted on the system roots")
	}
	cfg.Trust.Fingerprint = fingerprint
	if claimFile != "" {
		b, err := readSecretFile(claimFile)
		if err != nil {
			return fmt.Errorf("--claim-file: %w", err)
		}
		cfg.Claim = strings.TrimSpace(string(b))
	}
	if tokenFile != "" {
		b, err := readSecretFile(tokenFile)
		if err != nil {
			return fmt.Errorf("--token-file: %w", err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if t := strings.TrimSpace(sc.Text()); t != "" && !strings.HasPrefix(t, "#") {
				cfg.Tokens = append(cfg.Tokens, t)
			}
		}
	}
	if cfg.Count == 0 {
		cfg.Count = len(cfg.Tokens)
		if cfg.Count == 0 {
			cfg.Count = 10
		}
	}
	if addrs != "" {
		ips, err := devicesim.ParseAddrs(addrs)
		if err != nil {
			return fmt.Errorf("--source-addrs: %w", err)
		}
		cfg.SourceAddrs = ips
	}
	if useCBOR {
		cfg.Encoding = sdk.CBOR
	}
	if cfg.BotAfter > 0 {
		cfg.BotDevices = []int{0}
	}
	if duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, duration)
		defer cancel()
	}

	start := time.Now()
	fleet, err := devicesim.Enroll(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "device-sim: %d devices enrolled or loaded from %s in %v\n", cfg.Count, cfg.StateDir, time.Since(start).Round(time.Millisecond))
	fleet.Start(ctx)
	defer fleet.Close()
	start = time.Now()
	measured := false
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	lastReport := time.Now()
	for {
		select {
		case <-ctx.Done():
			c := fleet.Counts()
			fmt.Fprintf(stdout, "device-sim: final %s\n", c)
			printReconnects(stdout, fleet.Reconnects())
			return nil
		case <-tick.C:
		}
		if !measured && (fleet.Online() == cfg.Count || time.Since(start) > time.Minute) {
			fleet.MeasureMemory()
			measured = true
			fmt.Fprintf(stdout, "device-sim: %d/%d online after %v; %s\n", fleet.Online(), cfg.Count, time.Since(start).Round(time.Millisecond), fleet.Counts())
		}
		if time.Since(lastReport) >= reportEvery {
			lastReport = time.Now()
			fmt.Fprintf(stdout, "device-sim: %s\n", fleet.Counts())
		}
	}
}

// printReconnects prints how long devices were offline and how their
// returns spread after the first one came back.
func printReconnects(w io.Writer, rs []devicesim.Reconnect) {
	if len(rs) == 0 {
		return
	}
	first := rs[0].BackAt
	var down, spread []time.Duration
	for _, r := range rs {
		if r.BackAt.Before(first) {
			first = r.BackAt
		}
	}
	for _, r := range rs {
		down = append(down, r.BackAt.Sub(r.LostAt))
		spread = append(spread, r.BackAt.Sub(first))
	}
	devicesim.Histogram(w, "reconnects: time offline", down, time.Second)
	devicesim.Histogram(w, "reconnects: time after the first device was back", spread, time.Second)
}

// readSecretFile reads a credential file, refusing one that others may read.
func readSecretFile(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s is readable by others (mode %#o); run chmod 600 %s", path, st.Mode().Perm(), path)
	}
	return os.ReadFile(path)
}
