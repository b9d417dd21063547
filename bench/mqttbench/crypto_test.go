package main

import (
	"testing"
)

// BenchmarkHandshakeCrypto is the CPU cost of one mTLS handshake's
// public-key work alone (see crypto.go), server and client side, with the
// X25519 key exchange (what Mosquitto/OpenSSL 3.0 negotiates) and the
// X25519MLKEM768 hybrid (what the hub negotiates with a Go client).
func BenchmarkHandshakeCrypto(b *testing.B) {
	p, err := newPKI(b.TempDir(), 2)
	if err != nil {
		b.Fatal(err)
	}
	f := newCryptoFixture(p)
	for _, hybrid := range []bool{false, true} {
		name := "X25519"
		if hybrid {
			name = "X25519MLKEM768"
		}
		b.Run("server/"+name, func(b *testing.B) { f.server(b, hybrid) })
		b.Run("client/"+name, func(b *testing.B) { f.client(b, hybrid) })
	}
}
