package app

import (
	"context"
	"crypto"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/rampart-iot/rampart/internal/accounts"
	"github.com/rampart-iot/rampart/internal/broker"
	"github.com/rampart-iot/rampart/internal/config"
	"github.com/rampart-iot/rampart/internal/httpapi"
	"github.com/rampart-iot/rampart/internal/journal"
	"github.com/rampart-iot/rampart/internal/pki"
	"github.com/rampart-iot/rampart/internal/posture"
	"github.com/rampart-iot/rampart/internal/secrets"
	"github.com/rampart-iot/rampart/internal/telemetry"
	"github.com/rampart-iot/rampart/internal/tlsconf"
)

// Option changes how Serve builds the hub; tests use them.
type Option func(*serveOptions)

type serveOptions struct {
	env        env
	hashParams accounts.HashParams
	// onHandler lets tests see the API handler (its route table).
	onHandler func(*httpapi.Handler)
}

// WithHashParams sets the password hashing cost (tests use a cheap one).
func WithHashParams(p accounts.HashParams) Option {
	return func(o *serveOptions) { o.hashParams = p }
}

// WithClock injects the hub's clock.
func WithClock(now func() time.Time) Option {
	return func(o *serveOptions) { o.env.now = now }
}

func newLogger(cfg *config.Config, io IO) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.Log.Level))
	ho := &slog.HandlerOptions{Level: lvl}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(io.Stderr, ho))
	}
	return slog.New(slog.NewTextHandler(io.Stderr, ho))
}

