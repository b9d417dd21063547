package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampart-iot/rampart/internal/broker"
	"github.com/rampart-iot/rampart/internal/journal"
	"github.com/rampart-iot/rampart/internal/secrets"
	"github.com/rampart-iot/rampart/internal/store/sqlite"
	"github.com/rampart-iot/rampart/internal/telemetry"
	"github.com/rampart-iot/rampart/internal/tlsconf"
)

// The hub side of the bench runs in its own process (this binary with the
// "hub" argument) so that its resident memory and CPU are the broker's
// alone. It wires internal/broker the way internal/app does — tlsconf's
// server config with client certificates verified against the device CA,
// the journal on SQLite, telemetry batched into SQLite, the broker's
// quotas, ACL, clone check and tenant filtering — with one substitution:
// the device registry is an in-memory adapter (registry below) that knows
// the bench's devices by certificate fingerprint, as devices.Service does
// from its table.

// registry is the bench's device registry: device ID -> fingerprint of its
// current certificate, all in tenant "t1"; one application "app" with a
// token. It also keeps the clone check (one live session per identity).
type registry struct {
	devices map[string][32]byte
	token   [32]byte
	mu      sync.Mutex
	live    map[string]int
}

const benchTenant = "t1"

func (r *registry) AuthenticateDevice(_ context.Context, id string, cert *x509.Certificate) (broker.Identity, error) {
	fp, ok := r.devices[id]
	if !ok {
		return broker.Identity{}, errors.New("unknown device")
	}
	if sum := sha256.Sum256(cert.Raw); subtle.ConstantTimeCompare(sum[:], fp[:]) != 1 {
		return broker.Identity{}, errors.New("not the device's current certificate")
	}
	return broker.Identity{Kind: broker.KindDevice, DeviceID: id, TenantID: benchTenant}, nil
}

func (r *registry) AuthenticatePassword(_ context.Context, user string, pass secrets.Text) (broker.Identity, error) {
	sum := sha256.Sum256([]byte(pass.Reveal()))
	if user != "app" || subtle.ConstantTimeCompare(sum[:], r.token[:]) != 1 {
		return broker.Identity{}, errors.New("bad credentials")
	}
	return broker.Identity{Kind: broker.KindApp, AppID: "app", TenantID: benchTenant}, nil
}

