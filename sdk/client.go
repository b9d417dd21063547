package sdk

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/rampart-iot/rampart/sdk/keystore"
)

// Options configure a Client. The zero value is usable.
type Options struct {
	// Commands handles devices/{id}/commands; nil refuses every command
	// (ack "rejected", code no_handler). Wrap it with Chain(h, Verify(v),
	// ...) to add signature checks and local limits.
	Commands Handler
	// Encoding of Telemetry and Event payloads (JSON by default).
	Encoding Encoding
	// QueueSize is the offline queue's capacity in messages
	// (DefaultQueueSize when 0).
	QueueSize int
	// BackoffBase and BackoffMax shape reconnect waits (full jitter).
	BackoffBase, BackoffMax time.Duration
	// KeepAlive for MQTT (DefaultKeepAlive when 0).
	KeepAlive time.Duration
	// LocalAddr, when set, is the source address for MQTT connections
	// (a simulator models a fleet behind several addresses with it).
	LocalAddr net.Addr
	// OnAttempt, OnConnect and OnDisconnect are told when a connection
	// attempt starts and when a session comes up or ends; they must not
	// block.
	OnAttempt    func()
	OnConnect    func()
	OnDisconnect func(error)
	// AutoRenew renews the certificate at 2/3 of its lifetime (default
	// true; set DisableAutoRenew to turn it off).
	DisableAutoRenew bool

	Now    func() time.Time // nil: time.Now (renewal schedule, command expiry)
	Rand   io.Reader        // nil: crypto/rand (jitter, secrets)
	Logger *slog.Logger     // nil: discard
}

// State of a Client's MQTT session.
type State int32

// States.
const (
	Offline State = iota
	Online
	Closed
)

func (s State) String() string {
	return [...]string{"offline", "online", "closed"}[s]
}

// Stats are a Client's counters.
type Stats struct {
	State      State
	Queued     int    // messages waiting for the hub
	Dropped    uint64 // oldest messages dropped from a full queue
	Acked      uint64 // messages the hub acknowledged (PUBACK)
	Connects   uint64 // sessions established
	Attempts   uint64 // CONNECT attempts
	Renewals   uint64 // certificates renewed
	Commands   uint64 // commands handled
	LastError  error  // the last connection or renewal error
	LastOnline time.Time
}

// Client is a device's connection to the hub: MQTT over mutual TLS (or a
// secret for devices without X.509), reconnecting by itself, renewing the
// certificate by itself, queueing telemetry while offline.
type Client struct {
	dev *Device
	o   Options
	q   *queue
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	cmds   chan *Command

	mu        sync.Mutex
	mq        paho.Client // current session, nil when offline
	online    chan struct{}
	onlineSet bool
	lastErr   error
	lastOn    time.Time
	connects  []time.Time // recent CONNECT attempts (flapping guard)
	first     chan error  // the first session's outcome
	firstDone bool

	state                                       atomic.Int32
	acked, nconn, attempts, renewals, commandsN atomic.Uint64
	rndMu                                       sync.Mutex
}

