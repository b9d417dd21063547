// Package broker is Rampart's MQTT service: the mochi-mqtt protocol engine
// behind our own TLS listener and our own authentication, authorization,
// quotas and clone checks. Nothing here is permissive by default: a client
// that is not positively identified and authorized gets nothing.
//
// The engine is hardened where its defaults are unsafe: every connection
// runs under a panic guard (a decoder panic drops that client, not the hub),
// packets are capped before the engine allocates them, will messages are
// authorized at CONNECT, and no byte of MQTT is read before TLS completes
// and a CONNECT deadline runs.
package broker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampart-iot/rampart/internal/journal"
	"github.com/rampart-iot/rampart/internal/secrets"
)

// Kind of client.
type Kind int

// Client kinds.
const (
	KindDevice Kind = iota + 1
	KindApp
)

// DeviceState is what the registry says about a device right now.
type DeviceState struct {
	Quarantined bool // may publish only to devices/{id}/events
	MustRotate  bool // may only rotate its secret
}

// Quota overrides the per-client limits for one client (a device model's
// quota); zero fields keep the broker's Limits.
type Quota struct {
	PublishPerSec    float64
	PublishBurst     int
	BytesPerSec      float64
	MaxSubscriptions int
}

// Identity is an authenticated client.
type Identity struct {
	Quota    *Quota // nil: the broker's Limits
	Kind     Kind
	DeviceID string // devices
	AppID    string // applications (an API token's ID)
	TenantID string
	State    DeviceState
	Admin    bool // applications allowed to read $SYS
}

// Authenticator is the device registry and the token store as the broker
// needs them. Errors refuse the connection.
type Authenticator interface {
	// AuthenticateDevice checks a device whose certificate chain TLS has
	// already verified against the device CA: status (unknown, suspended,
	// revoked refused) and that this certificate is the current one.
	AuthenticateDevice(ctx context.Context, deviceID string, cert *x509.Certificate) (Identity, error)
	// AuthenticatePassword checks CONNECT username/password: a device's
	// unique secret or an application's API token with the mqtt scope.
	AuthenticatePassword(ctx context.Context, username string, password secrets.Text) (Identity, error)
}

// TenantLookup names the tenant of a device that has not connected since
// the broker started (an application subscribing to one device's topic).
type TenantLookup interface {
	TenantOf(ctx context.Context, deviceID string) (string, error)
}

// SessionTracker sees sessions open and close (clone detection). Opened
// returns an error to refuse a connection.
type SessionTracker interface {
	Opened(ctx context.Context, id Identity, remote string) error
	Closed(ctx context.Context, id Identity, remote string)
}

// Message is an accepted publish, for telemetry storage.
type Message struct {
	TenantID    string
	DeviceID    string
	Topic       string
	Payload     []byte
	ContentType string
	QoS         byte
	Received    time.Time
}

// SecretRotator changes a secret-authenticated device's secret (the
// must_rotate flow over MQTT).
type SecretRotator interface {
	RotateSecret(ctx context.Context, deviceID string, current, next secrets.Text, source string) error
}

// Sink receives accepted device messages (telemetry ingest).
type Sink interface {
	Ingest(m Message)
}

// Recorder is the journal.
type Recorder interface {
	Record(ctx context.Context, e journal.Event) error
}

// Options configure a Broker.
type Options struct {
	Addr     string
	TLS      *tls.Config // from tlsconf, with the device CA as (optional) client CAs
	Auth     Authenticator
	Sessions SessionTracker // optional
	Tenants  TenantLookup   // optional; without it only devices seen connected are known
	Sink     Sink           // optional
	Rotator  SecretRotator  // optional; without it must_rotate devices cannot rotate over MQTT
	Observer Observer       // optional; behaviour monitoring
	Journal  Recorder
	Logger   *slog.Logger
	Registry *prometheus.Registry // optional
	Now      func() time.Time
	Limits   Limits
}

// Limits are the quotas; zero fields take the defaults.
type Limits struct {
	MaxPacketBytes      int
	MaxConnsPerIP       int
	MaxConns            int
	NewConnsPerIPPerSec float64
	NewConnsBurst       int
	PublishPerSec       float64
	PublishBurst        int
	BytesPerSec         float64
	MaxSubscriptions    int
	ReceiveMaximum      int
	HandshakeTimeout    time.Duration
	ConnectTimeout      time.Duration
	FlapMaxConnects     int // CONNECTs per identity within the flapping window before a ban
}

