// Package secrets keeps Rampart's secrets encrypted at rest.
//
// It uses envelope encryption. A master key (the key-encryption key, KEK)
// comes from a key file (DATA/master.key by default, or the path in
// RAMPART_MASTER_KEY_FILE) or from a passphrase stretched with argon2id. The
// master key never encrypts application data: it only wraps data keys, random
// AES-256-GCM keys kept in the store. A [Keyring] holds the unwrapped data keys
// in memory and seals and opens application secrets with them; a [Vault] keeps
// named secrets sealed in the store, which only ever sees ciphertext.
//
// Rotating the master key ([Rotate], [RotateKeyFile], [RotatePassphrase])
// re-wraps every data key and adds a fresh active one in a single store
// transaction; the data keys themselves do not change, so a hub that already
// opened its keyring keeps working while another process rotates. The key or
// salt file is replaced through PATH.next so that a crash at any point leaves
// a state [OpenKeyFile] and [OpenPassphrase] recover from.
//
// [Text] and [Bytes] carry secrets through the rest of the code and print as
// [REDACTED] through fmt, encoding/json, encoding and log/slog.
//
// The package declares the storage it needs ([KeyReader], [KeyStore],
// [SealedStore]); adapters such as internal/store/sqlite implement them. It
// imports no store and no transport.
package secrets