// Connect starts a Client for dev and waits until its first session is
// up (a must_rotate secret device has rotated its secret by then) or ctx
// ends. A refused credential returns ErrRefused at once. On error the
// client is closed.
func Connect(ctx context.Context, dev *Device, o Options) (*Client, error) {
	c := Start(dev, o)
	if err := c.WaitConnected(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Start starts a Client for dev and returns at once: the device works
// offline (telemetry queues) until the hub is reachable. Close stops it.
func Start(dev *Device, o Options) *Client {
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = DefaultBackoffBase
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = DefaultBackoffMax
	}
	if o.KeepAlive <= 0 {
		o.KeepAlive = DefaultKeepAlive
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	lg := o.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{dev: dev, o: o, q: newQueue(o.QueueSize), log: lg.With("device", dev.id), ctx: ctx, cancel: cancel,
		cmds: make(chan *Command, commandQueue), online: make(chan struct{}), first: make(chan error, 1)}
	c.wg.Add(3)
	go c.run()
	go c.send()
	go c.handleCommands()
	if dev.cred == credCert && !o.DisableAutoRenew && dev.hub != "" {
		c.wg.Add(1)
		go c.renewLoop()
	}
	return c
}

// WaitConnected waits for the first session (or its refusal, or ctx).
func (c *Client) WaitConnected(ctx context.Context) error {
	select {
	case err := <-c.first:
		c.first <- err // keep it for the next caller
		return err
	case <-ctx.Done():
		c.mu.Lock()
		last := c.lastErr
		c.mu.Unlock()
		if last != nil {
			return fmt.Errorf("not connected: %w (last error: %v)", ctx.Err(), last)
		}
		return fmt.Errorf("not connected: %w", ctx.Err())
	}
}

// Device returns the client's device.
func (c *Client) Device() *Device { return c.dev }

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	queued, dropped := c.q.stats()
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{State: State(c.state.Load()), Queued: queued, Dropped: dropped, Acked: c.acked.Load(),
		Connects: c.nconn.Load(), Attempts: c.attempts.Load(), Renewals: c.renewals.Load(), Commands: c.commandsN.Load(),
		LastError: c.lastErr, LastOnline: c.lastOn}
}

// Flush waits until every queued message is acknowledged, or ctx ends.
func (c *Client) Flush(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if n, _ := c.q.stats(); n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			n, _ := c.q.stats()
			return fmt.Errorf("%d messages still queued: %w", n, ctx.Err())
		case <-t.C:
		}
	}
}

// Close ends the session (a clean DISCONNECT) and stops every goroutine.
// Queued messages that were not acknowledged are lost with the process;
// call Flush first to wait for them.
func (c *Client) Close() error {
	c.cancel()
	c.wg.Wait()
	c.state.Store(int32(Closed))
	return nil
}

func (c *Client) enqueue(topic string, payload []byte) error {
	if c.ctx.Err() != nil {
		return ErrClosed
	}
	c.q.push(topic, payload)
	return nil
}

// jitter returns a uniform duration in [0, d).
func (c *Client) jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	var b [8]byte
	c.rndMu.Lock()
	_, _ = io.ReadFull(c.o.Rand, b[:])
	c.rndMu.Unlock()
	return time.Duration(binary.BigEndian.Uint64(b[:]) % uint64(d))
}

// Backoff returns the full-jitter wait before reconnect attempt n (0-based):
// uniform in [0, min(max, base*2^n)).
func Backoff(n int, base, max time.Duration, rnd func(time.Duration) time.Duration) time.Duration {
	ceil := float64(base) * math.Pow(2, float64(n))
	if ceil > float64(max) {
		ceil = float64(max)
	}
	return rnd(time.Duration(ceil))
}

func (c *Client) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// run is the connection loop: connect, hold the session until it ends,
// wait a jittered backoff, again.
func (c *Client) run() {
	defer c.wg.Done()
	attempt := 0
	for c.ctx.Err() == nil {
		if !c.sleep(c.flapGuard()) {
			break
		}
		start := time.Now()
		err := c.session()
		if c.ctx.Err() != nil {
			break
		}
		c.mu.Lock()
		c.lastErr = err
		if (errors.Is(err, ErrRefused) || isTrustError(err)) && !c.firstDone {
			c.firstDone = true
			c.first <- err
		}
		c.mu.Unlock()
		if time.Since(start) >= stableSession {
			attempt = 0
		}
		wait := Backoff(attempt, c.o.BackoffBase, c.o.BackoffMax, c.jitter)
		c.log.Debug("mqtt session ended; reconnecting", "err", err, "in", wait)
		if attempt < 30 {
			attempt++
		}
		if !c.sleep(wait) {
			break
		}
	}
	c.mu.Lock()
	if !c.firstDone {
		c.firstDone = true
		c.first <- ErrClosed
	}
	c.mu.Unlock()
}

// isTrustError: the hub's certificate did not verify. Retrying cannot fix
// that, so Connect reports it at once (the background loop still retries,
// in case the hub's certificate is being replaced).
func isTrustError(err error) bool {
	var ve *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	return errors.As(err, &ve) || errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci)
}