func (l *Limits) fill() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	deff := func(v *float64, d float64) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxPacketBytes, DefaultMaxPacketBytes)
	def(&l.MaxConnsPerIP, DefaultMaxConnsPerIP)
	def(&l.MaxConns, DefaultMaxConns)
	deff(&l.NewConnsPerIPPerSec, DefaultNewConnsPerIPPerSec)
	def(&l.NewConnsBurst, DefaultNewConnsBurst)
	deff(&l.PublishPerSec, DefaultPublishPerSec)
	def(&l.PublishBurst, DefaultPublishBurst)
	deff(&l.BytesPerSec, DefaultBytesPerSec)
	def(&l.MaxSubscriptions, DefaultMaxSubscriptions)
	def(&l.ReceiveMaximum, DefaultReceiveMaximum)
	def(&l.FlapMaxConnects, flapMaxConnects)
	if l.HandshakeTimeout <= 0 {
		l.HandshakeTimeout = handshakeTimeout
	}
	if l.ConnectTimeout <= 0 {
		l.ConnectTimeout = connectTimeout
	}
}

// Broker is the running MQTT service.
type Broker struct {
	o   Options
	srv *mqtt.Server
	ln  *listener
	m   *metrics

	mu       sync.RWMutex              // read-locked on every publish and delivery; written at connect and disconnect
	sessions map[*mqtt.Client]*session // authenticated clients
	byConn   map[net.Conn]*mqtt.Client // for cleanup after a recovered panic
	byID     map[string]*session       // client ID -> session, for delivery filtering
	// deviceTenant remembers the tenant of every device that connected
	// (retained messages outlive sessions; the engine keeps them in memory
	// only, so this map covers every retained message).
	deviceTenant map[string]string
	flaps        *flapTracker

	hub            *mqtt.Client
	closeOnce      sync.Once
	authOnce       sync.Once
	authBucket     *bucket
	authSuppressed atomic.Int64
}

type session struct {
	id      Identity
	maxSubs int // subscription quota (Limits or the model's)
	remote  string
	msgs    *bucket
	bytes   *bucket
	subs    int
}

