package broker

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/rampart-iot/rampart/internal/journal"
)

// listener is our MQTT-over-TLS listener for the engine. It caps
// connections per address and in total, rate-limits new connections per
// address, completes TLS under a deadline, gives the client a deadline to
// send CONNECT, and recovers a panic in any one connection.
type listener struct {
	b    *Broker
	id   string
	addr string
	ln   net.Listener

	mu    sync.Mutex
	perIP map[string]*ipState
	total atomic.Int64
	wg    sync.WaitGroup
	done  chan struct{}
	once  sync.Once
}

type ipState struct {
	conns int
	rate  *bucket
}

var _ listeners.Listener = (*listener)(nil)

func (l *listener) ID() string       { return l.id }
func (l *listener) Protocol() string { return "mqtts" }
func (l *listener) Address() string {
	if l.ln != nil {
		return l.ln.Addr().String()
	}
	return l.addr
}

func (l *listener) Init(*slog.Logger) error {
	ln, err := net.Listen("tcp", l.addr)
	if err != nil {
		return err
	}
	l.ln = ln
	l.done = make(chan struct{})
	go l.sweepLoop()
	return nil
}

func (l *listener) sweepLoop() {
	t := time.NewTicker(flapWindow)
	defer t.Stop()
	for {
		select {
		case <-l.done:
			return
		case <-t.C:
			l.b.flaps.sweep()
			l.mu.Lock()
			for ip, st := range l.perIP {
				if st.conns == 0 && st.rate.take(0) && st.rate.tokens >= st.rate.burst {
					delete(l.perIP, ip)
				}
			}
			l.mu.Unlock()
		}
	}
}

// admit applies the per-address and total caps before any TLS work.
func (l *listener) admit(ip string) bool {
	lim := l.b.o.Limits
	if l.total.Load() >= int64(lim.MaxConns) {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.perIP[ip]
	if st == nil {
		st = &ipState{rate: newBucket(lim.NewConnsPerIPPerSec, float64(lim.NewConnsBurst), l.b.o.Now)}
		l.perIP[ip] = st
	}
	if st.conns >= lim.MaxConnsPerIP || !st.rate.take(1) {
		return false
	}
	st.conns++
	l.total.Add(1)
	return true
}

func (l *listener) release(ip string) {
	l.mu.Lock()
	if st := l.perIP[ip]; st != nil {
		st.conns--
	}
	l.mu.Unlock()
	l.total.Add(-1)
}

func (l *listener) Serve(establish listeners.EstablishFn) {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			select {
			case <-l.done:
				return
			default:
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return
		}
		ip := remoteIP(c.RemoteAddr().String())
		if !l.admit(ip) {
			l.b.m.connRefused.Inc()
			c.Close()
			continue
		}
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetNoDelay(true)
		}
		l.wg.Add(1)
		go l.handle(c, ip, establish)
	}
}

func (l *listener) handle(c net.Conn, ip string, establish listeners.EstablishFn) {
	defer l.wg.Done()
	defer l.release(ip)
	tc := tls.Server(c, l.b.o.TLS)
	defer func() {
		if v := recover(); v != nil {
			l.b.m.panics.Inc()
			l.b.o.Logger.Error("recovered panic in MQTT connection", "remote", c.RemoteAddr().String(), "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			actor := "anonymous@" + ip
			tenant := ""
			l.b.mu.Lock()
			cl := l.b.byConn[tc]
			if s := l.b.sessions[cl]; s != nil {
				actor, tenant = actorOf(s.id, cl), s.id.TenantID
			}
			l.b.mu.Unlock()
			if cl != nil {
				// The engine's own cleanup did not run: drop the client's
				// subscriptions and session so nothing of it lingers.
				if cur, ok := l.b.srv.Clients.Get(cl.ID); ok && cur == cl {
					l.b.srv.UnsubscribeClient(cl)
					l.b.srv.Clients.Delete(cl.ID)
				}
				cl.Stop(fmt.Errorf("panic: %v", v))
				l.b.forget(cl)
			}
			c.Close()
			l.b.record(journal.Event{Actor: actor, Tenant: tenant, Action: "mqtt.panic_recovered", Outcome: "failure",
				Detail: map[string]string{"panic": truncate(fmt.Sprint(v), 256), "remote": ip}})
		}
	}()
	lim := l.b.o.Limits
	_ = c.SetDeadline(time.Now().Add(lim.HandshakeTimeout))
	ctx, cancel := context.WithTimeout(context.Background(), lim.HandshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		l.b.m.handshakeFailures.Inc()
		c.Close()
		return
	}
	// CONNECT must arrive within ConnectTimeout; the engine replaces this
	// deadline with the keepalive-based one after CONNECT.
	_ = c.SetWriteDeadline(time.Time{})
	_ = c.SetReadDeadline(time.Now().Add(lim.ConnectTimeout))
	_ = establish(l.id, tc)
}

func (l *listener) Close(closeClients listeners.CloseFn) {
	l.once.Do(func() {
		if l.done != nil {
			close(l.done)
		}
		if l.ln != nil {
			l.ln.Close()
		}
	})
	closeClients(l.id)
}

// recordAuthFailure journals refusals, summarising floods: at most
// authJournalBurst in a burst and authJournalPerSec after that; the rest are
// counted and reported with the next entry.
func (b *Broker) recordAuthFailure(e journal.Event) {
	b.authOnce.Do(func() { b.authBucket = newBucket(authJournalPerSec, authJournalBurst, b.o.Now) })
	if !b.authBucket.take(1) {
		b.authSuppressed.Add(1)
		return
	}
	if n := b.authSuppressed.Swap(0); n > 0 {
		if e.Detail == nil {
			e.Detail = map[string]string{}
		}
		e.Detail["suppressed_before"] = fmt.Sprint(n)
	}
	b.record(e)
}