// flapGuard returns how long to wait so that this identity never sends
// more than maxConnectsPerWindow CONNECTs in connectWindow (the hub bans
// more than 10). Attempts that never got past TLS do not count.
func (c *Client) flapGuard() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	keep := c.connects[:0]
	for _, t := range c.connects {
		if now.Sub(t) < connectWindow {
			keep = append(keep, t)
		}
	}
	c.connects = keep
	if len(keep) < maxConnectsPerWindow {
		return 0
	}
	// Jitter over the whole backoff range: devices that connected together
	// must not all wake when their first CONNECT ages out together.
	return connectWindow - now.Sub(keep[0]) + c.jitter(c.o.BackoffMax)
}

// session dials, authenticates, rotates a must_rotate secret, subscribes
// to commands, then blocks until the connection is lost or the client
// closes. It returns why the session ended.
func (c *Client) session() error {
	c.attempts.Add(1)
	if c.o.OnAttempt != nil {
		c.o.OnAttempt()
	}
	lost := make(chan error, 1)
	mq, err := c.dial(lost)
	if err != nil {
		return err
	}
	defer mq.Disconnect(250)
	if c.dev.cred == credSecret {
		if err := c.rotateIfNeeded(mq); err != nil {
			return err
		}
	}
	topic := "devices/" + c.dev.id + "/commands"
	tok := mq.Subscribe(topic, 1, c.onCommand)
	if !tok.WaitTimeout(connectTimeout) {
		return errors.New("subscribing to commands: no SUBACK")
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("subscribing to commands: %w", err)
	}
	if st, ok := tok.(*paho.SubscribeToken); ok && st.Result()[topic] == 0x80 {
		return fmt.Errorf("%w: subscription to %s refused", ErrRefused, topic)
	}
	c.setOnline(mq)
	defer c.setOffline()
	select {
	case <-c.ctx.Done():
		return nil
	case err := <-lost:
		return fmt.Errorf("connection lost: %w", err)
	}
}

// dial makes one MQTT connection attempt.
func (c *Client) dial(lost chan<- error) (paho.Client, error) {
	host, err := hostOf(c.dev.mqtt)
	if err != nil {
		return nil, err
	}
	tcfg := c.dev.anchor.tlsConfig(host, time.Now, c.dev.tlsCert)
	dialer := &net.Dialer{Timeout: connectTimeout, LocalAddr: c.o.LocalAddr, KeepAlive: 30 * time.Second}
	po := paho.NewClientOptions().
		AddBroker("ssl://" + c.dev.mqtt).
		SetClientID(c.dev.id).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetKeepAlive(c.o.KeepAlive).
		SetConnectTimeout(connectTimeout).
		SetWriteTimeout(publishTimeout).
		SetOrderMatters(false).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			select {
			case lost <- err:
			default:
			}
		}).
		SetCustomOpenConnectionFn(func(u *url.URL, _ paho.ClientOptions) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(c.ctx, connectTimeout)
			defer cancel()
			raw, err := dialer.DialContext(ctx, "tcp", u.Host)
			if err != nil {
				return nil, err
			}
			tc := tls.Client(raw, tcfg)
			if err := tc.HandshakeContext(ctx); err != nil {
				raw.Close()
				return nil, fmt.Errorf("TLS handshake with the hub: %w", err)
			}
			// Only now does a CONNECT reach the hub's flapping count; a
			// refused dial or handshake does not.
			c.mu.Lock()
			c.connects = append(c.connects, time.Now())
			c.mu.Unlock()
			return tc, nil
		})
	if c.dev.cred == credSecret {
		secret, err := c.currentSecret()
		if err != nil {
			return nil, err
		}
		po.SetUsername(c.dev.id).SetPassword(secret.Reveal())
	}
	mq := paho.NewClient(po)
	tok := mq.Connect()
	if !tok.WaitTimeout(connectTimeout + time.Second) {
		mq.Disconnect(0)
		return nil, errors.New("connecting: no CONNACK")
	}
	if err := tok.Error(); err != nil {
		if ct, ok := tok.(*paho.ConnectToken); ok {
			switch ct.ReturnCode() {
			case packets.ErrRefusedBadUsernameOrPassword, packets.ErrRefusedNotAuthorised, packets.ErrRefusedIDRejected:
				if c.dev.cred == credSecret && c.tryNextSecret() {
					return nil, fmt.Errorf("connecting: %w (trying the rotated secret next)", err)
				}
				return nil, fmt.Errorf("%w: %v", ErrRefused, err)
			}
		}
		return nil, fmt.Errorf("connecting: %w", err)
	}
	return mq, nil
}

