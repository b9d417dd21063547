package httpapi

import "time"

const (
	// DefaultMaxBodyBytes: the API takes small JSON documents; 1 MiB leaves
	// room for CSR chains and manifests and bounds what a client can make
	// the hub buffer.
	DefaultMaxBodyBytes = 1 << 20

	// maxHeaderBytes: bearer tokens and a few headers; far below Go's 1 MiB.
	maxHeaderBytes = 16 << 10

	// handshakeTimeout bounds a TLS handshake, so a silent or slow client
	// (slowloris) cannot hold a goroutine and a file descriptor.
	handshakeTimeout = 10 * time.Second

	// maxPendingHandshakes bounds handshakes in flight; more wait in the
	// kernel's accept queue rather than in our memory.
	maxPendingHandshakes = 256

	// publicPerSource*: requests per second (and burst) one source address
	// may make to the routes open without a bearer token. A factory line
	// enrolling devices behind one NAT stays well under it; a flood of
	// guesses does not. Beyond: 429. maxLimitedSources bounds the table.
	publicPerSourcePerSec = 50
	publicPerSourceBurst  = 200
	maxLimitedSources     = 100_000

	readTimeout  = 30 * time.Second
	writeTimeout = 30 * time.Second
	idleTimeout  = 120 * time.Second
)