// writeFileAtomic writes data to path with perm via a temporary file and a
// rename, so a crash never leaves half a file.
func writeFileAtomic(path string, data []byte, perm fs.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Serve runs the hub until ctx ends, then shuts down gracefully: stop
// accepting, drain requests, write a final journal checkpoint, close the
// database.
func Serve(ctx context.Context, cfg *config.Config, io IO, opts ...Option) (err error) {
	so := serveOptions{env: defaultEnv(), hashParams: hashParamsFrom(cfg)}
	for _, o := range opts {
		o(&so)
	}
	e := so.env
	log := newLogger(cfg, io)

	d, err := openData(ctx, cfg, e, true, true)
	if err != nil {
		return err
	}
	defer d.Close()

	j, err := d.openJournal(ctx, cfg, e, log, true)
	if err != nil {
		return err
	}
	jctx, stopJournal := context.WithCancel(context.Background())
	var jwg sync.WaitGroup
	jwg.Add(1)
	go func() { defer jwg.Done(); j.Run(jctx) }()
	defer func() {
		stopJournal()
		jwg.Wait()
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if cerr := j.Close(cctx); cerr != nil {
			log.Error("closing journal", "err", cerr)
		}
	}()

	if d.created {
		if err := j.Record(ctx, journal.Event{Actor: "system", Action: "hub.initialized", Outcome: "success",
			Detail: map[string]string{"master_key": d.mk.ID()}}); err != nil {
			return err
		}
	}

	ca, server, rootCreated, err := pki.Bootstrap(ctx, pki.Options{
		Vault: d.vault, NotFound: func(err error) bool { return errors.Is(err, secrets.ErrNotFound) },
		Now: e.now, Rand: e.rand, Hostnames: cfg.HTTPS.Hostnames,
	})
	if err != nil {
		return fmt.Errorf("starting the CA: %w", err)
	}
	if rootCreated {
		if err := j.Record(ctx, journal.Event{Actor: "system", Action: "pki.root_created", Target: ca.Cert.Subject.CommonName, Outcome: "success"}); err != nil {
			return err
		}
	}
	caPath := filepath.Join(d.dir, caFile)
	if cur, rerr := os.ReadFile(caPath); rerr != nil || !ca.SameCertPEM(cur) {
		if err := writeFileAtomic(caPath, ca.CertPEM(), 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", caPath, err)
		}
	}

	if err := recordConfigChange(ctx, cfg, d, j); err != nil {
		return err
	}

	devs, dca, err := startDevices(ctx, cfg, d, j, e, log, ca)
	if err != nil {
		return err
	}

	acc, err := accounts.New(accountOptions(cfg, d, j, e, so, log))
	if err != nil {
		return err
	}
	codePath := filepath.Join(d.dir, setupCodeFile)
	code, needSetup, err := acc.StartSetup(ctx)
	if err != nil {
		return err
	}
	if needSetup {
		if err := writeFileAtomic(codePath, []byte(code.Reveal()+"\n"), 0o600); err != nil {
			return fmt.Errorf("writing %s: %w", codePath, err)
		}
	} else if err := os.Remove(codePath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}

	ingest, err := telemetry.New(telemetry.Options{Store: d.db.Telemetry(), Now: e.now, Logger: log})
	if err != nil {
		return err
	}
	ingest.Start()
	defer ingest.Close()

	cmds, err := startCommands(ctx, d, j, e, log, devs, ingest)
	if err != nil {
		return err
	}
	acks := newAckSink(cmds, log)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	fw, err := startFirmware(d, j, e, log, devs)
	if err != nil {
		return err
	}
	audit := &hubAudit{cfg: cfg, d: d, root: ca, dca: dca, isOperator: acc.IsOperator,
		a: posture.New(posture.Options{Devices: devs, Tokens: acc, Firmware: fw, Now: e.now})}
	handler := httpapi.New(httpapi.Options{
		Accounts: acc, Logger: log, MaxBodyBytes: cfg.HTTPS.MaxBodyBytes, Registry: reg,
		Devices:   devs,
		Telemetry: ingest,
		Commands:  cmds,
		Audit:     audit,
		Firmware:  fw,
		OnSetupDone: func() {
			if err := os.Remove(codePath); err != nil && !errors.Is(err, fs.ErrNotExist) {
				log.Error("removing setup code file", "path", codePath, "err", err)
			}
		},
	})
	if so.onHandler != nil {
		so.onHandler(handler)
	}

	chain, key, leaf := server.TLSCertificate()
	tlsCert := &tls.Certificate{Certificate: chain, PrivateKey: crypto.Signer(key), Leaf: leaf}
	tcfg, err := tlsconf.Server(tlsconf.ServerOptions{
		MinVersion:  tlsconf.Version(cfg.TLS.MinVersion),
		Certificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return tlsCert, nil },
		NextProtos:  []string{"h2", "http/1.1"},
		// Device renewal and factory-certificate enrollment authenticate
		// with a client certificate; their handlers verify it.
		RequestClientCert: true,
		Time:              e.now,
	})
	if err != nil {
		return err
	}
	srv, err := httpapi.NewServer(cfg.HTTPS.Addr, tcfg, handler, time.Duration(cfg.HTTPS.ReadHeaderTimeout), log)
	if err != nil {
		return fmt.Errorf("listening for HTTPS on %s: %w", cfg.HTTPS.Addr, err)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve() }()

	gwEvents := newGatewayEvents(j, log) // devices/{id}/events/gateway -> journal (edge gateways)
	defer gwEvents.run()()               // stops after the broker has closed: drains what it delivered
	detect, err := startDetection(cfg, e, log, j, devs)
	if err != nil {
		srv.Shutdown(context.Background())
		return err
	}
	defer detect.Close()
	audit.setAnomalies(detect)
	mqttBroker, err := startBroker(cfg, e, log, reg, j, devs, acc, dca, tlsCert, ingest,
		func(next broker.Sink) broker.Sink { return acks.wrap(gwEvents.wrap(next)) }, detect.observer(), cmds)
	if err != nil {
		srv.Shutdown(context.Background())
		return fmt.Errorf("starting MQTT on %s: %w", cfg.MQTT.Addr, err)
	}
	defer mqttBroker.Close()
	defer runCommands(cmds, acks, mqttBroker)()
	audit.setAddrs(hostPort(srv.Addr()), hostPort(mqttBroker.Addr()))

	if err := j.Record(ctx, journal.Event{Actor: "system", Action: "hub.started", Outcome: "success",
		Detail: map[string]string{"version": version, "https": srv.Addr().String(), "mqtt": mqttBroker.Addr().String()}}); err != nil {
		srv.Shutdown(context.Background())
		return err
	}
	if needSetup {
		fmt.Fprintf(io.Stdout, "setup code: %s\n", code.Reveal())
	}
	fmt.Fprintf(io.Stdout, "rampart ready https=%s mqtt=%s\n", hostPort(srv.Addr()), hostPort(mqttBroker.Addr()))
	log.Info("hub ready", "https", srv.Addr().String(), "data", d.dir, "master_key", d.mk.ID())

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		if err != nil {
			return fmt.Errorf("HTTPS listener stopped: %w", err)
		}
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("HTTPS drain incomplete", "err", err)
	}
	if err := mqttBroker.Close(); err != nil {
		log.Warn("closing MQTT", "err", err)
	}
	ingest.Close()
	if err := j.Record(context.Background(), journal.Event{Actor: "system", Action: "hub.stopped", Outcome: "success"}); err != nil {
		log.Error("journal write failed", "err", err)
	}
	return nil
}

// shutdownGrace bounds the drain of in-flight requests at shutdown.
const shutdownGrace = 10 * time.Second

func hostPort(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return net.JoinHostPort(ta.IP.String(), fmt.Sprint(ta.Port))
	}
	return a.String()
}

// recordConfigChange journals a change of the effective configuration since
// the last start.
func recordConfigChange(ctx context.Context, cfg *config.Config, d *data, j *journal.Journal) error {
	now := configHash(cfg)
	prev, err := d.vault.Get(ctx, vaultConfigHash)
	if err != nil && !errors.Is(err, secrets.ErrNotFound) {
		return err
	}
	if string(prev) == now {
		return nil
	}
	detail := map[string]string{"config": now}
	if len(prev) > 0 {
		detail["previous"] = string(prev)
	}
	if err := j.Record(ctx, journal.Event{Actor: "system", Action: "config.changed", Outcome: "success", Detail: detail}); err != nil {
		return err
	}
	return d.vault.Put(ctx, vaultConfigHash, []byte(now))
}
