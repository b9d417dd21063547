// Command rampart is the Rampart IoT hub: `rampart serve` runs it; the other
// sub-commands check its configuration, verify and export its journal, and
// rotate its master key. main only parses the command line; internal/app
// does the work.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/rampart-iot/rampart/internal/app"
	"github.com/rampart-iot/rampart/internal/config"
)

const usage = `usage: rampart COMMAND [flags]

commands:
  serve            run the hub
  config check     validate the configuration and print the effective settings
  journal verify   check the journal's hash chain and signed checkpoints
  journal export   write the journal as JSON lines
  keys rotate      re-wrap every data key under a new master key (the hub may keep running)
  version          print the version
  login, logout, users, tokens   manage accounts and API tokens on a running hub (see below)
  device-sim       run simulated devices (thermostats, valves) against a hub through the device SDK
  firmware         offline firmware signing: keygen, root, sign, cosign, verify (see below)
  gateway          edge gateway: Modbus PLCs onto the hub over mTLS; Modbus/TCP Security for SCADA (see below)

Run 'rampart COMMAND -h' for the flags of a command.
` + accountsUsage + deviceSimUsage + auditUsage + firmwareUsage + gatewayUsage

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd, rest := args[0], args[1:]
	if (cmd == "config" || cmd == "journal" || cmd == "keys") && len(rest) > 0 {
		cmd, rest = cmd+" "+rest[0], rest[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = withConfig(cmd, rest, stderr, true, func(c *config.Config, _ *flag.FlagSet) error {
			return app.Serve(ctx, c, app.IO{Stdout: stdout, Stderr: stderr})
		})
	case "config check":
		err = withConfig(cmd, rest, stderr, false, func(c *config.Config, _ *flag.FlagSet) error {
			out, err := c.YAML()
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, "# configuration is valid; effective settings:")
			_, err = stdout.Write(out)
			return err
		})
	case "journal verify":
		err = withConfig(cmd, rest, stderr, false, func(c *config.Config, _ *flag.FlagSet) error {
			return app.VerifyJournal(ctx, c, stdout)
		})
	case "journal export":
		var out string
		err = withConfigFlags(cmd, rest, stderr, false, func(fs *flag.FlagSet) {
			fs.StringVar(&out, "out", "-", "file to write (- for standard output)")
		}, func(c *config.Config, _ *flag.FlagSet) error {
			w := stdout
			if out != "-" {
				f, err := os.OpenFile(out, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
				if err != nil {
					return err
				}
				defer f.Close()
				w = f
			}
			return app.ExportJournal(ctx, c, w)
		})
	case "keys rotate":
		var newPass string
		err = withConfigFlags(cmd, rest, stderr, false, func(fs *flag.FlagSet) {
			fs.StringVar(&newPass, "new-passphrase-file", "", "with a passphrase-derived master key: file (mode 0600) holding the new passphrase")
		}, func(c *config.Config, _ *flag.FlagSet) error {
			return app.RotateKeys(ctx, c, newPass, stdout)
		})
	case "audit":
		err = runAudit(ctx, rest, stdout, stderr)
	case "login", "logout", "users", "tokens":
		err = runAccounts(ctx, cmd, rest, os.Stdin, stdout, stderr)
	case "firmware":
		err = runFirmware(rest, os.Stdin, stdout, stderr)
	case "device-sim":
		err = runDeviceSim(ctx, rest, stdout, stderr)
	case "gateway":
		err = runGateway(ctx, rest, stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "rampart", app.Version())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "rampart: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		var exit app.ExitError
		if errors.As(err, &exit) {
			return exit.Code
		}
		fmt.Fprintf(stderr, "rampart %s: %v\n", cmd, err)
		return 1
	}
	return 0
}

func withConfig(cmd string, args []string, stderr io.Writer, listeners bool, fn func(*config.Config, *flag.FlagSet) error) error {
	return withConfigFlags(cmd, args, stderr, listeners, nil, fn)
}

// withConfigFlags parses the flags every command shares (--data, --config
// and, for serve, the listener addresses and log settings), loads the
// layered configuration and runs fn.
func withConfigFlags(cmd string, args []string, stderr io.Writer, listeners bool, extra func(*flag.FlagSet), fn func(*config.Config, *flag.FlagSet) error) error {
	fs := flag.NewFlagSet("rampart "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("config", os.Getenv("RAMPART_CONFIG"), "YAML configuration file (env RAMPART_CONFIG)")
	str := map[string]*string{}
	add := func(name, key, help string) { str[key] = fs.String(name, "", help) }
	add("data", "data_dir", "data folder (default ./rampart-data; env RAMPART_DATA)")
	if listeners {
		add("https-addr", "https.addr", "HTTPS listener HOST:PORT (default 127.0.0.1:8443; port 0 picks one)")
		add("mqtt-addr", "mqtt.addr", "MQTT/TLS listener HOST:PORT (default 127.0.0.1:8883; port 0 picks one)")
		add("log-level", "log.level", "debug, info, warn or error")
		add("log-format", "log.format", "text or json")
	}
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q; see 'rampart %s -h'", fs.Arg(0), cmd)
	}
	flagName := map[string]string{"data_dir": "data", "https.addr": "https-addr", "mqtt.addr": "mqtt-addr", "log.level": "log-level", "log.format": "log-format"}
	var overrides []config.Override
	fs.Visit(func(f *flag.Flag) {
		for key, name := range flagName {
			if name == f.Name {
				overrides = append(overrides, config.Override{Key: key, Value: *str[key], Source: "flag --" + name})
			}
		}
	})
	c, err := config.Load(config.LoadOptions{File: *file, Env: os.Environ(), Overrides: overrides})
	if err != nil {
		return err
	}
	return fn(c, fs)
}
