package gateway

import "time"

// Defaults and hard limits, each with its reason.
const (
	// DefaultPollInterval: PLC process values change on the order of
	// seconds; faster polling is a config choice.
	DefaultPollInterval = time.Second
	// DefaultTimeout per Modbus request: a PLC on a local segment answers
	// within tens of milliseconds; a second means it is not answering.
	DefaultTimeout = time.Second
	// DefaultRetries of a failed request before the poll counts as a fault.
	DefaultRetries = 2
	// DefaultBackoffMax caps the wait between polls of a PLC that is away
	// (doubling from the poll interval).
	DefaultBackoffMax = 30 * time.Second
	// DefaultSecureAddr: Modbus/TCP Security's registered port, on loopback
	// until the config says otherwise.
	DefaultSecureAddr = "127.0.0.1:802"
	// DefaultMaxClients on the secure server: SCADA masters are few.
	DefaultMaxClients = 16

	// minPollInterval and minTimeout keep a typo from hammering a PLC.
	minPollInterval = 10 * time.Millisecond
	minTimeout      = 10 * time.Millisecond
	maxRetries      = 10
	maxRegisters    = 1000 // per PLC
	maxPLCs         = 256
	maxConfigBytes  = 1 << 20

	// handshakeTimeout bounds a TLS handshake on the secure server
	// (slowloris); idleTimeout closes a silent SCADA connection.
	handshakeTimeout = 10 * time.Second
	idleTimeout      = 2 * time.Minute
)
