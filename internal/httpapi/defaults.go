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

	readTimeout  = 30 * time.Second
	writeTimeout = 30 * time.Second
	idleTimeout  = 120 * time.Second
)
