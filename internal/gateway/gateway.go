package gateway

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/tlsconf"
	"github.com/rampart-iot/rampart/sdk"
	"github.com/rampart-iot/rampart/sdk/keystore"
	"github.com/rampart-iot/rampart/sdk/safety"
)

// Options of a Gateway beyond gw.yaml.
type Options struct {
	Logger *slog.Logger     // nil: discard
	Now    func() time.Time // nil: time.Now
	// BackoffMax caps the SDK's MQTT reconnect backoff (0: the SDK's default).
	BackoffMax time.Duration
}

// Gateway is a running edge gateway: New -> Start -> Close.
type Gateway struct {
	cfg *Config
	o   Options
	log *slog.Logger

	self    *sdk.Client
	clients []*sdk.Client
	plcs    []*plcRunner
	secure  *secureServer

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New checks what Start will need; it opens nothing.
func New(cfg *Config, o Options) (*Gateway, error) {
	if cfg == nil || cfg.root == nil {
		return nil, errors.New("gateway: configuration not loaded (use Load or Parse)")
	}
	for _, p := range cfg.PLCs {
		for _, r := range p.Registers {
			if r.Write != nil && p.model == nil {
				return nil, fmt.Errorf("gateway: PLC %s has writable registers but no model", p.Name)
			}
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Gateway{cfg: cfg, o: o, log: o.Logger}, nil
}

// hubKey reads the pinned command key: the JSON of GET /pki/command-key
// or its base64 public key.
func hubKey(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the hub's command key: %w", err)
	}
	s := string(bytes.TrimSpace(b))
	var ck api.CommandKey
	if json.Unmarshal(b, &ck) == nil && ck.PublicKey != "" {
		s = ck.PublicKey
	}
	pub, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%s: not the hub's Ed25519 command key (save GET /pki/command-key there)", path)
	}
	if ck.KeyID != "" && ck.KeyID != safety.KeyID(pub) {
		return nil, fmt.Errorf("%s: key_id does not match the public key", path)
	}
	return pub, nil
}

// identity opens name's keystore, enrolling it first if it is new.
func (g *Gateway) identity(ctx context.Context, name string, prot keystore.KeyProtector, ca []byte) (*sdk.Device, error) {
	path := filepath.Join(g.cfg.resolve(g.cfg.State.Dir), name+".keystore")
	if _, err := os.Stat(path); err == nil {
		ks, err := keystore.Open(path, prot)
		if err != nil {
			return nil, fmt.Errorf("identity %s: %w", name, err)
		}
		return sdk.Load(ks)
	}
	en := sdk.Enrollment{Hub: g.cfg.Hub.URL, MQTT: g.cfg.Hub.MQTT, Trust: sdk.Trust{CABundle: ca}, Now: g.o.Now}
	switch {
	case g.cfg.Enroll.ClaimFile != "":
		tok, err := readSecret(g.cfg.resolve(g.cfg.Enroll.ClaimFile))
		if err != nil {
			return nil, err
		}
		en.Claim, en.SerialNumber, en.Name = tok, g.cfg.Name+"/"+name, name
	case g.cfg.Enroll.TokenFiles[name] != "":
		tok, err := readSecret(g.cfg.resolve(g.cfg.Enroll.TokenFiles[name]))
		if err != nil {
			return nil, err
		}
		en.Token = tok
	default:
		return nil, fmt.Errorf("identity %s is not enrolled and enroll: names no claim_file or token_files.%s", name, name)
	}
	ks, err := keystore.Create(path, prot)
	if err != nil {
		return nil, fmt.Errorf("identity %s: %w", name, err)
	}
	d, err := sdk.Enroll(ctx, ks, en)
	if err != nil {
		ks.Close()
		os.Remove(path)
		return nil, fmt.Errorf("enrolling %s: %w", name, err)
	}
	return d, nil
}

func readSecret(path string) (keystore.Secret, error) {
	st, err := os.Stat(path)
	if err != nil {
		return keystore.Secret{}, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return keystore.Secret{}, fmt.Errorf("%s is readable by others (mode %#o); run chmod 600 %s", path, st.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return keystore.Secret{}, err
	}
	return keystore.NewSecret(string(bytes.TrimSpace(b))), nil
}

// Start enrolls or loads every identity, starts one hub session per
// identity (the gateway works offline until the hub answers), starts
// polling, and opens the secure server. A bad file fails here.
func (g *Gateway) Start(ctx context.Context) error {
	ca, err := os.ReadFile(g.cfg.resolve(g.cfg.Hub.CAFile))
	if err != nil {
		return fmt.Errorf("reading the hub's CA: %w", err)
	}
	var key ed25519.PublicKey
	if g.cfg.Hub.CommandKeyFile != "" {
		if key, err = hubKey(g.cfg.resolve(g.cfg.Hub.CommandKeyFile)); err != nil {
			return err
		}
	}
	for _, p := range g.cfg.PLCs {
		if p.model != nil && key == nil {
			return g.cfg.errAt("hub.command_key_file", "required when a PLC has writable registers: commands are verified against it")
		}
	}
	dir := g.cfg.resolve(g.cfg.State.Dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	kf := g.cfg.resolve(g.cfg.State.KeyFile)
	if _, err := os.Stat(kf); errors.Is(err, fs.ErrNotExist) {
		if err := keystore.NewKeyFile(kf, nil); err != nil {
			return err
		}
	}
	prot := &keystore.KeyFile{Path: kf}

	self, err := g.identity(ctx, g.cfg.Name, prot, ca)
	if err != nil {
		return err
	}
	so := sdk.Options{Logger: g.log, BackoffMax: g.o.BackoffMax, Now: g.o.Now}
	g.self = sdk.Start(self, so)
	g.clients = append(g.clients, g.self)
	rctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	units := map[uint8]*plcRunner{}
	for i := range g.cfg.PLCs {
		p := &g.cfg.PLCs[i]
		dev, err := g.identity(ctx, p.Name, prot, ca)
		if err != nil {
			g.Close()
			return err
		}
		up := &lateUplink{}
		r, err := newPLCRunner(p, dev.ID(), up, key, g.o.Now, g.log)
		if err != nil {
			g.Close()
			return err
		}
		o := so
		o.Commands = r
		c := sdk.Start(dev, o)
		up.set(c)
		g.clients = append(g.clients, c)
		g.plcs = append(g.plcs, r)
		if p.SCADAUnitID != 0 {
			units[p.SCADAUnitID] = r
		}
		heard := heardFrom(c, r.guard)
		if r.guard != nil {
			g.wg.Add(1)
			go func() { defer g.wg.Done(); r.guard.Run(rctx) }()
		}
		g.wg.Add(1)
		go func() { defer g.wg.Done(); r.run(rctx, heard) }()
	}
	if g.cfg.Secure != nil {
		if err := g.startSecure(rctx, units); err != nil {
			g.Close()
			return err
		}
	}
	return nil
}

// lateUplink lets a runner exist before its client (the client needs the
// runner as its command handler).
type lateUplink struct {
	mu sync.Mutex
	c  *sdk.Client
}

func (u *lateUplink) set(c *sdk.Client) { u.mu.Lock(); u.c = c; u.mu.Unlock() }
func (u *lateUplink) get() *sdk.Client  { u.mu.Lock(); defer u.mu.Unlock(); return u.c }
func (u *lateUplink) Telemetry(name string, v any) error {
	if c := u.get(); c != nil {
		return c.Telemetry(name, v)
	}
	return sdk.ErrClosed
}
func (u *lateUplink) Event(name string, v any) error {
	if c := u.get(); c != nil {
		return c.Event(name, v)
	}
	return sdk.ErrClosed
}

// heardFrom tells the Guard the hub is alive whenever the hub has
// acknowledged something new (its failsafe counts from the last one).
func heardFrom(c *sdk.Client, g *safety.Guard) func() {
	if g == nil {
		return nil
	}
	var last uint64
	return func() {
		if a := c.Stats().Acked; a > last {
			last = a
			g.Heard()
		}
	}
}

func (g *Gateway) startSecure(ctx context.Context, units map[uint8]*plcRunner) error {
	s := g.cfg.Secure
	cert, err := tls.LoadX509KeyPair(g.cfg.resolve(s.CertFile), g.cfg.resolve(s.KeyFile))
	if err != nil {
		return fmt.Errorf("secure server certificate: %w", err)
	}
	if st, err := os.Stat(g.cfg.resolve(s.KeyFile)); err == nil && st.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("secure.key_file %s is readable by others (mode %#o); run chmod 600 %s", s.KeyFile, st.Mode().Perm(), s.KeyFile)
	}
	caPEM, err := os.ReadFile(g.cfg.resolve(s.ClientCAFile))
	if err != nil {
		return fmt.Errorf("secure.client_ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("secure.client_ca_file %s holds no PEM certificate", s.ClientCAFile)
	}
	tcfg, err := tlsconf.Server(tlsconf.ServerOptions{MinVersion: tlsconf.Version(s.MinTLS), ClientCAs: pool, Time: g.o.Now,
		Certificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil }})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("secure server on %s: %w", s.Addr, err)
	}
	g.secure = &secureServer{cfg: s, ln: ln, tcfg: tcfg, units: units, log: g.log, slots: make(chan struct{}, s.MaxClients),
		conns: map[net.Conn]struct{}{}, events: func(ev api.GatewayEvent) {
			ev.At = g.o.Now().UTC().Format(time.RFC3339Nano)
			_ = g.self.Event("gateway", ev)
		}}
	g.secure.wg.Add(1)
	go g.secure.serve(ctx)
	return nil
}

// SecureAddr is the secure server's address ("" without one).
func (g *Gateway) SecureAddr() string {
	if g.secure == nil {
		return ""
	}
	return g.secure.ln.Addr().String()
}

// DeviceIDs maps the gateway's and each PLC's name to its hub device ID.
func (g *Gateway) DeviceIDs() map[string]string {
	out := map[string]string{}
	if g.self != nil {
		out[g.cfg.Name] = g.self.Device().ID()
	}
	for _, r := range g.plcs {
		out[r.cfg.Name] = r.deviceID
	}
	return out
}

// Stats are the gateway's counters.
type Stats struct {
	Reads       uint64 // Modbus register reads made by polling
	PollsOK     uint64
	PollsFailed uint64
	Online      int // hub sessions up
	Sessions    int
}

// Stats returns the counters.
func (g *Gateway) Stats() Stats {
	var s Stats
	for _, r := range g.plcs {
		s.Reads += r.reads.Load()
		s.PollsOK += r.pollsOK.Load()
		s.PollsFailed += r.pollsFailed.Load()
	}
	for _, c := range g.clients {
		s.Sessions++
		if c.Stats().State == sdk.Online {
			s.Online++
		}
	}
	return s
}

// WaitOnline waits until every hub session is up.
func (g *Gateway) WaitOnline(ctx context.Context) error {
	for _, c := range g.clients {
		if err := c.WaitConnected(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Close stops polling and the secure server, flushes what is queued for
// the hub (briefly) and ends every session.
func (g *Gateway) Close() error {
	if g.cancel != nil {
		g.cancel()
	}
	if g.secure != nil {
		g.secure.close()
	}
	g.wg.Wait()
	for _, r := range g.plcs {
		r.close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, c := range g.clients {
		_ = c.Flush(ctx)
		c.Close()
	}
	return nil
}
