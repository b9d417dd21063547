package tlsconf

import "crypto/tls"

// tls12Suites are the only TLS 1.2 suites offered: ECDHE for forward secrecy,
// AEAD (GCM, ChaCha20-Poly1305) for integrity. No RSA key exchange, no CBC,
// no 3DES, no RC4. TLS 1.3 suites are not configurable in Go and are all AEAD.
var tls12Suites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// curves: the post-quantum hybrid first (harvest-now-decrypt-later matters
// for devices that live 15 years), then X25519 and P-256 for constrained
// device stacks (mbedTLS, wolfSSL) that lack the hybrid.
var curves = []tls.CurveID{
	tls.X25519MLKEM768,
	tls.X25519,
	tls.CurveP256,
	tls.CurveP384,
}
