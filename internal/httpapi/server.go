package httpapi

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Server is the HTTPS listener. It completes each TLS handshake itself,
// under a deadline, before net/http sees the connection: a client that does
// not finish TLS gets no byte of HTTP (not even net/http's "client sent an
// HTTP request to an HTTPS server" reply) and cannot hold resources.
type Server struct {
	srv *http.Server
	ln  *handshakeListener
}

// NewServer listens on addr (port 0 picks a free port) with cfg from tlsconf.
func NewServer(addr string, cfg *tls.Config, h http.Handler, readHeaderTimeout time.Duration, log *slog.Logger) (*Server, error) {
	raw, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	ln := newHandshakeListener(raw, cfg, log)
	ln.start()
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		TLSConfig:         cfg,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return &Server{srv: srv, ln: ln}, nil
}

// Addr is the bound address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve blocks until Shutdown.
func (s *Server) Serve() error {
	err := s.srv.Serve(s.ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting and drains in-flight requests until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.srv.Shutdown(ctx)
}

type handshakeListener struct {
	net.Listener
	cfg     *tls.Config
	log     *slog.Logger
	conns   chan net.Conn
	errc    chan error
	done    chan struct{}
	once    sync.Once
	tokens  chan struct{}
	timeout time.Duration // TLS handshake deadline
}

func newHandshakeListener(raw net.Listener, cfg *tls.Config, log *slog.Logger) *handshakeListener {
	l := &handshakeListener{
		Listener: raw, cfg: cfg, log: log,
		conns: make(chan net.Conn), errc: make(chan error, 1), done: make(chan struct{}),
		tokens: make(chan struct{}, maxPendingHandshakes), timeout: handshakeTimeout,
	}
	return l
}

func (l *handshakeListener) start() { go l.acceptLoop() }

func (l *handshakeListener) acceptLoop() {
	for {
		select {
		case l.tokens <- struct{}{}:
		case <-l.done:
			return
		}
		c, err := l.Listener.Accept()
		if err != nil {
			<-l.tokens
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			select {
			case l.errc <- err:
			case <-l.done:
			}
			return
		}
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetNoDelay(true)
		}
		go l.handshake(c)
	}
}

func (l *handshakeListener) handshake(c net.Conn) {
	defer func() { <-l.tokens }()
	tc := tls.Server(c, l.cfg)
	_ = c.SetDeadline(time.Now().Add(l.timeout))
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		l.log.Debug("TLS handshake refused", "remote", c.RemoteAddr().String(), "err", err)
		// Close the raw connection: closing tc would try to send an alert
		// over a stream that may be plaintext HTTP.
		c.Close()
		return
	}
	_ = c.SetDeadline(time.Time{})
	select {
	case l.conns <- tc:
	case <-l.done:
		tc.Close()
	}
}

func (l *handshakeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case err := <-l.errc:
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handshakeListener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.done)
		err = l.Listener.Close()
	})
	return err
}