// New builds the broker; Start listens.
func New(o Options) (*Broker, error) {
	if o.Auth == nil || o.TLS == nil || o.Journal == nil {
		return nil, errors.New("broker: Auth, TLS and Journal are required")
	}
	if o.TLS.ClientAuth != tls.VerifyClientCertIfGiven && o.TLS.ClientAuth != tls.RequireAndVerifyClientCert {
		return nil, errors.New("broker: the TLS config must verify client certificates (tlsconf ClientCAs)")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.Limits.fill()
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = uint32(o.Limits.MaxPacketBytes)
	caps.ReceiveMaximum = uint16(o.Limits.ReceiveMaximum)
	caps.MaximumInflight = uint16(max(maxInflight, o.Limits.ReceiveMaximum))
	caps.MaximumClients = int64(o.Limits.MaxConns)
	caps.MaximumSessionExpiryInterval = 7 * 24 * 3600
	caps.MaximumClientWritesPending = maxWritesPending
	caps.TopicAliasMaximum = 0
	srv := mqtt.New(&mqtt.Options{
		Capabilities: caps,
		Logger:       o.Logger.With("component", "mqtt"),
		InlineClient: false, // the inline client bypasses ACLs; never enable it
	})
	b := &Broker{o: o, srv: srv, sessions: map[*mqtt.Client]*session{}, byConn: map[net.Conn]*mqtt.Client{}, byID: map[string]*session{}, deviceTenant: map[string]string{},
		flaps: newFlapTracker(o.Now, o.Limits.FlapMaxConnects)}
	b.m = newMetrics(o.Registry)
	// The hub's own publisher (commands, firmware offers): an engine client
	// with no connection, used only by PublishToDevice below, which allows
	// nothing but the device-bound topics. The engine's global inline
	// client stays off.
	b.hub = srv.NewClient(nil, "local", hubClientID, true)
	b.hub.Properties.ProtocolVersion = 5
	if err := srv.AddHook(&hook{b: b}, nil); err != nil {
		return nil, err
	}
	return b, nil
}

// Start opens the listener and serves until Close.
func (b *Broker) Start() error {
	l := &listener{b: b, id: "mqtts", addr: b.o.Addr, perIP: map[string]*ipState{}}
	if err := b.srv.AddListener(l); err != nil {
		return fmt.Errorf("listening for MQTT on %s: %w", b.o.Addr, err)
	}
	b.ln = l
	return b.srv.Serve()
}

// Addr is the bound address.
func (b *Broker) Addr() net.Addr { return b.ln.ln.Addr() }

// Close stops the listener and disconnects every client. It is safe to
// call more than once.
func (b *Broker) Close() error {
	var err error
	b.closeOnce.Do(func() { err = b.srv.Close() })
	return err
}

// DisconnectDevice closes every live session of a device at once (revocation,
// quarantine changes). It returns how many it closed.
func (b *Broker) DisconnectDevice(deviceID string) int {
	b.mu.Lock()
	var victims []*mqtt.Client
	for cl, s := range b.sessions {
		if s.id.Kind == KindDevice && s.id.DeviceID == deviceID {
			victims = append(victims, cl)
		}
	}
	b.mu.Unlock()
	for _, cl := range victims {
		_ = b.srv.DisconnectClient(cl, packets.ErrNotAuthorized)
		cl.Stop(errors.New("revoked"))
	}
	return len(victims)
}

// hubClientID names the hub's own publisher; client IDs starting with "$"
// are refused at CONNECT, so no client can pose as it.
const hubClientID = "$rampart-hub"

// hubTopics are the only topics the hub publishes to, under devices/{id}/.
var hubTopics = map[string]bool{"commands": true, "firmware": true, "credentials": true}

// PublishToDevice publishes a hub-made message (a signed command, a
// firmware offer) to devices/{deviceID}/{sub}. Only the device's own
// tenant's subscribers receive it.
func (b *Broker) PublishToDevice(deviceID, sub string, payload []byte, qos byte) error {
	root, _, _ := strings.Cut(sub, "/")
	topic := "devices/" + deviceID + "/" + sub
	if deviceID == "" || strings.ContainsAny(deviceID, "/+#") || !hubTopics[root] || !validTopicName(topic) || qos > 1 {
		return fmt.Errorf("broker: the hub does not publish to %q", topic)
	}
	b.rememberTenant(deviceID)
	return b.srv.InjectPacket(b.hub, packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos},
		TopicName:   topic, Payload: payload, PacketID: uint16(qos),
	})
}

// rememberTenant makes sure deviceTenant knows the device (a registry
// lookup outside the lock).
func (b *Broker) rememberTenant(deviceID string) {
	b.mu.Lock()
	_, known := b.deviceTenant[deviceID]
	b.mu.Unlock()
	if known || b.o.Tenants == nil {
		return
	}
	if t, err := b.o.Tenants.TenantOf(context.Background(), deviceID); err == nil {
		b.mu.Lock()
		b.deviceTenant[deviceID] = t
		b.mu.Unlock()
	}
}

// Disconnect closes the live sessions of a device, only the one from
// remoteAddr when it is not empty (devices.Disconnector).
func (b *Broker) Disconnect(deviceID, remoteAddr, reason string) {
	b.mu.Lock()
	var victims []*mqtt.Client
	for cl, s := range b.sessions {
		if s.id.Kind == KindDevice && s.id.DeviceID == deviceID && (remoteAddr == "" || s.remote == remoteAddr) {
			victims = append(victims, cl)
		}
	}
	b.mu.Unlock()
	for _, cl := range victims {
		_ = b.srv.DisconnectClient(cl, packets.ErrNotAuthorized)
		cl.Stop(errors.New(reason))
	}
}

func (b *Broker) record(e journal.Event) {
	if err := b.o.Journal.Record(context.Background(), e); err != nil {
		b.o.Logger.Error("journal write failed", "action", e.Action, "err", err)
	}
}

func deviceIDFromCert(c *x509.Certificate) (string, bool) {
	for _, u := range c.URIs {
		if u.Scheme == "urn" && strings.HasPrefix(u.Opaque, "rampart:device:") {
			id := strings.TrimPrefix(u.Opaque, "rampart:device:")
			return id, id != ""
		}
	}
	return "", false
}

func remoteIP(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}
