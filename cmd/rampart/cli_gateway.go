package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/rampart-iot/rampart/internal/gateway"
)

const gatewayUsage = `
edge gateway:
  gateway --config gw.yaml [--check] [--report-every D] [--log-level L]
                   polls Modbus PLCs onto the hub over MQTT/mTLS (one identity per PLC), turns signed,
                   allow-listed, in-policy commands into Modbus writes, serves Modbus/TCP Security to
                   SCADA clients; --check only validates gw.yaml
`

// runGateway is `rampart gateway`.
func runGateway(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("config", "gw.yaml", "the gateway's configuration (YAML)")
	check := fs.Bool("check", false, "validate the configuration (and the files it names) and exit")
	every := fs.Duration("report-every", time.Minute, "print counters this often (0: never)")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg, err := gateway.Load(*file)
	if err != nil {
		return err
	}
	if *check {
		fmt.Fprintf(stdout, "%s: configuration is valid (%d PLCs)\n", *file, len(cfg.PLCs))
		return nil
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", *level)
	}
	gw, err := gateway.New(cfg, gateway.Options{Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))})
	if err != nil {
		return err
	}
	if err := gw.Start(ctx); err != nil {
		return err
	}
	defer gw.Close()
	line := "rampart gateway ready"
	for name, id := range gw.DeviceIDs() {
		line += fmt.Sprintf(" %s=%s", name, id)
	}
	if a := gw.SecureAddr(); a != "" {
		line += " mbaps=" + a
	}
	fmt.Fprintln(stdout, line)
	var tick <-chan time.Time
	if *every > 0 {
		t := time.NewTicker(*every)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
			s := gw.Stats()
			fmt.Fprintf(stdout, "gateway: online=%d/%d reads=%d polls_ok=%d polls_failed=%d\n", s.Online, s.Sessions, s.Reads, s.PollsOK, s.PollsFailed)
		}
	}
}