func (r *registry) Opened(_ context.Context, id broker.Identity, _ string) error {
	if id.Kind != broker.KindDevice {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.live[id.DeviceID] > 0 {
		return errors.New("possible clone: this identity is already connected")
	}
	r.live[id.DeviceID]++
	return nil
}

func (r *registry) Closed(_ context.Context, id broker.Identity, _ string) {
	if id.Kind != broker.KindDevice {
		return
	}
	r.mu.Lock()
	r.live[id.DeviceID]--
	if r.live[id.DeviceID] <= 0 {
		delete(r.live, id.DeviceID)
	}
	r.mu.Unlock()
}

type sink struct{ g *telemetry.Ingester }

func (s sink) Ingest(m broker.Message) {
	s.g.Ingest(telemetry.Message{TenantID: m.TenantID, DeviceID: m.DeviceID, Topic: m.Topic, Payload: m.Payload,
		ContentType: m.ContentType, Received: m.Received})
}

func loadRegistry(dir, token string) (*registry, error) {
	f, err := os.Open(filepath.Join(dir, "devices.txt"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := &registry{devices: map[string][32]byte{}, live: map[string]int{}, token: sha256.Sum256([]byte(token))}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		id, fpHex, _ := strings.Cut(sc.Text(), " ")
		var fp [32]byte
		if _, err := hex.Decode(fp[:], []byte(fpHex)); err != nil {
			return nil, fmt.Errorf("devices.txt: %w", err)
		}
		r.devices[id] = fp
	}
	return r, sc.Err()
}

// benchLimits: every quota stays on and is checked on every packet; the
// values are raised so that one loopback address and a flat-out publisher
// measure the engine rather than the quota (see docs/performance.md).
var benchLimits = broker.Limits{
	MaxConnsPerIP: 1 << 20, NewConnsPerIPPerSec: 1e9, NewConnsBurst: 1 << 30, FlapMaxConnects: 1 << 30,
	PublishPerSec: 1e9, PublishBurst: 1 << 30, BytesPerSec: 1e12,
}

func runHub(args []string) error {
	fs := flag.NewFlagSet("hub", flag.ExitOnError)
	dir := fs.String("dir", "", "bench directory (certificates, devices.txt)")
	token := fs.String("token", "", "the application's token")
	profile := fs.String("profile", "", "write cpu/allocs/mutex/block/heap profiles into this directory")
	store := fs.Bool("store", true, "store telemetry (false only to attribute its cost; never for the headline figures)")
	fs.Parse(args)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	if *profile != "" {
		runtime.SetMutexProfileFraction(5)
		runtime.SetBlockProfileRate(10_000) // one sample per 10 µs blocked
		f, err := os.Create(filepath.Join(*profile, "cpu.pprof"))
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
			for _, p := range []string{"allocs", "mutex", "block", "heap"} {
				if w, err := os.Create(filepath.Join(*profile, p+".pprof")); err == nil {
					pprof.Lookup(p).WriteTo(w, 0)
					w.Close()
				}
			}
		}()
	}

	reg, err := loadRegistry(*dir, *token)
	if err != nil {
		return err
	}
	db, err := sqlite.Open(ctx, filepath.Join(*dir, "hub.db"))
	if err != nil {
		return err
	}
	defer db.Close()
	_, signer, _ := ed25519.GenerateKey(rand.Reader)
	mac := make([]byte, 32)
	rand.Read(mac)
	j, err := journal.New(journal.Options{Store: db.Journal(), Signer: signer, MACKey: mac})
	if err != nil {
		return err
	}
	jctx, stopJournal := context.WithCancel(context.Background())
	go j.Run(jctx)
	defer func() {
		stopJournal()
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		j.Close(cctx)
	}()
	ingest, err := telemetry.New(telemetry.Options{Store: db.Telemetry()})
	if err != nil {
		return err
	}
	ingest.Start()
	defer ingest.Close()

	cert, err := tls.LoadX509KeyPair(filepath.Join(*dir, "server.pem"), filepath.Join(*dir, "server.key"))
	if err != nil {
		return err
	}
	caPEM, err := os.ReadFile(filepath.Join(*dir, "ca.pem"))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	tcfg, err := tlsconf.Server(tlsconf.ServerOptions{
		Certificate:        func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil },
		ClientCAs:          pool,
		ClientCertOptional: true,
	})
	if err != nil {
		return err
	}
	var snk broker.Sink = sink{g: ingest}
	if !*store {
		snk = nil
	}
	b, err := broker.New(broker.Options{Addr: "127.0.0.1:0", TLS: tcfg, Auth: reg, Sessions: reg,
		Sink: snk, Journal: j, Logger: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry(),
		Limits: benchLimits})
	if err != nil {
		return err
	}
	if err := b.Start(); err != nil {
		return err
	}
	defer b.Close()
	if *profile != "" {
		usr1 := make(chan os.Signal, 1)
		signal.Notify(usr1, syscall.SIGUSR1)
		go func() {
			for range usr1 {
				runtime.GC()
				if w, err := os.Create(filepath.Join(*profile, "heap-idle.pprof")); err == nil {
					pprof.Lookup("heap").WriteTo(w, 0)
					w.Close()
				}
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				fmt.Fprintf(os.Stderr, "hub memstats: goroutines %d, HeapInuse %d KiB, StackInuse %d KiB, HeapIdle %d KiB, HeapReleased %d KiB, Sys %d KiB\n",
					runtime.NumGoroutine(), ms.HeapInuse>>10, ms.StackInuse>>10, ms.HeapIdle>>10, ms.HeapReleased>>10, ms.Sys>>10)
			}
		}()
	}
	fmt.Printf("ready %s\n", b.Addr())
	<-ctx.Done()
	return nil
}