func (c *Client) setOnline(mq paho.Client) {
	c.mu.Lock()
	c.mq = mq
	c.lastOn = time.Now()
	c.lastErr = nil
	if !c.onlineSet {
		close(c.online)
		c.onlineSet = true
	}
	if !c.firstDone {
		c.firstDone = true
		c.first <- nil
	}
	c.mu.Unlock()
	c.nconn.Add(1)
	c.state.Store(int32(Online))
	if c.o.OnConnect != nil {
		c.o.OnConnect()
	}
	select { // wake the sender
	case c.q.ready <- struct{}{}:
	default:
	}
}

func (c *Client) setOffline() {
	c.mu.Lock()
	c.mq = nil
	if c.onlineSet {
		c.online = make(chan struct{})
		c.onlineSet = false
	}
	err := c.lastErr
	c.mu.Unlock()
	c.state.Store(int32(Offline))
	if c.o.OnDisconnect != nil {
		c.o.OnDisconnect(err)
	}
}

// current returns the live session, or nil and a channel closed when one
// comes up.
func (c *Client) current() (paho.Client, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mq, c.online
}

// send drains the queue into the live session, QoS 1, a window at a time;
// messages leave the queue only once acknowledged.
func (c *Client) send() {
	defer c.wg.Done()
	for c.ctx.Err() == nil {
		mq, up := c.current()
		if mq == nil {
			select {
			case <-c.ctx.Done():
				return
			case <-up:
			}
			continue
		}
		batch := c.q.peek(inflightWindow)
		if len(batch) == 0 {
			select {
			case <-c.ctx.Done():
				return
			case <-c.q.ready:
			}
			continue
		}
		toks := make([]paho.Token, len(batch))
		for i, m := range batch {
			toks[i] = mq.Publish(m.topic, 1, false, m.payload)
		}
		var upTo uint64
		ok := true
		for i, t := range toks {
			if !t.WaitTimeout(publishTimeout) || t.Error() != nil {
				ok = false
				break
			}
			upTo = batch[i].seq
		}
		if upTo > 0 {
			c.q.ack(upTo)
			c.acked.Add(uint64(countUpTo(batch, upTo)))
		}
		if !ok { // the session is going down; wait for the next one
			if !c.sleep(100 * time.Millisecond) {
				return
			}
		}
	}
}

func countUpTo(b []message, upTo uint64) int {
	n := 0
	for _, m := range b {
		if m.seq <= upTo {
			n++
		}
	}
	return n
}

// onCommand runs on paho's goroutine: parse, hand to the worker, never block.
func (c *Client) onCommand(_ paho.Client, m paho.Message) {
	cmd, err := parseCommand(m.Topic(), m.Payload())
	if err != nil {
		c.log.Warn("refusing malformed command", "err", err)
		return
	}
	select {
	case c.cmds <- cmd:
	default:
		c.ack(Ack{ID: cmd.ID, Status: AckRejected, Code: "busy", Message: "too many commands waiting"})
	}
}

func (c *Client) handleCommands() {
	defer c.wg.Done()
	h := c.o.Commands
	if h == nil {
		h = HandlerFunc(func(context.Context, *Command) (any, error) {
			return nil, Reject("no_handler", "this device takes no commands")
		})
	}
	for {
		select {
		case <-c.ctx.Done():
			return
		case cmd := <-c.cmds:
			c.commandsN.Add(1)
			c.ack(runCommand(c.ctx, h, cmd))
		}
	}
}

func (c *Client) ack(a Ack) {
	b, err := json.Marshal(a)
	if err != nil {
		return
	}
	_ = c.enqueue("devices/"+c.dev.id+"/acks/"+a.ID, b)
}

// renewLoop renews the certificate at 2/3 of its lifetime, retrying with
// jittered backoff; the MQTT session is not interrupted.
func (c *Client) renewLoop() {
	defer c.wg.Done()
	fails := 0
	for {
		wait := c.dev.RenewAt().Sub(c.o.Now())
		if fails > 0 {
			wait = Backoff(fails, renewRetryBase, renewRetryMax, c.jitter)
		}
		if !c.sleep(max(wait, 0)) {
			return
		}
		if err := c.Renew(c.ctx); err != nil {
			if c.ctx.Err() != nil {
				return
			}
			fails++
			c.log.Warn("certificate renewal failed; will retry", "err", err)
			c.mu.Lock()
			c.lastErr = err
			c.mu.Unlock()
			continue
		}
		fails = 0
	}
}

// Renew renews the device certificate now (the client also does it by
// itself at 2/3 of the lifetime). The live session continues.
func (c *Client) Renew(ctx context.Context) error {
	if err := c.dev.Renew(ctx); err != nil {
		return err
	}
	c.renewals.Add(1)
	c.log.Info("certificate renewed", "expires", c.dev.Certificate().NotAfter)
	return nil
}

// currentSecret returns the secret to present: the stored one.
func (c *Client) currentSecret() (keystore.Secret, error) {
	s, ok := c.dev.ks.Secret(ksSecret)
	if !ok || s.IsZero() {
		return keystore.Secret{}, fmt.Errorf("%w: no MQTT secret stored", ErrNotEnrolled)
	}
	return s, nil
}

// tryNextSecret: the stored secret was refused; if a rotation was sent
// but not confirmed (a crash between the two), the hub may already hold
// the new one, so promote it for the next attempt.
func (c *Client) tryNextSecret() bool {
	ks := c.dev.ks
	next, ok := ks.Secret(ksNextSecret)
	if !ok || next.IsZero() {
		return false
	}
	ks.PutSecret(ksSecret, next)
	ks.Delete(ksNextSecret)
	ks.Delete(ksMustRotate)
	return ks.Commit() == nil
}

// rotateIfNeeded replaces a must_rotate secret before anything else
// happens on the session: the new secret is committed to the keystore as
// "next" first, sent to devices/{id}/credentials/rotate (QoS 1), and made
// current once the hub has acknowledged it.
func (c *Client) rotateIfNeeded(mq paho.Client) error {
	ks := c.dev.ks
	if v, _ := ks.Get(ksMustRotate); string(v) != mustRotateYes {
		return nil
	}
	cur, err := c.currentSecret()
	if err != nil {
		return err
	}
	c.rndMu.Lock()
	next, err := newSecret(c.o.Rand)
	c.rndMu.Unlock()
	if err != nil {
		return err
	}
	ks.PutSecret(ksNextSecret, next)
	if err := ks.Commit(); err != nil {
		return fmt.Errorf("storing the new secret before rotating: %w", err)
	}
	body, _ := json.Marshal(map[string]string{"current": cur.Reveal(), "new": next.Reveal()})
	tok := mq.Publish("devices/"+c.dev.id+"/credentials/rotate", 1, false, body)
	if !tok.WaitTimeout(publishTimeout) || tok.Error() != nil {
		return fmt.Errorf("rotating the device secret: the hub did not acknowledge (%v)", tok.Error())
	}
	ks.PutSecret(ksSecret, next)
	ks.Delete(ksNextSecret)
	ks.Delete(ksMustRotate)
	if err := ks.Commit(); err != nil {
		return fmt.Errorf("storing the rotated secret: %w", err)
	}
	c.log.Info("device secret rotated")
	return nil
}
